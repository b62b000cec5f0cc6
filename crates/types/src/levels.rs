//! Frequency tables and librte_power's level semantics, as guests expect
//! them (PROTOCOL.md, "Frequency semantics").
//!
//! A [`FreqTable`] lists a CPU's frequencies from highest to lowest; index 0
//! is the highest. A table may mark its index 0 as *turbo*: on acpi-cpufreq
//! that is the pseudo-frequency 1000 kHz above the highest real one
//! (`f[0] - 1000 == f[1]`); a table synthesized for a driver without
//! `scaling_available_frequencies` marks `cpuinfo_max_freq` as turbo when it
//! is above the base frequency. A [`LevelState`] is one core's position in
//! its table plus its per-core turbo flag; [`ScalingOp`]s and [`Level`]s
//! move it.
//!
//! This module is pure: no I/O, no clock. Every operation keeps the index
//! inside the table.
//!
//! ## Behavior
//! - `Up`: one index up; no-op at 0, and at 1 when turbo is available but
//!   disabled. `Down`: one index down; no-op at the last index.
//! - `Max`: index 0 if turbo is available and enabled, 1 if available but
//!   disabled, else 0. `Min`: the last index. [`Level::Medium`]: `len / 2`.
//! - `EnableTurbo` sets the per-core flag (an error when the table has no
//!   turbo entry, as librte_power fails it) and does not move the core;
//!   `DisableTurbo` clears it and moves a core at index 0 to index 1.
//! - A new [`LevelState`] starts with turbo enabled when the table offers
//!   it, as librte_power does.
//!
//! ## Limitations
//! - Synthesized tables ([`FreqTable::synthesize`]) are a model: the
//!   hardware may run at any P-state between the pinned bounds' neighbours.

use serde::{Deserialize, Serialize};

use crate::cpu::Khz;

/// The step between entries of a synthesized table: 100 MHz.
pub const SYNTH_STEP: Khz = Khz(100_000);

/// How far above the highest real frequency acpi-cpufreq lists turbo.
pub const ACPI_TURBO_OFFSET_KHZ: u32 = 1000;

/// Why a table could not be built or a level not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    /// A table needs at least one frequency.
    #[error("empty frequency table")]
    EmptyTable,
    /// Entries must be strictly descending (highest first).
    #[error("frequency table not strictly descending at index {index}: {prev} then {next}")]
    NotDescending {
        /// Index of the offending entry.
        index: usize,
        /// The entry before it.
        prev: Khz,
        /// The offending entry.
        next: Khz,
    },
    /// A zero frequency is never valid.
    #[error("frequency table holds 0 kHz at index {index}")]
    ZeroFrequency {
        /// Index of the zero entry.
        index: usize,
    },
    /// Turbo needs a real entry below it.
    #[error("a table marked turbo needs at least two entries, got {len}")]
    TurboNeedsTwoEntries {
        /// Length of the table.
        len: usize,
    },
    /// Synthesis bounds make no sense.
    #[error("cannot synthesize a table: cpuinfo_min {min} above cpuinfo_max {max}")]
    BadBounds {
        /// `cpuinfo_min_freq`.
        min: Khz,
        /// `cpuinfo_max_freq`.
        max: Khz,
    },
    /// An explicit level index beyond the table.
    #[error("level index {index} outside a table of {len} entries")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// Length of the table.
        len: usize,
    },
    /// `EnableTurbo` on a core whose table has no turbo entry.
    #[error("turbo is not available on this core")]
    TurboUnavailable,
}

/// A CPU's frequency table: highest first, strictly descending, non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreqTable {
    freqs: Vec<Khz>,
    turbo: bool,
}

impl FreqTable {
    /// A table from frequencies highest first; index 0 is turbo when it is
    /// exactly 1000 kHz above index 1 (acpi-cpufreq's pseudo-frequency).
    pub fn new(freqs: Vec<Khz>) -> Result<Self, LevelError> {
        validate(&freqs)?;
        let turbo =
            freqs.len() >= 2 && freqs[0].0.checked_sub(ACPI_TURBO_OFFSET_KHZ) == Some(freqs[1].0);
        Ok(FreqTable { freqs, turbo })
    }

    /// A table whose index 0 is turbo exactly when `turbo` says so (for
    /// synthesized tables and drivers that mark turbo another way).
    pub fn with_turbo(freqs: Vec<Khz>, turbo: bool) -> Result<Self, LevelError> {
        validate(&freqs)?;
        if turbo && freqs.len() < 2 {
            return Err(LevelError::TurboNeedsTwoEntries { len: freqs.len() });
        }
        Ok(FreqTable { freqs, turbo })
    }

    /// A table from `scaling_available_frequencies` as listed, in any order:
    /// sorted highest first, duplicates dropped, then as [`FreqTable::new`].
    pub fn from_available(freqs: &[Khz]) -> Result<Self, LevelError> {
        let mut sorted = freqs.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        FreqTable::new(sorted)
    }

    /// A table for a driver without `scaling_available_frequencies`
    /// (intel_pstate, amd-pstate(-epp), cppc).
    ///
    /// The top real entry is `base` (or `max` without a base; a base above
    /// `max` counts as `max`, one below `min` as `min`). Below it, entries
    /// go down in [`SYNTH_STEP`]s *counted from the top* (`top`,
    /// `top - 100 MHz`, ...) while they stay above `min`; `min` itself is
    /// always the last entry, so the last step may be shorter than 100 MHz.
    /// When `max` is above the top, it is added at index 0 and marked turbo.
    pub fn synthesize(min: Khz, max: Khz, base: Option<Khz>) -> Result<Self, LevelError> {
        if min.0 == 0 {
            return Err(LevelError::ZeroFrequency { index: 0 });
        }
        if min > max {
            return Err(LevelError::BadBounds { min, max });
        }
        let top = base.map_or(max, |b| b.clamp(min, max));
        let mut freqs = Vec::new();
        let turbo = max > top;
        if turbo {
            freqs.push(max);
        }
        let mut f = top.0;
        while f > min.0 {
            freqs.push(Khz(f));
            f = f.saturating_sub(SYNTH_STEP.0);
        }
        freqs.push(min);
        FreqTable::with_turbo(freqs, turbo)
    }

    /// The frequencies, highest first.
    pub fn freqs(&self) -> &[Khz] {
        &self.freqs
    }

    /// Number of entries (never 0).
    pub fn len(&self) -> usize {
        self.freqs.len()
    }

    /// Always false: a table is never empty (kept for the `len` lint).
    pub fn is_empty(&self) -> bool {
        self.freqs.is_empty()
    }

    /// Whether index 0 is a turbo entry.
    pub fn turbo_available(&self) -> bool {
        self.turbo
    }

    /// The last index (the lowest frequency).
    pub fn last_index(&self) -> usize {
        self.freqs.len() - 1
    }

    /// The frequency at `index`, if inside the table.
    pub fn get(&self, index: usize) -> Option<Khz> {
        self.freqs.get(index).copied()
    }

    /// The index of exactly `khz`, if the table holds it.
    pub fn index_of(&self, khz: Khz) -> Option<usize> {
        self.freqs.iter().position(|f| *f == khz)
    }

    /// The index of the entry nearest to `khz` (ties go to the higher
    /// index, the lower frequency): where a core found at an arbitrary
    /// frequency is placed.
    pub fn nearest_index(&self, khz: Khz) -> usize {
        let mut best = 0;
        for (i, f) in self.freqs.iter().enumerate() {
            if f.0.abs_diff(khz.0) <= self.freqs[best].0.abs_diff(khz.0) {
                best = i;
            }
        }
        best
    }
}

fn validate(freqs: &[Khz]) -> Result<(), LevelError> {
    if freqs.is_empty() {
        return Err(LevelError::EmptyTable);
    }
    if let Some(index) = freqs.iter().position(|f| f.0 == 0) {
        return Err(LevelError::ZeroFrequency { index });
    }
    for (i, pair) in freqs.windows(2).enumerate() {
        if pair[1] >= pair[0] {
            return Err(LevelError::NotDescending {
                index: i + 1,
                prev: pair[0],
                next: pair[1],
            });
        }
    }
    Ok(())
}

/// A guest's direct request on a core (PROTOCOL.md's CPU_POWER units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScalingOp {
    /// SCALE_UP: one index up.
    Up,
    /// SCALE_DOWN: one index down.
    Down,
    /// SCALE_MAX: the highest allowed index.
    Max,
    /// SCALE_MIN: the last index.
    Min,
    /// ENABLE_TURBO: allow index 0 on a turbo table.
    EnableTurbo,
    /// DISABLE_TURBO: forbid index 0 on a turbo table.
    DisableTurbo,
}

/// A level the engine wants a core at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level {
    /// The last index.
    Min,
    /// Index `len / 2`.
    Medium,
    /// As [`ScalingOp::Max`]: respects the core's turbo flag.
    Max,
    /// An explicit index; index 0 of a turbo table with turbo disabled
    /// becomes 1.
    Index(usize),
}

/// The index `level` means for a core with this table and turbo flag.
pub fn level_index(
    table: &FreqTable,
    turbo_enabled: bool,
    level: Level,
) -> Result<usize, LevelError> {
    shape_level_index(table.shape(), turbo_enabled, level)
}

/// What [`level_index`] needs of a table, small enough to copy beside
/// every CPU of a domain: its length and whether index 0 is turbo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableShape {
    /// The number of entries (at least 1; a sysfs table, one page of
    /// text, holds far fewer than `u16::MAX`).
    pub len: u16,
    /// Whether index 0 is the turbo pseudo-frequency.
    pub turbo: bool,
}

impl FreqTable {
    /// The table's [`TableShape`].
    pub fn shape(&self) -> TableShape {
        TableShape {
            len: u16::try_from(self.freqs.len()).unwrap_or(u16::MAX),
            turbo: self.turbo,
        }
    }
}

/// [`level_index`] from a table's shape.
pub fn shape_level_index(
    shape: TableShape,
    turbo_enabled: bool,
    level: Level,
) -> Result<usize, LevelError> {
    let turbo_blocked = shape.turbo && !turbo_enabled;
    let len = usize::from(shape.len);
    Ok(match level {
        Level::Min => len.saturating_sub(1),
        Level::Medium => len / 2,
        Level::Max => usize::from(turbo_blocked),
        Level::Index(index) if index >= len => {
            return Err(LevelError::IndexOutOfRange { index, len });
        }
        Level::Index(0) if turbo_blocked => 1,
        Level::Index(index) => index,
    })
}

/// One core's position in its table and its per-core turbo flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelState {
    index: usize,
    turbo_enabled: bool,
}

impl LevelState {
    /// A core at `index` (clamped into the table) with turbo enabled when
    /// the table offers it, as librte_power starts.
    pub fn new(table: &FreqTable, index: usize) -> Self {
        LevelState {
            index: index.min(table.last_index()),
            turbo_enabled: table.turbo_available(),
        }
    }

    /// A core at `index` (clamped) with an explicit turbo flag; a core at
    /// index 0 of a turbo table with turbo disabled is moved to 1.
    pub fn with_turbo(table: &FreqTable, index: usize, turbo_enabled: bool) -> Self {
        let mut state = LevelState {
            index: index.min(table.last_index()),
            turbo_enabled,
        };
        if state.index == 0 && table.turbo_available() && !turbo_enabled {
            state.index = 1;
        }
        state
    }

    /// The current index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The per-core turbo flag.
    pub fn turbo_enabled(&self) -> bool {
        self.turbo_enabled
    }

    /// The frequency of the current index (of the last entry if the state
    /// was built for a longer table).
    pub fn khz(&self, table: &FreqTable) -> Khz {
        let index = self.index.min(table.last_index());
        table
            .get(index)
            .expect("index clamped into a non-empty table")
    }

    /// Applies a guest's operation; returns the new index.
    pub fn apply_op(&mut self, table: &FreqTable, op: ScalingOp) -> Result<usize, LevelError> {
        self.index = self.index.min(table.last_index());
        let turbo_blocked = table.turbo_available() && !self.turbo_enabled;
        match op {
            ScalingOp::Up => {
                let floor = usize::from(turbo_blocked);
                if self.index > floor {
                    self.index -= 1;
                }
            }
            ScalingOp::Down => {
                if self.index < table.last_index() {
                    self.index += 1;
                }
            }
            ScalingOp::Max => self.index = level_index(table, self.turbo_enabled, Level::Max)?,
            ScalingOp::Min => self.index = table.last_index(),
            ScalingOp::EnableTurbo => {
                if !table.turbo_available() {
                    return Err(LevelError::TurboUnavailable);
                }
                self.turbo_enabled = true;
            }
            ScalingOp::DisableTurbo => {
                self.turbo_enabled = false;
                if table.turbo_available() && self.index == 0 {
                    self.index = 1;
                }
            }
        }
        Ok(self.index)
    }

    /// Moves the core to the index `level` means; returns it.
    pub fn apply_level(&mut self, table: &FreqTable, level: Level) -> Result<usize, LevelError> {
        self.index = level_index(table, self.turbo_enabled, level)?;
        Ok(self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn khz(list: &[u32]) -> Vec<Khz> {
        list.iter().map(|&f| Khz(f)).collect()
    }

    /// acpi-cpufreq with turbo: 2301000 is the turbo pseudo-frequency.
    fn acpi_turbo() -> FreqTable {
        FreqTable::new(khz(&[
            2_301_000, 2_300_000, 2_000_000, 1_600_000, 1_200_000,
        ]))
        .unwrap()
    }

    fn acpi_plain() -> FreqTable {
        FreqTable::new(khz(&[2_300_000, 2_000_000, 1_600_000, 1_200_000])).unwrap()
    }

    #[test]
    fn table_validation_errors_are_typed() {
        assert_eq!(FreqTable::new(vec![]), Err(LevelError::EmptyTable));
        assert_eq!(
            FreqTable::new(khz(&[2_000_000, 2_000_000])),
            Err(LevelError::NotDescending {
                index: 1,
                prev: Khz(2_000_000),
                next: Khz(2_000_000)
            })
        );
        assert_eq!(
            FreqTable::new(khz(&[1_000_000, 2_000_000])).unwrap_err(),
            LevelError::NotDescending {
                index: 1,
                prev: Khz(1_000_000),
                next: Khz(2_000_000)
            }
        );
        assert_eq!(
            FreqTable::new(khz(&[1_000_000, 0])),
            Err(LevelError::ZeroFrequency { index: 1 })
        );
        assert_eq!(
            FreqTable::with_turbo(khz(&[1_000_000]), true),
            Err(LevelError::TurboNeedsTwoEntries { len: 1 })
        );
    }

    #[test]
    fn turbo_detection_follows_the_acpi_rule() {
        let cases: &[(&[u32], bool)] = &[
            (&[2_301_000, 2_300_000, 1_200_000], true),
            (&[2_302_000, 2_300_000, 1_200_000], false),
            (&[2_300_000, 2_000_000], false),
            (&[1_001_000, 1_000_000], true),
            (&[1_000_000], false),
        ];
        for (list, want) in cases {
            let t = FreqTable::new(khz(list)).unwrap();
            assert_eq!(t.turbo_available(), *want, "{list:?}");
        }
    }

    #[test]
    fn from_available_sorts_and_dedups() {
        let t =
            FreqTable::from_available(&khz(&[1_200_000, 2_301_000, 2_300_000, 1_200_000])).unwrap();
        assert_eq!(
            t.freqs(),
            khz(&[2_301_000, 2_300_000, 1_200_000]).as_slice()
        );
        assert!(t.turbo_available());
    }

    #[test]
    fn synthesis_steps_from_base_and_marks_turbo() {
        // intel_pstate: min 800 MHz, base 2.1 GHz, max turbo 3.9 GHz.
        let t = FreqTable::synthesize(Khz(800_000), Khz(3_900_000), Some(Khz(2_100_000))).unwrap();
        assert!(t.turbo_available());
        assert_eq!(t.get(0), Some(Khz(3_900_000)));
        assert_eq!(t.get(1), Some(Khz(2_100_000)));
        assert_eq!(t.get(2), Some(Khz(2_000_000)));
        assert_eq!(t.freqs().last(), Some(&Khz(800_000)));
        assert_eq!(t.len(), 1 + 14);
    }

    #[test]
    fn synthesis_rounding_keeps_min_as_a_short_last_step() {
        let t = FreqTable::synthesize(Khz(1_150_000), Khz(1_500_000), None).unwrap();
        assert_eq!(
            t.freqs(),
            khz(&[1_500_000, 1_400_000, 1_300_000, 1_200_000, 1_150_000]).as_slice()
        );
        assert!(!t.turbo_available());
    }

    #[test]
    fn synthesis_edge_cases() {
        let one = FreqTable::synthesize(Khz(2_000_000), Khz(2_000_000), None).unwrap();
        assert_eq!(one.freqs(), khz(&[2_000_000]).as_slice());
        // A base above max counts as max: no turbo.
        let t =
            FreqTable::synthesize(Khz(1_000_000), Khz(1_200_000), Some(Khz(9_000_000))).unwrap();
        assert!(!t.turbo_available());
        assert_eq!(t.get(0), Some(Khz(1_200_000)));
        assert_eq!(
            FreqTable::synthesize(Khz(2_000_000), Khz(1_000_000), None),
            Err(LevelError::BadBounds {
                min: Khz(2_000_000),
                max: Khz(1_000_000)
            })
        );
        assert!(FreqTable::synthesize(Khz(0), Khz(1_000_000), None).is_err());
    }

    #[test]
    fn nearest_and_exact_index() {
        let t = acpi_plain();
        assert_eq!(t.index_of(Khz(2_000_000)), Some(1));
        assert_eq!(t.index_of(Khz(2_000_001)), None);
        assert_eq!(t.nearest_index(Khz(1_900_000)), 1);
        assert_eq!(
            t.nearest_index(Khz(1_800_000)),
            2,
            "tie goes to the lower frequency"
        );
        assert_eq!(t.nearest_index(Khz(5)), 3);
        assert_eq!(t.nearest_index(Khz(9_000_000)), 0);
    }

    /// (table, start index, turbo flag, op, expected index, expected flag)
    #[test]
    fn scaling_ops_table() {
        use ScalingOp::*;
        let turbo = acpi_turbo();
        let plain = acpi_plain();
        let cases: &[(&FreqTable, usize, bool, ScalingOp, usize, bool)] = &[
            (&turbo, 2, true, Up, 1, true),
            (&turbo, 1, true, Up, 0, true),
            (&turbo, 0, true, Up, 0, true),
            (&turbo, 1, false, Up, 1, false),
            (&turbo, 2, false, Up, 1, false),
            (&plain, 0, false, Up, 0, false),
            (&plain, 1, false, Up, 0, false),
            (&turbo, 3, true, Down, 4, true),
            (&turbo, 4, true, Down, 4, true),
            (&plain, 3, false, Down, 3, false),
            (&turbo, 4, true, Max, 0, true),
            (&turbo, 4, false, Max, 1, false),
            (&plain, 3, false, Max, 0, false),
            (&turbo, 0, true, Min, 4, true),
            (&plain, 0, false, Min, 3, false),
            (&turbo, 1, false, EnableTurbo, 1, true),
            (&turbo, 0, true, DisableTurbo, 1, false),
            (&turbo, 2, true, DisableTurbo, 2, false),
            (&plain, 0, false, DisableTurbo, 0, false),
        ];
        for &(table, start, flag, op, want_index, want_flag) in cases {
            let mut s = LevelState::with_turbo(table, start, flag);
            let got = s.apply_op(table, op).unwrap();
            assert_eq!(
                (got, s.turbo_enabled()),
                (want_index, want_flag),
                "{op:?} from {start} turbo={flag}"
            );
            assert_eq!(s.index(), got);
        }
    }

    #[test]
    fn enable_turbo_without_turbo_fails_and_keeps_state() {
        let t = acpi_plain();
        let mut s = LevelState::new(&t, 2);
        assert_eq!(
            s.apply_op(&t, ScalingOp::EnableTurbo),
            Err(LevelError::TurboUnavailable)
        );
        assert_eq!((s.index(), s.turbo_enabled()), (2, false));
    }

    #[test]
    fn new_state_starts_with_turbo_when_offered_and_clamps() {
        assert!(LevelState::new(&acpi_turbo(), 0).turbo_enabled());
        assert!(!LevelState::new(&acpi_plain(), 0).turbo_enabled());
        assert_eq!(LevelState::new(&acpi_plain(), 99).index(), 3);
        assert_eq!(LevelState::with_turbo(&acpi_turbo(), 0, false).index(), 1);
    }

    #[test]
    fn levels_table() {
        let turbo = acpi_turbo();
        let plain = acpi_plain();
        let cases: &[(&FreqTable, bool, Level, Result<usize, LevelError>)] = &[
            (&turbo, true, Level::Min, Ok(4)),
            (&turbo, true, Level::Medium, Ok(2)),
            (&plain, false, Level::Medium, Ok(2)),
            (&turbo, true, Level::Max, Ok(0)),
            (&turbo, false, Level::Max, Ok(1)),
            (&plain, false, Level::Max, Ok(0)),
            (&turbo, false, Level::Index(0), Ok(1)),
            (&turbo, true, Level::Index(0), Ok(0)),
            (&plain, false, Level::Index(3), Ok(3)),
            (
                &plain,
                false,
                Level::Index(4),
                Err(LevelError::IndexOutOfRange { index: 4, len: 4 }),
            ),
        ];
        for (table, flag, level, want) in cases {
            assert_eq!(
                &level_index(table, *flag, *level),
                want,
                "{level:?} turbo={flag}"
            );
        }
        let mut s = LevelState::new(&turbo, 4);
        assert_eq!(s.apply_level(&turbo, Level::Medium), Ok(2));
        assert_eq!(s.khz(&turbo), Khz(2_000_000));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn table() -> impl Strategy<Value = FreqTable> {
            (
                prop::collection::btree_set(1u32..5_000_000, 1..12),
                any::<bool>(),
            )
                .prop_map(|(set, acpi_turbo)| {
                    let mut v: Vec<Khz> = set.into_iter().rev().map(Khz).collect();
                    if acpi_turbo {
                        let top = v[0].0 + ACPI_TURBO_OFFSET_KHZ;
                        v.insert(0, Khz(top));
                        v[1] = Khz(top - ACPI_TURBO_OFFSET_KHZ);
                    }
                    FreqTable::from_available(&v).unwrap()
                })
        }

        fn op() -> impl Strategy<Value = ScalingOp> {
            prop_oneof![
                Just(ScalingOp::Up),
                Just(ScalingOp::Down),
                Just(ScalingOp::Max),
                Just(ScalingOp::Min),
                Just(ScalingOp::EnableTurbo),
                Just(ScalingOp::DisableTurbo),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn every_op_stays_in_table(t in table(), start in 0usize..16, flag: bool, ops in prop::collection::vec(op(), 0..40)) {
                let mut s = LevelState::with_turbo(&t, start, flag);
                for op in ops {
                    let _ = s.apply_op(&t, op);
                    prop_assert!(s.index() < t.len());
                    if t.turbo_available() && !s.turbo_enabled() {
                        prop_assert!(s.index() >= 1, "turbo disabled but at index 0");
                    }
                }
            }

            #[test]
            fn max_and_min_are_idempotent(t in table(), start in 0usize..16, flag: bool) {
                for op in [ScalingOp::Max, ScalingOp::Min] {
                    let mut s = LevelState::with_turbo(&t, start, flag);
                    let once = s.apply_op(&t, op).unwrap();
                    let twice = s.apply_op(&t, op).unwrap();
                    prop_assert_eq!(once, twice);
                }
            }

            #[test]
            fn up_then_down_returns(t in table(), start in 0usize..16, flag: bool) {
                let mut s = LevelState::with_turbo(&t, start, flag);
                let before = s.index();
                let floor = usize::from(t.turbo_available() && !s.turbo_enabled());
                prop_assume!(before > floor);
                s.apply_op(&t, ScalingOp::Up).unwrap();
                prop_assert_eq!(s.index(), before - 1);
                s.apply_op(&t, ScalingOp::Down).unwrap();
                prop_assert_eq!(s.index(), before);
            }

            #[test]
            fn synthesized_tables_are_valid(min in 1u32..3_000_000, span in 0u32..3_000_000, base_off in proptest::option::of(0u32..4_000_000)) {
                let max = min + span;
                let base = base_off.map(|o| Khz(min + o));
                let t = FreqTable::synthesize(Khz(min), Khz(max), base).unwrap();
                prop_assert_eq!(t.get(0), Some(Khz(max)));
                prop_assert_eq!(t.freqs().last().copied(), Some(Khz(min)));
                prop_assert_eq!(t.turbo_available(), base.is_some_and(|b| b.0 < max));
            }
        }
    }
}

//! The power model: what one core draws at each frequency, per CPU model,
//! read from a TOML table.
//!
//! ## Behavior
//! - A busy-polling core never idles: it is in C0 at all times, so its
//!   power is the table's `core_w` at its frequency, whatever its load.
//! - `uncore_w` (memory controller, interconnect, I/O die) is stated per
//!   socket and does not depend on the cores' frequencies here; a result
//!   charges each simulated core its share (`uncore_w / cores`), the same
//!   for every controller.
//! - The table's frequencies become the engine's frequency table (highest
//!   first), so "medium" is index `len / 2` exactly as for a real host.
//! - The cube law (`P = a + b·f³`, calibrated to the table's two ends) is
//!   only a named fallback, [`CpuModel::cube_law`], never the default.
//!
//! Each model says where its figures come from (`source`) and what they are
//! (`status`, one of [`STATUSES`]): `measured` (read off a real part),
//! `vendor-model` (the vendor's own per-P-state model, e.g. the Linux
//! Energy Model's `P = C·V²·f` from a device tree's
//! `dynamic-power-coefficient` and OPP voltages), `assumed` (a stated
//! curve, no source), or `fallback` (the cube law). The built-in models
//! are listed by [`builtin_names`].

use std::path::Path;

use serde::{Deserialize, Serialize};
use vmpower_cpufreq::Khz;
use vmpower_cpufreq::levels::FreqTable;

/// Why a CPU model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PowerModelError {
    /// No built-in model has that name and no such file exists.
    #[error("unknown CPU model {0:?} (built in: {names})", names = builtin_names().join(", "))]
    Unknown(String),
    /// The file could not be read.
    #[error("cannot read {0}")]
    Read(String, #[source] std::io::Error),
    /// The TOML is not a CPU model.
    #[error("{0} is not a CPU model")]
    Parse(String, #[source] toml::de::Error),
    /// The table is unusable.
    #[error("CPU model {0}: {1}")]
    Invalid(String, String),
}

/// One P-state: a frequency and what a core draws there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PState {
    /// The frequency.
    pub khz: u32,
    /// One busy (C0) core's power at it, watts.
    pub core_w: f64,
}

/// A CPU model: its P-states and their power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuModel {
    /// Marketing name.
    pub name: String,
    /// What the figures are: one of [`STATUSES`].
    pub status: String,
    /// Where the figures come from.
    pub source: String,
    /// Cores per socket (to share the uncore power).
    pub cores: u32,
    /// Uncore power per socket, watts (constant here).
    pub uncore_w: f64,
    /// The frequency transition latency, µs (the packet model's default).
    pub transition_latency_us: u64,
    /// P-states, highest frequency first.
    pub pstate: Vec<PState>,
}

const BUILTIN: &[(&str, &str)] = &[
    (
        "xeon-gold-6230",
        include_str!("../cpus/xeon-gold-6230.toml"),
    ),
    ("epyc-7502", include_str!("../cpus/epyc-7502.toml")),
    ("rk3399-a72", include_str!("../cpus/rk3399-a72.toml")),
    ("rk3588-a76", include_str!("../cpus/rk3588-a76.toml")),
];

/// The values `status` may take.
pub const STATUSES: &[&str] = &["measured", "vendor-model", "assumed", "fallback"];

/// The names of the built-in CPU models.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

impl CpuModel {
    /// A built-in model by name, else a TOML file at that path.
    pub fn load(name_or_path: &str) -> Result<Self, PowerModelError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(name_or_path, text);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(PowerModelError::Unknown(name_or_path.to_owned()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| PowerModelError::Read(name_or_path.to_owned(), e))?;
        Self::parse(name_or_path, &text)
    }

    /// Parses and checks a model.
    pub fn parse(what: &str, text: &str) -> Result<Self, PowerModelError> {
        let mut model: CpuModel =
            toml::from_str(text).map_err(|e| PowerModelError::Parse(what.to_owned(), e))?;
        let invalid = |why: &str| PowerModelError::Invalid(what.to_owned(), why.to_owned());
        if !STATUSES.contains(&model.status.as_str()) {
            return Err(invalid(&format!(
                "status {:?} is not one of {}",
                model.status,
                STATUSES.join(", ")
            )));
        }
        if model.pstate.is_empty() {
            return Err(invalid("no P-state"));
        }
        if model.cores == 0 {
            return Err(invalid("cores must be at least 1"));
        }
        model.pstate.sort_by_key(|p| std::cmp::Reverse(p.khz));
        if model.pstate.windows(2).any(|w| w[0].khz == w[1].khz) {
            return Err(invalid("two P-states at one frequency"));
        }
        if model
            .pstate
            .iter()
            .any(|p| !p.core_w.is_finite() || p.core_w < 0.0)
        {
            return Err(invalid("a P-state's power is negative or not a number"));
        }
        Ok(model)
    }

    /// The cube-law fallback: `P(f) = a + b·f³` through this model's
    /// lowest and highest P-states, at the same frequencies.
    pub fn cube_law(&self) -> CpuModel {
        let hi = self.pstate[0];
        let lo = self.pstate[self.pstate.len() - 1];
        let cube = |k: u32| (f64::from(k) / 1e6).powi(3);
        let span = cube(hi.khz) - cube(lo.khz);
        let b = if span > 0.0 {
            (hi.core_w - lo.core_w) / span
        } else {
            0.0
        };
        let a = hi.core_w - b * cube(hi.khz);
        CpuModel {
            name: format!("{} (cube law)", self.name),
            status: "fallback".to_owned(),
            source: format!("cube law through the two ends of: {}", self.source),
            pstate: self
                .pstate
                .iter()
                .map(|p| PState {
                    khz: p.khz,
                    core_w: a + b * cube(p.khz),
                })
                .collect(),
            ..self.clone()
        }
    }

    /// The frequency table the engine sees, highest first.
    pub fn table(&self) -> FreqTable {
        FreqTable::new(self.pstate.iter().map(|p| Khz(p.khz)).collect())
            .expect("a parsed model has a non-empty table of distinct frequencies")
    }

    /// The frequencies, highest first.
    pub fn khz(&self) -> Vec<u32> {
        self.pstate.iter().map(|p| p.khz).collect()
    }

    /// One core's power at table index `index`, watts.
    pub fn core_w(&self, index: usize) -> f64 {
        self.pstate[index.min(self.pstate.len() - 1)].core_w
    }

    /// Each core's share of the uncore power, watts.
    pub fn uncore_share_w(&self) -> f64 {
        self.uncore_w / f64::from(self.cores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_and_are_monotonic() {
        for name in builtin_names() {
            let m = CpuModel::load(name).unwrap();
            assert!(m.pstate.len() >= 3, "{name}");
            assert!(
                m.pstate.windows(2).all(|w| w[0].core_w > w[1].core_w),
                "{name}: power must fall with frequency"
            );
            assert_eq!(m.table().len(), m.pstate.len());
        }
    }

    #[test]
    fn cube_law_keeps_the_ends() {
        let m = CpuModel::load("xeon-gold-6230").unwrap();
        let c = m.cube_law();
        let last = m.pstate.len() - 1;
        assert!((c.core_w(0) - m.core_w(0)).abs() < 1e-9);
        assert!((c.core_w(last) - m.core_w(last)).abs() < 1e-9);
        assert!(c.core_w(1) < c.core_w(0));
    }

    /// The figures a vendor-model file cites, transcribed from the device
    /// trees named in the file.
    struct Cited {
        name: &'static str,
        /// `dynamic-power-coefficient`, µW/MHz/V².
        coeff: f64,
        /// The OPPs: MHz and target µV.
        opps: &'static [(u32, u32)],
    }

    const VENDOR_SOURCES: &[Cited] = &[
        Cited {
            name: "rk3399-a72",
            coeff: 436.0,
            opps: &[
                (1800, 1_200_000),
                (1608, 1_100_000),
                (1416, 1_025_000),
                (1200, 950_000),
                (1008, 875_000),
                (816, 825_000),
                (600, 825_000),
                (408, 825_000),
            ],
        },
        Cited {
            name: "rk3588-a76",
            coeff: 416.0,
            opps: &[
                (2208, 987_500),
                (2016, 925_000),
                (1800, 850_000),
                (1608, 762_500),
                (1416, 725_000),
                (1200, 675_000),
            ],
        },
    ];

    #[test]
    fn vendor_models_are_c_v2_f_of_their_cited_opps() {
        for Cited { name, coeff, opps } in VENDOR_SOURCES {
            let m = CpuModel::load(name).unwrap();
            assert_eq!(m.status, "vendor-model", "{name}");
            let cited: Vec<u32> = opps.iter().map(|(mhz, _)| mhz * 1000).collect();
            assert_eq!(m.khz(), cited, "{name}: exactly the cited OPPs");
            for (i, (mhz, uv)) in opps.iter().enumerate() {
                let volts = f64::from(*uv) / 1e6;
                let watts = coeff * f64::from(*mhz) * volts * volts / 1e6;
                assert!(
                    (m.core_w(i) - watts).abs() < 1e-6,
                    "{name} at {mhz} MHz: {} W in the file, C·V²·f = {watts} W",
                    m.core_w(i)
                );
            }
            // Nothing the source does not state is added.
            assert_eq!(m.uncore_w, 0.0, "{name}");
            assert_eq!(m.transition_latency_us, 40, "{name}: clock-latency-ns");
        }
    }

    #[test]
    fn every_builtin_states_a_known_status_and_a_source() {
        for name in builtin_names() {
            let m = CpuModel::load(name).unwrap();
            assert!(STATUSES.contains(&m.status.as_str()), "{name}");
            assert!(!m.source.trim().is_empty(), "{name}");
        }
        assert_eq!(
            CpuModel::load("xeon-gold-6230").unwrap().cube_law().status,
            "fallback"
        );
    }

    #[test]
    fn refuses_an_unknown_status() {
        let text = "name='x'\nstatus='guessed'\nsource='t'\ncores=1\nuncore_w=0\n\
                    transition_latency_us=1\n[[pstate]]\nkhz=1\ncore_w=1\n";
        let err = CpuModel::parse("t", text).unwrap_err();
        assert!(matches!(err, PowerModelError::Invalid(..)), "{err}");
        assert!(err.to_string().contains("guessed"), "{err}");
        let ok = text.replace("guessed", "vendor-model");
        assert!(CpuModel::parse("t", &ok).is_ok());
    }

    #[test]
    fn refuses_bad_tables() {
        let dup = "name='x'\nstatus='assumed'\nsource='t'\ncores=1\nuncore_w=0\n\
                   transition_latency_us=1\n[[pstate]]\nkhz=1\ncore_w=1\n[[pstate]]\nkhz=1\ncore_w=2\n";
        assert!(matches!(
            CpuModel::parse("t", dup),
            Err(PowerModelError::Invalid(..))
        ));
        assert!(matches!(
            CpuModel::load("no-such-model"),
            Err(PowerModelError::Unknown(_))
        ));
    }
}

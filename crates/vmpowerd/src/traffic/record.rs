//! The daemon's record of the packet rates it sampled, per VM: what an
//! operator exports with `vmpowerctl traffic export` and replays in
//! `vmpower-sim` to see what their own traffic would save and cost.
//!
//! ## Behavior
//! - Each VM with a TRAFFIC policy gets one rate per record step
//!   (`traffic_record_step_ms`): the mean of the rates the sampler
//!   measured in that step. A step with no measured rate (the daemon was
//!   down, the policy's counters were missing) is recorded as unknown
//!   (NaN), not as zero: the export leaves it out rather than invent
//!   silence.
//! - Steps are gathered in blocks of [`BLOCK_STEPS`], aligned on multiples
//!   of the block's length in unix time, so every VM's blocks line up and
//!   one store transaction per block length writes them all.
//! - A block is handed out when a sample falls past its end, when its VM
//!   leaves the sampled set ([`RateRecorder::retain`]) and at stop
//!   ([`RateRecorder::flush`]); a clock that goes backwards closes the
//!   open block and starts another.
//!
//! ## Invariants
//! - Memory: one open block per sampled VM ([`BLOCK_STEPS`] floats).
//! - A handed-out block has at least one known step.

use std::collections::HashMap;

use vmpower_engine::VmId;

/// Steps per stored block.
pub const BLOCK_STEPS: usize = 60;

/// A run of one VM's recorded rates.
#[derive(Debug, Clone, PartialEq)]
pub struct RateBlock {
    /// The VM.
    pub vm: VmId,
    /// Unix ms of the first step's start.
    pub start_ms: u64,
    /// The step, ms.
    pub step_ms: u32,
    /// Mean packets/s of each step; NaN where nothing was measured.
    pub rates: Vec<f32>,
}

impl RateBlock {
    /// Whether any step is known.
    fn has_known(&self) -> bool {
        self.rates.iter().any(|r| !r.is_nan())
    }
}

/// What the record keeps: its step and for how long
/// (`traffic_record_step_ms`, `traffic_record_days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSettings {
    /// The step, ms (at least 1).
    pub step_ms: u32,
    /// How long a block is kept after its start, ms.
    pub keep_ms: u64,
}

/// One VM's open block and the step being averaged.
#[derive(Debug)]
struct Open {
    block: RateBlock,
    /// Index of the step being averaged.
    step: usize,
    sum: f64,
    count: u32,
}

impl Open {
    /// Closes the step being averaged into the block.
    fn settle(&mut self) {
        if self.count > 0 {
            // f32 keeps ~7 significant digits: ample for a packet rate.
            #[allow(clippy::cast_possible_truncation)]
            let mean = (self.sum / f64::from(self.count)) as f32;
            self.block.rates[self.step] = mean;
        }
        self.sum = 0.0;
        self.count = 0;
    }

    /// The finished block, if it holds anything.
    fn finish(mut self) -> Option<RateBlock> {
        self.settle();
        self.block.has_known().then_some(self.block)
    }
}

/// Gathers sampled rates into blocks (see the module doc).
#[derive(Debug)]
pub struct RateRecorder {
    step_ms: u32,
    open: HashMap<VmId, Open>,
}

impl RateRecorder {
    /// A recorder with this step (ms, at least 1).
    pub fn new(step_ms: u32) -> Self {
        RateRecorder {
            step_ms: step_ms.max(1),
            open: HashMap::new(),
        }
    }

    /// The length of a block, ms.
    fn block_ms(&self) -> u64 {
        u64::from(self.step_ms) * BLOCK_STEPS as u64
    }

    /// Records `rate` (packets/s; `None`: not measured this sample) of
    /// `vm` at unix ms `at_ms`; a block that this closes goes to `out`.
    pub fn observe(&mut self, vm: &VmId, rate: Option<f64>, at_ms: u64, out: &mut Vec<RateBlock>) {
        let block_ms = self.block_ms();
        let step_ms = u64::from(self.step_ms);
        if let Some(open) = self.open.get(vm) {
            let start = open.block.start_ms;
            if at_ms < start || at_ms >= start + block_ms {
                out.extend(self.open.remove(vm).and_then(Open::finish));
            }
        }
        let open = self.open.entry(vm.clone()).or_insert_with(|| {
            let start_ms = at_ms - at_ms % block_ms;
            Open {
                block: RateBlock {
                    vm: vm.clone(),
                    start_ms,
                    step_ms: u32::try_from(step_ms).unwrap_or(u32::MAX),
                    rates: vec![f32::NAN; BLOCK_STEPS],
                },
                step: 0,
                sum: 0.0,
                count: 0,
            }
        });
        // In range: the block was just (re)opened around `at_ms`.
        let step = usize::try_from((at_ms - open.block.start_ms) / step_ms).unwrap_or(0);
        if step != open.step {
            open.settle();
            open.step = step.min(BLOCK_STEPS - 1);
        }
        if let Some(r) = rate.filter(|r| r.is_finite() && *r >= 0.0) {
            open.sum += r;
            open.count += 1;
        }
    }

    /// Closes the blocks of VMs `keep` refuses (no longer sampled).
    pub fn retain(&mut self, mut keep: impl FnMut(&VmId) -> bool, out: &mut Vec<RateBlock>) {
        let gone: Vec<VmId> = self.open.keys().filter(|v| !keep(v)).cloned().collect();
        for vm in gone {
            out.extend(self.open.remove(&vm).and_then(Open::finish));
        }
    }

    /// Closes every open block (at stop).
    pub fn flush(&mut self, out: &mut Vec<RateBlock>) {
        let mut all: Vec<Open> = self.open.drain().map(|(_, o)| o).collect();
        all.sort_by(|a, b| a.block.vm.cmp(&b.block.vm));
        out.extend(all.into_iter().filter_map(Open::finish));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str) -> VmId {
        VmId::new(name)
    }

    #[test]
    fn each_step_holds_the_mean_of_its_samples_and_unsampled_steps_are_unknown() {
        let mut rec = RateRecorder::new(1000);
        let mut out = Vec::new();
        let a = vm("a");
        // Block of 60 s starting at 60,000.
        rec.observe(&a, Some(100.0), 60_000, &mut out);
        rec.observe(&a, Some(300.0), 60_500, &mut out);
        rec.observe(&a, None, 61_000, &mut out);
        rec.observe(&a, Some(50.0), 63_100, &mut out);
        assert!(out.is_empty());
        rec.flush(&mut out);
        let [b] = &out[..] else { panic!("{out:?}") };
        assert_eq!((b.start_ms, b.step_ms), (60_000, 1000));
        assert_eq!(b.rates[0], 200.0);
        assert!(b.rates[1].is_nan(), "a step measured as missing is unknown");
        assert!(b.rates[2].is_nan(), "a step without samples is unknown");
        assert_eq!(b.rates[3], 50.0);
        assert!(b.rates[4..].iter().all(|r| r.is_nan()));
    }

    #[test]
    fn a_sample_past_the_block_closes_it_and_blocks_align_on_unix_time() {
        let mut rec = RateRecorder::new(100);
        let mut out = Vec::new();
        let a = vm("a");
        rec.observe(&a, Some(1.0), 12_345, &mut out);
        rec.observe(&a, Some(2.0), 18_000, &mut out);
        let [b] = &out[..] else { panic!("{out:?}") };
        // 60 steps of 100 ms: blocks of 6 s, aligned on multiples of 6 s.
        assert_eq!(b.start_ms, 12_000);
        assert_eq!(b.rates[3], 1.0);
        rec.flush(&mut out);
        assert_eq!(out[1].start_ms, 18_000);
        assert_eq!(out[1].rates[0], 2.0);
    }

    #[test]
    fn a_clock_going_back_closes_the_block_and_an_empty_block_is_dropped() {
        let mut rec = RateRecorder::new(1000);
        let mut out = Vec::new();
        let a = vm("a");
        rec.observe(&a, Some(7.0), 120_000, &mut out);
        rec.observe(&a, None, 60_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start_ms, 120_000);
        rec.flush(&mut out);
        assert_eq!(out.len(), 1, "a block with no known step is not kept");
    }

    #[test]
    fn retain_closes_only_the_blocks_of_vms_no_longer_sampled() {
        let mut rec = RateRecorder::new(1000);
        let mut out = Vec::new();
        let (a, b) = (vm("a"), vm("b"));
        rec.observe(&a, Some(1.0), 0, &mut out);
        rec.observe(&b, Some(2.0), 0, &mut out);
        rec.retain(|v| v == &a, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].vm, b);
        rec.flush(&mut out);
        assert_eq!(out[1].vm, a);
    }

    #[test]
    fn negative_or_non_finite_rates_are_not_averaged_in() {
        let mut rec = RateRecorder::new(1000);
        let mut out = Vec::new();
        let a = vm("a");
        rec.observe(&a, Some(f64::NAN), 0, &mut out);
        rec.observe(&a, Some(-5.0), 10, &mut out);
        rec.observe(&a, Some(10.0), 20, &mut out);
        rec.flush(&mut out);
        assert_eq!(out[0].rates[0], 10.0);
    }
}

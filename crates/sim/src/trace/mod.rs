//! Traces: the packet rate offered to each VM over time, at a fixed step
//! of at least 10 ms.
//!
//! A trace is either held in memory ([`Trace`], what the CSV and pcap
//! readers and the oracle need) or produced step by step by a
//! [`RateSource`] (the generators, so that a day of 64 VMs at 10 ms, 550 M
//! rates, never sits in memory).

pub mod csv;
pub mod generate;
pub mod pcap;

use std::time::Duration;

/// The finest step a trace may have.
pub const MIN_STEP: Duration = Duration::from_millis(10);

/// Why a trace is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A step below 10 ms, or not a whole number of milliseconds.
    #[error("a trace's step must be a whole number of ms, at least 10 ms (got {0:?})")]
    Step(Duration),
    /// Nothing in it.
    #[error("the trace is empty")]
    Empty,
    /// A rate that is negative or not a number.
    #[error("VM {vm}, step {step}: rate {rate} is not a non-negative number")]
    Rate {
        /// The VM.
        vm: String,
        /// The step.
        step: usize,
        /// The rate.
        rate: f64,
    },
}

/// Something that yields each step's offered rate for every VM.
pub trait RateSource {
    /// The VMs, in the order of [`RateSource::fill`]'s output.
    fn vms(&self) -> &[String];
    /// The step.
    fn step(&self) -> Duration;
    /// How many steps.
    fn steps(&self) -> usize;
    /// The rates (packets/s) of step `index` for each VM, into `out`
    /// (`out.len() == vms().len()`). Steps are asked in order, from 0.
    fn fill(&mut self, index: usize, out: &mut [f64]);
}

/// A trace held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The step.
    pub step: Duration,
    /// The VMs' names.
    pub vms: Vec<String>,
    /// Per VM, the rate (packets/s) of each step.
    pub rates: Vec<Vec<f64>>,
}

impl Trace {
    /// Checks the step and the rates.
    pub fn new(step: Duration, vms: Vec<String>, rates: Vec<Vec<f64>>) -> Result<Self, TraceError> {
        if step < MIN_STEP || !step.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(TraceError::Step(step));
        }
        let steps = rates.first().map_or(0, Vec::len);
        if vms.is_empty() || steps == 0 {
            return Err(TraceError::Empty);
        }
        for (vm, series) in vms.iter().zip(&rates) {
            if let Some((i, r)) = series
                .iter()
                .enumerate()
                .find(|(_, r)| !r.is_finite() || **r < 0.0)
            {
                return Err(TraceError::Rate {
                    vm: vm.clone(),
                    step: i,
                    rate: *r,
                });
            }
        }
        Ok(Trace { step, vms, rates })
    }

    /// Materialises a source.
    pub fn collect(source: &mut dyn RateSource) -> Result<Self, TraceError> {
        let n = source.vms().len();
        let steps = source.steps();
        let mut rates = vec![Vec::with_capacity(steps); n];
        let mut row = vec![0.0; n];
        for i in 0..steps {
            source.fill(i, &mut row);
            for (series, r) in rates.iter_mut().zip(&row) {
                series.push(*r);
            }
        }
        Trace::new(source.step(), source.vms().to_vec(), rates)
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.rates.first().map_or(0, Vec::len)
    }

    /// Whether it has no step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its duration.
    pub fn duration(&self) -> Duration {
        self.step * u32::try_from(self.len()).unwrap_or(u32::MAX)
    }

    /// The first `fraction` of the steps and the rest (for tuning on one
    /// part and validating on the other).
    pub fn split(&self, fraction: f64) -> (Trace, Trace) {
        let len = self.len();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let at = ((len as f64 * fraction.clamp(0.0, 1.0)) as usize).clamp(1, len.max(2) - 1);
        let part = |r: std::ops::Range<usize>| Trace {
            step: self.step,
            vms: self.vms.clone(),
            rates: self.rates.iter().map(|s| s[r.clone()].to_vec()).collect(),
        };
        (part(0..at), part(at..len))
    }

    /// A replay of this trace as a source.
    pub fn source(&self) -> Replay<'_> {
        Replay { trace: self }
    }
}

/// A [`Trace`] read back step by step.
#[derive(Debug, Clone, Copy)]
pub struct Replay<'a> {
    trace: &'a Trace,
}

impl RateSource for Replay<'_> {
    fn vms(&self) -> &[String] {
        &self.trace.vms
    }

    fn step(&self) -> Duration {
        self.trace.step
    }

    fn steps(&self) -> usize {
        self.trace.len()
    }

    fn fill(&mut self, index: usize, out: &mut [f64]) {
        for (o, series) in out.iter_mut().zip(&self.trace.rates) {
            *o = series[index];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fine_steps_and_bad_rates() {
        let vms = vec!["a".to_owned()];
        assert!(matches!(
            Trace::new(Duration::from_millis(5), vms.clone(), vec![vec![1.0]]),
            Err(TraceError::Step(_))
        ));
        assert!(matches!(
            Trace::new(MIN_STEP, vms.clone(), vec![vec![1.0, -1.0]]),
            Err(TraceError::Rate { step: 1, .. })
        ));
        assert!(Trace::new(MIN_STEP, vms, vec![vec![1.0, 2.0]]).is_ok());
    }

    #[test]
    fn split_keeps_every_step() {
        let t = Trace::new(
            MIN_STEP,
            vec!["a".into()],
            vec![(0..10).map(f64::from).collect()],
        )
        .unwrap();
        let (a, b) = t.split(0.7);
        assert_eq!(a.len(), 7);
        assert_eq!(b.len(), 3);
        assert_eq!(b.rates[0][0], 7.0);
    }
}

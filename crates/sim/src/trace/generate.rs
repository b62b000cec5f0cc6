//! Seeded trace generators. Every VM gets its own random stream (derived
//! from the seed and its position), so a seed gives the same trace on
//! every platform, and adding a VM does not change the others.
//!
//! ## Shapes (rates relative to `peak_pps`)
//! - **diurnal**: `low + (1 − low)·(1 − cos 2π(t/period + φ))/2`, one
//!   trough and one peak per `period` (default 24 h: a single-peaked
//!   daily curve), a random phase φ of up to ±1/24 per VM, and slow
//!   multiplicative noise `exp(σ·x)` with `x` an AR(1) process (σ = 0.05,
//!   correlation 0.999 per step).
//! - **onoff**: alternating ON (exponential, mean 2 s, at 0.7–1.0 of peak)
//!   and OFF periods (exponential, mean 3 s, at `low`).
//! - **step**: a level held for an exponential time (mean 30 s), then a
//!   jump to one of {low, 0.3, 0.55, 0.8, 1.0}, drawn uniformly.
//! - **flash**: a base of 0.3; at a random time in the first 20–60 % of
//!   the trace the rate ramps to 1.0 in 1 s and decays back with a 20 s
//!   time constant (a flash crowd).
//! - **mmpp**: a Markov-modulated rate over three states (0.15, 0.5,
//!   0.95), each held for an exponential time (mean 5 s), then a move to
//!   one of the other two.
//!
//! Every shape then gets Poisson counting noise: the step's packet count
//! is drawn ≈ Normal(λ·dt, λ·dt) and divided back by dt (rates are
//! non-negative). The shapes are stylised, not fitted to a published
//! trace: the parameters are stated here so a reader can judge them.

use std::f64::consts::PI;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::RateSource;

/// A generator's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// One peak per period.
    Diurnal,
    /// On/off bursts.
    OnOff,
    /// Held levels with jumps.
    Step,
    /// A flash crowd.
    Flash,
    /// Markov-modulated rate.
    Mmpp,
}

impl Shape {
    /// Every shape, in the order of the standard set.
    pub const ALL: [Shape; 5] = [
        Shape::Diurnal,
        Shape::OnOff,
        Shape::Step,
        Shape::Flash,
        Shape::Mmpp,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Diurnal => "diurnal",
            Shape::OnOff => "onoff",
            Shape::Step => "step",
            Shape::Flash => "flash",
            Shape::Mmpp => "mmpp",
        }
    }
}

impl FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Shape::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Shape::ALL.iter().map(|k| k.name()).collect();
                format!("unknown shape {s:?} (one of {})", names.join(", "))
            })
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSpec {
    /// The shape.
    pub shape: Shape,
    /// How many VMs (named `vm0`, `vm1`, …).
    pub vms: usize,
    /// The step.
    pub step: Duration,
    /// The trace's length.
    pub duration: Duration,
    /// The rate at the shape's 1.0, packets/s.
    pub peak_pps: f64,
    /// The shape's `low`, as a fraction of the peak.
    pub low: f64,
    /// The diurnal period.
    pub period: Duration,
    /// The seed.
    pub seed: u64,
}

impl GenSpec {
    /// A spec with the documented defaults for `shape`.
    pub fn new(shape: Shape, vms: usize, duration: Duration, peak_pps: f64, seed: u64) -> Self {
        GenSpec {
            shape,
            vms,
            step: super::MIN_STEP,
            duration,
            peak_pps,
            low: 0.05,
            period: Duration::from_secs(24 * 3600),
            seed,
        }
    }
}

/// A generated trace, produced step by step.
#[derive(Debug, Clone)]
pub struct Generated {
    spec: GenSpec,
    names: Vec<String>,
    states: Vec<VmState>,
    steps: usize,
}

#[derive(Debug, Clone)]
struct VmState {
    rng: Xoshiro256PlusPlus,
    /// Relative level in force (step, onoff, mmpp).
    level: f64,
    /// Seconds left at this level.
    left_s: f64,
    /// Whether ON (onoff) or the state index (mmpp).
    state: usize,
    /// AR(1) noise (diurnal).
    ar: f64,
    /// Phase (diurnal) or flash start in seconds.
    param: f64,
    /// cos and sin of the diurnal angle at the next step (advanced by a
    /// rotation each step instead of a cosine per step).
    angle: Option<(f64, f64)>,
    /// cos and sin of the diurnal angle's step.
    rotation: (f64, f64),
}

impl Generated {
    /// A generator for `spec`.
    pub fn new(spec: GenSpec) -> Self {
        let steps = usize::try_from(spec.duration.as_millis() / spec.step.as_millis().max(1))
            .unwrap_or(usize::MAX)
            .max(1);
        let total_s = spec.duration.as_secs_f64();
        let step_angle = 2.0 * PI * spec.step.as_secs_f64()
            / spec.period.as_secs_f64().max(spec.step.as_secs_f64());
        let rotation = (step_angle.cos(), step_angle.sin());
        let states = (0..spec.vms)
            .map(|i| {
                let stream = spec
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(u64::try_from(i).unwrap_or(u64::MAX));
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(stream);
                let param = match spec.shape {
                    Shape::Diurnal => rng.random_range(-1.0..1.0) / 24.0,
                    Shape::Flash => total_s * rng.random_range(0.2..0.6),
                    _ => 0.0,
                };
                VmState {
                    rng,
                    level: 0.3,
                    left_s: 0.0,
                    state: 0,
                    ar: 0.0,
                    param,
                    angle: None,
                    rotation,
                }
            })
            .collect();
        let names = (0..spec.vms).map(|i| format!("vm{i}")).collect();
        Generated {
            spec,
            names,
            states,
            steps,
        }
    }

    fn relative(spec: &GenSpec, s: &mut VmState, t: f64, dt: f64) -> f64 {
        match spec.shape {
            Shape::Diurnal => {
                let period = spec.period.as_secs_f64().max(dt);
                // Steps come in order: the angle advances by a rotation of
                // 2π·dt/period, recomputed exactly every 4096 steps.
                let index = (t / dt).round();
                let (cos, sin) = match s.angle {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Some(a) if !(index as u64).is_multiple_of(4096) => a,
                    _ => {
                        let (sin, cos) = (2.0 * PI * (t / period + s.param)).sin_cos();
                        (cos, sin)
                    }
                };
                let (step_cos, step_sin) = s.rotation;
                s.angle = Some((
                    cos * step_cos - sin * step_sin,
                    sin * step_cos + cos * step_sin,
                ));
                let x = (1.0 - cos) / 2.0;
                s.ar = 0.999 * s.ar + (1.0 - 0.999f64 * 0.999).sqrt() * s.normal();
                (spec.low + (1.0 - spec.low) * x) * (0.05 * s.ar).exp()
            }
            Shape::OnOff => {
                if s.left_s <= 0.0 {
                    s.state ^= 1;
                    let (mean, level) = if s.state == 1 {
                        (2.0, s.rng.random_range(0.7..1.0))
                    } else {
                        (3.0, spec.low)
                    };
                    s.left_s = exponential(&mut s.rng, mean);
                    s.level = level;
                }
                s.left_s -= dt;
                s.level
            }
            Shape::Step => {
                if s.left_s <= 0.0 {
                    let levels = [spec.low, 0.3, 0.55, 0.8, 1.0];
                    s.level = levels[s.rng.random_range(0..levels.len())];
                    s.left_s = exponential(&mut s.rng, 30.0);
                }
                s.left_s -= dt;
                s.level
            }
            Shape::Flash => {
                let since = t - s.param;
                if since < 0.0 {
                    0.3
                } else if since < 1.0 {
                    0.3 + 0.7 * since
                } else {
                    0.3 + 0.7 * (-(since - 1.0) / 20.0).exp()
                }
            }
            Shape::Mmpp => {
                const LEVELS: [f64; 3] = [0.15, 0.5, 0.95];
                if s.left_s <= 0.0 {
                    s.state = (s.state + s.rng.random_range(1..3)) % 3;
                    s.left_s = exponential(&mut s.rng, 5.0);
                }
                s.left_s -= dt;
                LEVELS[s.state]
            }
        }
    }

    /// The spec.
    pub fn spec(&self) -> &GenSpec {
        &self.spec
    }
}

impl RateSource for Generated {
    fn vms(&self) -> &[String] {
        &self.names
    }

    fn step(&self) -> Duration {
        self.spec.step
    }

    fn steps(&self) -> usize {
        self.steps
    }

    fn fill(&mut self, index: usize, out: &mut [f64]) {
        let dt = self.spec.step.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let t = index as f64 * dt;
        for (o, s) in out.iter_mut().zip(&mut self.states) {
            let lambda = (self.spec.peak_pps * Self::relative(&self.spec, s, t, dt)).max(0.0);
            let mean = lambda * dt;
            let count = (mean + mean.sqrt() * s.normal()).max(0.0);
            *o = count / dt;
        }
    }
}

impl VmState {
    /// A standard normal draw (ziggurat).
    fn normal(&mut self) -> f64 {
        self.rng.sample(rand_distr::StandardNormal)
    }
}

/// An exponential draw with this mean.
fn exponential(rng: &mut Xoshiro256PlusPlus, mean: f64) -> f64 {
    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    -mean * u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Trace;

    fn make(shape: Shape, seed: u64) -> Trace {
        let mut spec = GenSpec::new(shape, 3, Duration::from_secs(120), 1e6, seed);
        spec.period = spec.duration;
        Trace::collect(&mut Generated::new(spec)).unwrap()
    }

    #[test]
    fn same_seed_same_trace_other_seed_other_trace() {
        for shape in Shape::ALL {
            assert_eq!(make(shape, 7), make(shape, 7), "{shape:?}");
            if shape != Shape::Flash {
                assert_ne!(make(shape, 7), make(shape, 8), "{shape:?}");
            }
        }
    }

    #[test]
    fn rates_stay_in_range() {
        for shape in Shape::ALL {
            let t = make(shape, 1);
            assert_eq!(t.len(), 12_000);
            let max = t.rates.iter().flatten().fold(0.0f64, |m, r| m.max(*r));
            assert!(max > 0.2e6 && max < 1.5e6, "{shape:?}: {max}");
            assert!(t.rates.iter().flatten().all(|r| *r >= 0.0));
        }
    }

    #[test]
    fn flash_peaks_after_its_start() {
        let t = make(Shape::Flash, 3);
        let series = &t.rates[0];
        let (peak_at, _) =
            series.iter().enumerate().fold(
                (0, 0.0),
                |(bi, b), (i, r)| if *r > b { (i, *r) } else { (bi, b) },
            );
        assert!(
            peak_at > 12_000 / 5 && peak_at < 12_000 * 3 / 5 + 200,
            "{peak_at}"
        );
    }
}

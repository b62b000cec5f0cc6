//! Static max: every core at its highest frequency, always. This is what a
//! busy-polling guest gets from any OS governor (its cores look 100 %
//! busy), and the baseline energies are given against.

use super::{Controller, Observation, Setup};

/// Every core at index 0.
#[derive(Debug, Default, Clone, Copy)]
pub struct StaticMax;

impl Controller for StaticMax {
    fn name(&self) -> String {
        "static max".to_owned()
    }

    fn start(&mut self, _setup: &Setup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn decide(&mut self, _obs: &Observation<'_>, wanted: &mut [usize]) {
        wanted.fill(0);
    }
}

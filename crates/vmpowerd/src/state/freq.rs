//! A CPU's frequency set by the host's operator (`vmpowerctl
//! set-cpu-freq`, a FIFO's power instruction): an override of the VMs'
//! arbitration for its frequency domain, or its release.

use vmpower_cpufreq::CpuId;
use vmpower_engine::OperatorAction;

use super::State;
use crate::core::OperatorError;

impl State {
    /// Applies the operator's `action` to `cpu`: a unit (up, down, min,
    /// max, turbo) held until released, or the release that hands the CPU
    /// back to the VMs' arbitration. Whichever door it came through, a
    /// refusal or a failed write is returned.
    pub fn set_cpu_freq(&self, cpu: CpuId, action: OperatorAction) -> Result<(), OperatorError> {
        let mut core = self.lock();
        match action {
            OperatorAction::Unit(unit) => core.operator(cpu, unit),
            OperatorAction::Release => core.operator_release(cpu),
        }
    }
}

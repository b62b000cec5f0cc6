//! The façade's machine-wide and uncore controls: the global turbo switch
//! and uncore frequency ranges, each recorded in the takeover file before
//! its first change.

use super::{ControlError, CpuFreq};
use crate::turbo::TurboSwitch;
use crate::types::Khz;
use crate::uncore::{UncoreDomain, discover_uncore};
use crate::uncore_control::{self, UncoreRange};

impl CpuFreq {
    /// The host's global turbo switch, if any.
    pub fn turbo_switch(&self) -> Option<TurboSwitch> {
        TurboSwitch::detect(&*self.io)
    }

    /// Whether turbo is on machine-wide.
    pub fn global_turbo(&self) -> Result<bool, ControlError> {
        let switch = self.turbo_switch().ok_or(ControlError::NoTurboSwitch)?;
        Ok(switch.enabled(&*self.io)?)
    }

    /// Turns turbo on or off machine-wide (recording the original first);
    /// returns whether it wrote.
    pub fn set_global_turbo(&mut self, enabled: bool) -> Result<bool, ControlError> {
        let switch = self.turbo_switch().ok_or(ControlError::NoTurboSwitch)?;
        if switch.enabled(&*self.io)? == enabled {
            return Ok(false);
        }
        self.takeover.take_turbo(&*self.io, switch)?;
        Ok(switch.set_enabled(&*self.io, enabled)?)
    }

    /// The uncore domains, read now.
    pub fn uncore_domains(&self) -> Result<Vec<UncoreDomain>, ControlError> {
        Ok(discover_uncore(&*self.io)?)
    }

    /// An uncore domain's range in force.
    pub fn uncore_range(&self, domain: &str) -> Result<UncoreRange, ControlError> {
        Ok(uncore_control::current_range(&*self.io, domain)?)
    }

    /// An uncore domain's current frequency.
    pub fn uncore_current(&self, domain: &str) -> Result<Khz, ControlError> {
        Ok(uncore_control::current_freq(&*self.io, domain)?)
    }

    /// Sets an uncore domain's range within its initial range (recording
    /// the original first); returns whether it wrote.
    pub fn set_uncore(&mut self, domain: &str, range: UncoreRange) -> Result<bool, ControlError> {
        uncore_control::check_range(&*self.io, domain, range)?;
        if uncore_control::current_range(&*self.io, domain)? == range {
            return Ok(false);
        }
        self.takeover.take_uncore(&*self.io, domain)?;
        Ok(uncore_control::set_range(&*self.io, domain, range)?)
    }
}

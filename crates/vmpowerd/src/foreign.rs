//! Another writer of the cpufreq files of a CPU the daemon holds (tuned,
//! power-profiles-daemon, cpupower, an operator's `echo`): noticed,
//! counted, shown, logged within a budget, and handled as the
//! `foreign_writer` setting says.
//!
//! ## Behavior
//! - Noticed when the daemon next writes the CPU (the backends read the
//!   files first and read back what they wrote) and by
//!   [`Core::check_foreign_writers`], which the daemon calls every
//!   `foreign_check_interval_ms` for the domains it holds: cpufreq
//!   attributes raise no inotify or poll event, so a slow read is the
//!   only way to see a write nobody asked us to make.
//! - Counted per pCPU (the domain's leader) in [`ForeignWrites`], shown in
//!   `vmpowerctl status` (`foreign_writes`) and as the metric
//!   `vmpower_foreign_writes_total{pcpu}`; one warning per pCPU within a
//!   [`LogLimiter`] budget.
//! - `retake` (the default): the domain is prepared again (our governor)
//!   and set to the level the engine last applied; the originals restored
//!   later stay those recorded before the daemon first touched the CPU —
//!   what the files hold at detection is partly ours (a pinned bound, the
//!   `userspace` governor's neighbours) and is no faithful original. A
//!   write that found the change is retried once after the retake, so the
//!   guest's request that ran into it succeeds.
//! - `yield`: the domain leaves the takeover record without a restore
//!   (the other writer's settings stay, at stop and after a crash too),
//!   the engine stops setting it and refuses requests for it
//!   (`yielded_to_foreign_writer`) until an operator's `set-cpu-freq`
//!   takes it over afresh.

use tracing::warn;
use vmpower_cpufreq::CpuId;
use vmpower_cpufreq::control::ControlError;
use vmpower_cpufreq::levels::Level;

use crate::config::ForeignWriter;
use crate::core::Core;

/// What another writer did to one pCPU's domain, as status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignWrites {
    /// The pCPU (its domain's leader).
    pub pcpu: u32,
    /// Foreign writes noticed.
    pub count: u64,
    /// Unix time in ms of the last one.
    pub last_at_ms: u64,
    /// What was found (file, expected and found values).
    pub detail: String,
    /// What the daemon did: `retaken`, `yielded`, or `retake_failed`.
    pub handled: &'static str,
    /// Given up to the other writer now (cleared when the operator takes
    /// it back).
    pub yielded: bool,
}

impl Core {
    /// Checks every domain the daemon holds for another writer's changes
    /// and handles each one found. Reads only.
    pub fn check_foreign_writers(&mut self) {
        for cpu in self.cpufreq.held() {
            if let Err(e) = self.cpufreq.verify(cpu)
                && e.is_foreign_write()
            {
                self.foreign_write(cpu, &e);
            }
        }
    }

    /// Handles a foreign write found on `cpu`'s domain as `foreign_writer`
    /// says; true when the domain is ours again (retaken).
    pub(crate) fn foreign_write(&mut self, cpu: CpuId, err: &ControlError) -> bool {
        let leader = self
            .cpufreq
            .domain_cpus(cpu)
            .ok()
            .and_then(|d| d.first().copied())
            .unwrap_or(cpu);
        let detail = err.to_string();
        let (handled, failure) = match self.foreign_writer {
            ForeignWriter::Retake => match self.retake(leader) {
                Ok(()) => ("retaken", None),
                Err(e) => ("retake_failed", Some(e)),
            },
            ForeignWriter::Yield => {
                self.engine.yield_pcpu(leader);
                match self.cpufreq.yield_domain(leader) {
                    Ok(_) => ("yielded", None),
                    Err(e) => ("yielded", Some(e)),
                }
            }
        };
        let entry = self
            .stats
            .foreign_writes
            .entry(leader.0)
            .or_insert_with(|| ForeignWrites {
                pcpu: leader.0,
                ..ForeignWrites::default()
            });
        entry.count += 1;
        entry.last_at_ms = unix_millis();
        entry.detail.clone_from(&detail);
        entry.handled = handled;
        entry.yielded = self.engine.is_yielded(leader);
        self.stats.last_errors.push(
            unix_millis(),
            None,
            crate::recent::ErrorKind::Sysfs,
            "foreign_write",
            format_args!("pCPU {}: {detail}; {handled}", leader.0),
        );
        let now = self.now();
        if let Some(suppressed) =
            self.foreign_log
                .allow(&leader, now, &mut self.stats.log_lines_suppressed)
        {
            warn!(
                pcpu = leader.0,
                found = %detail,
                foreign_writer = self.foreign_writer.as_str(),
                handled,
                error = failure.map(|e| format!("{:#}", anyhow::Error::from(e))),
                suppressed,
                "another writer changed the cpufreq files of a pCPU we hold"
            );
        }
        handled == "retaken"
    }

    /// Prepares `leader`'s domain again and sets the level the engine
    /// last applied to it (if any).
    fn retake(&mut self, leader: CpuId) -> Result<(), ControlError> {
        self.cpufreq.retake(leader)?;
        let Some(khz) = self.engine.known_khz(leader) else {
            return Ok(());
        };
        if !self.engine.is_managed(leader) {
            return Ok(());
        }
        let index = self.cpufreq.table(leader)?.nearest_index(khz);
        let outcome = self.cpufreq.apply(leader, Level::Index(index))?;
        self.stats.sysfs_writes += u64::from(outcome.changed);
        Ok(())
    }

    /// After an operator's command: a pCPU taken back is no longer shown
    /// as yielded.
    pub(crate) fn foreign_reclaimed(&mut self) {
        for entry in self.stats.foreign_writes.values_mut() {
            if !self.engine.is_yielded(CpuId(entry.pcpu)) {
                entry.yielded = false;
            }
        }
    }
}

fn unix_millis() -> u64 {
    jiff::Timestamp::now()
        .as_millisecond()
        .try_into()
        .unwrap_or(0)
}

//! The façade the daemon uses: one [`CpuFreq`] per host, built from
//! discovery, that keeps every managed CPU's table and level state, picks
//! the backend by driver, takes CPUs over (recording them first) and gives
//! them back.
//!
//! It stays thin: which level a CPU should be at (VMs, policies,
//! arbitration) is decided elsewhere; this only applies it.
//!
//! ## Behavior
//! - Before the first write to a frequency domain, every online CPU of the
//!   domain is recorded in the takeover file (they all move), then the
//!   backend prepares the domain. A failure to record writes nothing.
//! - [`CpuFreq::apply`] computes the new level on a copy and commits it only
//!   when the backend succeeded, so a failed or refused change leaves the
//!   level where the hardware is.
//! - A change moves every CPU of the CPU's frequency domain;
//!   [`Outcome::domain_cpus`] lists them. Siblings keep their own level
//!   state (what was asked for them): arbitration is the caller's.
//! - [`CpuFreq::release`] gives a domain back only when none of its CPUs is
//!   still in use; otherwise it reports which CPUs still hold it.
//! - A record left by a crashed run is kept: CPUs it holds keep their
//!   true originals. Restore it ([`crate::takeover::restore_from_file`])
//!   before building a `CpuFreq`, or [`CpuFreq::restore_all`] restores it.

mod globals;
mod inventory;
mod outcome;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::backend::{BackendError, FrequencyControl, Mechanism, make_control};
use crate::discovery::HostCpus;
use crate::levels::{FreqTable, LevelError, LevelState};
use crate::sysfs::{SysfsError, SysfsIo};
use crate::takeover::{RestoreReport, Takeover, TakeoverError, TakeoverRecord};
use crate::turbo::TurboError;
use crate::types::{CpuId, Driver, Khz};
use crate::uncore_control::UncoreError;

pub use inventory::{InventoryError, ManagedCpu, inventory, managed_cpus};
pub use outcome::{Change, Outcome, Released};

/// Why a façade operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The CPU was not found with cpufreq when the façade was built.
    #[error("{cpu}: not managed (offline at start, without cpufreq, or unknown)")]
    NotManaged {
        /// The CPU.
        cpu: CpuId,
    },
    /// The level or operation does not apply to the CPU's table.
    #[error("{cpu}: level change refused")]
    Level {
        /// The CPU.
        cpu: CpuId,
        /// Why.
        #[source]
        source: LevelError,
    },
    /// The backend failed (names CPU, file and value).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The takeover record could not be read or stored.
    #[error(transparent)]
    Takeover(#[from] TakeoverError),
    /// The host has no global turbo switch.
    #[error("no global turbo switch (cpufreq/boost or intel_pstate/no_turbo)")]
    NoTurboSwitch,
    /// The global turbo switch failed.
    #[error(transparent)]
    Turbo(#[from] TurboError),
    /// An uncore domain failed.
    #[error(transparent)]
    Uncore(#[from] UncoreError),
    /// Discovery failed.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// Reading sysfs failed (names the file).
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
}

#[derive(Debug)]
struct CpuEntry {
    driver: Driver,
    table: FreqTable,
    state: LevelState,
    leader: CpuId,
    in_use: bool,
}

#[derive(Debug)]
struct Domain {
    /// The CPU the control writes through (online at start).
    via: CpuId,
    control: Option<Box<dyn FrequencyControl>>,
    cpus: Vec<CpuId>,
    taken: bool,
}

/// Frequency control of a host's CPUs.
pub struct CpuFreq {
    io: Arc<dyn SysfsIo>,
    host: Option<HostCpus>,
    takeover: Takeover,
    cpus: BTreeMap<CpuId, CpuEntry>,
    domains: BTreeMap<CpuId, Domain>,
}

impl std::fmt::Debug for CpuFreq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuFreq")
            .field("root", &self.io.root())
            .field("takeover", &self.takeover)
            .field("cpus", &self.cpus)
            .field("domains", &self.domains)
            .finish()
    }
}

impl ControlError {
    /// Whether another writer changed a file of a held domain
    /// ([`BackendError::ChangedExternally`]).
    pub fn is_foreign_write(&self) -> bool {
        matches!(self, ControlError::Backend(e) if e.is_foreign_write())
    }
}

impl CpuFreq {
    /// Discovers the host under `io` and opens the takeover record at
    /// `takeover_path` (kept if present: see module docs).
    pub fn new(
        io: Arc<dyn SysfsIo>,
        takeover_path: impl Into<PathBuf>,
    ) -> Result<Self, ControlError> {
        let (host, cpus) = inventory(&*io)?;
        let mut out = CpuFreq::with_cpus(io, takeover_path, cpus)?;
        out.host = Some(host);
        Ok(out)
    }

    /// A façade over CPUs described by the caller (tests, or a daemon that
    /// discovered them itself).
    pub fn with_cpus(
        io: Arc<dyn SysfsIo>,
        takeover_path: impl Into<PathBuf>,
        cpus: Vec<ManagedCpu>,
    ) -> Result<Self, ControlError> {
        Self::with_cpus_in(io, Takeover::open(takeover_path)?, cpus)
    }

    /// Discovers the host under `io`, keeping the takeover record in
    /// `sink` instead of a file.
    pub fn with_sink(
        io: Arc<dyn SysfsIo>,
        sink: Box<dyn crate::takeover::RecordSink>,
    ) -> Result<Self, ControlError> {
        let (host, cpus) = inventory(&*io)?;
        let mut out = CpuFreq::with_cpus_in(io, Takeover::with_sink(sink)?, cpus)?;
        out.host = Some(host);
        Ok(out)
    }

    fn with_cpus_in(
        io: Arc<dyn SysfsIo>,
        takeover: Takeover,
        cpus: Vec<ManagedCpu>,
    ) -> Result<Self, ControlError> {
        let mut out = CpuFreq {
            io,
            host: None,
            takeover,
            cpus: BTreeMap::new(),
            domains: BTreeMap::new(),
        };
        for mut m in cpus {
            m.domain.push(m.cpu);
            m.domain.sort_unstable();
            m.domain.dedup();
            let leader = m.domain[0];
            let io = out.io.clone();
            out.domains.entry(leader).or_insert_with(|| Domain {
                via: m.cpu,
                control: Mechanism::for_driver(&m.driver)
                    .map(|mech| make_control(io, mech, m.cpu, m.domain.clone())),
                cpus: m.domain.clone(),
                taken: false,
            });
            let index = m.current.map_or(0, |f| m.table.nearest_index(f));
            out.cpus.insert(
                m.cpu,
                CpuEntry {
                    state: LevelState::with_turbo(&m.table, index, m.turbo_enabled),
                    driver: m.driver,
                    table: m.table,
                    leader,
                    in_use: false,
                },
            );
        }
        Ok(out)
    }

    /// What discovery found at start (`None` when built [`CpuFreq::with_cpus`]).
    pub fn host(&self) -> Option<&HostCpus> {
        self.host.as_ref()
    }

    /// The managed CPUs.
    pub fn cpus(&self) -> Vec<CpuId> {
        self.cpus.keys().copied().collect()
    }

    fn entry(&self, cpu: CpuId) -> Result<&CpuEntry, ControlError> {
        self.cpus.get(&cpu).ok_or(ControlError::NotManaged { cpu })
    }

    /// The CPU's frequency table.
    pub fn table(&self, cpu: CpuId) -> Result<&FreqTable, ControlError> {
        Ok(&self.entry(cpu)?.table)
    }

    /// The CPU's level state (index, per-core turbo flag).
    pub fn level(&self, cpu: CpuId) -> Result<LevelState, ControlError> {
        Ok(self.entry(cpu)?.state)
    }

    /// The CPU's driver.
    pub fn driver(&self, cpu: CpuId) -> Result<&Driver, ControlError> {
        Ok(&self.entry(cpu)?.driver)
    }

    /// Every CPU of `cpu`'s frequency domain.
    pub fn domain_cpus(&self, cpu: CpuId) -> Result<Vec<CpuId>, ControlError> {
        let leader = self.entry(cpu)?.leader;
        Ok(self
            .domains
            .get(&leader)
            .map(|d| d.cpus.clone())
            .unwrap_or_default())
    }

    /// What the takeover record holds now.
    pub fn takeover_record(&self) -> &TakeoverRecord {
        self.takeover.record()
    }

    /// The setting the hardware reports for the CPU's domain (`None` when
    /// not under our control, e.g. `<unsupported>`).
    pub fn current(&self, cpu: CpuId) -> Result<Option<Khz>, ControlError> {
        let entry = self.entry(cpu)?;
        let domain = self
            .domains
            .get(&entry.leader)
            .ok_or(ControlError::NotManaged { cpu })?;
        let control = domain
            .control
            .as_ref()
            .ok_or_else(|| unknown_driver(cpu, &entry.driver))?;
        Ok(control.current()?)
    }

    /// Applies a guest operation or a wanted level to `cpu`, writing only
    /// when the domain's frequency changes.
    pub fn apply(
        &mut self,
        cpu: CpuId,
        change: impl Into<Change>,
    ) -> Result<Outcome, ControlError> {
        let entry = self.entry(cpu)?;
        let (leader, old_state) = (entry.leader, entry.state);
        let mut state = old_state;
        let level = match change.into() {
            Change::Op(op) => state.apply_op(&entry.table, op),
            Change::Level(level) => state.apply_level(&entry.table, level),
        };
        level.map_err(|source| ControlError::Level { cpu, source })?;
        let old_khz = old_state.khz(&entry.table);
        let new_khz = state.khz(&entry.table);
        if self
            .domains
            .get(&leader)
            .is_some_and(|d| d.control.is_none())
        {
            return Err(unknown_driver(cpu, &entry.driver));
        }
        self.take_domain(leader)?;
        let domain = self
            .domains
            .get_mut(&leader)
            .ok_or(ControlError::NotManaged { cpu })?;
        let control = domain
            .control
            .as_mut()
            .ok_or(ControlError::NotManaged { cpu })?;
        let set = control.set(new_khz)?;
        let entry = self
            .cpus
            .get_mut(&cpu)
            .ok_or(ControlError::NotManaged { cpu })?;
        entry.state = state;
        entry.in_use = true;
        Ok(Outcome {
            old_khz,
            new_khz,
            index: state.index(),
            changed: set.written,
            domain_cpus: set.domain,
        })
    }

    /// Records every online CPU of the domain, then prepares it; once.
    fn take_domain(&mut self, leader: CpuId) -> Result<(), ControlError> {
        let domain = self
            .domains
            .get_mut(&leader)
            .ok_or(ControlError::NotManaged { cpu: leader })?;
        if domain.taken {
            return Ok(());
        }
        for cpu in &domain.cpus {
            match self.takeover.take_cpu(&*self.io, *cpu) {
                Ok(_) => {}
                // An offline sibling has no cpufreq link: nothing to record.
                Err(TakeoverError::Cpu(BackendError::Offline { .. })) if *cpu != domain.via => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(control) = domain.control.as_mut() {
            control.prepare()?;
        }
        domain.taken = true;
        Ok(())
    }

    /// Gives `cpu` back: restores its domain's original settings unless
    /// another CPU of the domain is still in use.
    pub fn release(&mut self, cpu: CpuId) -> Result<Released, ControlError> {
        let leader = self.entry(cpu)?.leader;
        let domain = self
            .domains
            .get(&leader)
            .ok_or(ControlError::NotManaged { cpu })?;
        if !domain.taken {
            return Ok(Released::NotTaken);
        }
        let held: Vec<CpuId> = domain
            .cpus
            .iter()
            .copied()
            .filter(|c| *c != cpu && self.cpus.get(c).is_some_and(|e| e.in_use))
            .collect();
        if let Some(entry) = self.cpus.get_mut(&cpu) {
            entry.in_use = false;
        }
        if !held.is_empty() {
            return Ok(Released::HeldBy(held));
        }
        let (cpus, via) = (domain.cpus.clone(), domain.via);
        for c in &cpus {
            match self.takeover.release_cpu(&*self.io, *c) {
                Ok(_) => {}
                // Offline siblings stay recorded for restore_all.
                Err(TakeoverError::Cpu(BackendError::Offline { .. })) if *c != via => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(domain) = self.domains.get_mut(&leader) {
            domain.taken = false;
            if let Some(control) = domain.control.as_mut() {
                control.release();
            }
        }
        Ok(Released::Restored)
    }

    /// Restores everything the record holds (CPUs, turbo switch, uncore);
    /// what could not be restored stays recorded and is reported.
    pub fn restore_all(&mut self) -> Result<RestoreReport, ControlError> {
        let report = self.takeover.restore_all(&*self.io)?;
        let still: BTreeSet<CpuId> = self.takeover.record().cpus.keys().copied().collect();
        for domain in self.domains.values_mut() {
            if domain.cpus.iter().all(|c| !still.contains(c)) {
                domain.taken = false;
                if let Some(control) = domain.control.as_mut() {
                    control.release();
                }
            }
        }
        for entry in self.cpus.values_mut() {
            entry.in_use = false;
        }
        Ok(report)
    }

    /// The domains under our control now, each named by its leader.
    pub fn held(&self) -> Vec<CpuId> {
        self.domains
            .iter()
            .filter(|(_, d)| d.taken)
            .map(|(leader, _)| *leader)
            .collect()
    }

    /// Checks without writing that `cpu`'s domain, if held, still holds
    /// our governor and the frequency last written: another tool's write
    /// fails with [`BackendError::ChangedExternally`] naming the file.
    pub fn verify(&self, cpu: CpuId) -> Result<(), ControlError> {
        let leader = self.entry(cpu)?.leader;
        match self.domains.get(&leader) {
            Some(Domain {
                taken: true,
                control: Some(control),
                ..
            }) => Ok(control.verify()?),
            _ => Ok(()),
        }
    }

    /// Gives `cpu`'s domain up to another writer of its files without
    /// restoring anything: its CPUs leave the takeover record (what the
    /// other writer set is what stays, at release, at stop and after a
    /// crash) and nothing is written to it until it is applied again,
    /// which takes it over afresh (recording what it holds then).
    pub fn yield_domain(&mut self, cpu: CpuId) -> Result<Vec<CpuId>, ControlError> {
        let leader = self.entry(cpu)?.leader;
        let Some(domain) = self.domains.get_mut(&leader) else {
            return Err(ControlError::NotManaged { cpu });
        };
        domain.taken = false;
        if let Some(control) = domain.control.as_mut() {
            control.release();
        }
        let cpus = domain.cpus.clone();
        for c in &cpus {
            self.takeover.forget_cpu(*c)?;
            if let Some(entry) = self.cpus.get_mut(c) {
                entry.in_use = false;
            }
        }
        Ok(cpus)
    }

    /// Takes `cpu`'s domain over again after another tool changed it
    /// ([`BackendError::ChangedExternally`]): the backend prepares it anew
    /// and forgets what it last wrote. The originals stay as first recorded.
    pub fn retake(&mut self, cpu: CpuId) -> Result<(), ControlError> {
        let leader = self.entry(cpu)?.leader;
        if let Some(domain) = self.domains.get_mut(&leader) {
            domain.taken = false;
        }
        self.take_domain(leader)
    }
}

fn unknown_driver(cpu: CpuId, driver: &Driver) -> ControlError {
    ControlError::Backend(BackendError::UnknownDriver {
        cpu,
        driver: driver.sysfs_name().to_owned(),
    })
}

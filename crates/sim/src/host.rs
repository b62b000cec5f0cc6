//! The simulated host: a CPU model, the packet model's parameters, and
//! the VMs, each with its vCPUs pinned to pCPUs of their own (vCPU `j` of
//! VM `i` on pCPU `i·vcpus + j`), each pCPU its own frequency domain.
//!
//! Receive-side scaling spreads a VM's packets evenly over its vCPUs, and
//! every controller here sets all of a VM's vCPUs alike, so the vCPUs of a
//! VM behave alike: the model simulates one and counts it `vcpus` times.

use crate::packet::PacketParams;
use crate::power::CpuModel;

/// The host under simulation.
#[derive(Debug, Clone)]
pub struct SimHost {
    /// The CPU model (frequency table and power).
    pub model: CpuModel,
    /// The packet model.
    pub params: PacketParams,
    /// The VMs' names.
    pub vms: Vec<String>,
    /// vCPUs per VM (each on a pCPU of its own).
    pub vcpus: usize,
    /// Service rate of one vCPU at each table index, packets/s.
    pub service_pps: Vec<f64>,
}

impl SimHost {
    /// A host for these VMs.
    pub fn new(model: CpuModel, params: PacketParams, vms: Vec<String>, vcpus: usize) -> Self {
        let service_pps = model.khz().iter().map(|k| params.service_pps(*k)).collect();
        SimHost {
            model,
            params,
            vms,
            vcpus: vcpus.max(1),
            service_pps,
        }
    }

    /// The number of frequency levels.
    pub fn levels(&self) -> usize {
        self.service_pps.len()
    }

    /// The index DPDK and the engine call "medium".
    pub fn medium(&self) -> usize {
        self.levels() / 2
    }

    /// The index of min.
    pub fn min(&self) -> usize {
        self.levels() - 1
    }

    /// How many vCPUs in all.
    pub fn cores(&self) -> usize {
        self.vms.len() * self.vcpus
    }

    /// A VM's offered rate per vCPU.
    #[allow(clippy::cast_precision_loss)]
    pub fn per_vcpu(&self, vm_pps: f64) -> f64 {
        vm_pps / self.vcpus as f64
    }

    /// A VM's capacity (all its vCPUs) at a table index, packets/s.
    #[allow(clippy::cast_precision_loss)]
    pub fn vm_capacity(&self, index: usize) -> f64 {
        self.service_pps[index] * self.vcpus as f64
    }
}

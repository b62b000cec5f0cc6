//! vmpower's busyness controller, decided by the real `vmpower-engine`
//! through the daemon's record path.
//!
//! Each VM's guest says HELLO asking for the native contract v2, then
//! every report interval sends a BUSYNESS record: each vCPU's busyness
//! averaged over the interval (the poll loop's share of time on packets,
//! [`Observation::busy`]), the interval, and no rx-missed count. The
//! records are encoded, decoded and handed to
//! [`Engine::handle_record`] exactly as the daemon's channel path does;
//! every step the staleness check runs as the daemon's timer would
//! ([`Engine::busyness_check`]). The engine's `Set` actions are the
//! frequency writes.
//!
//! The interval is the guest agent's choice; at a trace step longer than
//! it, one report goes per step, claiming the step as its interval.

use std::collections::HashMap;
use std::time::Duration;

use vmpower_cpufreq::CpuId;
use vmpower_engine::{Action, BusyConfig, ChannelId, Engine, EngineConfig, Rejection, VmId};
use vmpower_proto::contract::NATIVE_VERSION;
use vmpower_proto::layout::{RecordHead, decode_request, encode_request_record};
use vmpower_proto::{BusyEntry, BusynessReport, Layout, Request, RequestBody, VmName};

use super::engine::{apply_actions, place_vms};
use super::{Controller, Observation, Setup};

/// The report interval of the evaluator's guest agent.
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_millis(10);

/// The engine's busyness controller, fed BUSYNESS records.
#[derive(Debug)]
pub struct BusynessEngine {
    name: String,
    config: BusyConfig,
    interval: Duration,
    engine: Engine,
    channels: Vec<ChannelId>,
    cpu_vm: HashMap<CpuId, usize>,
    vcpus: usize,
    actions: Vec<Action>,
    /// Per VM: busyness summed since the last report, and steps summed.
    sums: Vec<f64>,
    steps: u32,
    next_report: Duration,
    seq: u64,
    refused: u64,
}

impl BusynessEngine {
    /// A controller with the engine's busyness settings `config`, the
    /// guests reporting every `interval`.
    pub fn new(config: BusyConfig, interval: Duration) -> Self {
        BusynessEngine {
            name: "vmpower busyness".to_owned(),
            config,
            interval,
            engine: Engine::default(),
            channels: Vec::new(),
            cpu_vm: HashMap::new(),
            vcpus: 1,
            actions: Vec::new(),
            sums: Vec::new(),
            steps: 0,
            next_report: Duration::ZERO,
            seq: 0,
            refused: 0,
        }
    }

    /// The same, named `name` in tables and plots.
    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// Reports the engine refused (none, when the controller is right).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// One record through the daemon's path: encode, decode, handle.
    fn send(&mut self, vm: usize, body: RequestBody, now: Duration) {
        let request = Request {
            vm_name: VmName::default(),
            body,
        };
        let Ok(raw) = encode_request_record(&request, Layout::Current) else {
            self.refused += 1;
            return;
        };
        let decoded = decode_request(&raw, Layout::Current);
        let request = decoded
            .as_ref()
            .map_err(|e| Rejection::Malformed(e.to_string()));
        let (decision, _) =
            self.engine
                .handle_record(now, &self.channels[vm], RecordHead::of(&raw), request);
        if decision
            .notes
            .iter()
            .any(|n| matches!(n, vmpower_engine::Note::Rejected(_)))
        {
            self.refused += 1;
        }
        self.actions.extend(decision.actions);
    }
}

impl Controller for BusynessEngine {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn start(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        let host = setup.host;
        anyhow::ensure!(
            host.vcpus <= BusynessReport::CAPACITY,
            "a busyness report covers at most 64 vCPUs (got {})",
            host.vcpus
        );
        self.engine = Engine::new(EngineConfig {
            busyness: self.config,
            ..EngineConfig::default()
        });
        let (ids, cpu_vm) = place_vms(&mut self.engine, host)?;
        self.cpu_vm = cpu_vm;
        self.channels = ids
            .into_iter()
            .map(|vm: VmId| ChannelId { vm, index: 0 })
            .collect();
        self.vcpus = host.vcpus;
        self.sums = vec![0.0; host.vms.len()];
        self.steps = 0;
        self.seq = 0;
        self.refused = 0;
        self.interval = self.interval.max(setup.step);
        self.next_report = self.interval;
        for vm in 0..self.channels.len() {
            let hello = RequestBody::Hello {
                version: NATIVE_VERSION,
            };
            self.send(vm, hello, Duration::ZERO);
        }
        anyhow::ensure!(self.refused == 0, "the engine refused a HELLO");
        Ok(())
    }

    fn decide(&mut self, obs: &Observation<'_>, wanted: &mut [usize]) {
        if obs.step > 0 {
            for (sum, busy) in self.sums.iter_mut().zip(obs.busy) {
                *sum += busy;
            }
            self.steps += 1;
        }
        if obs.now >= self.next_report && self.steps > 0 {
            self.next_report = obs.now + self.interval;
            self.seq += 1;
            let interval_ms = u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX);
            for vm in 0..self.sums.len() {
                let mean = self.sums[vm] / f64::from(self.steps);
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let permille = (mean * 1000.0).round().clamp(0.0, 1000.0) as u16;
                let entries: Vec<BusyEntry> = (0..self.vcpus)
                    .map(|v| BusyEntry {
                        vcpu: u16::try_from(v).unwrap_or(u16::MAX),
                        permille,
                    })
                    .collect();
                match BusynessReport::new(self.seq, &entries, interval_ms, None) {
                    Ok(report) => self.send(vm, RequestBody::Busyness(report), obs.now),
                    Err(_) => self.refused += 1,
                }
            }
            self.sums.fill(0.0);
            self.steps = 0;
        }
        let stale = self.engine.busyness_check(obs.now);
        self.actions.extend(stale.actions);
        apply_actions(&mut self.actions, &self.cpu_vm, wanted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::SimHost;
    use crate::packet::PacketParams;
    use crate::power::CpuModel;

    fn host() -> SimHost {
        SimHost::new(
            CpuModel::load("xeon-gold-6230").unwrap(),
            PacketParams::default(),
            vec!["vm0".to_owned()],
            2,
        )
    }

    /// Feeds a constant busyness at each step (as measured at the index
    /// wanted: the model's proportionality) and returns the wanted index
    /// after each step.
    fn drive(c: &mut BusynessEngine, host: &SimHost, load_at_max: &[f64]) -> Vec<usize> {
        let step = Duration::from_millis(10);
        let setup = Setup {
            host,
            step,
            steps: load_at_max.len(),
            start_wall: jiff::Timestamp::UNIX_EPOCH,
            future: None,
        };
        c.start(&setup).unwrap();
        let mut wanted = vec![0];
        let mut busy = vec![0.0];
        let mut out = Vec::new();
        let khz = host.model.khz();
        for (k, load) in load_at_max.iter().enumerate() {
            let obs = Observation {
                step: k,
                now: step * u32::try_from(k).unwrap(),
                wall: jiff::Timestamp::UNIX_EPOCH,
                counters: &[0],
                queued: &[0.0],
                busy: &busy,
                dropped: &[0],
            };
            c.decide(&obs, &mut wanted);
            out.push(wanted[0]);
            busy[0] = (load * f64::from(khz[0]) / f64::from(khz[wanted[0]])).min(1.0);
        }
        out
    }

    #[test]
    fn reports_through_the_record_path_settle_in_the_band() {
        let host = host();
        let mut c = BusynessEngine::new(BusyConfig::default(), DEFAULT_REPORT_INTERVAL);
        // 40 % of max's capacity for 1 s, then 90 %.
        let mut load = vec![0.4; 100];
        load.extend(vec![0.9; 100]);
        let w = drive(&mut c, &host, &load);
        assert_eq!(c.refused(), 0, "every record accepted");
        let khz = host.model.khz();
        let busy_at = |load: f64, i: usize| load * f64::from(khz[0]) / f64::from(khz[i]);
        let settled = w[99];
        assert!(settled > 0, "came down from max");
        assert!(
            (0.75..=0.85).contains(&busy_at(0.4, settled)) || busy_at(0.4, settled + 1) > 0.85,
            "index {settled}: busy {}",
            busy_at(0.4, settled)
        );
        // The rise is followed within two reports, up to the band.
        assert!(w[102] < settled, "{:?}", &w[98..104]);
        assert!(busy_at(0.9, w[199]) <= 0.85 || w[199] == 0);
    }

    #[test]
    fn silence_is_never_reached_when_reports_flow() {
        let host = host();
        let mut c = BusynessEngine::new(BusyConfig::default(), Duration::from_millis(20));
        let w = drive(&mut c, &host, &[0.3; 300]);
        assert_eq!(c.refused(), 0);
        assert_eq!(
            c.engine
                .busyness_status(&VmId::new("vm0"), Duration::from_secs(3))
                .unwrap()
                .counters
                .stale_events,
            0
        );
        assert!(w[299] > 0);
    }
}

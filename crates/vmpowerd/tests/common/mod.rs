//! Shared harness: a fake host (fake sysfs tree), the real daemon `run`
//! in-process with its own shutdown signal, and a test playing QEMU (it
//! listens at `<channel-dir>/<vm>.<n>`; the daemon connects as a client).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vmpower_api::{Client, CtlRequest, CtlResponse};
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::{Driver, SysfsIo};
use vmpower_proto::layout::{decode_verdict, encode_request_record};
use vmpower_proto::{CoreType, Layout, Request, RequestBody, ScalingUnit, Verdict, VmName};
use vmpowerd::config::{Config, VmConfig};

/// Every wait is bounded.
pub const WAIT: Duration = Duration::from_secs(10);

/// A daemon running on a fake host in temp dirs.
pub struct Host {
    pub fake: Arc<FakeSysfs>,
    /// Scripted traffic counters the daemon samples.
    pub traffic: vmpowerd::traffic::FakeTrafficCounters,
    /// Sample the host's real counters (rtnetlink) instead of `traffic`.
    pub real_traffic: bool,
    pub dir: tempfile::TempDir,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Host {
    /// 4 CPUs of acpi-cpufreq with turbo; `vms` declared with their pCPUs.
    pub async fn start(vms: &[(&str, VmConfig)]) -> Host {
        let fake = FakeSysfs::builder(4)
            .driver(Driver::AcpiCpufreq)
            .build()
            .unwrap();
        Host::start_on(Arc::new(fake), vms).await
    }

    /// As [`Host::start`], with a chance to adjust the config.
    pub async fn start_adjusted(
        vms: &[(&str, VmConfig)],
        adjust: impl FnOnce(&mut Config),
    ) -> Host {
        let fake = FakeSysfs::builder(4)
            .driver(Driver::AcpiCpufreq)
            .build()
            .unwrap();
        Host::start_with(Arc::new(fake), vms, adjust).await
    }

    pub async fn start_on(fake: Arc<FakeSysfs>, vms: &[(&str, VmConfig)]) -> Host {
        Host::start_with(fake, vms, |_| {}).await
    }

    /// As [`Host::start_on`], with a chance to adjust the config.
    pub async fn start_with(
        fake: Arc<FakeSysfs>,
        vms: &[(&str, VmConfig)],
        adjust: impl FnOnce(&mut Config),
    ) -> Host {
        Host::start_counters(fake, vms, adjust, false).await
    }

    /// As [`Host::start_with`], but the daemon samples the host's real
    /// traffic counters through `vmpowerd::run::run` (rtnetlink).
    pub async fn start_real_traffic(
        fake: Arc<FakeSysfs>,
        vms: &[(&str, VmConfig)],
        adjust: impl FnOnce(&mut Config),
    ) -> Host {
        Host::start_counters(fake, vms, adjust, true).await
    }

    async fn start_counters(
        fake: Arc<FakeSysfs>,
        vms: &[(&str, VmConfig)],
        adjust: impl FnOnce(&mut Config),
        real_traffic: bool,
    ) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            sysfs_root: fake.path().to_owned(),
            proc_root: dir.path().join("proc"),
            channel_dir: dir.path().join("channels"),
            state_dir: dir.path().join("state"),
            control_socket: dir.path().join("control.sock"),
            policy_dir: dir.path().join("policies.d"),
            ..Config::default()
        };
        for (name, vm) in vms {
            config.vm.insert((*name).to_owned(), vm.clone());
        }
        adjust(&mut config);
        std::fs::create_dir_all(&config.channel_dir).unwrap();
        let mut host = Host {
            fake,
            traffic: vmpowerd::traffic::FakeTrafficCounters::new(),
            real_traffic,
            dir,
            config,
            stop: None,
            task: None,
        };
        host.launch().await;
        host
    }

    /// Starts (or restarts) the daemon on the same host.
    pub async fn launch(&mut self) {
        let (tx, rx) = oneshot::channel();
        let io: Arc<dyn SysfsIo> = self.fake.clone();
        let shutdown = async {
            let _ = rx.await;
        };
        let task = if self.real_traffic {
            tokio::spawn(vmpowerd::run::run(self.config.clone(), io, shutdown))
        } else {
            let counters: Box<dyn vmpowerd::traffic::TrafficCounters> =
                Box::new(self.traffic.clone());
            tokio::spawn(vmpowerd::run::run_with(
                self.config.clone(),
                io,
                Some(counters),
                shutdown,
            ))
        };
        self.stop = Some(tx);
        self.task = Some(task);
        // The file appears at bind(), a moment before listen(): wait until
        // a connection is accepted, not only for the file.
        wait_for(|| std::os::unix::net::UnixStream::connect(&self.config.control_socket).is_ok())
            .await;
    }

    /// Stops the daemon as SIGTERM would, and waits for it.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => tokio::time::timeout(WAIT, t).await.unwrap().unwrap(),
            None => Ok(()),
        }
    }

    /// A cpufreq file of a CPU, e.g. `scaling_setspeed`.
    pub fn cpu_file(&self, cpu: u32, file: &str) -> String {
        let rel = format!("devices/system/cpu/cpu{cpu}/cpufreq/{file}");
        self.fake.read(Path::new(&rel)).unwrap()
    }

    /// Plays QEMU: listens at `<channel-dir>/<vm>.<n>`.
    pub fn qemu(&self, vm: &str, index: u32) -> UnixListener {
        UnixListener::bind(self.socket(vm, index)).unwrap()
    }

    pub fn socket(&self, vm: &str, index: u32) -> PathBuf {
        self.config.channel_dir.join(format!("{vm}.{index}"))
    }

    /// Asks the control API; panics on an error answer.
    pub fn ok(&self, request: &CtlRequest) -> serde_json::Value {
        match self.ctl(request) {
            CtlResponse::Ok(v) => v,
            CtlResponse::Error(e) => panic!("{request:?}: {e:?}"),
        }
    }

    /// Asks the control API.
    pub fn ctl(&self, request: &CtlRequest) -> CtlResponse {
        let path = self.config.control_socket.clone();
        let request = request.clone();
        std::thread::spawn(move || Client::connect(&path).unwrap().call(&request).unwrap())
            .join()
            .unwrap()
    }
}

/// Waits for the daemon to connect to a QEMU-side listener.
pub async fn accept(listener: &UnixListener) -> UnixStream {
    tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("the daemon did not connect in time")
        .unwrap()
        .0
}

/// Polls a condition (for effects on files) with a bound.
pub async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A record of `body` in the current layout, with no name.
pub fn record(body: RequestBody) -> Vec<u8> {
    let req = Request {
        vm_name: VmName::default(),
        body,
    };
    encode_request_record(&req, Layout::Current)
        .unwrap()
        .as_slice()
        .to_vec()
}

/// A CPU_POWER record in the current layout.
pub fn power(vcpu: u64, unit: ScalingUnit) -> Vec<u8> {
    record(RequestBody::Power {
        resource_id: vcpu,
        core_type: CoreType::Virtual,
        unit,
    })
}

/// Asks for the native reply contract (HELLO) and waits for its ACK: the
/// daemon then answers every record, removal included.
pub async fn native(guest: &mut UnixStream) {
    let hello = record(RequestBody::Hello { version: 1 });
    assert_eq!(call(guest, &hello).await, Verdict::Ack);
}

/// Sends a record and reads the ACK/NACK.
pub async fn call(guest: &mut UnixStream, record: &[u8]) -> Verdict {
    guest.write_all(record).await.unwrap();
    read_verdict(guest, record.len()).await
}

pub async fn read_verdict(guest: &mut UnixStream, len: usize) -> Verdict {
    let mut reply = vec![0u8; len];
    tokio::time::timeout(WAIT, guest.read_exact(&mut reply))
        .await
        .expect("no reply in time")
        .unwrap();
    let layout = if len == 456 {
        Layout::Dpdk1711
    } else {
        Layout::Current
    };
    decode_verdict(&reply, layout).unwrap().verdict
}

/// A declared VM pinned to `pcpus`.
pub fn vm(pcpus: &[u32]) -> VmConfig {
    VmConfig {
        pcpus: pcpus.to_vec(),
        ..VmConfig::default()
    }
}

//! Shared harness, after vmpowerd's own (tests/common): a fake host (fake
//! sysfs tree), the real daemon `run` in-process with its own shutdown
//! signal, and the test playing QEMU *in the middle*: it listens at
//! `<channel-dir>/<vm>.<n>` for the daemon and at a guest-side socket for
//! the library or the CLI, relays bytes both ways, and records what the
//! guest sent. Like a virtio port, bytes the daemon sends while no guest is
//! attached are held and delivered to the next guest.

#![allow(dead_code, clippy::unwrap_used)]

pub mod fake_host;
pub mod telemetry;
pub mod testpmd;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vmpower_api::{ChannelSel, Client, CtlRequest, CtlResponse};
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::{Driver, SysfsIo};
use vmpower_proto::layout::decode_request;
use vmpower_proto::{Layout, Request};
use vmpowerd::config::{Config, VmConfig};

/// Every wait is bounded.
pub const WAIT: Duration = Duration::from_secs(10);

/// A daemon running on a fake host in temp dirs.
pub struct Host {
    pub fake: Arc<FakeSysfs>,
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
        let fake = Arc::new(fake);
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            sysfs_root: fake.path().to_owned(),
            proc_root: dir.path().join("proc"),
            channel_dir: dir.path().join("channels"),
            state_dir: dir.path().join("state"),
            control_socket: dir.path().join("control.sock"),
            ..Config::default()
        };
        for (name, vm) in vms {
            config.vm.insert((*name).to_owned(), vm.clone());
        }
        std::fs::create_dir_all(&config.channel_dir).unwrap();
        let (tx, rx) = oneshot::channel();
        let io: Arc<dyn SysfsIo> = fake.clone();
        let task = tokio::spawn(vmpowerd::run::run(config.clone(), io, async {
            let _ = rx.await;
        }));
        let host = Host {
            fake,
            dir,
            config,
            stop: Some(tx),
            task: Some(task),
        };
        wait_for(|| host.config.control_socket.exists()).await;
        host
    }

    /// Stops the daemon as SIGTERM would, and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(WAIT, t)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
    }

    /// A cpufreq file of a CPU, e.g. `scaling_setspeed`.
    pub fn cpu_file(&self, cpu: u32, file: &str) -> String {
        let rel = format!("devices/system/cpu/cpu{cpu}/cpufreq/{file}");
        self.fake.read(Path::new(&rel)).unwrap()
    }

    /// Asks the control API (what `vmpowerctl` does).
    pub fn ctl(&self, request: &CtlRequest) -> CtlResponse {
        let path = self.config.control_socket.clone();
        let request = request.clone();
        std::thread::spawn(move || Client::connect(&path).unwrap().call(&request).unwrap())
            .join()
            .unwrap()
    }

    /// `vmpowerctl set-query VM on|off`.
    pub fn set_query(&self, vm: &str, enabled: bool) {
        let r = self.ctl(&CtlRequest::SetQuery {
            vm: vm.to_owned(),
            enabled,
        });
        assert!(matches!(r, CtlResponse::Ok(_)), "{r:?}");
    }

    /// `vmpowerctl set-channel-status VM all off`: the daemon reads and
    /// ignores the channel, so the guest hears nothing.
    pub fn disable_channels(&self, vm: &str) {
        let r = self.ctl(&CtlRequest::SetChannelStatus {
            vm: vm.to_owned(),
            channels: ChannelSel::All,
            enabled: false,
        });
        assert!(matches!(r, CtlResponse::Ok(_)), "{r:?}");
    }

    /// How many requests of `kind` (`policy`, `policy_remove`, `power`,
    /// `query`) from `vm` the daemon answered ACK/ok and NACK, from
    /// `vmpowerctl status`. Policy tests compare the library's outcome with
    /// the daemon's own count, so they hold both while vmpowerd NACKs
    /// policies as unsupported and once it supports them.
    pub fn verdicts(&self, vm: &str, kind: &str) -> (u64, u64) {
        let CtlResponse::Ok(v) = self.ctl(&CtlRequest::Status) else {
            panic!("status refused")
        };
        let count = |result: &str| {
            v["stats"]["requests"][format!("{vm}/{kind}/{result}")]
                .as_u64()
                .unwrap_or(0)
        };
        (count("ok"), count("nack"))
    }

    /// Plays QEMU in the middle for channel `index` of `vm`; returns once
    /// the daemon has connected.
    pub async fn middle(&self, vm: &str, index: u32) -> Middle {
        let qemu =
            UnixListener::bind(self.config.channel_dir.join(format!("{vm}.{index}"))).unwrap();
        let guest_socket = self.dir.path().join(format!("guest-{vm}.{index}.sock"));
        let guest_listener = UnixListener::bind(&guest_socket).unwrap();
        let daemon = tokio::time::timeout(WAIT, qemu.accept())
            .await
            .expect("the daemon did not connect in time")
            .unwrap()
            .0;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(relay(daemon, guest_listener, sent.clone()));
        Middle {
            guest_socket,
            sent,
            _qemu: qemu,
            task,
        }
    }
}

/// The middle of a channel: where the guest connects, and what it sent.
pub struct Middle {
    /// The socket the library / CLI uses as its port.
    pub guest_socket: PathBuf,
    sent: Arc<Mutex<Vec<u8>>>,
    _qemu: UnixListener,
    task: JoinHandle<()>,
}

impl Middle {
    /// Every byte any guest sent so far.
    pub fn sent(&self) -> Vec<u8> {
        self.sent.lock().unwrap().clone()
    }

    /// The guest's bytes as records of `layout`.
    pub fn requests(&self, layout: Layout) -> Vec<Request> {
        let bytes = self.sent();
        assert_eq!(bytes.len() % layout.record_len(), 0, "whole records only");
        bytes
            .chunks(layout.record_len())
            .map(|r| decode_request(r, layout).unwrap())
            .collect()
    }
}

impl Drop for Middle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays between the daemon and one guest at a time.
async fn relay(mut daemon: UnixStream, guests: UnixListener, sent: Arc<Mutex<Vec<u8>>>) {
    let mut held: Vec<u8> = Vec::new();
    let mut guest: Option<UnixStream> = None;
    let mut from_daemon = [0u8; 4096];
    let mut from_guest = [0u8; 4096];
    loop {
        tokio::select! {
            accepted = guests.accept() => {
                let mut g = accepted.unwrap().0;
                g.write_all(&held).await.unwrap();
                held.clear();
                guest = Some(g);
            }
            n = daemon.read(&mut from_daemon) => {
                let n = n.unwrap();
                if n == 0 {
                    return;
                }
                let delivered = match guest.as_mut() {
                    Some(g) => g.write_all(&from_daemon[..n]).await.is_ok(),
                    None => false,
                };
                if !delivered {
                    held.extend_from_slice(&from_daemon[..n]);
                }
            }
            n = async {
                match guest.as_mut() {
                    Some(g) => g.read(&mut from_guest).await,
                    None => std::future::pending().await,
                }
            } => {
                match n {
                    Ok(0) | Err(_) => guest = None,
                    Ok(n) => {
                        sent.lock().unwrap().extend_from_slice(&from_guest[..n]);
                        daemon.write_all(&from_guest[..n]).await.unwrap();
                    }
                }
            }
        }
    }
}

/// Polls a condition with a bound.
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

/// A declared VM pinned to `pcpus`, vCPU i on `pcpus[i]`.
pub fn vm(pcpus: &[u32]) -> VmConfig {
    VmConfig {
        pcpus: pcpus.to_vec(),
        ..VmConfig::default()
    }
}

/// Runs blocking guest code (the library is synchronous) off the runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

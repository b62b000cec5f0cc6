//! `vmpowerctl status` and `vmpowerctl top` against a real daemon
//! (in-process, fake host): channels up and down, a policy waiting and
//! why, a failed sysfs write among the last errors, the live table.

#![allow(clippy::unwrap_used)]

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vmpower_cpufreq::fake::{FailKind, FakeSysfs};
use vmpower_cpufreq::{Driver, SysfsIo};
use vmpowerd::config::Config;

struct Daemon {
    fake: Arc<FakeSysfs>,
    socket: PathBuf,
    channels: PathBuf,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    fn start() -> Daemon {
        let fake = Arc::new(
            FakeSysfs::builder(4)
                .driver(Driver::AcpiCpufreq)
                .build()
                .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            sysfs_root: fake.path().to_owned(),
            proc_root: dir.path().join("proc"),
            channel_dir: dir.path().join("channels"),
            state_dir: dir.path().join("state"),
            control_socket: dir.path().join("control.sock"),
            policy_dir: dir.path().join("policies.d"),
            ..Config::default()
        };
        let socket = config.control_socket.clone();
        let channels = config.channel_dir.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let io: Arc<dyn SysfsIo> = fake.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(vmpowerd::run::run(config, io, async {
                let _ = rx.await;
            }))
            .unwrap();
        });
        wait(|| socket.exists(), "the daemon did not start");
        Daemon {
            fake,
            socket,
            channels,
            dir,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vmpowerctl"))
            .arg("--control-socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Plays QEMU: listens at `<channels>/<vm>.<n>` and takes the
    /// daemon's connection.
    fn qemu(&self, vm: &str, index: u32) -> (UnixListener, UnixStream) {
        std::fs::create_dir_all(&self.channels).unwrap();
        let listener = UnixListener::bind(self.channels.join(format!("{vm}.{index}"))).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut conn = None;
        wait(
            || {
                conn = listener.accept().ok().map(|(s, _)| s);
                conn.is_some()
            },
            "the daemon did not connect to the channel",
        );
        (listener, conn.unwrap())
    }

    fn policy(&self, name: &str, text: &str) {
        let file = self.dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        self.ok(&["policy", "create", file.to_str().unwrap()]);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `cond` for up to 10 s.
fn wait(mut cond: impl FnMut() -> bool, what: &str) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}");
}

/// A host with vm1 (channel up, WORKLOAD HIGH on pCPU 2) and vm2 (a
/// TRAFFIC policy on a MAC no device carries: waiting).
fn scenario() -> (Daemon, UnixListener, UnixStream) {
    let d = Daemon::start();
    let (listener, conn) = d.qemu("vm1", 0);
    d.ok(&["set-pcpu", "vm1", "0", "2"]);
    d.policy(
        "high.toml",
        "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"HIGH\"\n",
    );
    d.ok(&["add-vm", "vm2"]);
    d.ok(&["set-pcpu", "vm2", "0", "3"]);
    d.policy(
        "traffic.json",
        r#"{"vm": "vm2", "kind": "TRAFFIC", "cores": [0], "macs": ["02:00:5e:00:99:07"],
            "traffic": {"avg_pps": 1000, "max_pps": 2000}}"#,
    );
    (d, listener, conn)
}

#[test]
fn status_summarises_channels_policies_and_last_errors() {
    let (d, listener, conn) = scenario();
    // An operator change whose sysfs write fails.
    let setspeed = Path::new("devices/system/cpu/cpu1/cpufreq/scaling_setspeed");
    d.fake.fail_next_write(setspeed, FailKind::PermissionDenied);
    assert_eq!(d.ctl(&["set-cpu-freq", "1", "max"]).status.code(), Some(4));

    let v = d.json(&["status"]);
    assert_eq!(v["channels_up"], 1, "{v}");
    assert_eq!(v["channels_down"], 0);
    assert_eq!(v["stats"]["channels"]["vm1.0"]["up"], true);
    let policies = v["policies"].as_array().unwrap();
    let vm2 = policies.iter().find(|p| p["vm"] == "vm2").unwrap();
    assert_eq!(vm2["state"], "waiting");
    assert_eq!(vm2["kind"], "traffic");
    let vm1 = policies.iter().find(|p| p["vm"] == "vm1").unwrap();
    assert_eq!(vm1["state"], "active");
    let last = &v["stats"]["last_errors"][0];
    assert_eq!(last["kind"], "sysfs");
    assert!(
        last["detail"].as_str().unwrap().contains("pCPU 1"),
        "{last}"
    );
    assert_eq!(v["stats"]["sysfs_failures"], 1);
    assert!(v["metrics_address"].is_null(), "metrics are off by default");

    let text = d.ok(&["status"]);
    assert!(text.contains("channels 1 up, 0 down"), "{text}");
    assert!(text.contains("metrics off"), "{text}");
    let channel = text.lines().find(|l| l.starts_with("vm1.0")).unwrap();
    assert!(channel.contains(" up "), "{channel}");
    let waiting = text.lines().find(|l| l.starts_with("vm2 ")).unwrap();
    assert!(
        waiting.contains("traffic") && waiting.contains("waiting"),
        "{waiting}"
    );
    let why = vm2["waiting_for"].as_str().unwrap();
    assert!(!why.is_empty() && waiting.contains(why), "{waiting}");
    let error = text
        .lines()
        .skip_while(|l| !l.starts_with("LAST ERRORS"))
        .nth(2)
        .unwrap();
    assert!(
        error.contains("sysfs") && error.contains("write") && error.contains("pCPU 1"),
        "{error}"
    );
    assert!(text.contains("sysfs_failures"), "{text}");

    // QEMU goes away: the channel is down.
    drop(conn);
    drop(listener);
    wait(
        || d.json(&["status"])["channels_down"] == 1,
        "the channel never went down",
    );
    let text = d.ok(&["status"]);
    assert!(text.contains("channels 0 up, 1 down"), "{text}");
    let channel = text.lines().find(|l| l.starts_with("vm1.0")).unwrap();
    assert!(channel.contains(" down "), "{channel}");
}

#[test]
fn top_draws_frames_until_its_iterations_are_done() {
    let (d, _listener, _conn) = scenario();
    let max_khz = d
        .fake
        .read(Path::new(
            "devices/system/cpu/cpu2/cpufreq/scaling_setspeed",
        ))
        .unwrap();
    let max_ghz = format!("{:.2} GHz", max_khz.parse::<f64>().unwrap() / 1e6);
    let text = d.ok(&["top", "--iterations", "3", "--interval", "0.1"]);
    assert_eq!(text.matches("vmpower top").count(), 3, "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI codes when not on a terminal"
    );
    let last = text.rsplit("vmpower top").next().unwrap();
    let cpu2 = last
        .lines()
        .find(|l| l.trim_start().starts_with("2 "))
        .unwrap();
    assert!(
        cpu2.contains(&max_ghz) && cpu2.contains("managed"),
        "{cpu2}"
    );
    let vm1 = last.lines().find(|l| l.starts_with("vm1 ")).unwrap();
    assert!(vm1.contains("1/1"), "channel up: {vm1}");
    assert!(vm1.contains("workload active"), "{vm1}");
    assert!(
        vm1.contains("pCPU 2 ") && vm1.contains(&format!("-> {max_ghz}")),
        "{vm1}"
    );
    let vm2 = last.lines().find(|l| l.starts_with("vm2 ")).unwrap();
    assert!(vm2.contains("traffic waiting"), "{vm2}");

    // --json: one frame per line.
    let json = d.ok(&["--json", "top", "--iterations", "2", "--interval", "0.1"]);
    let frames: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 2);
    let vm1 = frames[1]["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vm"] == "vm1")
        .unwrap();
    assert_eq!(vm1["last_decision"]["pcpu"], 2);
    assert_eq!(vm1["last_decision"]["new_khz"].to_string(), max_khz);

    // A bad interval is a usage error.
    assert_eq!(d.ctl(&["top", "--interval", "0"]).status.code(), Some(2));
}

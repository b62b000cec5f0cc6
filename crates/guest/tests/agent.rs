//! The agent loop (`vmpower_guest::agent::run`) against a server speaking
//! DPDK's telemetry protocol and a fake host on a real unix socket
//! (tests/common): reports carry the lcores' busyness on their CPUs, the
//! interval and the ports' rx-missed sum, in sequence; the telemetry
//! socket going away and coming back (the agent falls back to
//! /proc/stat and returns to DPDK's lcore usage, without exiting); DPDK
//! 22.11 (no lcore usage) and lcores not pinned to one CPU report
//! /proc/stat; a socket answering garbage stays backed off; the channel is reopened to
//! renegotiate with the sequence continuing; a host that does not grant
//! native v2 ends the agent before any report.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::fake_host::{BUSYNESS, FakeHost, FakeProc, Report};
use common::telemetry::{Answer, DpdkApp, Handler, TelemetryServer};
use vmpower_guest::agent::{self, AgentConfig, AgentError, AgentStats, SourceConfig};
use vmpower_guest::{Channel, ChannelConfig, ReporterError};
use vmpower_proto::contract::Contract;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// The tests' application (lcores 1 on CPU 2 and 4 on CPU 3, ports that
/// missed 2 and 1 packets).
fn app(lcore_commands: bool) -> Arc<Mutex<DpdkApp>> {
    DpdkApp::example(lcore_commands)
}

/// The app's handler, its counters moving before each usage read: lcore
/// 1 runs 300 busy cycles of 1000, lcore 4 none of 1000.
fn running(app: Arc<Mutex<DpdkApp>>) -> Handler {
    let inner = DpdkApp::handler(app.clone());
    Arc::new(move |cmd, param| {
        if cmd == "/eal/lcore/usage" {
            let mut a = app.lock().unwrap();
            a.run(1, 300, 1000);
            a.run(4, 0, 1000);
        }
        inner(cmd, param)
    })
}

struct Running {
    stop: Sender<()>,
    thread: JoinHandle<Result<AgentStats, AgentError>>,
}

impl Running {
    fn stop(self) -> AgentStats {
        self.stop.send(()).unwrap();
        self.thread.join().unwrap().unwrap()
    }
}

fn config(telemetry: Option<&Path>, proc_root: &Path) -> AgentConfig {
    AgentConfig {
        interval: MS(20),
        renegotiate: Duration::from_secs(3600),
        source: SourceConfig {
            telemetry: telemetry.map(Path::to_owned),
            telemetry_timeout: Duration::from_secs(2),
            max_backoff: MS(100),
            proc_root: proc_root.to_owned(),
        },
    }
}

fn start(host: &FakeHost, config: AgentConfig) -> Running {
    let (stop, rx) = channel();
    let port = host.path.clone();
    let thread = std::thread::spawn(move || {
        let channel_config = ChannelConfig {
            timeout: Duration::from_secs(2),
            native: Some(Duration::from_secs(2)),
            ..ChannelConfig::default()
        };
        agent::run(
            &config,
            || Channel::open_path(&port, 0, channel_config),
            &rx,
        )
    });
    Running { stop, thread }
}

/// A temp dir, a host granting v2 and a moving /proc in it.
fn setup() -> (tempfile::TempDir, FakeHost, FakeProc) {
    let dir = tempfile::tempdir().unwrap();
    let host = FakeHost::start(&dir.path().join("host.sock"), Some(2));
    let proc = FakeProc::start(&dir.path().join("proc"));
    (dir, host, proc)
}

fn from_dpdk(r: &Report) -> bool {
    r.entries == [(2, 300), (3, 0)]
}

fn from_proc_stat(r: &Report) -> bool {
    r.entries == [(0, 500), (1, 100)]
}

#[test]
fn reports_carry_lcore_busyness_per_cpu_interval_and_rx_missed() {
    let dir = tempfile::tempdir().unwrap();
    let host = FakeHost::start(&dir.path().join("host.sock"), Some(2));
    let socket = dir.path().join("telemetry.sock");
    let _app = TelemetryServer::start(&socket, "DPDK 23.11.0", running(app(true)));
    let agent = start(&host, config(Some(&socket), &dir.path().join("no-proc")));
    let reports = host.wait_for("5 reports", |r| r.len() >= 5);
    let stats = agent.stop();
    for (i, r) in reports.iter().enumerate() {
        assert!(from_dpdk(r), "{r:?}");
        assert_eq!(r.seq, u64::try_from(i).unwrap(), "in sequence from 0");
        assert_eq!(r.interval_ms, 20);
        assert_eq!(r.rx_missed, Some(3));
        assert_eq!(r.connection, 0);
    }
    // CONNECT, HELLO, then BUSYNESS only.
    let commands = host.seen.lock().unwrap().commands[0].clone();
    assert_eq!(commands[0], 2, "CONNECT");
    assert!(commands[2..].iter().all(|c| *c == BUSYNESS), "{commands:?}");
    assert!(stats.sent >= 5, "{stats:?}");
    assert_eq!(stats.failed, 0);
}

#[test]
fn telemetry_going_away_falls_back_to_proc_stat_and_coming_back_returns() {
    let (dir, host, proc) = setup();
    let socket = dir.path().join("telemetry.sock");
    let app = app(true);
    let server = TelemetryServer::start(&socket, "DPDK 23.11.0", running(app.clone()));
    let agent = start(&host, config(Some(&socket), &proc.root));
    host.wait_for("a DPDK report", |r| r.iter().any(from_dpdk));

    // The application exits: its socket goes.
    drop(server);
    let before = host.reports().len();
    let r = host.wait_for("a /proc/stat report", |r| {
        r[before..].iter().any(from_proc_stat)
    });
    let fallback = r[before..].iter().find(|r| from_proc_stat(r)).unwrap();
    assert_eq!(fallback.rx_missed, None, "no application, no rx-missed");

    // It starts again (new counters).
    let _server = TelemetryServer::start(&socket, "DPDK 23.11.0", running(app));
    let before = host.reports().len();
    host.wait_for("DPDK reports again", |r| r[before..].iter().any(from_dpdk));
    let stats = agent.stop();
    let reports = host.reports();
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(
            r.seq,
            u64::try_from(i).unwrap(),
            "no report lost or repeated"
        );
        assert!(from_dpdk(r) || from_proc_stat(r), "{r:?}");
    }
    assert_eq!(stats.opened, 1, "the host channel stayed open");
}

#[test]
fn dpdk_22_11_reports_proc_stat_busyness_and_ethdev_rx_missed() {
    let (dir, host, proc) = setup();
    let socket = dir.path().join("telemetry.sock");
    let _app = TelemetryServer::start(&socket, "DPDK 22.11.11", running(app(false)));
    let agent = start(&host, config(Some(&socket), &proc.root));
    let reports = host.wait_for("3 reports", |r| r.len() >= 3);
    agent.stop();
    for r in &reports {
        assert!(from_proc_stat(r), "{r:?}");
        assert_eq!(r.rx_missed, Some(3));
    }
}

#[test]
fn the_channel_is_reopened_to_renegotiate_and_the_sequence_goes_on() {
    let (_dir, host, proc) = setup();
    let mut config = config(None, &proc.root);
    config.renegotiate = MS(100);
    let agent = start(&host, config);
    let reports = host.wait_for("reports on a third connection", |r| {
        r.iter().any(|r| r.connection >= 2)
    });
    let stats = agent.stop();
    assert!(stats.opened >= 3, "{stats:?}");
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.seq, u64::try_from(i).unwrap());
        assert!(from_proc_stat(r), "{r:?}");
    }
    // Every connection began with CONNECT and HELLO.
    for commands in &host.seen.lock().unwrap().commands {
        assert_eq!(commands[..2], [2, 0x564D_5057], "{commands:?}");
    }
}

#[test]
fn a_host_that_does_not_grant_v2_ends_the_agent_before_any_report() {
    let dir = tempfile::tempdir().unwrap();
    let proc = FakeProc::start(&dir.path().join("proc"));
    for (i, granted, expected) in [(0, Some(1), Contract::Native(1)), (1, None, Contract::Dpdk)] {
        let host = FakeHost::start(&dir.path().join(format!("host{i}.sock")), granted);
        let agent = start(&host, config(None, &proc.root));
        let err = agent.thread.join().unwrap().unwrap_err();
        match &err {
            AgentError::Reporter(ReporterError::NotGranted { granted, .. }) => {
                assert_eq!(*granted, expected);
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("native contract v2"), "{err}");
        let commands = host.seen.lock().unwrap().commands.concat();
        assert!(!commands.contains(&BUSYNESS), "{commands:?}");
    }
}

#[test]
fn a_telemetry_server_sending_garbage_does_not_stop_the_reports() {
    let (dir, host, proc) = setup();
    let socket = dir.path().join("telemetry.sock");
    let server = TelemetryServer::start(
        &socket,
        "DPDK 23.11.0",
        Arc::new(|cmd, _| match cmd {
            "/eal/lcore/usage" => Answer::Value(r#"{"lcore_ids":[1,1],"busy_cycles":"x"}"#.into()),
            _ => Answer::Raw(b"\x00garbage".to_vec()),
        }),
    );
    let agent = start(&host, config(Some(&socket), &proc.root));
    host.wait_for("3 /proc/stat reports", |r| {
        r.iter().filter(|r| from_proc_stat(r)).count() >= 3
    });
    // The agent keeps trying the hostile socket (with a backoff).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.commands() < 3 {
        assert!(std::time::Instant::now() < deadline, "no new attempt");
        std::thread::sleep(MS(5));
    }
    let stats = agent.stop();
    assert_eq!(stats.failed, 0, "{stats:?}");
}

#[test]
fn lcores_not_pinned_to_one_cpu_fall_back_to_proc_stat() {
    let (dir, host, proc) = setup();
    let socket = dir.path().join("telemetry.sock");
    let inner = running(app(true));
    let _app = TelemetryServer::start(
        &socket,
        "DPDK 23.11.0",
        Arc::new(move |cmd, param| match (cmd, param) {
            ("/eal/lcore/info", Some(id)) => Answer::Value(format!(
                r#"{{"lcore_id":{id},"socket":0,"role":"RTE","cpuset":[0,1]}}"#
            )),
            _ => inner(cmd, param),
        }),
    );
    let agent = start(&host, config(Some(&socket), &proc.root));
    let reports = host.wait_for("3 reports", |r| r.len() >= 3);
    agent.stop();
    for r in &reports {
        assert!(from_proc_stat(r), "{r:?}");
        assert_eq!(r.rx_missed, Some(3));
    }
}

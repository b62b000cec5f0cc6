//! The telemetry client against a real DPDK application: Debian's
//! `dpdk-testpmd` (DPDK 22.11) with one `net_null` port forwarding.
//!
//! Exercised for real: the socket's path under `/var/run/dpdk/<prefix>`,
//! the greeting (version, the process's pid, `max_output_len`),
//! `/ethdev/list`, `/ethdev/stats,0` with `ipackets` rising and `imissed`
//! read, DPDK 22.11's `null` for `/eal/lcore/usage` and
//! `/eal/lcore/info` (they arrived in 23.03), and the socket going away
//! when the application stops; then the agent loop on the same testpmd
//! (reporting to the fake host of tests/common/fake_host.rs): its reports
//! carry the real `/proc/stat` busyness (its fallback for 22.11) of every
//! CPU and testpmd's rx-missed sum; when testpmd stops the agent keeps
//! reporting with rx-missed unknown, and when it starts again the agent
//! reads it again. Not exercised for real: lcore busy
//! cycles (22.11 has none; the test server of tests/telemetry_client.rs
//! and tests/agent.rs models 23.03+'s replies).
//!
//! Needs root and `dpdk-testpmd` (`scripts/install-deps` installs
//! `dpdk-dev`): skipped with the reason printed otherwise. Every wait is
//! bounded.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::fake_host::FakeHost;
use common::testpmd::{Testpmd, unavailable};
use vmpower_guest::agent::{self, AgentConfig, SourceConfig};
use vmpower_guest::telemetry::{TelemetryClient, TelemetryError, reply, socket_path};
use vmpower_guest::{Channel, ChannelConfig};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn testpmd_serves_ethdev_stats_and_null_lcore_usage() {
    if let Some(why) = unavailable() {
        eprintln!("dpdk_testpmd: skipped: {why}");
        return;
    }
    let mut pmd = Testpmd::start("telemetry");
    let path = socket_path("/var/run/dpdk".as_ref(), &pmd.prefix);
    assert_eq!(path, pmd.socket);
    let mut client = TelemetryClient::connect(&path, WAIT).unwrap();
    let greeting = client.greeting().clone();
    eprintln!("dpdk_testpmd: greeting {greeting:?}");
    assert!(greeting.version.starts_with("DPDK "), "{greeting:?}");
    assert_eq!(greeting.pid, pmd.pid());
    assert_eq!(greeting.max_output_len, 16384);

    let ports = client.command("/ethdev/list", None).unwrap().unwrap();
    assert_eq!(reply::port_list(&ports).unwrap(), vec![0]);
    let stats = |client: &mut TelemetryClient| {
        let v = client.command("/ethdev/stats", Some("0")).unwrap().unwrap();
        reply::port_stats(&v).unwrap()
    };
    let first = stats(&mut client);
    // net_null receives as fast as testpmd polls: wait for the counter to move.
    let deadline = Instant::now() + WAIT;
    let later = loop {
        let s = stats(&mut client);
        if s.ipackets > first.ipackets {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "ipackets stayed at {}",
            first.ipackets
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "dpdk_testpmd: ipackets {} -> {}, imissed {}",
        first.ipackets, later.ipackets, later.imissed
    );
    assert_eq!(
        client.command("/ethdev/stats", Some("1")).unwrap(),
        None,
        "no port 1"
    );

    let usage = client.command("/eal/lcore/usage", None).unwrap();
    let info = client.command("/eal/lcore/info", Some("1")).unwrap();
    if greeting.version.starts_with("DPDK 22.") {
        assert_eq!(usage, None, "22.11 has no /eal/lcore/usage");
        assert_eq!(info, None, "22.11 has no /eal/lcore/info");
    } else {
        eprintln!(
            "dpdk_testpmd: {} answers /eal/lcore/usage with {usage:?}",
            greeting.version
        );
    }

    // The agent on the same application.
    let dir = tempfile::tempdir().unwrap();
    let host = FakeHost::start(&dir.path().join("host.sock"), Some(2));
    let config = AgentConfig {
        interval: Duration::from_millis(50),
        renegotiate: Duration::from_secs(3600),
        source: SourceConfig {
            telemetry: Some(path.clone()),
            telemetry_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_millis(200),
            proc_root: "/proc".into(),
        },
    };
    let (stop, rx) = std::sync::mpsc::channel();
    let port = host.path.clone();
    let agent = std::thread::spawn(move || {
        agent::run(
            &config,
            || Channel::open_path(&port, 0, ChannelConfig::default()),
            &rx,
        )
    });
    let cpus = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count()
        .min(64);
    let reports = host.wait_for("3 reports", |r| r.len() >= 3);
    for r in &reports {
        let vcpus: Vec<u16> = r.entries.iter().map(|e| e.0).collect();
        assert_eq!(vcpus.len(), cpus, "every CPU from /proc/stat: {r:?}");
        assert_eq!(r.rx_missed, Some(later.imissed), "testpmd's imissed: {r:?}");
    }
    eprintln!("dpdk_testpmd: the agent's first report {:?}", reports[0]);

    pmd.stop();
    let err = client.command("/ethdev/list", None).unwrap_err();
    assert!(err.is_gone(), "{err}");
    assert!(!path.exists(), "testpmd removes its socket at exit");
    let err = TelemetryClient::connect(&path, WAIT).unwrap_err();
    assert!(matches!(err, TelemetryError::Connect { .. }), "{err}");

    let before = host.reports().len();
    host.wait_for("a report without rx-missed", |r| {
        r[before..].iter().any(|r| r.rx_missed.is_none())
    });

    // testpmd starts again with the same prefix: the agent finds it.
    drop(pmd);
    let pmd = Testpmd::start("telemetry");
    assert_eq!(pmd.socket, path);
    let before = host.reports().len();
    host.wait_for("rx-missed from the restarted testpmd", |r| {
        r[before..].iter().any(|r| r.rx_missed.is_some())
    });
    stop.send(()).unwrap();
    let stats = agent.join().unwrap().unwrap();
    assert_eq!(stats.failed, 0, "{stats:?}");
}

//! The telemetry client against a real DPDK application: Debian's
//! `dpdk-testpmd` (DPDK 22.11) with one `net_null` port forwarding.
//!
//! Exercised for real: the socket's path under `/var/run/dpdk/<prefix>`,
//! the greeting (version, the process's pid, `max_output_len`),
//! `/ethdev/list`, `/ethdev/stats,0` with `ipackets` rising and `imissed`
//! read, DPDK 22.11's `null` for `/eal/lcore/usage` and
//! `/eal/lcore/info` (they arrived in 23.03), and the socket going away
//! when the application stops. Not exercised for real: lcore busy cycles
//! (22.11 has none; the test server of tests/telemetry_client.rs models
//! 23.03+'s replies).
//!
//! Needs root and `dpdk-testpmd` (`scripts/install-deps` installs
//! `dpdk-dev`): skipped with the reason printed otherwise. Every wait is
//! bounded.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::testpmd::{Testpmd, unavailable};
use vmpower_guest::telemetry::{TelemetryClient, TelemetryError, reply, socket_path};

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

    pmd.stop();
    let err = client.command("/ethdev/list", None).unwrap_err();
    assert!(err.is_gone(), "{err}");
    assert!(!path.exists(), "testpmd removes its socket at exit");
    let err = TelemetryClient::connect(&path, WAIT).unwrap_err();
    assert!(matches!(err, TelemetryError::Connect { .. }), "{err}");
}

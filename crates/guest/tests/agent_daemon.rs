//! The agent against the real vmpowerd, end to end on one machine: a
//! server speaking DPDK's telemetry protocol plays the DPDK application
//! (tests/common/telemetry.rs), the test plays QEMU in the middle
//! (tests/common), and the daemon's busyness controller moves the fake
//! sysfs: two saturated lcores put both vCPUs' pCPUs at max (the highest
//! frequency without turbo), then one lcore falling to 10 % busy brings its
//! pCPU down to the table's lowest while the other stays at max; when the
//! agent stops, the daemon's staleness bound puts it back at max.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::telemetry::{DpdkApp, Handler, Lcore, Port, TelemetryServer};
use common::*;
use vmpower_guest::agent::{self, AgentConfig, SourceConfig};
use vmpower_guest::{Channel, ChannelConfig};

/// Busy cycles per 1000 of lcores 1 (on vCPU 0) and 2 (on vCPU 1),
/// between any two usage reads.
type Load = Arc<Mutex<[u64; 2]>>;

fn application(load: Load) -> Handler {
    let lcore = |id, cpu| Lcore {
        id,
        cpu,
        busy: 0,
        total: 0,
    };
    let app = Arc::new(Mutex::new(DpdkApp {
        lcores: vec![lcore(1, 0), lcore(2, 1)],
        ports: vec![Port::default()],
        lcore_commands: true,
    }));
    let inner = DpdkApp::handler(app.clone());
    Arc::new(move |cmd, param| {
        if cmd == "/eal/lcore/usage" {
            let [a, b] = *load.lock().unwrap();
            let mut app = app.lock().unwrap();
            app.run(1, a, 1000);
            app.run(2, b, 1000);
        }
        inner(cmd, param)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busyness_from_dpdk_moves_the_pinned_pcpus() {
    // vCPU 0 on pCPU 2, vCPU 1 on pCPU 3; table 2301000 (turbo), 2300000 … 800000.
    let mut host = Host::start(&[("vm1", vm(&[2, 3]))]).await;
    let middle = host.middle("vm1", 0).await;
    let load: Load = Arc::new(Mutex::new([1000, 1000]));
    let socket = host.dir.path().join("dpdk_telemetry.v2");
    let _app = TelemetryServer::start(&socket, "DPDK 23.11.0", application(load.clone()));

    let config = AgentConfig {
        interval: Duration::from_millis(20),
        renegotiate: Duration::from_secs(3600),
        source: SourceConfig {
            telemetry: Some(socket.clone()),
            telemetry_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_millis(200),
            proc_root: host.dir.path().join("no-proc"),
        },
    };
    // Untouched until the daemon acts (not under userspace yet).
    assert_ne!(host.cpu_file(2, "scaling_setspeed"), "2300000");
    let (stop, rx) = std::sync::mpsc::channel();
    let port = middle.guest_socket.clone();
    let agent = std::thread::spawn(move || {
        let channel = ChannelConfig {
            timeout: WAIT,
            native: Some(Duration::from_secs(2)),
            ..ChannelConfig::default()
        };
        agent::run(&config, || Channel::open_path(&port, 0, channel), &rx)
    });

    wait_for(|| {
        host.cpu_file(2, "scaling_setspeed") == "2300000"
            && host.cpu_file(3, "scaling_setspeed") == "2300000"
    })
    .await;
    // vCPU 0's poll loop now finds work 10 % of the time.
    load.lock().unwrap()[0] = 100;
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "800000").await;
    assert_eq!(host.cpu_file(3, "scaling_setspeed"), "2300000");

    // The agent stops: after the daemon's staleness bound its vCPUs go
    // back to max (fail safe).
    stop.send(()).unwrap();
    let stats = blocking(move || agent.join().unwrap().unwrap()).await;
    assert!(stats.sent > 0 && stats.failed == 0, "{stats:?}");
    wait_for(|| host.cpu_file(2, "scaling_setspeed") == "2300000").await;
    host.stop().await.unwrap();
}

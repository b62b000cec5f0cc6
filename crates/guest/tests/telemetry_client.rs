//! The telemetry client against a server speaking DPDK's telemetry
//! protocol (tests/common/telemetry.rs): greeting, commands and replies as
//! DPDK writes them, DPDK 22.11's null for commands it lacks, and hostile
//! or broken servers: non-JSON, replies for another command, oversized
//! replies, silence, closing, bad greetings, the client limit.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::telemetry::{Answer, DpdkApp, TelemetryServer};
use vmpower_guest::telemetry::reply::{self, LcoreCycles, PortStats};
use vmpower_guest::telemetry::{TelemetryClient, TelemetryError, socket_path};

const WAIT: Duration = Duration::from_secs(5);

/// The tests' application, lcore 1 having run 300 busy cycles of 1000
/// and lcore 4 none of 1000.
fn app() -> Arc<Mutex<DpdkApp>> {
    let app = DpdkApp::example(true);
    app.lock().unwrap().run(1, 300, 1000);
    app.lock().unwrap().run(4, 0, 1000);
    app
}

#[test]
fn a_dpdk_23_11_application_answers_every_command_the_agent_uses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rte")).unwrap();
    let path = socket_path(dir.path(), "rte");
    let server = TelemetryServer::start(&path, "DPDK 23.11.0", DpdkApp::handler(app()));
    let mut client = TelemetryClient::connect(&path, WAIT).unwrap();
    assert_eq!(client.greeting().version, "DPDK 23.11.0");
    assert_eq!(client.greeting().pid, std::process::id());
    assert_eq!(client.greeting().max_output_len, 16384);

    let usage = client.command("/eal/lcore/usage", None).unwrap().unwrap();
    assert_eq!(
        reply::lcore_usage(&usage).unwrap(),
        vec![
            LcoreCycles {
                lcore: 1,
                busy: 300,
                total: 1000
            },
            LcoreCycles {
                lcore: 4,
                busy: 0,
                total: 1000
            },
        ]
    );
    let info = client
        .command("/eal/lcore/info", Some("4"))
        .unwrap()
        .unwrap();
    assert_eq!(reply::lcore_cpus(&info, 4).unwrap(), vec![3]);
    let ports = client.command("/ethdev/list", None).unwrap().unwrap();
    assert_eq!(reply::port_list(&ports).unwrap(), vec![0, 1]);
    let stats = client.command("/ethdev/stats", Some("1")).unwrap().unwrap();
    assert_eq!(
        reply::port_stats(&stats).unwrap(),
        PortStats {
            ipackets: 5,
            imissed: 1
        }
    );
    // A parameter DPDK refuses, and a port that does not exist: null.
    assert_eq!(client.command("/ethdev/stats", Some("x")).unwrap(), None);
    assert_eq!(client.command("/ethdev/stats", Some("9")).unwrap(), None);
    assert_eq!(server.commands(), 6);
}

#[test]
fn dpdk_22_11_answers_null_for_lcore_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sock");
    let app = app();
    app.lock().unwrap().lcore_commands = false;
    let _server = TelemetryServer::start(&path, "DPDK 22.11.11", DpdkApp::handler(app));
    let mut client = TelemetryClient::connect(&path, WAIT).unwrap();
    assert_eq!(client.command("/eal/lcore/usage", None).unwrap(), None);
    assert_eq!(client.command("/eal/lcore/info", Some("1")).unwrap(), None);
    assert_eq!(client.command("/no/such/command", None).unwrap(), None);
}

/// A server answering every command with `answer`.
fn hostile(path: &std::path::Path, answer: Answer) -> TelemetryServer {
    TelemetryServer::start(path, "DPDK 23.11.0", Arc::new(move |_, _| answer.clone()))
}

#[test]
fn malformed_replies_name_the_socket_and_the_command() {
    let dir = tempfile::tempdir().unwrap();
    for (i, raw) in [
        &b"not json"[..],
        br#"{"/other":[0]}"#,
        br#"{"/ethdev/list":[0],"/ethdev/list2":[1]}"#,
        br#"[0,1]"#,
        b"\xff\xff",
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("h{i}.sock"));
        let _server = hostile(&path, Answer::Raw(raw.to_vec()));
        let mut client = TelemetryClient::connect(&path, WAIT).unwrap();
        let err = client.command("/ethdev/list", None).unwrap_err();
        assert!(matches!(err, TelemetryError::BadReply { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("/ethdev/list"), "{text}");
    }
    // Well-formed replies whose values are not what DPDK writes.
    let path = dir.path().join("values.sock");
    let _server = hostile(
        &path,
        Answer::Value(r#"{"ipackets":-5,"imissed":"x"}"#.into()),
    );
    let mut client = TelemetryClient::connect(&path, WAIT).unwrap();
    let stats = client.command("/ethdev/stats", Some("0")).unwrap().unwrap();
    let err = reply::port_stats(&stats).unwrap_err();
    assert!(err.contains("ipackets"), "{err}");
}

#[test]
fn a_reply_beyond_max_output_len_is_refused_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.sock");
    let big = format!("[{}0]", "0,".repeat(10_000));
    let _server = TelemetryServer::start(
        &path,
        "DPDK 23.11.0",
        Arc::new(move |cmd, _| match cmd {
            "/big" => Answer::Value(big.clone()),
            _ => Answer::Value("[0]".into()),
        }),
    );
    let mut client = TelemetryClient::connect(&path, WAIT).unwrap();
    let err = client.command("/big", None).unwrap_err();
    assert!(
        matches!(err, TelemetryError::TooLong { max: 16384, .. }),
        "{err}"
    );
    // SOCK_SEQPACKET drops the rest of the message: still in step.
    let ports = client.command("/ethdev/list", None).unwrap().unwrap();
    assert_eq!(ports, serde_json::json!([0]));
}

#[test]
fn silence_times_out_then_the_connection_refuses_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let server = hostile(&path, Answer::Silent);
    let mut client = TelemetryClient::connect(&path, Duration::from_millis(100)).unwrap();
    let err = client.command("/ethdev/list", None).unwrap_err();
    assert!(matches!(err, TelemetryError::Timeout { .. }), "{err}");
    assert_eq!(server.commands(), 1);
    let err = client.command("/ethdev/list", None).unwrap_err();
    assert!(matches!(err, TelemetryError::OutOfStep { .. }), "{err}");
    assert_eq!(server.commands(), 1, "nothing sent out of step");
}

#[test]
fn a_closing_server_and_a_missing_socket_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close.sock");
    let server = hostile(&path, Answer::Close);
    let mut client = TelemetryClient::connect(&path, WAIT).unwrap();
    let err = client.command("/ethdev/list", None).unwrap_err();
    assert!(
        matches!(err, TelemetryError::Closed { .. }) && err.is_gone(),
        "{err}"
    );
    drop(server);
    assert!(!path.exists(), "the server removes its socket as DPDK does");
    let err = TelemetryClient::connect(&path, WAIT).unwrap_err();
    assert!(
        matches!(err, TelemetryError::Connect { .. }) && err.is_gone(),
        "{err}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn bad_greetings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (i, greeting) in [
        &b"hello"[..],
        br#"{"version":"DPDK 23.11.0","pid":1}"#,
        br#"{"version":"DPDK 23.11.0","pid":1,"max_output_len":4294967296}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("g{i}.sock"));
        let _server =
            TelemetryServer::with_greeting(&path, greeting.to_vec(), Arc::new(|_, _| Answer::Null));
        let err = TelemetryClient::connect(&path, WAIT).unwrap_err();
        assert!(matches!(err, TelemetryError::Greeting { .. }), "{err}");
    }
}

#[test]
fn the_eleventh_client_is_closed_before_the_greeting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.sock");
    let _server = TelemetryServer::start(&path, "DPDK 23.11.0", DpdkApp::handler(app()));
    let ten: Vec<_> = (0..10)
        .map(|_| TelemetryClient::connect(&path, WAIT).unwrap())
        .collect();
    let err = TelemetryClient::connect(&path, WAIT).unwrap_err();
    assert!(matches!(err, TelemetryError::Closed { .. }), "{err}");
    assert!(err.to_string().contains("at most 10"), "{err}");
    drop(ten);
}

//! The real `vmpowerd` binary under a stand-in for systemd: a unix
//! datagram socket passed as `NOTIFY_SOCKET`. `READY=1` arrives only once
//! the daemon serves (the crashed run's CPUs restored, persisted policies
//! back, the control socket answering); `STOPPING=1` arrives on SIGTERM.
//! With `JOURNAL_STREAM` naming its stderr, log lines carry a syslog
//! priority and no timestamp.

#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use vmpower_api::{Client, CtlRequest, CtlResponse, PolicyFile};
use vmpower_cpufreq::CpuId;

use vmpower_testkit::binary::{Setup, WAIT, sigterm, wait_exit};

/// A socket standing for systemd's, bound in the temp dir.
fn notify_socket(s: &Setup) -> (UnixDatagram, PathBuf) {
    let path = s.dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    (socket, path)
}

fn ctl(s: &Setup, request: &CtlRequest) -> CtlResponse {
    Client::connect(&s.control())
        .unwrap()
        .call(request)
        .unwrap()
}

/// The next notification, as text.
fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("no notification from vmpowerd in time");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Starts the daemon with a notify socket; the daemon, the socket and
/// the first notification.
fn spawn_notified(s: &Setup) -> (std::process::Child, UnixDatagram, String) {
    let (notify, notify_path) = notify_socket(s);
    let daemon = s
        .command(Stdio::null())
        .env("NOTIFY_SOCKET", &notify_path)
        .spawn()
        .unwrap();
    let first = next(&notify);
    (daemon, notify, first)
}

/// The `STATUS=` value of a notification.
fn status_of(notification: &str) -> &str {
    notification
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= line in {notification:?}"))
}

/// Leaves a takeover record as a crashed earlier version would have: CPU 2
/// recorded as `ondemand`, then left at `performance`.
fn crash_leftover(s: &Setup) {
    let legacy = s.dir.path().join("state/takeover.json");
    std::fs::create_dir_all(legacy.parent().unwrap()).unwrap();
    let mut record = vmpower_cpufreq::takeover::Takeover::open(&legacy).unwrap();
    record.take_cpu(&*s.fake, CpuId(2)).unwrap();
    s.fake
        .external_write(
            Path::new("devices/system/cpu/cpu2/cpufreq/scaling_governor"),
            "performance",
        )
        .unwrap();
}

#[test]
fn ready_once_serving_and_stopping_on_sigterm() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    // A first run persists a policy, then stops.
    let mut first = s.command(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + WAIT;
    while Client::connect(&s.control()).is_err() {
        assert!(Instant::now() < deadline, "first run never served");
        std::thread::sleep(Duration::from_millis(10));
    }
    let policy =
        PolicyFile::parse("vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n")
            .unwrap();
    let created = ctl(
        &s,
        &CtlRequest::PolicyCreate {
            policy: Box::new(policy),
        },
    );
    assert!(matches!(created, CtlResponse::Ok(_)), "{created:?}");
    sigterm(&first);
    assert!(wait_exit(&mut first).success());
    crash_leftover(&s);
    assert_eq!(s.file(2, "scaling_governor"), "performance");

    let (mut daemon, notify, ready) = spawn_notified(&s);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    let status = status_of(&ready);
    assert!(status.contains("CPU(s) under control"), "{status}");
    // At READY=1, without any retry: the leftover is restored, the control
    // socket answers, and the persisted policy is back.
    assert_eq!(
        s.file(2, "scaling_governor"),
        "ondemand",
        "restored before READY=1"
    );
    let CtlResponse::Ok(policies) = ctl(&s, &CtlRequest::PolicyList) else {
        panic!("the control socket did not answer at READY=1");
    };
    assert!(policies.to_string().contains("vm1"), "{policies}");

    sigterm(&daemon);
    let stopping = next(&notify);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert!(wait_exit(&mut daemon).success());
}

#[test]
fn status_counts_guest_channels_not_the_fifos() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    // One guest channel (a listener playing QEMU), and the four FIFOs the
    // daemon makes for its four CPUs.
    let _qemu =
        std::os::unix::net::UnixListener::bind(s.dir.path().join("channels/vm1.0")).unwrap();
    let (mut daemon, _notify, ready) = spawn_notified(&s);
    assert!(s.dir.path().join("channels/fifo3").exists());
    let status = status_of(&ready);
    assert!(status.contains("on 1 channel(s)"), "{status}");
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).success());
}

#[test]
fn without_notify_socket_nothing_is_sent_and_the_daemon_serves() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let (notify, _path) = notify_socket(&s);
    notify.set_nonblocking(true).unwrap();
    let mut daemon = s.command(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + WAIT;
    while Client::connect(&s.control()).is_err() {
        assert!(Instant::now() < deadline, "never served");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(matches!(ctl(&s, &CtlRequest::Status), CtlResponse::Ok(_)));
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).success());
    let mut buf = [0u8; 64];
    assert!(notify.recv(&mut buf).is_err(), "something was sent");
}

#[test]
fn watchdog_pings_when_systemd_asks_for_them() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let (notify, notify_path) = notify_socket(&s);
    let mut daemon = s
        .command(Stdio::null())
        .env("NOTIFY_SOCKET", &notify_path)
        // WatchdogSec=200ms: a ping every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .spawn()
        .unwrap();
    assert!(next(&notify).lines().any(|l| l == "READY=1"));
    let ping = next(&notify);
    assert!(ping.lines().any(|l| l == "WATCHDOG=1"), "{ping:?}");
    sigterm(&daemon);
    // Pings may still be queued before STOPPING=1; it comes last.
    let mut last = String::new();
    while !last.contains("STOPPING=1") {
        last = next(&notify);
    }
    assert!(wait_exit(&mut daemon).success());
}

#[test]
fn no_watchdog_for_another_process() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let (notify, notify_path) = notify_socket(&s);
    let mut daemon = s
        .command(Stdio::null())
        .env("NOTIFY_SOCKET", &notify_path)
        // Pings every millisecond if they were (wrongly) sent.
        .env("WATCHDOG_USEC", "2000")
        .env("WATCHDOG_PID", "1")
        .spawn()
        .unwrap();
    assert!(next(&notify).lines().any(|l| l == "READY=1"));
    for _ in 0..20 {
        assert!(matches!(ctl(&s, &CtlRequest::Status), CtlResponse::Ok(_)));
    }
    sigterm(&daemon);
    // The next notification is STOPPING=1, not a ping.
    let after = next(&notify);
    assert!(after.contains("STOPPING=1"), "{after:?}");
    assert!(wait_exit(&mut daemon).success());
}

/// Runs the daemon until it served, stops it, and returns its stderr.
fn log_of(s: &Setup, journal: bool) -> String {
    let log_path = s.dir.path().join(format!("stderr-{journal}.log"));
    let file = std::fs::File::create(&log_path).unwrap();
    let stat = rustix::fs::fstat(&file).unwrap();
    let mut cmd = s.command(Stdio::from(file));
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", stat.st_dev, stat.st_ino));
    }
    let (notify, notify_path) = notify_socket(s);
    let mut daemon = cmd.env("NOTIFY_SOCKET", &notify_path).spawn().unwrap();
    assert!(next(&notify).contains("READY=1"));
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).success());
    drop(notify);
    std::fs::remove_file(&notify_path).unwrap();
    std::fs::read_to_string(&log_path).unwrap()
}

#[test]
fn in_the_journal_lines_have_a_priority_and_no_timestamp() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let journal = log_of(&s, true);
    let ready = journal
        .lines()
        .find(|l| l.contains("vmpowerd ready"))
        .unwrap_or_else(|| panic!("no ready line in {journal:?}"));
    assert!(ready.starts_with("<6>"), "{ready}");
    assert!(!ready.contains('\u{1b}'), "colour codes in {ready:?}");
    assert!(journal.lines().all(|l| l.starts_with('<')), "{journal}");
    // The last line, logged just before exit, is written out too.
    assert!(
        journal
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("stopped")),
        "{journal}"
    );

    let plain = log_of(&s, false);
    let ready = plain
        .lines()
        .find(|l| l.contains("vmpowerd ready"))
        .unwrap_or_else(|| panic!("no ready line in {plain:?}"));
    // tracing's usual line starts with an RFC 3339 timestamp (perhaps
    // coloured).
    let ready = strip_colours(ready);
    let year = ready.get(..4).unwrap_or_default();
    assert!(
        year.chars().all(|c| c.is_ascii_digit()) && ready.get(4..5) == Some("-"),
        "{ready}"
    );
}

/// Removes `ESC [ ... m` sequences.
fn strip_colours(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

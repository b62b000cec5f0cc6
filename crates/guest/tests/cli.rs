//! The `vmpower-guest` binary against the real vmpowerd over real unix
//! sockets (the test plays QEMU in the middle): every subcommand and the
//! shell round-trip and act on the fake sysfs, `--json` output, policies
//! leave exactly what was asked on the wire, malformed options are refused
//! before anything is sent, and the exit codes tell refused (4) from
//! unreachable (1), usage (2) and no such port (3).

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vmpower_guest::profile::dpdk_example_policy;
use vmpower_proto::{Layout, PolicyKind, RequestBody, WorkloadLevel};
use vmpower_testkit::prelude::*;
use vmpowerd::config::VmConfig;

/// Runs the CLI with `--port PORT` and `args`, feeding `stdin`.
async fn run(port: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmpower-guest"));
    cmd.arg("--port").arg(port).args(args);
    let stdin = stdin.to_owned();
    blocking(move || {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(out).trim()).unwrap()
}

/// The exit code the CLI must give for the daemon's latest verdict on a
/// `kind` request: 4 (refused) while vmpowerd NACKs policies, 0 once it
/// supports them. `before` is the count before the command.
fn expected_code(host: &Host, kind: &str, before: (u64, u64)) -> i32 {
    match host.verdicts("vm1", kind) {
        (ok, nack) if (ok, nack) == (before.0, before.1 + 1) => 4,
        (ok, nack) if (ok, nack) == (before.0 + 1, before.1) => 0,
        other => panic!("{kind}: daemon counted {other:?} after {before:?}"),
    }
}

/// The policy records the host received.
fn policies(middle: &Middle, layout: Layout) -> Vec<vmpower_proto::Policy> {
    middle
        .requests(layout)
        .into_iter()
        .filter_map(|r| match r.body {
            RequestBody::SetPolicy(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frequency_commands_and_queries_round_trip() {
    let allowed = VmConfig {
        queries: true,
        ..vm(&[2, 3])
    };
    let mut host = Host::start(&[("vm1", allowed)]).await;
    let middle = host.middle("vm1", 0).await;
    let port = middle.guest_socket.clone();

    let out = run(&port, &["set-cpu-freq", "1", "min"], "").await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "vCPU 1: SCALE_MIN acknowledged\n");
    assert_eq!(host.cpu_file(3, "scaling_setspeed"), "800000");
    for (action, khz) in [
        ("up", "900000"),
        ("max", "2301000"),
        ("disable-turbo", "2300000"),
        ("down", "2200000"),
        ("enable-turbo", "2301000"),
    ] {
        let out = run(&port, &["set-cpu-freq", "1", action], "").await;
        assert_eq!(code(&out), 0, "{action}: {}", stderr(&out));
        assert_eq!(host.cpu_file(3, "scaling_setspeed"), khz, "{action}");
    }

    let out = run(&port, &["--json", "query-cpu-freq", "all"], "").await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["vcpus"][1]["khz"], 2_301_000);
    let cur0: u64 = host.cpu_file(2, "scaling_cur_freq").parse().unwrap();
    assert_eq!(v["vcpus"][0]["khz"], cur0);

    let out = run(&port, &["query-cpu-freq", "1"], "").await;
    assert_eq!(stdout(&out), "vCPU 1: 2301000 kHz\n");
    let out = run(&port, &["query-cpu-caps", "all", "--json"], "").await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["vcpus"][0]["turbo"], true);
    let out = run(&port, &["query-cpu-caps", "0"], "").await;
    assert_eq!(stdout(&out), "vCPU 0: turbo yes, high priority no\n");

    // Refused by the host (vCPU 5 does not exist): exit 4, JSON error.
    let out = run(&port, &["--json", "set-cpu-freq", "5", "min"], "").await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(json(&out)["error"]["kind"], "refused");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_from_options_file_and_default_profile_reach_the_host_exactly() {
    let mut host = Host::start(&[("vm1", vm(&[1, 2]))]).await;
    let middle = host.middle("vm1", 0).await;
    let port = middle.guest_socket.clone();
    // A fake guest sysfs with one network interface.
    let sys = host.dir.path().join("guest-sys");
    std::fs::create_dir_all(sys.join("class/net/eth0")).unwrap();
    std::fs::write(sys.join("class/net/eth0/address"), "52:54:00:12:34:56\n").unwrap();
    let sys_arg = sys.to_str().unwrap();

    // No option: DPDK's example profile, announced. Today's vmpowerd NACKs
    // policies ("unsupported"): exit 4 with the refusal named.
    let before = host.verdicts("vm1", "policy");
    let out = run(&port, &["--sys-root", sys_arg, "send-policy"], "").await;
    let expected = expected_code(&host, "policy", before);
    assert_eq!(code(&out), expected, "{}", stderr(&out));
    assert!(stderr(&out).contains("example profile"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("MAC 52:54:00:12:34:56"),
        "{}",
        stderr(&out)
    );
    if expected == 4 {
        assert!(
            stderr(&out).contains("refused PKT_POLICY TIME"),
            "{}",
            stderr(&out)
        );
    }
    let mac = "52:54:00:12:34:56".parse().unwrap();
    assert_eq!(
        policies(&middle, Layout::Current),
        [dpdk_example_policy(Some(mac))]
    );

    // Every option.
    let before = host.verdicts("vm1", "policy");
    let out = run(
        &port,
        &[
            "send-policy",
            "--vm-name",
            "vm1",
            "--policy",
            "workload",
            "--vcpu-list",
            "1,0",
            "--busy-hours",
            "0,17-19",
            "--quiet-hours",
            "2-3",
            "--traffic-hours",
            "8",
            "--mac-list",
            "52:54:00:00:00:01,52:54:00:00:00:02",
            "--avg-packet-thresh",
            "100",
            "--max-packet-thresh",
            "200",
            "--min-packet-thresh",
            "50",
            "--workload",
            "LOW",
            "--turbo-boost",
        ],
        "",
    )
    .await;
    assert_eq!(
        code(&out),
        expected_code(&host, "policy", before),
        "{}",
        stderr(&out)
    );
    let p = policies(&middle, Layout::Current)[1];
    assert_eq!(p.kind, PolicyKind::Workload);
    assert_eq!(p.cores.as_slice(), [1, 0]);
    assert_eq!(p.hours.busy.iter().collect::<Vec<_>>(), [0, 17, 18, 19]);
    assert_eq!(p.hours.quiet.iter().collect::<Vec<_>>(), [2, 3]);
    assert_eq!(p.hours.traffic.iter().collect::<Vec<_>>(), [8]);
    assert_eq!(p.macs.len(), 2);
    assert_eq!(
        (p.traffic.min_pps, p.traffic.avg_pps, p.traffic.max_pps),
        (50, 100, 200)
    );
    assert_eq!(p.workload, WorkloadLevel::Low);
    assert!(p.turbo_boost);
    assert_eq!(
        middle
            .requests(Layout::Current)
            .last()
            .unwrap()
            .vm_name
            .as_str(),
        "vm1"
    );

    // From a file, and remove-policy.
    let file = host.dir.path().join("policy.toml");
    std::fs::write(
        &file,
        "policy = \"TIME\"\nvcpu-list = [1]\nbusy-hours = \"9-11\"\n",
    )
    .unwrap();
    let before = host.verdicts("vm1", "policy");
    let out = run(
        &port,
        &["--json", "send-policy", "--file", file.to_str().unwrap()],
        "",
    )
    .await;
    let expected = expected_code(&host, "policy", before);
    assert_eq!(code(&out), expected, "{}", stderr(&out));
    let v = json(&out);
    if expected == 4 {
        assert_eq!(v["error"]["kind"], "refused");
    } else {
        assert_eq!(v["source"], "file");
    }
    let p = policies(&middle, Layout::Current)[2];
    assert_eq!(p.cores.as_slice(), [1]);
    assert_eq!(p.hours.busy.iter().collect::<Vec<_>>(), [9, 10, 11]);
    let before = host.verdicts("vm1", "policy_remove");
    let out = run(&port, &["remove-policy"], "").await;
    let expected = expected_code(&host, "policy_remove", before);
    assert_eq!(code(&out), expected, "{}", stderr(&out));
    assert_eq!(
        middle.requests(Layout::Current).last().unwrap().body,
        RequestBody::RemovePolicy
    );
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_options_are_refused_before_anything_is_sent() {
    let mut host = Host::start(&[("vm1", vm(&[1]))]).await;
    let middle = host.middle("vm1", 0).await;
    let port = middle.guest_socket.clone();
    let cases: &[(&[&str], &str)] = &[
        (
            &["send-policy", "--vcpu-list", "1,9"],
            "element 2 (\"9\"): vCPU 9 is outside 0-7",
        ),
        (
            &["send-policy", "--vcpu-list", "1", "--busy-hours", "3,24"],
            "hour 24",
        ),
        (
            &[
                "send-policy",
                "--vcpu-list",
                "1",
                "--mac-list",
                "52:54:00:00:00:01,52:54:zz",
            ],
            "element 2",
        ),
        (
            &["send-policy", "--vcpu-list", "1", "--quiet-hours", "0"],
            "lone hour 0",
        ),
        (&["send-policy", "--busy-hours", "3"], "at least one vCPU"),
        (&["send-policy", "--policy", "SOMETIMES"], "invalid value"),
        (
            &["send-policy", "--vcpu-list", "1", "--file", "x.toml"],
            "cannot be used with",
        ),
        (
            &[
                "--layout",
                "dpdk-17.11",
                "send-policy",
                "--vcpu-list",
                "0",
                "--policy",
                "BRANCH_RATIO",
            ],
            "BRANCH_RATIO",
        ),
        (&["set-cpu-freq", "0", "sideways"], "invalid value"),
        (&["query-cpu-freq", "some"], "neither a vCPU number"),
        (&["--timeout", "0", "remove-policy"], "timeout"),
        (
            &[
                "--vm-name",
                "a-name-that-is-far-too-long-for-the-field",
                "remove-policy",
            ],
            "longer than 31",
        ),
    ];
    for (args, message) in cases {
        let out = run(&port, args, "").await;
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    assert!(middle.sent().is_empty(), "nothing reached the host");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_hosts_and_missing_ports_have_their_own_exit_codes() {
    let mut host = Host::start(&[("vm1", vm(&[1]))]).await;
    let middle = host.middle("vm1", 0).await;
    let port = middle.guest_socket.clone();
    host.disable_channels("vm1");
    let out = run(
        &port,
        &["--timeout", "0.3", "--json", "set-cpu-freq", "0", "min"],
        "",
    )
    .await;
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(json(&out)["error"]["kind"], "unreachable");
    assert!(stderr(&out).contains("did not answer"), "{}", stderr(&out));

    let empty = tempfile::tempdir().unwrap();
    let dev = empty.path().to_str().unwrap();
    let out = blocking({
        let dev = dev.to_owned();
        move || {
            Command::new(env!("CARGO_BIN_EXE_vmpower-guest"))
                .args([
                    "--dev-root",
                    &dev,
                    "--sys-root",
                    &dev,
                    "-c",
                    "7",
                    "remove-policy",
                ])
                .output()
                .unwrap()
        }
    })
    .await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no power channel 7"),
        "{}",
        stderr(&out)
    );
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_runs_commands_over_one_port_with_history() {
    let mut host = Host::start(&[(
        "old",
        VmConfig {
            layout: Layout::Dpdk1711,
            queries: true,
            ..vm(&[2])
        },
    )])
    .await;
    let middle = host.middle("old", 0).await;
    let port = middle.guest_socket.clone();
    let history: PathBuf = host.dir.path().join("history");
    let script = "set-cpu-freq 0 min\nset-cpu-freq 0 up\nquery-cpu-freq all --json\n\
                  set-cpu-freq 0 nowhere\nshell\nquit\n";
    let out = run(
        &port,
        &[
            "--layout",
            "dpdk-17.11",
            "shell",
            "--history",
            history.to_str().unwrap(),
        ],
        script,
    )
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(host.cpu_file(2, "scaling_setspeed"), "900000");
    let text = stdout(&out);
    assert!(text.contains("vCPU 0: SCALE_UP acknowledged"), "{text}");
    assert!(text.contains("\"khz\":900000"), "{text}");
    assert!(stderr(&out).contains("invalid value"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already in the shell"),
        "{}",
        stderr(&out)
    );
    // One CONNECT for the whole session, all in the 17.11 layout.
    let reqs = middle.requests(Layout::Dpdk1711);
    let connects = reqs
        .iter()
        .filter(|r| matches!(r.body, RequestBody::Connect { .. }))
        .count();
    assert_eq!(connects, 1);
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("set-cpu-freq 0 up"), "{saved}");
    host.stop().await.unwrap();
}

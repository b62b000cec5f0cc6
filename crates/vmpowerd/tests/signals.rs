//! The real binary's signals: SIGHUP reloads (the config file and the
//! policy directory) and keeps serving; SIGQUIT, like SIGTERM, gives every
//! CPU back before the process ends.

#![allow(clippy::unwrap_used)]

use vmpower_api::{Client, CtlRequest, CtlResponse};

use vmpower_testkit::binary::{Setup, wait_exit, wait_until};

fn ctl(s: &Setup, request: &CtlRequest) -> CtlResponse {
    Client::connect(&s.control())
        .unwrap()
        .call(request)
        .unwrap()
}

fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, signal).unwrap();
}

fn workload(level: &str) -> String {
    format!("vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"{level}\"\n")
}

/// The workload level of vm1's policy in force, if any.
fn vm1_workload(s: &Setup) -> Option<String> {
    match ctl(s, &CtlRequest::PolicyShow { vm: "vm1".into() }) {
        CtlResponse::Ok(v) => v["policy"]["workload"].as_str().map(str::to_owned),
        CtlResponse::Error(_) => None,
    }
}

#[test]
fn sighup_reloads_the_config_and_the_policy_directory_and_keeps_serving() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    // The policy file is a symlink to a file elsewhere (as configuration
    // management often lays it out): inotify on the directory does not see
    // its target change, a SIGHUP rescan does.
    let policies = s.with_policy_dir();
    let store = s.dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("vm1.toml"), workload("LOW")).unwrap();
    std::os::unix::fs::symlink(store.join("vm1.toml"), policies.join("vm1.toml")).unwrap();
    let config = s.dir.path().join("vmpowerd.toml");
    let head = format!("policy_dir = {:?}\n", policies.to_str().unwrap());
    let mut daemon = s.spawn_logging();
    wait_until(|| vm1_workload(&s).as_deref() == Some("LOW"));

    std::fs::write(store.join("vm1.toml"), workload("HIGH")).unwrap();
    std::fs::write(
        &config,
        format!(
            "{head}log = \"debug\"\nplacement_refresh_ms = 200\n\
             [vm.vm1]\npcpus = [1]\n[vm.vm2]\nqueries = true\npcpus = [2]\n"
        ),
    )
    .unwrap();
    signal(&daemon.child, rustix::process::Signal::HUP);
    wait_until(|| vm1_workload(&s).as_deref() == Some("HIGH"));
    wait_until(|| {
        matches!(ctl(&s, &CtlRequest::ShowVm { vm: "vm2".into() }),
            CtlResponse::Ok(v) if v["settings"]["queries_allowed"] == true
                && v["vcpus"][0]["pcpus"] == serde_json::json!([2]))
    });
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the daemon"
    );
    let log = daemon.stop();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(log.contains("policy directory rescanned"), "{log}");
    // The log filter is live: the reload's own debug line shows it.
    assert!(log.contains("log filter reloaded"), "{log}");
    let restart = log
        .lines()
        .find(|l| l.contains("takes effect at the next restart"))
        .unwrap_or_else(|| panic!("no warning about placement_refresh_ms in {log}"));
    assert!(
        restart.contains("setting=placement_refresh_ms"),
        "{restart}"
    );
}

#[test]
fn sigquit_gives_the_cpus_back_before_the_process_ends() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let mut daemon = s.spawn();
    assert_eq!(s.file(1, "scaling_governor"), "ondemand");
    let set = ctl(
        &s,
        &CtlRequest::SetCpuFreq {
            cpus: vec![1],
            op: vmpower_api::FreqOp::Max,
        },
    );
    assert!(matches!(set, CtlResponse::Ok(_)), "{set:?}");
    assert_eq!(s.file(1, "scaling_governor"), "userspace");
    signal(&daemon, rustix::process::Signal::QUIT);
    let status = wait_exit(&mut daemon);
    assert!(status.success(), "{status:?}");
    assert_eq!(s.file(1, "scaling_governor"), "ondemand");
}

#[test]
fn a_config_file_broken_before_sighup_changes_nothing() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let daemon = s.spawn_logging();
    std::fs::write(s.dir.path().join("vmpowerd.toml"), "chanel_dir = 1\n").unwrap();
    signal(&daemon.child, rustix::process::Signal::HUP);
    let log_path = s.dir.path().join("stderr.log");
    wait_until(|| std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("reload refused")));
    let CtlResponse::Ok(_) = ctl(&s, &CtlRequest::Status) else {
        panic!("not serving after a refused reload");
    };
    let log = daemon.stop();
    let refused = log.lines().find(|l| l.contains("reload refused")).unwrap();
    assert!(refused.contains("vmpowerd.toml"), "{refused}");
    assert!(log.contains("chanel_dir"), "{log}");
}

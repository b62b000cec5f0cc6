//! The real binary with special files in its policy directory: a FIFO, a
//! symlink to /dev/zero, a socket and an oversized file, named like policy
//! files, are refused by type (or size) with an error naming each, at
//! start and while running, and the daemon keeps serving and stops.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use vmpower_api::{Client, CtlRequest, CtlResponse};

use vmpower_testkit::binary::{Setup, wait_until};

/// The refusal listed in `status` for `path`, if any.
fn refusal(s: &Setup, path: &Path) -> Option<String> {
    let refused = s.status()["stats"]["policy_files_refused"].clone();
    refused.as_array()?.iter().find_map(|r| {
        (r["file"] == path.to_str().unwrap()).then(|| r["error"].as_str().unwrap().to_owned())
    })
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn special_and_oversized_policy_files_are_refused_naming_each_and_nothing_blocks() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let policies = s.with_policy_dir();
    let fifo = policies.join("x.toml");
    mkfifo(&fifo);
    let zero = policies.join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let socket = policies.join("s.json");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let big = policies.join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 * 1024 * 1024]).unwrap();
    std::fs::write(
        policies.join("vm1.toml"),
        "vm = \"vm1\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"LOW\"\n",
    )
    .unwrap();
    let daemon = s.spawn_logging();
    // At start: each named with what it is; the good file applies after them.
    wait_until(|| refusal(&s, &zero).is_some() && refusal(&s, &big).is_some());
    for (path, what) in [
        (&fifo, "is a FIFO"),
        (&zero, "is a character device"),
        (&socket, "is a socket"),
        (&big, "larger than 1048576 bytes"),
    ] {
        let error = refusal(&s, path).unwrap_or_else(|| panic!("{} not refused", path.display()));
        assert!(
            error.contains(path.to_str().unwrap()) && error.contains(what),
            "{error}"
        );
    }
    wait_until(|| {
        matches!(
            Client::connect(&s.control())
                .unwrap()
                .call(&CtlRequest::PolicyShow { vm: "vm1".into() })
                .unwrap(),
            CtlResponse::Ok(_)
        )
    });
    // While running: a FIFO someone wrote to (its writer closing is the
    // event a written file makes).
    let late = policies.join("late.toml");
    mkfifo(&late);
    drop(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&late)
            .unwrap(),
    );
    wait_until(|| refusal(&s, &late).is_some());
    assert!(refusal(&s, &late).unwrap().contains("is a FIFO"));
    // Still serving, and a clean stop (Logging::stop asserts the exit).
    s.status();
    let log = daemon.stop();
    assert!(log.contains("CPUs given back"), "{log}");
}

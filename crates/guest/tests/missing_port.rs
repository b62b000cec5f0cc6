//! `--port PATH` (and [`Channel::open_path`]) for a path that does not
//! exist: "no such port" (exit 3, `no-such-port` in `--json`) naming the
//! path, not "host unreachable" (exit 1), which stays the answer for a
//! port that exists but cannot be opened.

#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output};

use vmpower_guest::{Channel, ChannelConfig, ChannelError};

fn guest(port: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmpower-guest"))
        .arg("--port")
        .arg(port)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_missing_port_path_is_no_such_port_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent.sock");
    let out = guest(&missing, &["remove-policy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");

    let out = guest(&missing, &["--json", "set-cpu-freq", "0", "min"]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "no-such-port", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(missing.to_str().unwrap()), "{message}");
}

#[test]
fn a_port_that_exists_but_refuses_is_still_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("closed.sock");
    // The socket file stays after the listener is gone: connecting is refused.
    drop(UnixListener::bind(&socket).unwrap());
    let out = guest(&socket, &["remove-policy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(socket.to_str().unwrap()), "{stderr}");
}

#[test]
fn the_library_says_which_path_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("vport9p1");
    let err = Channel::open_path(&missing, 9, ChannelConfig::default()).unwrap_err();
    let ChannelError::NoSuchPort { index, looked_at } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*index, 9);
    assert_eq!(looked_at, &vec![missing.clone()]);
}

//! `vmpowerctl status` lists every channel the daemon serves, also one it
//! never managed to connect to (a stale socket that refuses); `set-pcpu`
//! past KVM's 4096 vCPUs exits 2 (usage) for a VM nothing else sizes.

#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixListener;

use vmpower_api::answers::Status;

mod common;

use common::{Daemon, stderr, wait};

#[test]
fn a_channel_that_never_connected_is_listed_down() {
    let d = Daemon::start();
    // A socket left behind: bound once, nothing listens any more, so every
    // connect is refused.
    drop(UnixListener::bind(d.channels.join("vm1.0")).unwrap());
    let status = || -> Status { serde_json::from_value(d.json(&["status"])).unwrap() };
    wait(
        || status().stats.channels.contains_key("vm1.0"),
        "the channel is not listed",
    );
    let v = status();
    let channel = v.stats.channels["vm1.0"];
    assert!(!channel.up, "{v:?}");
    assert_eq!(channel.connects, 0, "{v:?}");
    assert_eq!(v.channels_down, 1, "{v:?}");
    assert_eq!(v.channels_up, 0, "{v:?}");

    let text = d.ok(&["status"]);
    assert!(text.contains("channels 0 up, 1 down"), "{text}");
    let line = text.lines().find(|l| l.starts_with("vm1.0")).unwrap();
    assert!(line.contains(" down "), "{line}");
    assert!(line.ends_with(" 0"), "{line}");
}

#[test]
fn set_pcpu_past_the_vcpu_limit_is_a_usage_error() {
    let d = Daemon::start();
    d.ok(&["add-vm", "vm5"]);
    let o = d.ctl(&["set-pcpu", "vm5", "4096", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("vm5") && err.contains("4096"), "{err}");
    // Nothing sizes vm5: any vCPU below the limit is taken.
    d.ok(&["set-pcpu", "vm5", "1", "1"]);
}

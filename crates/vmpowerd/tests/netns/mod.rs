//! Shared by the tests that build network namespaces and veth pairs:
//! running `ip`, and whether this machine lets them run at all.

#![allow(dead_code)]

use std::process::Command;

/// Runs `ip ARGS`; the error names the command and what `ip` said.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Root and `ip` available; says the test is skipped otherwise.
pub fn can_run() -> bool {
    let root = rustix::process::geteuid().is_root();
    let has_ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(root && has_ip) {
        eprintln!("skipped: needs root and ip netns");
    }
    root && has_ip
}

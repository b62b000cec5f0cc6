//! `systemd-analyze verify` on a unit file's text, for the tests of the
//! units vmpower ships (the daemon's and the guest agent's).

use std::process::Command;

/// Runs `systemd-analyze verify --man=no` on `text` saved as `name` (e.g.
/// `vmpowerd.service`) in a temp dir; its complaints, or `None` when it
/// has none. Unknown keys and bad values are warnings with exit status 0,
/// so any output at all is a complaint. `--man=no`: `Documentation=`
/// names man pages that `vmpower-dist install` puts in place, not
/// installed where tests run. Panics, saying how to install it, when
/// systemd-analyze is missing.
pub fn verify_unit(name: &str, text: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "systemd-analyze is not installed: run `bash scripts/install-deps` \
             (or `apt-get install systemd`) to check the unit"
        ),
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    };
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success() || !complaints.trim().is_empty())
        .then(|| format!("{}: {complaints}", out.status))
}

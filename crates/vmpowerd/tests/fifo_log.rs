//! The real binary's JSON FIFOs under junk: every undecodable message is
//! counted, but the lines it causes have a budget (10 per 10 s per FIFO),
//! the rest counted in `vmpower_log_lines_suppressed_total`.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use vmpower_testkit::binary::{Setup, rss_kib, wait_until};

#[test]
fn junk_in_a_fifo_is_counted_and_its_lines_budgeted() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let daemon = s.spawn_logging();
    let fifo = s.dir.path().join("channels/fifo1");
    // Non-blocking: fails (ENXIO) until the daemon has the FIFO open.
    let mut writer = None;
    wait_until(|| {
        writer = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&fifo)
            .ok();
        writer.is_some()
    });
    let mut writer = writer.unwrap();
    const JUNK: usize = 200;
    for _ in 0..JUNK {
        writer.write_all(b"{nonsense} ").unwrap();
    }
    writer.flush().unwrap();
    wait_until(|| s.status()["stats"]["rejections"]["fifo_invalid"] == JUNK);
    let suppressed = s.status()["stats"]["log_lines_suppressed"]
        .as_u64()
        .unwrap();
    assert_eq!(suppressed, (JUNK - 10) as u64);
    // An object that never ends within the decoder's cap (64 KiB): refused
    // as too large; the stream buffer stays bounded.
    let before = rss_kib(daemon.child.id());
    let huge = format!("{{\"policy\": \"{}\"}}", "a".repeat(4 * 1024 * 1024));
    // The FIFO is non-blocking: write what fits, as often as needed.
    let mut rest = huge.as_bytes();
    while !rest.is_empty() {
        match writer.write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => panic!("{e}"),
        }
    }
    wait_until(|| {
        s.status()["stats"]["rejections"]["fifo_invalid"]
            .as_u64()
            .unwrap()
            > JUNK as u64
    });
    let grown = rss_kib(daemon.child.id()).saturating_sub(before);
    assert!(grown < 2 * 1024, "RSS grew by {grown} KiB");
    let log = daemon.stop();
    let lines = log
        .lines()
        .filter(|l| l.contains("invalid JSON message"))
        .count();
    assert_eq!(lines, 10, "{log}");
    // One reader per FIFO: the start-up scan and the directory watch both
    // see the FIFOs the daemon makes, and a second reader would start
    // with a fresh budget (and cut the first one's partial message).
    let readers = log
        .lines()
        .filter(|l| l.contains("reading JSON FIFO") && l.contains("fifo1"))
        .count();
    assert_eq!(readers, 1, "{log}");
}

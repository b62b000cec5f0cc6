//! `vmpowerctl traffic export` as an operator uses it: the daemon's rate
//! record (seeded into its state database before it starts, as a previous
//! run would have left it) printed as a vmpower-sim trace, paged through
//! the control socket; `--vm`, `--since`/`--until`, `--output`; and its
//! failures with their exit codes.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Daemon, stderr, stdout};
use vmpower_engine::VmId;
use vmpowerd::store::{Store, StoreOptions};
use vmpowerd::traffic::record::RateBlock;

/// A minute-aligned base time well in the past.
const T0: u64 = 1_796_000_040_000;

fn seed(dir: &std::path::Path) {
    let mut store = Store::open_in_dir(dir, StoreOptions::default()).unwrap();
    let mut blocks = Vec::new();
    // 600 blocks of each of two VMs (more than one page of 500).
    for i in 0..600u64 {
        for vm in ["vm-a", "vm-b"] {
            let base = if vm == "vm-a" { 1000.0 } else { 5.0 };
            let mut rates = vec![f32::NAN; 60];
            rates[0] = base + i as f32;
            rates[59] = base;
            blocks.push(RateBlock {
                vm: VmId::new(vm),
                start_ms: T0 + i * 60_000,
                step_ms: 1000,
                rates,
            });
        }
    }
    store.append_rate_blocks(&blocks, 0).unwrap();
}

#[test]
fn the_record_exports_page_by_page_as_a_trace() {
    let d = Daemon::start_seeded(seed);
    let text = d.ok(&["traffic", "export"]);
    let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows[0], "time_ms,vm,pps");
    // 2 VMs × 600 blocks × 2 known steps, in time order.
    assert_eq!(rows.len(), 1 + 2 * 600 * 2);
    assert_eq!(
        &rows[1..5],
        ["0,vm-a,1000", "59000,vm-a,1000", "0,vm-b,5", "59000,vm-b,5"]
    );
    assert!(
        rows.contains(&"35940000,vm-a,1599"),
        "the last block of the second page"
    );
    assert!(text.contains(&format!("(unix ms {T0})")), "{text}");
    assert!(
        text.ends_with(
            "# 2400 rates of 2 VMs; 69600 steps not measured (left out: replayed as 0 packets/s)\n"
        ),
        "{}",
        &text[text.len() - 200..]
    );

    // One VM, from the 10th minute on, before the 12th: two blocks.
    let since = (T0 / 1000 + 600).to_string();
    let until = (T0 / 1000 + 720).to_string();
    let only = d.ok(&[
        "traffic", "export", "--vm", "vm-b", "--since", &since, "--until", &until,
    ]);
    let rows: Vec<&str> = only.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        rows,
        [
            "time_ms,vm,pps",
            "0,vm-b,15",
            "59000,vm-b,5",
            "60000,vm-b,16",
            "119000,vm-b,5"
        ]
    );

    // --output: the same text in the file, nothing on stdout.
    let path = d.dir().join("week.csv");
    let o = d.ctl(&["traffic", "export", "--output", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn failures_name_what_was_wrong_with_their_exit_codes() {
    let d = Daemon::start_seeded(seed);
    // A VM with no record: not found (3).
    let o = d.ctl(&["traffic", "export", "--vm", "vm-z"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no packet rates recorded for VM vm-z"),
        "{}",
        stderr(&o)
    );
    // A bad time: usage (2), naming the flag.
    let o = d.ctl(&["traffic", "export", "--until", "soon"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--until \"soon\""), "{}", stderr(&o));
    // An empty window: the daemon refuses it as invalid (2).
    let o = d.ctl(&[
        "traffic",
        "export",
        "--since",
        "1796000100",
        "--until",
        "1796000000",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the time window is empty"),
        "{}",
        stderr(&o)
    );
    // An output that cannot be written: refused (4), and nothing is left.
    let o = d.ctl(&["traffic", "export", "--output", "/nonexistent/dir/t.csv"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/nonexistent/dir/t.csv"),
        "{}",
        stderr(&o)
    );
    // A failed export into a writable directory leaves no file behind.
    let path = d.dir().join("none.csv");
    let o = d.ctl(&[
        "traffic",
        "export",
        "--vm",
        "vm-z",
        "--output",
        path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(!path.exists());
    let leftovers: Vec<_> = std::fs::read_dir(d.dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

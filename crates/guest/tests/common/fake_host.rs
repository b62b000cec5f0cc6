//! A host side of a power channel for agent tests, on a unix socket the
//! guest library connects to: it answers HELLO granting a chosen native
//! version (or stays silent, as DPDK's host), answers nothing else, and
//! decodes every BUSYNESS record from its bytes as the lead's layout
//! fixes them (not with the protocol crate's decoder: the test checks the
//! wire). Several connections in turn (the agent reopens its channel).

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmpower_proto::Layout;
use vmpower_proto::layout::encode_hello_reply;

/// BUSYNESS's command code ("VMPB").
pub const BUSYNESS: u32 = 0x564D_5042;
/// The native HELLO's command code.
const HELLO: u32 = vmpower_proto::layout::offsets::command::NATIVE_HELLO;

/// One BUSYNESS record as the host received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Which connection (0 = the first) it came on.
    pub connection: usize,
    pub seq: u64,
    /// (vCPU, per mille) in the order sent.
    pub entries: Vec<(u16, u16)>,
    pub interval_ms: u32,
    /// `None` for u64::MAX (unknown).
    pub rx_missed: Option<u64>,
}

/// What the host saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub reports: Vec<Report>,
    /// Commands of every record, in order, per connection.
    pub commands: Vec<Vec<u32>>,
}

/// A listening fake host.
pub struct FakeHost {
    pub path: PathBuf,
    pub seen: Arc<Mutex<Seen>>,
}

impl FakeHost {
    /// Listens at `path`; grants `granted` to HELLO (`None`: DPDK's
    /// host, which never answers it).
    pub fn start(path: &Path, granted: Option<u32>) -> FakeHost {
        let listener = UnixListener::bind(path).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for (connection, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                s.lock().unwrap().commands.push(Vec::new());
                let s = s.clone();
                std::thread::spawn(move || serve(stream, connection, granted, &s));
            }
        });
        FakeHost {
            path: path.to_owned(),
            seen,
        }
    }

    /// The reports so far.
    pub fn reports(&self) -> Vec<Report> {
        self.seen.lock().unwrap().reports.clone()
    }

    /// Waits (bounded) until `cond` holds for the reports; returns them.
    pub fn wait_for(&self, what: &str, cond: impl Fn(&[Report]) -> bool) -> Vec<Report> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let reports = self.reports();
            if cond(&reports) {
                return reports;
            }
            assert!(
                Instant::now() < deadline,
                "waited 20 s for {what}; the last reports: {:?}",
                &reports[reports.len().saturating_sub(3)..]
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn serve(mut stream: UnixStream, connection: usize, granted: Option<u32>, seen: &Mutex<Seen>) {
    let layout = Layout::Current;
    let mut record = vec![0u8; layout.record_len()];
    loop {
        if stream.read_exact(&mut record).is_err() {
            return;
        }
        let u32_at = |at: usize| u32::from_le_bytes(record[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().unwrap());
        let command = u32_at(12);
        seen.lock().unwrap().commands[connection].push(command);
        match command {
            HELLO => {
                if let Some(v) = granted {
                    let reply = encode_hello_reply(&record, layout, v.min(u32_at(8))).unwrap();
                    stream.write_all(reply.as_slice()).unwrap();
                }
            }
            BUSYNESS => {
                let n = usize::try_from(u32_at(8)).unwrap();
                assert!((1..=64).contains(&n), "entry count {n}");
                let entries = (0..n)
                    .map(|i| {
                        let at = 48 + 4 * i;
                        let u16_at = |at: usize| u16::from_le_bytes([record[at], record[at + 1]]);
                        (u16_at(at), u16_at(at + 2))
                    })
                    .collect();
                let rx = u64_at(308);
                seen.lock().unwrap().reports.push(Report {
                    connection,
                    seq: u64_at(0),
                    entries,
                    interval_ms: u32_at(304),
                    rx_missed: (rx != u64::MAX).then_some(rx),
                });
            }
            _ => {}
        }
    }
}

/// A `/proc` whose `stat` moves on its own every 5 ms: cpu0 half busy,
/// cpu1 a tenth busy; stops when dropped.
pub struct FakeProc {
    pub root: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeProc {
    pub fn start(root: &Path) -> FakeProc {
        std::fs::create_dir_all(root).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, s) = (root.to_owned(), stop.clone());
        let write = move |t: u64| {
            let text = format!(
                "cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 {} 0 0 {} 0 0 0 0 0 0\ncpu1 {} 0 0 {} 0 0 0 0 0 0\nintr 0\n",
                5 * t,
                5 * t,
                t,
                9 * t
            );
            let tmp = r.join("stat.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, r.join("stat")).unwrap();
        };
        write(0);
        std::thread::spawn(move || {
            let mut t = 1;
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                write(t);
                t += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        FakeProc {
            root: root.to_owned(),
            stop,
        }
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

//! A test server speaking DPDK's telemetry protocol (v2) as
//! `lib/telemetry/telemetry.c` does: an `AF_UNIX` `SOCK_SEQPACKET`
//! listener; on accept the greeting
//! `{"version":"DPDK …","pid":N,"max_output_len":16384}`; commands read
//! 1023 bytes at most, split at the first comma; replies
//! `{"<name>":VALUE}` with the name cut to 56 bytes, `null` for an unknown
//! command or a failing one; at most 10 clients (the 11th is accepted and
//! closed). Answers come from a handler, which can also misbehave (raw
//! bytes, silence, closing) for hostile-reply tests; [`DpdkApp`] is a
//! handler modelling an application's lcores and ports as DPDK 22.11 or
//! 23.11 report them.

#![allow(dead_code, clippy::unwrap_used)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketType, accept, bind, listen, recv,
    send, socket,
    sockopt::{Timeout, set_socket_timeout},
};

/// DPDK's `MAX_OUTPUT_LEN`.
pub const MAX_OUTPUT_LEN: usize = 16 * 1024;
/// DPDK's `MAX_CMD_LEN`.
const MAX_CMD_LEN: usize = 56;
/// DPDK's `MAX_CONNECTIONS`.
const MAX_CONNECTIONS: usize = 10;
/// How often blocked calls look at the stop flag.
const TICK: Duration = Duration::from_millis(10);

/// What the server does with one command.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `{"<name>":<json>}` (the JSON text as given).
    Value(String),
    /// `{"<name>":null}`: unknown command, bad parameter, failure.
    Null,
    /// These bytes as the whole message (a hostile or broken server).
    Raw(Vec<u8>),
    /// No reply at all.
    Silent,
    /// Close the connection without replying.
    Close,
}

/// Answers a command name and its parameter.
pub type Handler = Arc<dyn Fn(&str, Option<&str>) -> Answer + Send + Sync>;

/// A listening telemetry socket; stops (closing every connection and
/// removing the socket, as DPDK does at exit) when dropped.
pub struct TelemetryServer {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    commands: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl TelemetryServer {
    /// Serves at `path` with DPDK's greeting for `version`.
    pub fn start(path: &Path, version: &str, handler: Handler) -> TelemetryServer {
        let greeting = format!(
            "{{\"version\":\"{version}\",\"pid\":{},\"max_output_len\":{MAX_OUTPUT_LEN}}}",
            std::process::id()
        );
        TelemetryServer::with_greeting(path, greeting.into_bytes(), handler)
    }

    /// Serves at `path`, greeting with exactly `greeting`.
    pub fn with_greeting(path: &Path, greeting: Vec<u8>, handler: Handler) -> TelemetryServer {
        let fd = socket(AddressFamily::UNIX, SocketType::SEQPACKET, None).unwrap();
        bind(&fd, &SocketAddrUnix::new(path).unwrap()).unwrap();
        // DPDK listens with a backlog of 1.
        listen(&fd, 1).unwrap();
        set_socket_timeout(&fd, Timeout::Recv, Some(TICK)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let commands = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, commands, path) = (stop.clone(), commands.clone(), path.to_owned());
            std::thread::spawn(move || {
                listener(fd, &greeting, &handler, &stop, &commands);
                let _ = std::fs::remove_file(path);
            })
        };
        TelemetryServer {
            path: path.to_owned(),
            stop,
            commands,
            thread: Some(thread),
        }
    }

    /// How many commands were received so far, on every connection.
    pub fn commands(&self) -> usize {
        self.commands.load(Ordering::SeqCst)
    }
}

impl Drop for TelemetryServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn listener(
    fd: OwnedFd,
    greeting: &[u8],
    handler: &Handler,
    stop: &Arc<AtomicBool>,
    commands: &Arc<AtomicUsize>,
) {
    let clients = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let conn = match accept(&fd) {
            Ok(c) => c,
            Err(Errno::AGAIN | Errno::INTR) => continue,
            Err(e) => panic!("accept: {e}"),
        };
        if clients.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            drop(conn);
            continue;
        }
        clients.fetch_add(1, Ordering::SeqCst);
        let (greeting, handler, stop, commands, clients) = (
            greeting.to_vec(),
            handler.clone(),
            stop.clone(),
            commands.clone(),
            clients.clone(),
        );
        threads.push(std::thread::spawn(move || {
            client(conn, &greeting, &handler, &stop, &commands);
            clients.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
}

/// DPDK's `client_handler`.
fn client(
    conn: OwnedFd,
    greeting: &[u8],
    handler: &Handler,
    stop: &AtomicBool,
    commands: &AtomicUsize,
) {
    set_socket_timeout(&conn, Timeout::Recv, Some(TICK)).unwrap();
    if send(&conn, greeting, SendFlags::NOSIGNAL).is_err() {
        return;
    }
    let mut buffer = [0u8; 1024];
    while !stop.load(Ordering::SeqCst) {
        let n = match recv(&conn, &mut buffer[..1023], RecvFlags::empty()) {
            Ok((0, _)) => return,
            Ok((n, _)) => n,
            Err(Errno::AGAIN | Errno::INTR) => continue,
            Err(_) => return,
        };
        commands.fetch_add(1, Ordering::SeqCst);
        let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
        // strtok(buffer, ","): leading commas are skipped; then the rest.
        let trimmed = text.trim_start_matches(',');
        let (cmd, param) = match trimmed.split_once(',') {
            Some((c, p)) => (c, (!p.is_empty()).then_some(p)),
            None => (trimmed, None),
        };
        let answer = if cmd.len() < MAX_CMD_LEN {
            handler(cmd, param)
        } else {
            Answer::Null
        };
        let key: String = cmd.chars().take(MAX_CMD_LEN).collect();
        let message = match answer {
            Answer::Value(json) => format!("{{\"{key}\":{json}}}").into_bytes(),
            Answer::Null => format!("{{\"{key}\":null}}").into_bytes(),
            Answer::Raw(bytes) => bytes,
            Answer::Silent => continue,
            Answer::Close => return,
        };
        if send(&conn, &message, SendFlags::NOSIGNAL).is_err() {
            return;
        }
    }
}

/// One lcore of a modelled application.
#[derive(Debug, Clone, Copy)]
pub struct Lcore {
    pub id: u32,
    pub cpu: u32,
    pub busy: u64,
    pub total: u64,
}

/// One port of a modelled application.
#[derive(Debug, Clone, Copy, Default)]
pub struct Port {
    pub ipackets: u64,
    pub imissed: u64,
}

/// A DPDK application's telemetry as DPDK writes it: `/eal/lcore/usage`
/// and `/eal/lcore/info` only when `lcore_commands` (DPDK ≥ 23.03; 22.11
/// answers null), `/ethdev/list`, `/ethdev/stats,N`; tests move its
/// counters.
#[derive(Debug, Default)]
pub struct DpdkApp {
    pub lcores: Vec<Lcore>,
    pub ports: Vec<Port>,
    pub lcore_commands: bool,
}

impl DpdkApp {
    /// The tests' application: lcore 1 on CPU 2 and lcore 4 on CPU 3, no
    /// cycles counted yet; ports 0 and 1 that missed 2 and 1 packets.
    pub fn example(lcore_commands: bool) -> Arc<Mutex<DpdkApp>> {
        let lcore = |id, cpu| Lcore {
            id,
            cpu,
            busy: 0,
            total: 0,
        };
        let port = |ipackets, imissed| Port { ipackets, imissed };
        Arc::new(Mutex::new(DpdkApp {
            lcores: vec![lcore(1, 2), lcore(4, 3)],
            ports: vec![port(10, 2), port(5, 1)],
            lcore_commands,
        }))
    }

    /// A handler serving `app`.
    pub fn handler(app: Arc<Mutex<DpdkApp>>) -> Handler {
        Arc::new(move |cmd, param| app.lock().unwrap().answer(cmd, param))
    }

    /// Adds `busy` of `total` cycles to lcore `id`.
    pub fn run(&mut self, id: u32, busy: u64, total: u64) {
        let l = self.lcores.iter_mut().find(|l| l.id == id).unwrap();
        l.busy += busy;
        l.total += total;
    }

    fn answer(&self, cmd: &str, param: Option<&str>) -> Answer {
        let join =
            |f: &dyn Fn(&Lcore) -> String| self.lcores.iter().map(f).collect::<Vec<_>>().join(",");
        match cmd {
            "/eal/lcore/usage" if self.lcore_commands => Answer::Value(format!(
                "{{\"lcore_ids\":[{}],\"total_cycles\":[{}],\"busy_cycles\":[{}],\"usage_ratio\":[{}]}}",
                join(&|l| l.id.to_string()),
                join(&|l| l.total.to_string()),
                join(&|l| l.busy.to_string()),
                join(&|l| format!(
                    "\"{:.2}%\"",
                    if l.total == 0 {
                        0.0
                    } else {
                        l.busy as f64 * 100.0 / l.total as f64
                    }
                )),
            )),
            "/eal/lcore/info" if self.lcore_commands => {
                let Some(l) = param
                    .and_then(|p| p.parse::<u32>().ok())
                    .and_then(|id| self.lcores.iter().find(|l| l.id == id))
                else {
                    return Answer::Null;
                };
                Answer::Value(format!(
                    "{{\"lcore_id\":{},\"socket\":0,\"role\":\"RTE\",\"cpuset\":[{}],\"total_cycles\":{},\"busy_cycles\":{},\"usage_ratio\":\"0.00%\"}}",
                    l.id, l.cpu, l.total, l.busy
                ))
            }
            "/ethdev/list" => Answer::Value(format!(
                "[{}]",
                (0..self.ports.len())
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            "/ethdev/stats" => {
                let Some(p) = param
                    .filter(|p| p.starts_with(|c: char| c.is_ascii_digit()))
                    .and_then(|p| p.parse::<usize>().ok())
                    .and_then(|p| self.ports.get(p))
                else {
                    return Answer::Null;
                };
                Answer::Value(format!(
                    "{{\"ipackets\":{},\"opackets\":0,\"ibytes\":0,\"obytes\":0,\"imissed\":{},\"ierrors\":0,\"oerrors\":0,\"rx_nombuf\":0,\"q_ipackets\":[{},0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}}",
                    p.ipackets, p.imissed, p.ipackets
                ))
            }
            "/info" => Answer::Value(format!(
                "{{\"version\":\"DPDK 23.11.0\",\"pid\":{},\"max_output_len\":{MAX_OUTPUT_LEN}}}",
                std::process::id()
            )),
            _ => Answer::Null,
        }
    }
}

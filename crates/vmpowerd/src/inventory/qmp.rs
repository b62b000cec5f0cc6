//! The QMP inventory source: a minimal async QMP client over QEMU's unix
//! socket asks `query-cpus-fast` for each vCPU's host thread, and /proc
//! gives each thread's affinity.
//!
//! ## Behavior
//! - The conversation: read the greeting (`{"QMP": ...}`), send
//!   `qmp_capabilities`, then each command with an `id`; a reply is the
//!   message with `return` or `error` and that `id`. Asynchronous
//!   `{"event": ...}` messages are skipped (at most [`MAX_SKIPPED`] per reply).
//! - Every connect and every read has the configured timeout; a message is a
//!   line of at most [`MAX_LINE`] bytes. Every error names the socket and the
//!   step that failed.
//! - QEMU's QMP socket is configured by the operator and trusted as QEMU
//!   itself, but its answers are still checked (numbers in range, no vCPU
//!   twice).
//!
//! ## Limitations
//! - One connection per query: QMP serves one client at a time on a socket
//!   (`server=on` without multiple connections), so a libvirt-managed QMP
//!   socket is not usable here; libvirt is its own source.
//! - `thread-id` is in QEMU's PID namespace; it must be the daemon's.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use vmpower_engine::{Placement, Vcpu};

use super::procfs::{ProcfsError, ProcfsPlacement};
use super::{
    PlacementFuture, PlacementSourceError, SourceKind, SourcePlacement, Tid, VcpuPlacement,
    VmTarget,
};

/// The longest QMP message accepted, in bytes.
pub const MAX_LINE: u64 = 1 << 20;
/// How many events may come before a reply.
pub const MAX_SKIPPED: usize = 1024;

/// What failed talking to QMP, with the socket and the step.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Connecting failed.
    #[error("QMP {socket}: connecting")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No answer in time.
    #[error("QMP {socket}: no answer within {after:?} while {step}")]
    Timeout {
        /// The socket.
        socket: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// Reading or writing failed.
    #[error("QMP {socket}: I/O while {step}")]
    Io {
        /// The socket.
        socket: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// QEMU closed the connection.
    #[error("QMP {socket}: connection closed while {step}")]
    Closed {
        /// The socket.
        socket: PathBuf,
        /// What was being done.
        step: &'static str,
    },
    /// A message was not what QMP sends.
    #[error("QMP {socket}: unexpected message while {step}: {detail}")]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What was being done.
        step: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// QEMU refused a command.
    #[error("QMP {socket}: {command} failed: {class}: {desc}")]
    Command {
        /// The socket.
        socket: PathBuf,
        /// The command.
        command: String,
        /// QMP's error class.
        class: String,
        /// QMP's description.
        desc: String,
    },
    /// A vCPU thread's affinity could not be read from /proc.
    #[error("QMP {socket}: affinity of vCPU {vcpu} ({tid})")]
    Affinity {
        /// The socket.
        socket: PathBuf,
        /// The vCPU.
        vcpu: Vcpu,
        /// Its thread.
        tid: Tid,
        /// The cause.
        #[source]
        source: ProcfsError,
    },
}

/// One entry of `query-cpus-fast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QmpCpu {
    /// `cpu-index`: the vCPU number.
    pub vcpu: Vcpu,
    /// `thread-id`: its host thread.
    pub tid: Tid,
}

/// A QMP connection in command mode.
#[derive(Debug)]
pub struct QmpClient {
    socket: PathBuf,
    stream: BufReader<UnixStream>,
    timeout: Duration,
    next_id: u64,
}

impl QmpClient {
    /// Connects to `socket`, reads the greeting and leaves capabilities
    /// negotiation mode; `timeout` bounds the connect and every read.
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let stream = match tokio::time::timeout(timeout, UnixStream::connect(socket)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(QmpError::Connect {
                    socket: socket.to_path_buf(),
                    source,
                });
            }
            Err(_) => {
                return Err(QmpError::Timeout {
                    socket: socket.to_path_buf(),
                    step: "connecting",
                    after: timeout,
                });
            }
        };
        let mut client = QmpClient {
            socket: socket.to_path_buf(),
            stream: BufReader::new(stream),
            timeout,
            next_id: 0,
        };
        let greeting = client.read_message("reading the greeting").await?;
        if greeting.get("QMP").is_none() {
            return Err(client.protocol(
                "reading the greeting",
                format!("not a greeting: {greeting}"),
            ));
        }
        client.execute("qmp_capabilities").await?;
        Ok(client)
    }

    fn protocol(&self, step: &'static str, detail: String) -> QmpError {
        QmpError::Protocol {
            socket: self.socket.clone(),
            step,
            detail,
        }
    }

    async fn read_message(&mut self, step: &'static str) -> Result<Value, QmpError> {
        let mut line = Vec::new();
        let mut limited = (&mut self.stream).take(MAX_LINE + 1);
        let read = limited.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(n)) => n,
            Ok(Err(source)) => {
                return Err(QmpError::Io {
                    socket: self.socket.clone(),
                    step,
                    source,
                });
            }
            Err(_) => {
                return Err(QmpError::Timeout {
                    socket: self.socket.clone(),
                    step,
                    after: self.timeout,
                });
            }
        };
        if n == 0 || !line.ends_with(b"\n") {
            if u64::try_from(line.len()).is_ok_and(|l| l > MAX_LINE) {
                return Err(self.protocol(step, format!("message longer than {MAX_LINE} bytes")));
            }
            return Err(QmpError::Closed {
                socket: self.socket.clone(),
                step,
            });
        }
        let value: Value = serde_json::from_slice(&line)
            .map_err(|e| self.protocol(step, format!("not JSON ({e})")))?;
        if !value.is_object() {
            return Err(self.protocol(step, format!("not a JSON object: {value}")));
        }
        Ok(value)
    }

    /// Runs `command` (no arguments) and returns its `return` value.
    pub async fn execute(&mut self, command: &str) -> Result<Value, QmpError> {
        const STEP: &str = "waiting for a reply";
        self.next_id += 1;
        let id = self.next_id;
        let mut bytes = json!({ "execute": command, "id": id })
            .to_string()
            .into_bytes();
        bytes.push(b'\n');
        let write = self.stream.get_mut().write_all(&bytes);
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(QmpError::Io {
                    socket: self.socket.clone(),
                    step: "sending a command",
                    source,
                });
            }
            Err(_) => {
                return Err(QmpError::Timeout {
                    socket: self.socket.clone(),
                    step: "sending a command",
                    after: self.timeout,
                });
            }
        }
        for _ in 0..=MAX_SKIPPED {
            let mut msg = self.read_message(STEP).await?;
            if msg.get("event").is_some() {
                tracing::trace!(socket = %self.socket.display(), event = %msg["event"], "QMP event skipped");
                continue;
            }
            if msg.get("id").is_some_and(|got| *got != json!(id)) {
                return Err(self.protocol(STEP, format!("reply to another command: {msg}")));
            }
            if let Some(ret) = msg.get_mut("return") {
                return Ok(ret.take());
            }
            if let Some(err) = msg.get("error") {
                let text = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
                return Err(QmpError::Command {
                    socket: self.socket.clone(),
                    command: command.to_owned(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
            return Err(self.protocol(STEP, format!("neither reply nor event: {msg}")));
        }
        Err(self.protocol(
            STEP,
            format!("more than {MAX_SKIPPED} events before the reply"),
        ))
    }

    /// `query-cpus-fast`: each vCPU's thread, by vCPU number.
    pub async fn query_cpus_fast(&mut self) -> Result<Vec<QmpCpu>, QmpError> {
        const STEP: &str = "reading query-cpus-fast";
        let ret = self.execute("query-cpus-fast").await?;
        let Some(entries) = ret.as_array() else {
            return Err(self.protocol(STEP, format!("not a list: {ret}")));
        };
        let mut cpus = Vec::with_capacity(entries.len());
        for entry in entries {
            let number = |k: &str| {
                entry
                    .get(k)
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
            };
            let (Some(vcpu), Some(tid)) = (number("cpu-index"), number("thread-id")) else {
                return Err(self.protocol(STEP, format!("bad entry: {entry}")));
            };
            if tid == 0 || i32::try_from(tid).is_err() {
                return Err(self.protocol(STEP, format!("bad thread-id {tid}")));
            }
            cpus.push(QmpCpu {
                vcpu,
                tid: Tid(tid),
            });
        }
        Ok(cpus)
    }
}

/// Placements from QMP thread ids and /proc affinities.
#[derive(Debug, Clone)]
pub struct QmpPlacement {
    procfs: ProcfsPlacement,
    timeout: Duration,
}

impl QmpPlacement {
    /// A source reading affinities from `procfs`, with `timeout` on every
    /// QMP connect and read.
    pub fn new(procfs: ProcfsPlacement, timeout: Duration) -> Self {
        QmpPlacement { procfs, timeout }
    }

    /// Asks QEMU at `socket` for its vCPU threads and reads their affinity.
    pub async fn placement_at(&self, socket: &Path) -> Result<SourcePlacement, QmpError> {
        let mut client = QmpClient::connect(socket, self.timeout).await?;
        let cpus = client.query_cpus_fast().await?;
        self.combine(socket, &cpus)
    }

    /// Builds a placement from `query-cpus-fast` entries and /proc.
    pub fn combine(&self, socket: &Path, cpus: &[QmpCpu]) -> Result<SourcePlacement, QmpError> {
        let mut threads = BTreeMap::new();
        let mut affinity = BTreeMap::new();
        for cpu in cpus {
            if threads.insert(cpu.vcpu, cpu.tid).is_some() {
                return Err(QmpError::Protocol {
                    socket: socket.to_path_buf(),
                    step: "reading query-cpus-fast",
                    detail: format!("cpu-index {} listed twice", cpu.vcpu),
                });
            }
            let cpus =
                self.procfs
                    .thread_affinity(cpu.tid)
                    .map_err(|source| QmpError::Affinity {
                        socket: socket.to_path_buf(),
                        vcpu: cpu.vcpu,
                        tid: cpu.tid,
                        source,
                    })?;
            affinity.insert(cpu.vcpu, cpus);
        }
        let vcpus = threads
            .keys()
            .next_back()
            .and_then(|v| usize::try_from(*v).ok())
            .map_or(0, |v| v + 1);
        Ok(SourcePlacement {
            placement: Placement { vcpus, affinity },
            threads,
            pid: None,
        })
    }
}

impl VcpuPlacement for QmpPlacement {
    fn kind(&self) -> SourceKind {
        SourceKind::Qmp
    }

    fn placement<'a>(&'a self, target: &'a VmTarget) -> PlacementFuture<'a> {
        Box::pin(async move {
            let Some(socket) = &target.qmp_socket else {
                return Ok(None);
            };
            self.placement_at(socket)
                .await
                .map(Some)
                .map_err(|source| PlacementSourceError::Qmp {
                    vm: target.vm.clone(),
                    source,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::fake_proc::{FakeProc, FakeProcess};
    use crate::inventory::fake_qmp::{FakeQmp, FakeQmpMode};
    use std::collections::BTreeSet;
    use tokio::net::UnixListener;
    use vmpower_cpufreq::CpuId;
    use vmpower_engine::VmId;

    const T: Duration = Duration::from_secs(5);

    fn proc_with_threads() -> FakeProc {
        FakeProc::builder()
            .process(
                FakeProcess::new(500)
                    .cmdline(&["qemu-system-x86_64", "-name", "vm0"])
                    .thread(500, "qemu-system-x86", "0-3")
                    .thread(501, "qemu-system-x86", "2")
                    .thread(502, "qemu-system-x86", "1-2"),
            )
            .build()
            .expect("fake proc")
    }

    #[tokio::test]
    async fn queries_threads_across_interleaved_events() {
        let dir = tempfile::tempdir().expect("tmp");
        let sock = dir.path().join("vm0.qmp");
        let server =
            FakeQmp::start(&sock, vec![(0, 501), (1, 502)], FakeQmpMode::Normal).expect("listen");
        let mut client = QmpClient::connect(&sock, T).await.expect("connect");
        let cpus = client.query_cpus_fast().await.expect("query");
        assert_eq!(
            cpus,
            vec![
                QmpCpu {
                    vcpu: 0,
                    tid: Tid(501)
                },
                QmpCpu {
                    vcpu: 1,
                    tid: Tid(502)
                }
            ]
        );
        let e = client
            .execute("no-such-command")
            .await
            .expect_err("unknown");
        assert!(matches!(e, QmpError::Command { ref class, .. } if class == "CommandNotFound"));
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn placement_joins_thread_ids_with_proc_affinity() {
        let fake = proc_with_threads();
        let dir = tempfile::tempdir().expect("tmp");
        let sock = dir.path().join("vm0.qmp");
        let _server =
            FakeQmp::start(&sock, vec![(1, 502), (0, 501)], FakeQmpMode::Normal).expect("listen");
        let source = QmpPlacement::new(ProcfsPlacement::new(fake.path()), T);
        let target = VmTarget::new(VmId::new("vm0")).with_qmp_socket(&sock);
        let got = VcpuPlacement::placement(&source, &target)
            .await
            .expect("ok")
            .expect("configured");
        assert_eq!(got.placement.vcpus, 2);
        assert_eq!(got.placement.affinity[&0], BTreeSet::from([CpuId(2)]));
        assert_eq!(
            got.placement.affinity[&1],
            BTreeSet::from([CpuId(1), CpuId(2)])
        );
        assert_eq!(got.threads[&1], Tid(502));
        let unconfigured = VmTarget::new(VmId::new("vm0"));
        assert!(matches!(
            VcpuPlacement::placement(&source, &unconfigured).await,
            Ok(None)
        ));
    }

    #[tokio::test]
    async fn unknown_thread_is_an_affinity_error() {
        let fake = proc_with_threads();
        let source = QmpPlacement::new(ProcfsPlacement::new(fake.path()), T);
        let e = source
            .combine(
                Path::new("/q"),
                &[QmpCpu {
                    vcpu: 0,
                    tid: Tid(999),
                }],
            )
            .expect_err("no such thread");
        assert!(matches!(
            e,
            QmpError::Affinity {
                vcpu: 0,
                tid: Tid(999),
                ..
            }
        ));
        let twice = [
            QmpCpu {
                vcpu: 0,
                tid: Tid(501),
            },
            QmpCpu {
                vcpu: 0,
                tid: Tid(502),
            },
        ];
        let e = source.combine(Path::new("/q"), &twice).expect_err("dup");
        assert!(e.to_string().contains("listed twice"));
    }

    #[tokio::test]
    async fn refused_query_names_command_and_socket() {
        let dir = tempfile::tempdir().expect("tmp");
        let sock = dir.path().join("vm0.qmp");
        let _server = FakeQmp::start(&sock, vec![], FakeQmpMode::RefuseQuery).expect("listen");
        let mut client = QmpClient::connect(&sock, T).await.expect("connect");
        let e = client.query_cpus_fast().await.expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains("query-cpus-fast") && text.contains("vm0.qmp"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out_at_the_greeting() {
        let dir = tempfile::tempdir().expect("tmp");
        let sock = dir.path().join("vm0.qmp");
        let _server = FakeQmp::start(&sock, vec![], FakeQmpMode::Silent).expect("listen");
        let e = QmpClient::connect(&sock, Duration::from_millis(50))
            .await
            .expect_err("silent");
        assert!(
            matches!(
                e,
                QmpError::Timeout {
                    step: "reading the greeting",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let sock = dir.path().join("absent.qmp");
        let e = QmpClient::connect(&sock, T).await.expect_err("absent");
        assert!(matches!(e, QmpError::Connect { .. }));
        assert!(e.to_string().contains("absent.qmp"));
    }

    /// A one-shot server: sends `greeting`, then one reply per request read,
    /// then closes.
    async fn scripted(sock: &Path, greeting: &'static str, replies: Vec<&'static str>) {
        let listener = UnixListener::bind(sock).expect("bind");
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut stream = BufReader::new(stream);
            stream
                .get_mut()
                .write_all(greeting.as_bytes())
                .await
                .expect("greet");
            for reply in replies {
                let mut line = String::new();
                if stream.read_line(&mut line).await.expect("read") == 0 {
                    return;
                }
                stream
                    .get_mut()
                    .write_all(reply.as_bytes())
                    .await
                    .expect("reply");
            }
            // Dropping the stream closes the connection.
        });
    }

    #[tokio::test]
    async fn protocol_violations_are_typed() {
        let dir = tempfile::tempdir().expect("tmp");
        let cases: Vec<(&str, Vec<&str>, &str)> = vec![
            ("not json\n", vec![], "not JSON"),
            ("[1,2]\n", vec![], "not a JSON object"),
            ("{\"hello\":1}\n", vec![], "not a greeting"),
            (
                "{\"QMP\":{}}\n",
                vec!["{\"return\":{},\"id\":99}\n"],
                "another command",
            ),
            (
                "{\"QMP\":{}}\n",
                vec!["{\"what\":1}\n"],
                "neither reply nor event",
            ),
            ("{\"QMP\":{}}\n", vec!["{\"return\":{}"], "closed"),
        ];
        for (i, (greeting, replies, want)) in cases.into_iter().enumerate() {
            let sock = dir.path().join(format!("s{i}"));
            scripted(&sock, greeting, replies).await;
            let e = QmpClient::connect(&sock, T).await.expect_err(want);
            assert!(e.to_string().contains(want), "case {i}: {e}");
        }
        let sock = dir.path().join("bad-entry");
        scripted(
            &sock,
            "{\"QMP\":{}}\n",
            vec![
                "{\"return\":{}}\n",
                "{\"return\":[{\"cpu-index\":0,\"thread-id\":-4}]}\n",
            ],
        )
        .await;
        let mut client = QmpClient::connect(&sock, T).await.expect("connect");
        let e = client.query_cpus_fast().await.expect_err("negative tid");
        assert!(e.to_string().contains("bad entry"), "{e}");
    }
}

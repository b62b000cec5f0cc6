//! A fake QEMU QMP server for tests: a tokio unix listener speaking QMP's
//! JSON lines as QEMU 7.2 does, with an asynchronous event before every
//! reply, so clients are tested against the interleaving real QEMU produces.
//!
//! ## Behavior
//! - Greeting `{"QMP": ...}`; `qmp_capabilities` → `{"return": {}}`;
//!   `query-cpus-fast` → the configured vCPUs with QEMU's fields; any other
//!   command → `CommandNotFound`. Replies echo the command's `id`.
//! - [`FakeQmpMode`] adds the failures tests need: silence, a refused query.
//! - The server runs on the current tokio runtime until dropped.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// How the fake behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeQmpMode {
    /// Answers as QEMU does.
    Normal,
    /// Accepts connections and never says anything.
    Silent,
    /// Answers `query-cpus-fast` with a `GenericError`.
    RefuseQuery,
}

/// A running fake QMP server.
#[derive(Debug)]
pub struct FakeQmp {
    path: PathBuf,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeQmp {
    /// Listens at `path`, reporting vCPUs as `(cpu-index, thread-id)`.
    /// Call it inside a tokio runtime (it spawns the server task).
    pub fn start(path: &Path, cpus: Vec<(u32, u32)>, mode: FakeQmpMode) -> io::Result<Self> {
        let listener = UnixListener::bind(path)?;
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        let cpus = Arc::new(cpus);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let cpus = Arc::clone(&cpus);
                tokio::spawn(async move {
                    let _ = serve(stream, &cpus, mode).await;
                });
            }
        });
        Ok(FakeQmp {
            path: path.to_path_buf(),
            connections,
            task,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many clients connected so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeQmp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn event() -> Value {
    json!({
        "timestamp": {"seconds": 1_700_000_000, "microseconds": 123},
        "event": "RTC_CHANGE",
        "data": {"offset": 0, "qom-path": "/machine/unattached/device[4]"}
    })
}

fn cpu_entry(index: u32, tid: u32) -> Value {
    json!({
        "arch": "x86",
        "thread-id": tid,
        "props": {"core-id": 0, "thread-id": 0, "socket-id": index},
        "qom-path": format!("/machine/unattached/device[{index}]"),
        "cpu-index": index,
        "target": "x86_64"
    })
}

async fn send(stream: &mut BufReader<UnixStream>, value: &Value) -> io::Result<()> {
    let mut bytes = value.to_string().into_bytes();
    bytes.extend_from_slice(b"\r\n");
    stream.get_mut().write_all(&bytes).await
}

async fn serve(stream: UnixStream, cpus: &[(u32, u32)], mode: FakeQmpMode) -> io::Result<()> {
    let mut stream = BufReader::new(stream);
    if mode == FakeQmpMode::Silent {
        let mut sink = Vec::new();
        while stream.read_until(b'\n', &mut sink).await? > 0 {}
        return Ok(());
    }
    let greeting = json!({"QMP": {
        "version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"},
        "capabilities": ["oob"]
    }});
    send(&mut stream, &greeting).await?;
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            let e = json!({"error": {"class": "GenericError", "desc": "JSON parse error"}});
            send(&mut stream, &e).await?;
            continue;
        };
        let id = request.get("id").cloned();
        let command = request.get("execute").and_then(Value::as_str).unwrap_or("");
        let mut reply = match (command, mode) {
            ("qmp_capabilities", _) => json!({"return": {}}),
            ("query-cpus-fast", FakeQmpMode::RefuseQuery) => {
                json!({"error": {"class": "GenericError", "desc": "refused by the test"}})
            }
            ("query-cpus-fast", _) => {
                let list: Vec<Value> = cpus.iter().map(|(i, t)| cpu_entry(*i, *t)).collect();
                json!({ "return": list })
            }
            (other, _) => json!({"error": {
                "class": "CommandNotFound",
                "desc": format!("The command {other} has not been found")
            }}),
        };
        if let (Some(id), Some(obj)) = (id, reply.as_object_mut()) {
            obj.insert("id".into(), id);
        }
        send(&mut stream, &event()).await?;
        send(&mut stream, &reply).await?;
    }
}

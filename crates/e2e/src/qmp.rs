//! A small synchronous QMP client: capabilities negotiation, commands,
//! and the vCPU thread ids of `query-cpus-fast`. Events are skipped.
//!
//! Every read has a timeout ([`QMP_TIMEOUT`]); a QEMU that stops answering
//! is an error, never a hang.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::wait;

/// Bound on connecting and on each answer.
pub const QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected, negotiated QMP session.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to QEMU's QMP socket (retrying while QEMU creates it) and
    /// leaves capabilities negotiation mode.
    pub fn connect(path: &Path) -> anyhow::Result<Qmp> {
        let stream = wait::until(
            &format!("QMP socket {}", path.display()),
            QMP_TIMEOUT,
            || Ok(UnixStream::connect(path).ok()),
        )?;
        stream.set_read_timeout(Some(QMP_TIMEOUT))?;
        stream.set_write_timeout(Some(QMP_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message().context("QMP greeting")?;
        if greeting.get("QMP").is_none() {
            bail!("not a QMP greeting: {greeting}");
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> anyhow::Result<Value> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .context("reading from QMP")?;
        if n == 0 {
            bail!("QMP closed the connection");
        }
        serde_json::from_str(&line).with_context(|| format!("QMP sent invalid JSON: {line:?}"))
    }

    /// Runs one command; returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> anyhow::Result<Value> {
        let mut message = json!({ "execute": command });
        if let Some(args) = arguments {
            message["arguments"] = args;
        }
        let mut text = message.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .with_context(|| format!("sending QMP {command}"))?;
        loop {
            let reply = self
                .read_message()
                .with_context(|| format!("QMP {command}"))?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                bail!("QMP {command} failed: {err}");
            }
            bail!("unexpected QMP answer to {command}: {reply}");
        }
    }

    /// `query-cpus-fast`: (vCPU index, host thread id), by vCPU.
    pub fn vcpu_threads(&mut self) -> anyhow::Result<Vec<(u32, i32)>> {
        let ret = self.execute("query-cpus-fast", None)?;
        parse_cpus_fast(&ret)
    }
}

/// The (cpu-index, thread-id) pairs of a `query-cpus-fast` answer, sorted.
pub fn parse_cpus_fast(ret: &Value) -> anyhow::Result<Vec<(u32, i32)>> {
    let list = ret
        .as_array()
        .ok_or_else(|| anyhow!("query-cpus-fast: not a list: {ret}"))?;
    let mut out = list
        .iter()
        .map(|cpu| {
            let index = cpu.get("cpu-index").and_then(Value::as_u64);
            let tid = cpu.get("thread-id").and_then(Value::as_i64);
            match (index, tid) {
                (Some(i), Some(t)) => Ok((u32::try_from(i)?, i32::try_from(t)?)),
                _ => bail!("query-cpus-fast entry without cpu-index/thread-id: {cpu}"),
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_fast_pairs() {
        let ret = json!([
            {"cpu-index": 1, "thread-id": 4242, "qom-path": "/machine/unattached/device[1]"},
            {"cpu-index": 0, "thread-id": 4241, "target": "x86_64"}
        ]);
        assert_eq!(parse_cpus_fast(&ret).unwrap(), vec![(0, 4241), (1, 4242)]);
        assert!(parse_cpus_fast(&json!([{"cpu-index": 0}])).is_err());
        assert!(parse_cpus_fast(&json!({})).is_err());
    }
}

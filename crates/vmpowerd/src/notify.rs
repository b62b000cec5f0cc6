//! Running under systemd: readiness notification (`sd_notify`) and logs
//! that read well in the journal.
//!
//! ## Behavior
//! - [`ready`] is called once the daemon serves: the takeover record of a
//!   crashed run was restored, persisted settings and policies are back in
//!   force, the channel directory is watched and the control socket
//!   listens. It sends `READY=1` with a `STATUS=` line, and, when systemd
//!   asked for a watchdog (`WatchdogSec=`), starts a task that sends
//!   `WATCHDOG=1` every half period, each time after taking the core's
//!   lock (a deadlocked core stops the pings, and systemd restarts the
//!   daemon, which restores every CPU at start).
//! - The [`Readiness`] it returns sends `STOPPING=1` when dropped, which
//!   `run` does as soon as the shutdown signal ends the main loop (before
//!   CPUs are given back).
//! - [`init_logging`] drops the timestamp and colours from log lines and
//!   prefixes each with its syslog priority (`<4>` for a warning) when
//!   stderr is the journal (`JOURNAL_STREAM` names stderr's device and
//!   inode): the journal stamps lines itself and reads the priority.
//!   Elsewhere lines are coloured only when stderr is a terminal (and
//!   `NO_COLOR` is unset): a file or a pipe gets plain text.
//!
//! The datagram is written with std's `UnixDatagram` rather than a crate:
//! the protocol is one datagram of `KEY=VALUE` lines to a path or an
//! abstract address, which std covers in a few lines with no dependency,
//! and errors keep the socket's address.
//!
//! ## Limitations
//! - Without `NOTIFY_SOCKET` (not started by systemd, or `Type=simple`)
//!   nothing is sent. `NOTIFY_SOCKET` is left in the environment (removing
//!   it needs `unsafe` in a threaded process); vmpowerd starts no children.
//! - A failed notification is logged, never fatal: the daemon serves
//!   either way, and systemd reports the start as timed out.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{Event, Level, Subscriber, info, warn};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::state::State;

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is neither an absolute path nor `@abstract`.
    #[error("NOTIFY_SOCKET={value:?} is not an absolute path or an @abstract name")]
    BadAddress {
        /// The variable's value.
        value: String,
    },
    /// The datagram socket could not be created or addressed.
    #[error("cannot create a datagram socket for NOTIFY_SOCKET={value:?}")]
    Socket {
        /// The variable's value.
        value: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The datagram could not be sent.
    #[error("cannot send {state:?} to NOTIFY_SOCKET={value:?}")]
    Send {
        /// What was sent.
        state: String,
        /// The variable's value.
        value: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The service manager's notification socket (`$NOTIFY_SOCKET`).
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    value: String,
}

impl Notifier {
    /// The socket named by `NOTIFY_SOCKET`, or `None` when it is unset
    /// (not started by systemd with `Type=notify`).
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(value) if !value.is_empty() => Notifier::new(&value).map(Some),
            _ => Ok(None),
        }
    }

    /// The socket named by `value`: an absolute path, or `@name` for an
    /// abstract address.
    pub fn new(value: &OsStr) -> Result<Notifier, NotifyError> {
        let text = value.to_string_lossy().into_owned();
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(value),
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            _ => return Err(NotifyError::BadAddress { value: text }),
        };
        let addr = addr.map_err(|source| NotifyError::Socket {
            value: text.clone(),
            source,
        })?;
        let socket = UnixDatagram::unbound().map_err(|source| NotifyError::Socket {
            value: text.clone(),
            source,
        })?;
        Ok(Notifier {
            socket,
            addr,
            value: text,
        })
    }

    /// Sends one notification: `KEY=VALUE` lines, e.g. `"READY=1\nSTATUS=…"`.
    pub fn send(&self, state: &str) -> Result<(), NotifyError> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(drop)
            .map_err(|source| NotifyError::Send {
                state: state.to_owned(),
                value: self.value.clone(),
                source,
            })
    }

    /// Sends and logs a failure (a notification is never fatal).
    fn send_logged(&self, state: &str) {
        if let Err(e) = self.send(state) {
            warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "systemd notification failed");
        }
    }
}

/// Held while the daemon serves; tells systemd it is stopping when dropped.
#[derive(Debug)]
pub struct Readiness {
    notifier: Option<Arc<Notifier>>,
    watchdog: Option<JoinHandle<()>>,
}

impl Drop for Readiness {
    fn drop(&mut self) {
        if let Some(task) = self.watchdog.take() {
            task.abort();
        }
        if let Some(n) = &self.notifier {
            n.send_logged("STOPPING=1\nSTATUS=Stopping: giving every CPU back");
        }
    }
}

/// Tells systemd the daemon serves (`READY=1` and a `STATUS=` line) and
/// starts the watchdog pings if systemd asked for them. Call it once the
/// control socket listens; keep the result until the main loop ends.
pub fn ready(daemon: &State) -> Readiness {
    let notifier = match Notifier::from_env() {
        Ok(n) => n.map(Arc::new),
        Err(e) => {
            warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot notify systemd");
            None
        }
    };
    let Some(notifier) = notifier else {
        return Readiness {
            notifier: None,
            watchdog: None,
        };
    };
    let status = status_line(daemon);
    notifier.send_logged(&format!("READY=1\nSTATUS={status}"));
    let watchdog = watchdog_period().map(|period| {
        info!(period_ms = period.as_millis(), "systemd watchdog pings");
        tokio::spawn(ping(daemon.clone(), notifier.clone(), period, status))
    });
    Readiness {
        notifier: Some(notifier),
        watchdog,
    }
}

/// What `systemctl status vmpowerd` shows on its `Status:` line.
fn status_line(daemon: &State) -> String {
    let (cpus, vms) = {
        let core = daemon.lock();
        (core.engine.pcpus().len(), core.engine.vm_ids().len())
    };
    // Guest channels only: the JSON FIFOs are the operator's, and are
    // served whether or not any guest runs.
    let fifo = |p: &std::path::Path| {
        matches!(
            crate::channels::ChannelName::of_path(p),
            Some(crate::channels::ChannelName::Fifo(_))
        )
    };
    let channels = daemon.channel_paths().iter().filter(|p| !fifo(p)).count();
    format!(
        "Serving {vms} VM(s) on {channels} channel(s), {cpus} CPU(s) under control; \
         channels in {}, control socket {}",
        daemon.config().channel_dir.display(),
        daemon.config().control_socket.display()
    )
}

/// Half of `WATCHDOG_USEC`, when it is set for this process.
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog every `period` while the core can be locked, and
/// refreshes the status line when it changed.
async fn ping(daemon: State, notifier: Arc<Notifier>, period: Duration, mut shown: String) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let status = status_line(&daemon);
        if status == shown {
            notifier.send_logged("WATCHDOG=1");
        } else {
            notifier.send_logged(&format!("WATCHDOG=1\nSTATUS={status}"));
            shown = status;
        }
    }
}

/// Whether stderr is the journal: `JOURNAL_STREAM` (`DEV:INODE`, set by
/// systemd) names the file stderr is open on.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse().ok() == Some(stat.st_dev) && ino.parse().ok() == Some(stat.st_ino)
}

/// Whether log lines are coloured: only on a terminal, and not when
/// `NO_COLOR` is set (to anything but the empty string).
fn colours(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The running daemon's log filter, replaceable on SIGHUP.
static LOG_FILTER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Starts logging to stderr: tracing's usual lines on a terminal or file
/// (coloured only on a terminal); in the journal, each line prefixed with
/// its syslog priority, without timestamp or colours. The filter can be
/// replaced later ([`set_log_filter`]).
pub fn init_logging(filter: EnvFilter) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let ansi = colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = LOG_FILTER.set(handle);
    let logs = tracing_subscriber::registry().with(filter);
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if stderr_is_journal() {
        let format = tracing_subscriber::fmt::format()
            .without_time()
            .with_ansi(false);
        logs.with(lines.with_ansi(false).event_format(SyslogPriority(format)))
            .init();
    } else {
        logs.with(lines.with_ansi(ansi)).init();
    }
}

/// Replaces the log filter (`log`, tracing's EnvFilter syntax) of the
/// logging [`init_logging`] started: `Ok(false)` when it did not (a
/// daemon run in a test's process); an invalid filter is an error and
/// changes nothing.
pub fn set_log_filter(spec: &str) -> Result<bool, String> {
    let Some(handle) = LOG_FILTER.get() else {
        return Ok(false);
    };
    let filter = EnvFilter::try_new(spec).map_err(|e| e.to_string())?;
    handle.reload(filter).map_err(|e| e.to_string())?;
    Ok(true)
}

/// The syslog priority journald reads from a `<N>` line prefix.
pub fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// An event format that prefixes the inner format's line with `<N>`.
#[derive(Debug)]
pub struct SyslogPriority<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for SyslogPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn recv(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.as_os_str()).unwrap();
        n.send("READY=1\nSTATUS=x").unwrap();
        assert_eq!(recv(&listener), "READY=1\nSTATUS=x");
    }

    #[test]
    fn sends_to_an_abstract_address() {
        let name = format!("vmpowerd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(&OsString::from(format!("@{name}"))).unwrap();
        n.send("STOPPING=1").unwrap();
        assert_eq!(recv(&listener), "STOPPING=1");
    }

    #[test]
    fn a_relative_address_is_refused_and_a_missing_socket_named() {
        let err = Notifier::new(OsStr::new("relative/sock")).unwrap_err();
        assert!(matches!(err, NotifyError::BadAddress { .. }), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let n = Notifier::new(path.as_os_str()).unwrap();
        let err = n.send("READY=1").unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours(true, None));
        assert!(colours(true, Some(OsStr::new(""))));
        assert!(!colours(true, Some(OsStr::new("1"))));
        assert!(!colours(false, None));
    }

    #[test]
    fn priorities_are_syslogs() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::TRACE), 7);
    }
}

//! `vmpowerd`: parse flags, start logging, build the real sysfs, run until
//! SIGTERM or SIGINT, then give every CPU back.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use vmpower_cpufreq::Sysfs;
use vmpowerd::config::{Args, Config};

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vmpowerd: {:#}", anyhow::Error::from(e));
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!(
            "vmpowerd: invalid log filter {:?} ({e}); using info",
            config.log
        );
        EnvFilter::new("info")
    });
    vmpowerd::notify::init_logging(filter);
    raise_fd_limit();
    reserve_fd_table();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vmpowerd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let io = Arc::new(Sysfs::new(&config.sysfs_root));
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        vmpowerd::run::run(config, io, shutdown).await
    });
    match result {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e:#}");
            eprintln!("vmpowerd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: stopping"),
            _ = int.recv() => info!("SIGINT: stopping"),
        }
    })
}

/// The most descriptors [`reserve_fd_table`] makes room for (a 512 KiB
/// table in the kernel).
const FD_TABLE_RESERVE: u64 = 65_536;

/// Grows the descriptor table now, while the daemon has one thread, to
/// the open-file limit (at most [`FD_TABLE_RESERVE`]). The kernel grows
/// the table when a new descriptor passes its size (64, 256, 512, ...);
/// once the process has several threads, each growth waits for an RCU
/// grace period (`expand_fdtable` → `synchronize_rcu`): 8–17 ms measured
/// here, on whichever thread opened the descriptor. On the channel thread
/// that delays every guest's reply past DPDK's 10 ms window (the 103rd
/// pCPU touched opens the 256th descriptor; BENCHMARKS.md, dpdk-reply).
/// The table never shrinks, so this is paid once, before any thread.
fn reserve_fd_table() {
    use rustix::process::{Resource, getrlimit};
    use std::os::fd::{AsFd, AsRawFd};
    let limit = getrlimit(Resource::Nofile)
        .current
        .unwrap_or(FD_TABLE_RESERVE)
        .min(FD_TABLE_RESERVE);
    let Ok(top) = i32::try_from(limit.saturating_sub(1)) else {
        return;
    };
    let stderr = std::io::stderr();
    if top <= stderr.as_fd().as_raw_fd() {
        return;
    }
    // The duplicate is dropped (closed) at once; the table stays grown.
    if let Err(e) = rustix::io::fcntl_dupfd_cloexec(stderr.as_fd(), top) {
        eprintln!("vmpowerd: cannot reserve the descriptor table: {e}");
    }
}

/// Every channel is a socket: raise the soft limit on open files to the
/// hard limit (1024 VMs with 8 channels each need more than the usual
/// soft limit of 1024).
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            eprintln!("vmpowerd: cannot raise the open-file limit: {e}");
        }
    }
}

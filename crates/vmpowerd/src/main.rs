//! `vmpowerd`: parse flags, start logging, build the real sysfs, run until
//! SIGTERM, SIGINT or SIGQUIT (or SIGHUP, which reloads instead), then give
//! every CPU back.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use vmpower_cpufreq::Sysfs;
use vmpowerd::config::{Args, Config};
use vmpowerd::preflight::PreflightError;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vmpowerd: {:#}", anyhow::Error::from(e));
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        return check_config(&config);
    }
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
        let reloads = Some(reload_on_hangup(args)?);
        let backends = vmpowerd::backends::Backends::host_for(&config, io);
        vmpowerd::run::run_backends(config, backends, shutdown, reloads).await
    });
    match result {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e:#}");
            eprintln!("vmpowerd: {e:#}");
            // A start refused by the checks is the configuration's fault,
            // like an invalid file: exit status 2, which the unit does not
            // restart on.
            if e.downcast_ref::<PreflightError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `--check-config`: the configuration parsed (else `main` already
/// exited with 2); prints every problem of the paths it must write and of
/// the policy files, and exits 0 when there is none, 2 otherwise.
fn check_config(config: &Config) -> ExitCode {
    let mut problems: Vec<String> = match vmpowerd::preflight::check(config) {
        Ok(()) => Vec::new(),
        Err(e) => {
            let mut lines: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
            if e.more > 0 {
                lines.push(format!("and {} more cpufreq files alike", e.more));
            }
            lines
        }
    };
    if config.policy_dir.is_dir() {
        for (file, error) in vmpowerd::policy_dir::check_files(&config.policy_dir) {
            problems.push(format!("policy file {}: {error}", file.display()));
        }
    }
    for problem in &problems {
        eprintln!("vmpowerd: {problem}");
    }
    if problems.is_empty() {
        println!("vmpowerd: configuration OK");
        ExitCode::SUCCESS
    } else {
        println!("vmpowerd: {} problem(s)", problems.len());
        ExitCode::from(2)
    }
}

/// Resolves on the first SIGTERM, SIGINT or SIGQUIT: each gives the CPUs
/// back before the process ends (SIGQUIT's default, a core dump, would
/// leave them behind).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: stopping"),
            _ = int.recv() => info!("SIGINT: stopping"),
            _ = quit.recv() => info!("SIGQUIT: stopping"),
        }
    })
}

/// On each SIGHUP, reads the configuration again (file and flags) and
/// sends it to the daemon; a file that does not load is logged and
/// changes nothing.
fn reload_on_hangup(args: Args) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<Config>> {
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            info!("SIGHUP: reloading the configuration");
            match Config::load(&args) {
                Ok(config) => {
                    if tx.send(config).is_err() {
                        return;
                    }
                }
                Err(e) => error!(
                    error = %format_args!("{:#}", anyhow::Error::from(e)),
                    "reload refused: the running configuration stays"
                ),
            }
        }
    });
    Ok(rx)
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

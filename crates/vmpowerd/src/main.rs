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
        let counters = vmpowerd::run::host_traffic_counters(&config);
        vmpowerd::run::run_reloading(config, io, counters, shutdown, reloads).await
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

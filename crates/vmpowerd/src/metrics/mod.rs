//! Prometheus metrics: what the daemon decided and how it is doing, on an
//! HTTP endpoint that is off unless `metrics_address` is set.
//!
//! ## Design
//! - Counters are the core's [`crate::stats::Stats`], bumped under the
//!   core lock that the request path already holds; nothing of the
//!   metrics library sits on that path.
//! - At each scrape a custom [`prometheus_client::collector::Collector`]
//!   ([`collect::CoreCollector`]) copies the counters and the current
//!   states (frequencies, levels, channels, policies, rates) out of the
//!   core and encodes them. A scrape costs one short lock.
//! - [`families::FAMILIES`] is the one list of what is exported; the
//!   docs, the dashboard and the tests are checked against it. Beside it,
//!   [`process::PROCESS_FAMILIES`]: Prometheus's standard `process_*`
//!   metrics of the daemon itself, read from `<proc_root>/self`.
//!
//! ## Limitations
//! Counters restart at zero with the daemon (Prometheus's `rate()` copes).

pub mod collect;
pub mod families;
#[cfg(any(test, feature = "test-utils"))]
pub mod parse;
pub mod process;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tracing::info;

use crate::SharedCore;
use crate::state::State;

/// A registry holding the daemon's collector and the process collector
/// reading `<proc_root>/self`.
pub fn registry(core: SharedCore, proc_root: &std::path::Path) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collect::CoreCollector::new(core)));
    registry.register_collector(Box::new(process::ProcessCollector::new(proc_root)));
    registry
}

/// The registry's metrics as OpenMetrics text (ending in `# EOF`) or, with
/// `openmetrics` false, as Prometheus text 0.0.4.
pub fn render(registry: &Registry, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(4096);
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, registry)?;
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    }
    Ok(out)
}

/// Binds `metrics_address` (when set), records the bound address in the
/// daemon (port 0 picks one) and serves the endpoint in the background.
pub async fn start(daemon: &State) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(addr) = daemon.config().metrics_address else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the metrics endpoint on {addr}"))?;
    let bound: SocketAddr = listener.local_addr().context("metrics endpoint address")?;
    let _ = daemon.metrics_address().set(bound);
    info!(address = %bound, "metrics endpoint ready (GET /metrics)");
    Ok(Some(server::serve(
        listener,
        Arc::new(registry(daemon.core().clone(), &daemon.config().proc_root)),
    )))
}

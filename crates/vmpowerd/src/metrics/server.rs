//! The metrics endpoint: a minimal HTTP/1.1 responder on the daemon's
//! tokio runtime, over a plain `TcpListener`.
//!
//! Why not hyper: the endpoint answers one kind of request (`GET
//! /metrics`, one response, then close), which takes a few dozen lines;
//! hyper with hyper-util would add a dozen crates to the daemon for
//! keep-alive, chunking and HTTP/2 that a scraper does not need.
//!
//! ## Behavior
//! - `GET /metrics` (and `HEAD`): the OpenMetrics text when the scraper
//!   accepts `application/openmetrics-text` (Prometheus does), else the
//!   Prometheus text format 0.0.4 (what `curl` gets). `GET /` answers a
//!   pointer to `/metrics`; other paths 404, other methods 405.
//! - One response per connection (`Connection: close`).
//! - Bounded: a request head over [`MAX_HEAD`] bytes gets 431, a client
//!   that does not finish its head within [`HEAD_TIMEOUT`] is dropped, at
//!   most [`MAX_CONNECTIONS`] are served at once (more are closed at
//!   once), so a misbehaving client cannot hold the daemon's memory.
//!
//! ## Limitations
//! No TLS or authentication: bind it to a loopback or management address
//! (it is off unless `metrics_address` is set).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// The `Content-Type` of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `registry` on `listener` until the task is aborted.
pub fn serve(listener: TcpListener, registry: Arc<Registry>) -> JoinHandle<()> {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                debug!(%peer, "too many metrics clients; connection closed");
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &registry).await {
                    debug!(%peer, error = %e, "metrics client failed");
                }
                drop(permit);
            });
        }
    })
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool, openmetrics: bool },
    Index,
    NotFound,
    BadMethod,
    BadRequest,
}

async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let complete = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut head)).await;
    let response = match complete {
        Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(false)) => respond(431, "text/plain", b"request head too large\n", false),
        Ok(Ok(true)) => match route(&head) {
            Route::Metrics {
                head_only,
                openmetrics,
            } => match super::render(registry, openmetrics) {
                Ok(body) => {
                    let kind = if openmetrics {
                        OPENMETRICS
                    } else {
                        PROMETHEUS_TEXT
                    };
                    respond(200, kind, body.as_bytes(), head_only)
                }
                Err(_) => respond(500, "text/plain", b"encoding failed\n", false),
            },
            Route::Index => respond(200, "text/plain", b"vmpowerd: see /metrics\n", false),
            Route::NotFound => respond(404, "text/plain", b"not found\n", false),
            Route::BadMethod => respond(405, "text/plain", b"only GET\n", false),
            Route::BadRequest => respond(400, "text/plain", b"bad request\n", false),
        },
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// Reads until the blank line ending the head; false if it is too large.
async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(true);
        }
        if head.len() > MAX_HEAD {
            return Ok(false);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
}

fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version)) = (first.next(), first.next(), first.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::BadMethod,
    };
    let path = target.split('?').next().unwrap_or_default();
    match path {
        "/metrics" => {
            let openmetrics = lines.any(|l| {
                l.split_once(':').is_some_and(|(name, value)| {
                    name.eq_ignore_ascii_case("accept")
                        && value.contains("application/openmetrics-text")
                })
            });
            Route::Metrics {
                head_only,
                openmetrics,
            }
        }
        "/" => Route::Index,
        _ => Route::NotFound,
    }
}

fn respond(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let om = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n";
        assert_eq!(
            route(om),
            Route::Metrics {
                head_only: false,
                openmetrics: true
            }
        );
        assert_eq!(
            route(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics {
                head_only: true,
                openmetrics: false
            }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::Index);
        assert_eq!(route(b"GET /x HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(&[0xff, 0xfe]), Route::BadRequest);
    }

    #[test]
    fn responses_have_a_length_and_close() {
        let r = respond(200, PROMETHEUS_TEXT, b"abc", false);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nabc"));
        let head = respond(200, PROMETHEUS_TEXT, b"abc", true);
        assert!(String::from_utf8(head).unwrap().ends_with("\r\n\r\n"));
    }
}

//! What one client, or many, can hold of `serve`: connections, time and
//! request bodies.
//!
//! - `serve.max_connections` (512): open connections at once. One over the
//!   cap is accepted and closed at once, so it costs a file descriptor for
//!   an instant, never a slot; the clients holding the slots lose them by
//!   the timeouts below, so a flood of idle connections cannot keep
//!   `/healthz` from answering for longer than `header_timeout`.
//! - `serve.header_timeout` (10s): how long the server waits for a request's
//!   complete headers, from when the connection opens or the previous
//!   response went out; then the connection is closed. It is hyper's
//!   `header_read_timeout`, so on HTTP/1.1 it also bounds keep-alive idle.
//! - `serve.idle_timeout` (60s): the longest a read or a write on the socket
//!   may wait (a stalled body, a client that stops reading the answer);
//!   then the connection is closed. Longer than `request_timeout`, since
//!   the socket is quiet while a handler works.
//! - `serve.request_timeout` (30s): how long a handler may take to answer;
//!   then `408`. Reading the request body counts.
//! - `serve.max_body` (1 MiB): the largest request body a handler reads;
//!   larger gets `413`. A route may set its own (`DefaultBodyLimit`).
//!
//! `serve` speaks HTTP/1.1 only (what Slack, Discord, Mattermost, Rundeck,
//! git hosts and TLS proxies send): a protocol sniff for HTTP/2 would wait
//! for a first byte that no header timeout covers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tower_http::timeout::TimeoutLayer;

use super::ServeConfig;
use crate::config::serve::ByteSize;
use crate::error::{Error, Result};

/// Default of `serve.max_connections`.
pub const MAX_CONNECTIONS: usize = 512;
/// Default of `serve.header_timeout`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `serve.idle_timeout`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of `serve.request_timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `serve.max_body`: 1 MiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// The limits in force, read from `serve:`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_body: usize,
}

impl Limits {
    /// The configured limits, defaults filled in; a bad value is a usage
    /// error naming its key.
    pub fn from_config(serve: &ServeConfig) -> Result<Limits> {
        let duration = |key: &str, text: &Option<String>, default: Duration| match text {
            None => Ok(default),
            Some(text) => match crate::config::parse_duration(text) {
                Ok(d) if d.is_zero() => Err(Error::Usage(format!("serve.{key}: must be more than zero"))),
                Ok(d) => Ok(d),
                Err(e) => Err(Error::Usage(format!("serve.{key}: {e}"))),
            },
        };
        let max_body = match &serve.max_body {
            None => MAX_BODY,
            Some(ByteSize::Bytes(n)) => usize::try_from(*n).unwrap_or(usize::MAX),
            Some(ByteSize::Text(text)) => crate::descriptor::compose::byte_size(text)
                .map_err(|e| Error::Usage(format!("serve.max_body: {e}")))
                .and_then(|n| usize::try_from(n).map_err(|_| Error::Usage("serve.max_body: too large".into())))?,
        };
        let limits = Limits {
            max_connections: serve.max_connections.unwrap_or(MAX_CONNECTIONS),
            header_timeout: duration("header_timeout", &serve.header_timeout, HEADER_TIMEOUT)?,
            idle_timeout: duration("idle_timeout", &serve.idle_timeout, IDLE_TIMEOUT)?,
            request_timeout: duration("request_timeout", &serve.request_timeout, REQUEST_TIMEOUT)?,
            max_body,
        };
        if limits.max_connections == 0 {
            return Err(Error::Usage("serve.max_connections: must be at least 1".into()));
        }
        if limits.idle_timeout <= limits.request_timeout {
            return Err(Error::Usage(format!(
                "serve.idle_timeout ({:?}) must be longer than serve.request_timeout ({:?}): the socket is quiet \
                 while a handler works",
                limits.idle_timeout, limits.request_timeout
            )));
        }
        Ok(limits)
    }

    /// The request limits as layers around every route: `408` past
    /// `request_timeout`, `413` for a body over `max_body`.
    pub fn apply(&self, app: Router) -> Router {
        app.layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, self.request_timeout))
            .layer(DefaultBodyLimit::max(self.max_body))
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes;
/// then stops accepting and lets open connections finish their request
/// (idle ones close at once), for as long as a request may take.
pub async fn serve(listener: TcpListener, app: Router, limits: &Limits, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut refused = Refused::default();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors (EMFILE) and the like: wait
                    // for connections to close rather than spin.
                    tracing::error!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the cap: closed at once, so it holds no descriptor.
            drop(stream);
            refused.note(limits.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut io = TimeoutStream::new(stream);
        io.set_read_timeout(Some(limits.idle_timeout));
        io.set_write_timeout(Some(limits.idle_timeout));
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(Box::pin(io)), TowerToHyperService::new(app.clone())));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let drain = limits.request_timeout.max(limits.header_timeout) + Duration::from_secs(1);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(?drain, "connections were still open after the drain; closing them");
    }
}

/// Errors of one connection that leave the listener fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Counts connections refused over the cap and logs them at most every
/// ten seconds, so a flood does not flood the journal too.
#[derive(Default)]
struct Refused {
    since_log: u64,
    logged: Option<Instant>,
}

impl Refused {
    fn note(&mut self, cap: usize) {
        self.since_log += 1;
        if self.logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(
                refused = self.since_log,
                max_connections = cap,
                "at serve.max_connections: closed new connections at once"
            );
            self.since_log = 0;
            self.logged = Some(Instant::now());
        }
    }
}

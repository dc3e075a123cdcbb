//! Which engine an environment deploys to, and connecting to it.
//!
//! Each environment names its own engine: the local socket, another
//! `unix://` socket, or a remote `tcp://` engine that dockmaster reaches
//! only with TLS client certificates and server verification. A plain-text
//! `tcp://` engine is refused: whoever can reach it owns the host, and a
//! deploy tool must not be the reason it is open.

use std::collections::BTreeMap;

use bollard::{Docker, API_DEFAULT_VERSION};

use super::DockerEngine;
use crate::error::{Error, Result};

pub use crate::config::engine::{EngineConfig, EngineKind, TlsFiles};

/// Seconds an engine request may take before it counts as unanswered.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// The local engine's socket, where the Docker CLI looks when `DOCKER_HOST`
/// is unset or empty.
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

impl EngineConfig {
    /// Where the engine is, as messages, reports and the audit trail name
    /// it: the configured host, or `DOCKER_HOST`, or the local socket.
    pub fn address(&self) -> String {
        self.host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_SOCKET.into())
    }
}

impl DockerEngine {
    /// Connects to the engine of environment `environment`, negotiates the
    /// API version and checks that it answers. Errors name the environment,
    /// the engine and what to check.
    pub async fn connect_to(
        engine: &EngineConfig,
        environment: &str,
        extra_labels: BTreeMap<String, String>,
    ) -> Result<DockerEngine> {
        let host = engine.address();
        let unreachable = |e: &dyn std::fmt::Display| {
            let hint = match (&engine.host, &engine.tls) {
                (None, _) => "Is the daemon running, and may this user use it? (set DOCKER_HOST or \
                              environments.<name>.engine.host to use another engine)"
                    .to_string(),
                (Some(_), Some(_)) => "Is the engine listening with TLS there, and do tls.ca, tls.cert and tls.key \
                                        belong to it?"
                    .to_string(),
                (Some(_), None) => "Does the socket exist, and may this user use it?".to_string(),
            };
            Error::Unreachable(format!(
                "environment `{environment}`: Docker engine at {host} is unreachable: {e}. {hint}"
            ))
        };
        engine.validate().map_err(|e| Error::Usage(format!("environment `{environment}`: engine: {e}")))?;
        // One client (and connection pool) per engine per process: serve's
        // requests, schedules and watches share it, and only the first
        // connection asks the engine its version.
        let key = format!("{host}|{:?}", engine.tls);
        if let Some(docker) = clients().lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(DockerEngine { docker, host, extra_labels, survey: Default::default() });
        }
        let docker = match (&engine.host, &engine.tls) {
            // An empty DOCKER_HOST means the default, as the Docker CLI and
            // Compose read it.
            (None, _) if std::env::var("DOCKER_HOST").is_ok_and(|h| h.trim().is_empty()) => {
                Docker::connect_with_unix(DEFAULT_SOCKET, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            }
            (None, _) => Docker::connect_with_defaults(),
            (Some(h), None) => Docker::connect_with_unix(h, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION),
            (Some(h), Some(tls)) => {
                for (key, path) in [("tls.ca", &tls.ca), ("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                    if !path.is_file() {
                        return Err(Error::Usage(format!(
                            "environment `{environment}`: engine {key} {} is not a readable file",
                            path.display()
                        )));
                    }
                }
                Docker::connect_with_ssl(h, &tls.key, &tls.cert, &tls.ca, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            }
        }
        .map_err(|e| unreachable(&e))?;
        // Negotiating asks the engine its version: that it answers is the
        // check (no separate ping, one request less per command).
        let docker = docker.negotiate_version().await.map_err(|e| unreachable(&describe(&e)))?;
        if let Ok(mut c) = clients().lock() {
            c.insert(key, docker.clone());
        }
        Ok(DockerEngine { docker, host, extra_labels, survey: Default::default() })
    }
}

/// The process's engine clients, by address and TLS files.
fn clients() -> &'static std::sync::Mutex<std::collections::HashMap<String, Docker>> {
    static CLIENTS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Docker>>> =
        std::sync::OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// A bollard error with its causes, so a TLS refusal says why ("invalid
/// peer certificate: UnknownIssuer") instead of only "client error".
fn describe(e: &bollard::errors::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

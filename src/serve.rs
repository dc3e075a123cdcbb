//! `dockmaster serve`: the long-running process that hosts the HTTP ways in.
//!
//! Today it serves health (`/healthz`, `/readyz`) and Rundeck's option lists
//! (`/options/...`, for `valuesUrl`); chat slash commands, schedules and the
//! fragment registry will be more routes on the same router. It stops on
//! SIGINT/SIGTERM: it stops accepting connections and lets requests in
//! flight finish.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::callers::options;
use crate::config::Config;
use crate::engine::DockerEngine;
use crate::error::{Error, Result};

/// Settings of the `serve` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on (`127.0.0.1:8080` by default). Listen on a
    /// public address only behind a proxy you trust: no endpoint here
    /// changes anything, but the option lists name your applications.
    #[serde(default)]
    pub listen: Option<String>,
}

struct AppState {
    config: Config,
}

/// Builds the router; separate from [`run`] so tests can drive it.
fn router(config: Config) -> Router {
    let state = Arc::new(AppState { config });
    Router::new()
        .route("/healthz", get(|| async { json(StatusCode::OK, r#"{"status":"ok"}"#.to_string()) }))
        .route("/readyz", get(ready))
        .route("/options/applications", get(applications))
        .route("/options/releases", get(releases))
        .route("/options/versions", get(versions))
        .with_state(state)
}

/// Serves until SIGINT/SIGTERM. Prints `listening on ADDR` on stdout once
/// the socket is bound, so scripts (and tests) can wait for it.
pub async fn run(config: Config, listen: Option<String>) -> Result<()> {
    let address = listen.or_else(|| config.serve.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let addr: SocketAddr = address
        .parse()
        .map_err(|_| Error::Usage(format!("listen address `{address}` is not HOST:PORT (e.g. 127.0.0.1:8080)")))?;
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
    println!("listening on {bound}");
    tracing::info!(%bound, "serving");
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Error::Engine(format!("the HTTP server failed: {e}")))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Ready when the engine answers (and, later, the directory).
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match DockerEngine::connect(state.config.labels.clone()).await {
        Ok(_) => json(StatusCode::OK, r#"{"status":"ready","engine":"ok"}"#.to_string()),
        Err(e) => {
            let body = serde_json::json!({"status": "not ready", "engine": e.to_string()}).to_string();
            json(StatusCode::SERVICE_UNAVAILABLE, body)
        }
    }
}

/// Renders an option list, or the error as JSON with a fitting status.
fn choices(result: Result<Vec<options::Choice>>) -> Response {
    match result {
        Ok(list) => json(StatusCode::OK, options::render(&list)),
        Err(e) => {
            let status = match e {
                Error::Usage(_) => StatusCode::BAD_REQUEST,
                Error::Descriptor(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            json(status, serde_json::json!({"error": e.to_string()}).to_string())
        }
    }
}

fn param<'a>(query: &'a HashMap<String, String>, name: &str) -> Result<&'a str> {
    query
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::Usage(format!("the query parameter `{name}` is missing")))
}

async fn applications(State(state): State<Arc<AppState>>) -> Response {
    choices(options::applications(&state.config))
}

async fn releases(State(state): State<Arc<AppState>>, Query(query): Query<HashMap<String, String>>) -> Response {
    choices(param(&query, "application").and_then(|app| options::releases(&state.config, app)))
}

async fn versions(State(state): State<Arc<AppState>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let result = param(&query, "application")
        .and_then(|app| Ok((app, param(&query, "release")?)))
        .and_then(|(app, rel)| options::versions(&state.config, app, rel));
    choices(result)
}

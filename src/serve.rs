//! `dockmaster serve`: the long-running process that hosts the HTTP ways in.
//!
//! It serves health (`/healthz`, `/readyz`), Rundeck's option lists
//! (`/options/...`, for `valuesUrl`) and the chat endpoints the
//! configuration enables (`/chat/slack`, `/chat/mattermost`,
//! `/chat/discord`). On SIGINT/SIGTERM it stops taking requests, tells
//! running deploys to stop (they roll back and report to their channels),
//! and waits for them up to `serve.shutdown_grace`. What clients can hold
//! of it (connections, time, body sizes) is bounded: see [`limits`].

mod limits;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::callers::options;
use crate::config::Config;
use crate::engine::DockerEngine;
use crate::error::{Error, Result};

pub use crate::config::serve::ServeConfig;

struct AppState {
    config: Config,
    /// Set on SIGINT/SIGTERM: /readyz answers 503 from then on.
    shutdown: Option<crate::shutdown::Shutdown>,
}

/// Builds the router; separate from [`run`] so tests can drive it.
fn router(
    config: Config,
    shutdown: Option<crate::shutdown::Shutdown>,
    chat: Option<Arc<crate::chat::Chat>>,
    hooks: Option<Arc<crate::schedule::hooks::Hooks>>,
) -> Router {
    let state = Arc::new(AppState { config, shutdown });
    let hook_routes = match hooks {
        Some(hooks) => Router::new().route("/hooks/{name}", post(crate::schedule::hooks::fire)).with_state(hooks),
        None => Router::new(),
    };
    let chat_routes = match chat {
        Some(chat) => Router::new()
            .route("/chat/slack", post(crate::chat::slack::slack))
            .route("/chat/slack/actions", post(crate::chat::slack_app::actions))
            .route("/chat/mattermost", post(crate::chat::slack::mattermost).get(crate::chat::slack::mattermost))
            .route("/chat/mattermost/actions", post(crate::chat::mattermost::press))
            .route("/chat/discord", post(crate::chat::discord::interactions))
            .with_state(chat),
        None => Router::new(),
    };
    Router::new()
        .route("/healthz", get(|| async { json(StatusCode::OK, r#"{"status":"ok"}"#.to_string()) }))
        .route("/readyz", get(ready))
        .route("/options/applications", get(applications))
        .route("/options/releases", get(releases))
        .route("/options/versions", get(versions))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(chat_routes)
        .merge(hook_routes)
}

/// Prometheus' text format.
async fn metrics() -> Response {
    let body = crate::metrics::render();
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
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
    let grace = match &config.serve.shutdown_grace {
        Some(text) => {
            crate::config::parse_duration(text).map_err(|e| Error::Usage(format!("serve.shutdown_grace: {e}")))?
        }
        None => std::time::Duration::from_secs(120),
    };
    let limits = limits::Limits::from_config(&config.serve)?;
    let (trigger, shutdown) = crate::shutdown::Shutdown::new();
    crate::shutdown::listen_for_signals(trigger);
    let chat = crate::chat::Chat::new(config.clone(), shutdown.clone())?;
    let jobs = Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
    let shared = Arc::new(config.clone());
    let hooks = match config.hooks.is_empty() {
        true => None,
        false => Some(crate::schedule::hooks::Hooks::new(shared.clone(), shutdown.clone(), jobs.clone())?),
    };
    // Everything that can refuse the configuration (the registry's token
    // variables among it) runs before `listening` is printed, so a caller
    // never sees "listening" followed by an exit.
    let mut app = router(config.clone(), Some(shutdown.clone()), chat.clone(), hooks);
    if let Some(registry) = crate::registry::server::routes(&config)? {
        app = app.merge(registry);
    }
    crate::schedule::run::start(shared, shutdown.clone(), &mut *jobs.lock().await);
    if let Some(chat) = chat.clone().filter(|c| c.config.chat.discord.as_ref().is_some_and(|d| d.gateway)) {
        tokio::spawn(crate::chat::gateway::run(chat));
    }
    if let Some(chat) = chat.clone().filter(|c| c.secrets.discord_bot.is_some()) {
        tokio::spawn(async move {
            match crate::chat::discord::register(&chat).await {
                Ok(places) => tracing::info!(?places, "registered the Discord slash commands"),
                Err(e) => tracing::error!(error = %e, "could not register the Discord slash commands"),
            }
        });
    }
    println!("listening on {bound}");
    tracing::info!(%bound, chat = chat.is_some(), ?limits, "serving");
    // The listener keeps answering until running commands and jobs have
    // finished (or the grace ran out): a chat command, a hook or a probe
    // that arrives meanwhile is told "shutting down, try again" (and
    // /readyz answers 503), not "connection refused".
    let stopping = shutdown.clone();
    let drained = async move {
        stopping.wait().await;
        tracing::info!(grace = ?grace, "waiting for running commands and jobs to finish or roll back");
        let deadline = tokio::time::Instant::now() + grace;
        let mut left = match chat {
            Some(chat) => chat.drain(grace).await,
            None => 0,
        };
        let mut jobs = jobs.lock().await;
        let _ = tokio::time::timeout_at(deadline, async { while jobs.join_next().await.is_some() {} }).await;
        left += jobs.len();
        jobs.abort_all();
        if left > 0 {
            tracing::error!(left, "commands or jobs were still running at the end of serve.shutdown_grace");
        }
    };
    let app = limits.apply(app);
    limits::serve(listener, app, &limits, drained).await;
    // stdout may be gone by now (a closed pipe): never panic over it.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), b"stopped\n");
    Ok(())
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Ready when the engine answers and, when one is configured, the
/// directory does (a lookup of a name nobody has: "no such user" is an
/// answer, "unreachable" is not).
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    // A replica that is stopping takes no new work: the load balancer
    // should send it elsewhere.
    if let Some(reason) = state.shutdown.as_ref().and_then(|s| s.reason()) {
        let body = serde_json::json!({"status": "shutting down", "reason": reason});
        return json(StatusCode::SERVICE_UNAVAILABLE, body.to_string());
    }
    // The client is shared by the process, so the engine is asked afresh.
    let engine = match DockerEngine::connect(state.config.labels.clone()).await {
        Ok(engine) => engine.ping().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let directory = match crate::identity::Directory::shared(state.config.ldap.as_ref()) {
        Ok(None) => None,
        Ok(Some(directory)) => match directory.lookup("dockmaster-readiness-probe").await {
            Err(Error::Unreachable(e)) => Some(Err(e)),
            Err(Error::Usage(e)) => Some(Err(e)),
            _ => Some(Ok(())),
        },
        Err(e) => Some(Err(e.to_string())),
    };
    // The state backend: the audit trail every request writes first.
    let config = state.config.clone();
    let backend = tokio::task::spawn_blocking(move || {
        crate::state::Database::for_store(&config, crate::audit::database(&config)).and_then(|db| match &db {
            crate::state::Database::Postgres(_) => db.ping(),
            crate::state::Database::Sqlite(_) => crate::audit::open(&config).map(|_| ()),
        })
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    let word = |r: &std::result::Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let mut body = serde_json::json!({"engine": word(&engine), "state": word(&backend)});
    if let Some(d) = &directory {
        body["directory"] = serde_json::json!(word(d));
    }
    let ok = engine.is_ok() && backend.is_ok() && directory.as_ref().is_none_or(|d| d.is_ok());
    body["status"] = serde_json::json!(if ok { "ready" } else { "not ready" });
    json(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body.to_string())
}

/// Renders an option list, or the error as JSON with a fitting status.
fn choices(result: Result<Vec<options::Choice>>) -> Response {
    match result {
        Ok(list) => json(StatusCode::OK, options::render(&list)),
        Err(e) => {
            let status = match e {
                Error::Usage(_) => StatusCode::BAD_REQUEST,
                Error::Descriptor(_) => StatusCode::NOT_FOUND,
                Error::Problems(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
    choices(options::applications(&state.config).await)
}

async fn releases(State(state): State<Arc<AppState>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let result = match param(&query, "application") {
        Ok(app) => options::releases(&state.config, app).await,
        Err(e) => Err(e),
    };
    choices(result)
}

/// `?application=&release=` and optionally `&env=` (default `default`):
/// the running version in that environment is selected.
async fn versions(State(state): State<Arc<AppState>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let env = query.get("env").map(String::as_str).filter(|e| !e.is_empty()).unwrap_or("default");
    let result = match param(&query, "application").and_then(|app| Ok((app, param(&query, "release")?))) {
        Ok((app, rel)) => options::versions(&state.config, app, rel, env).await,
        Err(e) => Err(e),
    };
    choices(result)
}

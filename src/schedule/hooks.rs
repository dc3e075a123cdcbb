//! `POST /hooks/{name}`: build pipelines and git hosts fire a configured
//! deploy.
//!
//! Each hook has its own secret, checked as the sender sends it: GitHub's
//! `X-Hub-Signature-256` (HMAC-SHA256 of the raw body) or GitLab's
//! `X-Gitlab-Token`. A push to a branch the hook does not follow is
//! answered and ignored. Otherwise the hook answers at once (202) with an
//! id, and runs like a schedule: same lock, service account, audit and
//! reports.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{HookStyle, Job};
use crate::config::Config;
use crate::error::Result;
use crate::request::Origin;
use crate::secrets::{header, read_secret, same_secret};
use crate::shutdown::Shutdown;

/// What the hook endpoint shares: the configuration, the hooks' secrets
/// (read at start-up), and the runs in flight.
pub struct Hooks {
    config: Arc<Config>,
    /// GitHub deliveries already acted on (`X-GitHub-Delivery`).
    replay: crate::replay::ReplayCache,
    secrets: HashMap<String, String>,
    shutdown: Shutdown,
    /// Runs in flight, for a graceful shutdown.
    pub tasks: Arc<tokio::sync::Mutex<tokio::task::JoinSet<()>>>,
}

impl Hooks {
    /// Reads every hook's secret; a missing one stops `serve`.
    pub fn new(
        config: Arc<Config>,
        shutdown: Shutdown,
        tasks: Arc<tokio::sync::Mutex<tokio::task::JoinSet<()>>>,
    ) -> Result<Arc<Hooks>> {
        let mut secrets = HashMap::new();
        for hook in &config.hooks {
            let key = format!("hooks `{}`: secret", hook.name);
            secrets
                .insert(hook.name.clone(), read_secret(hook.secret_env.as_deref(), hook.secret_file.as_ref(), &key)?);
        }
        let replay = crate::replay::ReplayCache::for_config(&config)?;
        Ok(Arc::new(Hooks { config, replay, secrets, shutdown, tasks }))
    }
}

/// Checks the sender's proof of the secret.
pub fn verify(style: HookStyle, secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    match style {
        HookStyle::Github => {
            let given = header(headers, "x-hub-signature-256");
            let Some(given) = given.strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()) else { return false };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
            mac.update(body);
            mac.verify_slice(&given).is_ok()
        }
        HookStyle::Gitlab => same_secret(header(headers, "x-gitlab-token").as_bytes(), secret.as_bytes()),
    }
}

/// Whether a push's `ref` is one the hook follows.
fn follows(job: &Job, body: &[u8]) -> std::result::Result<(), String> {
    if job.branches.is_empty() {
        return Ok(());
    }
    let payload: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let reference = payload["ref"].as_str().unwrap_or_default();
    let branch = reference.strip_prefix("refs/heads/").unwrap_or(reference);
    if job.branches.iter().any(|b| b == reference || b == branch) {
        Ok(())
    } else {
        Err(format!("`{reference}` is not one of the branches this hook follows ({})", job.branches.join(", ")))
    }
}

/// How long a GitHub delivery id is remembered: GitHub redelivers on
/// request, within days; a week covers it.
const DELIVERY_MEMORY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// `POST /hooks/{name}`.
pub async fn fire(
    State(hooks): State<Arc<Hooks>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(job) = hooks.config.hooks.iter().find(|h| h.name == name).cloned() else {
        return (StatusCode::NOT_FOUND, format!("no hook named `{name}`")).into_response();
    };
    let secret = hooks.secrets.get(&name).cloned().unwrap_or_default();
    let style = job.style.unwrap_or(HookStyle::Github);
    if !verify(style, &secret, &headers, &body) {
        tracing::warn!(hook = %name, "refused a hook call with a bad signature or token");
        return (StatusCode::UNAUTHORIZED, "bad signature or token").into_response();
    }
    if header(&headers, "x-github-event") == "ping" {
        return reply(StatusCode::OK, json!({"hook": name, "pong": true}));
    }
    if let Err(why) = follows(&job, &body) {
        return reply(StatusCode::OK, json!({"hook": name, "ignored": why}));
    }
    // Before the delivery is remembered: GitHub's redelivery, to this
    // replica once it is back or to another, must not read as a replay.
    if hooks.shutdown.reason().is_some() {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"hook": name, "error": "shutting down: try again in a minute"}),
        );
    }
    // A GitHub delivery is acted on once, whoever sends it again.
    let delivery = header(&headers, "x-github-delivery");
    if !delivery.is_empty() {
        let key = crate::replay::ReplayCache::key("github-delivery", &[name.as_bytes(), delivery.as_bytes()]);
        match hooks.replay.first_sighting(&key, DELIVERY_MEMORY) {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(hook = %name, %delivery, "refused a replayed GitHub delivery");
                return reply(StatusCode::CONFLICT, json!({"hook": name, "error": "delivery already handled"}));
            }
            Err(e) => return reply(StatusCode::SERVICE_UNAVAILABLE, json!({"hook": name, "error": e.to_string()})),
        }
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let id = format!("{}-{}-{}", name, crate::lock::now_secs(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let origin = Origin::Hook { name: name.clone(), user: job.user.clone(), id: id.clone() };
    let (config, shutdown) = (hooks.config.clone(), hooks.shutdown.clone());
    let mut tasks = hooks.tasks.lock().await;
    while tasks.try_join_next().is_some() {}
    tasks.spawn(async move {
        let result = super::run::run_once(&config, &job, origin, &shutdown).await;
        match result {
            Ok(outcome) => tracing::info!(hook = %job.name, exit = outcome.exit_code(), "hook run finished"),
            Err(e) => tracing::warn!(hook = %job.name, error = %e, "hook run failed"),
        }
    });
    reply(StatusCode::ACCEPTED, json!({"hook": name, "id": id}))
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

//! The registry's HTTP API, hosted by `dockmaster serve`.
//!
//! - `PUT /fragment` (bearer token): publish a fragment to applications ×
//!   releases; answers the new versions.
//! - `GET /descriptor/application[/{application}[/{release}[/{version}]]]`:
//!   the lists (plain JSON, or `?format=rundeck` for `valuesUrl`), and a
//!   version's descriptor as YAML with `ETag: "<digest>"`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::store::Store;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::secrets::{read_secret, same_secret};

struct Registry {
    store: Store,
    /// (name, token, application patterns).
    tokens: Vec<(String, String, Vec<String>)>,
}

/// The routes, when `registry.serve` is on: reads every token now, so a
/// missing one stops `serve`.
pub fn routes(config: &Config) -> Result<Option<Router>> {
    if !config.registry.serve {
        return Ok(None);
    }
    let mut tokens = Vec::new();
    for t in &config.registry.tokens {
        let secret =
            read_secret(t.token_env.as_deref(), t.token_file.as_ref(), &format!("registry.tokens `{}`", t.name))?;
        tokens.push((t.name.clone(), secret, t.applications.clone()));
    }
    if tokens.is_empty() {
        return Err(Error::Usage("registry.serve needs at least one entry in registry.tokens to publish with".into()));
    }
    let store = Store::open(&database(config))?;
    let state = Arc::new(Registry { store, tokens });
    Ok(Some(
        Router::new()
            .route("/fragment", put(publish))
            .route("/descriptor/application", get(applications))
            .route("/descriptor/application/{application}", get(releases))
            .route("/descriptor/application/{application}/{release}", get(versions))
            .route("/descriptor/application/{application}/{release}/{version}", get(descriptor))
            .with_state(state),
    ))
}

/// The registry database in force.
pub fn database(config: &Config) -> std::path::PathBuf {
    config.registry.database.clone().unwrap_or_else(|| config.state_dir().join("registry.db"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    fragment: String,
    applications: Vec<String>,
    releases: Vec<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"error": message.into()}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn name_ok(name: &str) -> bool {
    !name.trim().is_empty() && name.trim() == name && !name.contains('/') && !name.chars().any(char::is_control)
}

async fn publish(State(registry): State<Arc<Registry>>, headers: HeaderMap, body: Bytes) -> Response {
    let given = crate::secrets::header(&headers, "authorization");
    let given = given.strip_prefix("Bearer ").unwrap_or_default();
    let Some((token_name, _, patterns)) =
        registry.tokens.iter().find(|(_, secret, _)| same_secret(given.as_bytes(), secret.as_bytes()))
    else {
        return error(StatusCode::UNAUTHORIZED, "a valid `Authorization: Bearer <token>` is required");
    };
    let request: PublishBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"fragment\": base64, \"applications\": [..], \"releases\": [..]}}: {e}"),
            )
        }
    };
    if request.applications.is_empty() || request.releases.is_empty() {
        return error(StatusCode::BAD_REQUEST, "`applications` and `releases` must each name at least one");
    }
    if let Some(bad) = request.applications.iter().chain(&request.releases).find(|n| !name_ok(n)) {
        return error(StatusCode::BAD_REQUEST, format!("`{bad}` is not a valid name (no `/`, no surrounding spaces)"));
    }
    if let Some(app) = request
        .applications
        .iter()
        .find(|app| !patterns.is_empty() && !patterns.iter().any(|p| crate::access::glob(p, app)))
    {
        return error(StatusCode::FORBIDDEN, format!("token `{token_name}` may not publish to application `{app}`"));
    }
    let text = match base64::engine::general_purpose::STANDARD
        .decode(request.fragment.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    {
        Some(t) => t,
        None => return error(StatusCode::BAD_REQUEST, "`fragment` is not base64 of UTF-8 text"),
    };
    let fragment: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, format!("the fragment is not YAML: {e}")),
    };
    let services = match super::fragment_services(&fragment) {
        Ok((s, _)) if !s.is_empty() => s.keys().filter_map(|k| k.as_str().map(str::to_string)).collect::<Vec<_>>(),
        Ok(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "the fragment defines no service"),
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    if let Err(e) = super::validate(&text, "the fragment") {
        return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
    }
    let pairs: Vec<(String, String)> = request
        .applications
        .iter()
        .flat_map(|a| request.releases.iter().map(move |r| (a.clone(), r.clone())))
        .collect();
    let store = registry.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        let assemble = |previous: Option<&str>| {
            let text = super::assemble(previous, &fragment)?;
            super::validate(&text, "the assembled descriptor")?;
            Ok(text)
        };
        store.append(&pairs, &text, &services, &assemble)
    })
    .await;
    match result {
        Ok(Ok(versions)) => {
            tracing::info!(token = %token_name, count = versions.len(), "published a fragment");
            let body = json!({"versions": versions}).to_string();
            (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Ok(Err(e @ Error::Descriptor(_))) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct Format {
    #[serde(default)]
    format: Option<String>,
}

/// Plain JSON, or Rundeck's `[{"name", "value"}]` with `?format=rundeck`.
fn list(names: Result<Vec<String>>, format: &Format) -> Response {
    match names {
        Ok(names) => {
            let body = if format.format.as_deref() == Some("rundeck") {
                json!(names.iter().map(|n| json!({"name": n, "value": n})).collect::<Vec<_>>())
            } else {
                json!(names)
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn applications(State(r): State<Arc<Registry>>, Query(format): Query<Format>) -> Response {
    list(r.store.applications(), &format)
}

async fn releases(
    State(r): State<Arc<Registry>>,
    Path(application): Path<String>,
    Query(format): Query<Format>,
) -> Response {
    list(r.store.releases(&application), &format)
}

async fn versions(
    State(r): State<Arc<Registry>>,
    Path((application, release)): Path<(String, String)>,
    Query(format): Query<Format>,
) -> Response {
    let versions = match r.store.versions(&application, &release) {
        Ok(v) if v.is_empty() => {
            return error(StatusCode::NOT_FOUND, format!("no versions of `{application}/{release}`"))
        }
        Ok(v) => v,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let body = if format.format.as_deref() == Some("rundeck") {
        let newest = versions.last().map(|v| v.version);
        json!(versions
            .iter()
            .rev()
            .map(|v| json!({"name": v.version.to_string(), "value": v.version.to_string(), "selected": Some(v.version) == newest}))
            .collect::<Vec<_>>())
    } else {
        json!(versions)
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn descriptor(
    State(r): State<Arc<Registry>>,
    Path((application, release, version)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let wanted = match version.as_str() {
        "latest" => None,
        v => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return error(StatusCode::BAD_REQUEST, format!("version `{v}` is not a number or `latest`")),
        },
    };
    match r.store.descriptor(&application, &release, wanted) {
        Ok(Some((number, text, digest))) => {
            let etag = format!("\"{digest}\"");
            if crate::secrets::header(&headers, "if-none-match") == etag {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            let headers = [
                (header::CONTENT_TYPE, "application/yaml".to_string()),
                (header::ETAG, etag),
                (header::HeaderName::from_static("x-dockmaster-version"), number.to_string()),
            ];
            (StatusCode::OK, headers, text).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no version {version} of `{application}/{release}`")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

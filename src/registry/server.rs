//! The registry's HTTP API, hosted by `dockmaster serve`.
//!
//! - `PUT /fragment[?strict=true]` (bearer token): publish a fragment to
//!   applications × releases; answers the new versions, each with the
//!   references no fragment defines (warnings; `strict` refuses them
//!   with 422 and writes nothing). Bounded: the body by
//!   `registry.max_fragment_bytes` (413 before anything is decoded), the
//!   services of a fragment by `max_services` and each assembled
//!   descriptor by `max_descriptor_bytes` (422). Every refusal is logged
//!   (token name, status, reason; never the token or the fragment) and
//!   counted in `/metrics`.
//! - `GET /descriptor/application[/{application}[/{release}[/{version}]]]`:
//!   the lists (plain JSON, or `?format=rundeck` for `valuesUrl`; with
//!   `&env=ENV` the version running in ENV is selected), and a version's
//!   descriptor as YAML with `ETag: "<digest>"`. Open, unless
//!   `registry.read_tokens` is configured: then every read needs a read or
//!   publishing token, limited to its applications.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::store::{Appended, Store};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::secrets::{read_secret, same_secret};

/// (name, token, application patterns).
pub(super) type Tokens = Vec<(String, String, Vec<String>)>;

pub(super) struct Registry {
    pub(super) store: Store,
    /// The configuration `serve` runs with: its environments and audit
    /// trail say which version runs where.
    pub(super) config: Config,
    /// Publishing tokens.
    pub(super) tokens: Tokens,
    /// Read tokens; empty: reads are open.
    pub(super) read_tokens: Tokens,
    /// `registry.max_fragment_bytes`.
    pub(super) max_fragment_bytes: usize,
    /// `registry.max_services`.
    pub(super) max_services: usize,
    /// `registry.max_descriptor_bytes`.
    pub(super) max_descriptor_bytes: usize,
}

/// What a `PUT /fragment` body may add around the base64 of the largest
/// fragment: the JSON keys and the application and release names.
const ENVELOPE_BYTES: usize = 16 * 1024;

/// The length of the base64 text of `bytes` bytes (padded).
fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// The byte length the (trimmed, padded) base64 text `text` decodes to.
fn decoded_len(text: &str) -> usize {
    let padding = text.bytes().rev().take_while(|b| *b == b'=').count().min(2);
    (text.len() / 4 * 3 + (text.len() % 4) * 3 / 4).saturating_sub(padding)
}

fn read_tokens(list: &[super::Token], key: &str) -> Result<Tokens> {
    list.iter()
        .map(|t| {
            let secret = read_secret(t.token_env.as_deref(), t.token_file.as_ref(), &format!("{key} `{}`", t.name))?;
            Ok((t.name.clone(), secret, t.applications.clone()))
        })
        .collect()
}

/// The routes, when `registry.serve` is on: reads every token now, so a
/// missing one stops `serve`.
pub fn routes(config: &Config) -> Result<Option<Router>> {
    if !config.registry.serve {
        return Ok(None);
    }
    let tokens = read_tokens(&config.registry.tokens, "registry.tokens")?;
    if tokens.is_empty() {
        return Err(Error::Usage("registry.serve needs at least one entry in registry.tokens to publish with".into()));
    }
    let read_tokens = read_tokens(&config.registry.read_tokens, "registry.read_tokens")?;
    let limits = &config.registry;
    for (key, value) in [
        ("max_fragment_bytes", limits.max_fragment_bytes()),
        ("max_services", limits.max_services()),
        ("max_descriptor_bytes", limits.max_descriptor_bytes()),
    ] {
        if value == 0 {
            return Err(Error::Usage(format!("registry.{key} must be at least 1")));
        }
    }
    let store = Store::for_config(config)?;
    let state = Arc::new(Registry {
        store,
        config: config.clone(),
        tokens,
        read_tokens,
        max_fragment_bytes: limits.max_fragment_bytes(),
        max_services: limits.max_services(),
        max_descriptor_bytes: limits.max_descriptor_bytes(),
    });
    // The body is JSON carrying the fragment in base64: the cap on it is the
    // base64 of the largest fragment plus room for the rest. axum answers
    // 413 as soon as the body passes it, before anything is decoded.
    let body_limit = base64_len(state.max_fragment_bytes).saturating_add(ENVELOPE_BYTES);
    Ok(Some(
        Router::new()
            .route("/fragment", put(publish).layer(DefaultBodyLimit::max(body_limit)))
            .route("/descriptor/application", get(super::read::applications))
            .route("/descriptor/application/{application}", get(super::read::releases))
            .route("/descriptor/application/{application}/{release}", get(super::read::versions))
            .route("/descriptor/application/{application}/{release}/{version}", get(super::read::descriptor))
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

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, json!({"error": message.into()}))
}

pub(super) fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `PUT /fragment`'s query.
#[derive(Deserialize)]
struct PublishQuery {
    /// `true`: refuse (422) a publish whose versions reference what no
    /// fragment defines, instead of publishing them with warnings.
    #[serde(default)]
    strict: Option<String>,
}

fn name_ok(name: &str) -> bool {
    !name.trim().is_empty() && name.trim() == name && !name.contains('/') && !name.chars().any(char::is_control)
}

/// The bearer token of a request, if any.
pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let given = crate::secrets::header(headers, "authorization");
    let (scheme, token) = given.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The token among `tokens` that `given` is, compared in constant time.
pub(super) fn find<'a>(tokens: &'a Tokens, given: &str) -> Option<&'a (String, String, Vec<String>)> {
    tokens.iter().find(|(_, secret, _)| same_secret(given.as_bytes(), secret.as_bytes()))
}

/// Whether a token limited to `patterns` (none: all) covers `application`.
pub(super) fn covers(patterns: &[String], application: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| crate::access::glob(p, application))
}

/// A refused publish: logged with the token's name when known, the status
/// and `reason` (our words, never the token or the fragment's content),
/// counted in `/metrics`, and answered with `message`.
fn refused(status: StatusCode, token: Option<&str>, reason: &str, message: impl Into<String>) -> Response {
    refused_with(status, token, reason, json!({"error": message.into()}))
}

/// [`refused`], answering `body` (an object with `error` and more).
fn refused_with(status: StatusCode, token: Option<&str>, reason: &str, body: serde_json::Value) -> Response {
    tracing::warn!(token = token.unwrap_or("-"), status = status.as_u16(), reason, "refused a fragment");
    crate::metrics::registry_refused(status.as_u16());
    answer(status, body)
}

/// The 422 body of a refused fragment: the message, and the line (and
/// column) in the fragment when it names one.
fn at_line(message: String, line: Option<u64>, column: Option<u64>) -> serde_json::Value {
    let mut body = json!({"error": message});
    if let Some(line) = line {
        body["line"] = json!(line);
    }
    if let Some(column) = column {
        body["column"] = json!(column);
    }
    body
}

async fn publish(
    State(registry): State<Arc<Registry>>,
    headers: HeaderMap,
    query: std::result::Result<Query<PublishQuery>, QueryRejection>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let given = bearer(&headers).unwrap_or_default();
    let Some((token_name, _, patterns)) = find(&registry.tokens, &given) else {
        let reason = if given.is_empty() { "no bearer token" } else { "an unknown token" };
        return refused(StatusCode::UNAUTHORIZED, None, reason, "a valid `Authorization: Bearer <token>` is required");
    };
    let token = Some(token_name.as_str());
    let strict = match query.as_ref().map(|q| q.strict.as_deref().map(str::trim)) {
        Ok(None | Some("false" | "0" | "")) => false,
        Ok(Some("true" | "1")) => true,
        Ok(Some(other)) => {
            let message = format!("`strict` must be `true` or `false`, not `{other}`");
            return refused(StatusCode::BAD_REQUEST, token, "an invalid query", message);
        }
        Err(rejection) => {
            return refused(StatusCode::BAD_REQUEST, token, "an invalid query", rejection.body_text());
        }
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                token,
                "the body is over the fragment cap",
                format!(
                    "the body is too large: a fragment may have at most {} bytes (registry.max_fragment_bytes)",
                    registry.max_fragment_bytes
                ),
            )
        }
        Err(rejection) => {
            let status = rejection.status();
            return refused(status, token, "the body could not be read", rejection.body_text());
        }
    };
    let request: PublishBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                token,
                "the body is not the expected JSON",
                format!("the body must be {{\"fragment\": base64, \"applications\": [..], \"releases\": [..]}}: {e}"),
            )
        }
    };
    if request.applications.is_empty() || request.releases.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            token,
            "no application or no release",
            "`applications` and `releases` must each name at least one",
        );
    }
    if let Some(bad) = request.applications.iter().chain(&request.releases).find(|n| !name_ok(n)) {
        return refused(
            StatusCode::BAD_REQUEST,
            token,
            "an invalid application or release name",
            format!("`{bad}` is not a valid name (no `/`, no surrounding spaces)"),
        );
    }
    if let Some(app) = request.applications.iter().find(|app| !covers(patterns, app)) {
        return refused(
            StatusCode::FORBIDDEN,
            token,
            "an application outside the token's patterns",
            format!("token `{token_name}` may not publish to application `{app}`"),
        );
    }
    // The exact size of the fragment, from its base64 length: a fragment
    // over the cap that fits in the body's allowance is refused before it
    // is decoded too.
    let encoded = request.fragment.trim();
    let size = decoded_len(encoded);
    if size > registry.max_fragment_bytes {
        return refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            token,
            "the fragment is over the fragment cap",
            format!(
                "the fragment has {size} bytes, over the cap of {} (registry.max_fragment_bytes)",
                registry.max_fragment_bytes
            ),
        );
    }
    let text =
        match base64::engine::general_purpose::STANDARD.decode(encoded).ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(t) => t,
            None => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    token,
                    "the fragment is not base64 of UTF-8 text",
                    "`fragment` is not base64 of UTF-8 text",
                )
            }
        };
    let unprocessable =
        |reason: &str, message: String| refused(StatusCode::UNPROCESSABLE_ENTITY, token, reason, message);
    let fragment: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let (line, column) = e.location().map(|l| (l.line() as u64, l.column() as u64)).unzip();
            let message = match line.zip(column) {
                Some((l, c)) => format!("the fragment:{l}:{c}: not YAML: {e}"),
                None => format!("the fragment is not YAML: {e}"),
            };
            return refused_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                token,
                "the fragment is not YAML",
                at_line(message, line, column),
            );
        }
    };
    let services = match super::fragment_services(&fragment) {
        Ok((s, _)) if !s.is_empty() => s.keys().filter_map(|k| k.as_str().map(str::to_string)).collect::<Vec<_>>(),
        Ok(_) => return unprocessable("the fragment defines no service", "the fragment defines no service".into()),
        Err(e) => return unprocessable("the fragment is not a mapping of services", e.to_string()),
    };
    if services.len() > registry.max_services {
        return unprocessable(
            "the fragment is over the services cap",
            format!(
                "the fragment defines {} services, over the cap of {}: split it, or raise registry.max_services",
                services.len(),
                registry.max_services
            ),
        );
    }
    // The fragment alone: what it references may come from other
    // fragments, so only the assembled versions are linted.
    if let Err(e) = super::validate(&text, "the fragment") {
        let message = e.to_string();
        let (line, column) = super::location(&message, "the fragment");
        return refused_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            token,
            "the loader refused the fragment",
            at_line(message, line, column),
        );
    }
    let pairs: Vec<(String, String)> = request
        .applications
        .iter()
        .flat_map(|a| request.releases.iter().map(move |r| (a.clone(), r.clone())))
        .collect();
    let store = registry.store.clone();
    let max_descriptor = registry.max_descriptor_bytes;
    let over_cap = Arc::new(AtomicBool::new(false));
    let over = over_cap.clone();
    let publisher = token_name.clone();
    let result = tokio::task::spawn_blocking(move || {
        let assemble = |previous: Option<&str>| {
            let text = super::assemble(previous, &fragment)?;
            if text.len() > max_descriptor {
                over.store(true, Ordering::Relaxed);
                return Err(Error::Descriptor(format!(
                    "the assembled descriptor would have {} bytes, over the cap of {max_descriptor}: \
                     raise registry.max_descriptor_bytes, or start a new release",
                    text.len()
                )));
            }
            let warnings = super::validate(&text, "the assembled descriptor")?;
            Ok((text, warnings))
        };
        store.append(&pairs, &text, &services, &publisher, strict, &assemble)
    })
    .await;
    match result {
        Ok(Ok(Appended::Stored(versions))) => {
            let warnings = super::lint::located(&versions);
            tracing::info!(
                token = %token_name,
                count = versions.len(),
                warnings = warnings.len(),
                "published a fragment"
            );
            answer(StatusCode::CREATED, json!({"versions": versions, "warnings": warnings}))
        }
        Ok(Ok(Appended::Refused(versions))) => {
            let warnings = super::lint::located(&versions);
            let message = format!(
                "strict: the versions this fragment would make reference {} thing(s) no fragment defines (listed \
                 in `warnings`); nothing was published",
                warnings.len()
            );
            refused_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                token,
                "strict: references no fragment defines",
                json!({"error": message, "warnings": warnings}),
            )
        }
        Ok(Err(e @ (Error::Descriptor(_) | Error::Problems(_)))) => {
            let reason = if over_cap.load(Ordering::Relaxed) {
                "an assembled descriptor is over the descriptor cap"
            } else {
                "the loader refused an assembled descriptor"
            };
            unprocessable(reason, e.to_string())
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base64_length_of_a_fragment_gives_its_size_exactly() {
        use base64::Engine as _;
        for n in 0..40 {
            let bytes = vec![b'a'; n];
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            assert_eq!(decoded_len(&encoded), n, "{encoded}");
            assert_eq!(base64_len(n), encoded.len());
        }
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}

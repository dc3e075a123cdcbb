//! The registry's read side: the lists of applications, releases and
//! versions (plain JSON, or Rundeck's option format, with the version
//! running in an environment selected) and a version's descriptor with its
//! `ETag`; open, or limited to read tokens' applications.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::server::{answer, bearer, covers, error, find, Registry};
use super::store::VersionInfo;
use crate::error::{Error, Result};

/// Why a read was refused.
enum ReadRefused {
    /// No valid token: 401.
    NoToken,
    /// The token does not cover this application: 403.
    Outside(String),
}

impl IntoResponse for ReadRefused {
    fn into_response(self) -> Response {
        match self {
            ReadRefused::NoToken => {
                let mut response = error(
                    StatusCode::UNAUTHORIZED,
                    "reading the registry needs `Authorization: Bearer <token>` of a read or publishing token",
                );
                response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                response
            }
            ReadRefused::Outside(application) => {
                error(StatusCode::FORBIDDEN, format!("this token may not read application `{application}`"))
            }
        }
    }
}

/// Who is reading: `Ok(None)` when reads are open (no read tokens), else
/// the application patterns of the read or publishing token given (401
/// without a valid one).
fn reader<'a>(registry: &'a Registry, headers: &HeaderMap) -> std::result::Result<Option<&'a [String]>, ReadRefused> {
    if registry.read_tokens.is_empty() {
        return Ok(None);
    }
    let given = bearer(headers).unwrap_or_default();
    match find(&registry.read_tokens, &given).or_else(|| find(&registry.tokens, &given)) {
        Some((_, _, patterns)) => Ok(Some(patterns)),
        None => Err(ReadRefused::NoToken),
    }
}

/// [`reader`], and 403 when the token does not cover `application`.
fn may_read(registry: &Registry, headers: &HeaderMap, application: &str) -> std::result::Result<(), ReadRefused> {
    match reader(registry, headers)? {
        Some(patterns) if !covers(patterns, application) => Err(ReadRefused::Outside(application.to_string())),
        _ => Ok(()),
    }
}

/// Whether an `If-None-Match` field (RFC 9110 §13.1.2) matches the current
/// representation, whose strong entity tag is `etag` (quoted): `*` matches
/// any, else a comma-separated list of entity tags matches when any member
/// matches by the weak comparison (`W/"x"` and `"x"` are the same tag).
/// A malformed member (`*` inside a list included) ends the list: what
/// came before it still counts, nothing after it does.
pub fn if_none_match(field: &str, etag: &str) -> bool {
    let field = field.trim();
    if field == "*" {
        return true;
    }
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    let mut rest = field;
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            return false;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(opaque) = tag.strip_prefix('"') else { return false };
        let Some(end) = opaque.find('"') else { return false };
        if format!("\"{}\"", &opaque[..end]) == ours {
            return true;
        }
        rest = &opaque[end + 1..];
    }
}

#[derive(Deserialize)]
pub(super) struct Format {
    #[serde(default)]
    format: Option<String>,
    /// With `format=rundeck` on a release's versions: select the version
    /// running in this environment.
    #[serde(default)]
    env: Option<String>,
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

/// The applications; a token limited to some sees only those.
pub(super) async fn applications(
    State(r): State<Arc<Registry>>,
    headers: HeaderMap,
    Query(format): Query<Format>,
) -> Response {
    let patterns = match reader(&r, &headers) {
        Ok(p) => p,
        Err(refused) => return refused.into_response(),
    };
    let names = r.store.applications().map(|names| match patterns {
        Some(patterns) => names.into_iter().filter(|n| covers(patterns, n)).collect(),
        None => names,
    });
    list(names, &format)
}

pub(super) async fn releases(
    State(r): State<Arc<Registry>>,
    Path(application): Path<String>,
    headers: HeaderMap,
    Query(format): Query<Format>,
) -> Response {
    if let Err(refused) = may_read(&r, &headers, &application) {
        return refused.into_response();
    }
    // An unknown application is not found, as an unknown release is.
    match r.store.releases(&application) {
        Ok(names) if names.is_empty() => error(StatusCode::NOT_FOUND, format!("no application `{application}`")),
        other => list(other, &format),
    }
}

pub(super) async fn versions(
    State(r): State<Arc<Registry>>,
    Path((application, release)): Path<(String, String)>,
    headers: HeaderMap,
    Query(format): Query<Format>,
) -> Response {
    if let Err(refused) = may_read(&r, &headers, &application) {
        return refused.into_response();
    }
    let versions = match r.store.versions(&application, &release) {
        Ok(v) if v.is_empty() => {
            return error(StatusCode::NOT_FOUND, format!("no versions of `{application}/{release}`"))
        }
        Ok(v) => v,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let body = if format.format.as_deref() == Some("rundeck") {
        let selected = match format.env.as_deref() {
            // Without an environment: the newest, which `APP/RELEASE`
            // without a version deploys.
            None => versions.last().map(|v| v.version.to_string()),
            Some(env) => match running(&r, &application, &release, env).await {
                Ok(running) => running,
                Err(e @ Error::Usage(_)) => return error(StatusCode::BAD_REQUEST, e.to_string()),
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            },
        };
        json!(rundeck_versions(&versions, selected.as_deref()))
    } else {
        json!(versions)
    };
    answer(StatusCode::OK, body)
}

/// The version of `application/release` running in `environment`, as
/// `dockmaster options versions --env` finds it (the audit trail of the
/// target `serve` deploys to); a `Usage` error for an environment the
/// configuration does not name.
async fn running(r: &Arc<Registry>, application: &str, release: &str, environment: &str) -> Result<Option<String>> {
    r.config.check_environment(environment)?;
    let (r, application, release, environment) =
        (r.clone(), application.to_string(), release.to_string(), environment.to_string());
    tokio::task::spawn_blocking(move || {
        crate::callers::options::running_version(&r.config, &application, &release, &environment)
    })
    .await
    .map_err(|e| Error::Internal(format!("the registry task failed: {e}")))?
}

/// Rundeck's list of a release's versions: newest first, `selected` on the
/// one numbered `selected` (none when it is `None` or not among them).
fn rundeck_versions(versions: &[VersionInfo], selected: Option<&str>) -> Vec<serde_json::Value> {
    versions
        .iter()
        .rev()
        .map(|v| {
            let number = v.version.to_string();
            json!({"name": number, "value": number, "selected": Some(number.as_str()) == selected})
        })
        .collect()
}

pub(super) async fn descriptor(
    State(r): State<Arc<Registry>>,
    Path((application, release, version)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = may_read(&r, &headers, &application) {
        return refused.into_response();
    }
    // An unknown application or release is not found, whatever the version.
    match r.store.has_release(&application, &release) {
        Ok(true) => {}
        Ok(false) => return error(StatusCode::NOT_FOUND, format!("no versions of `{application}/{release}`")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
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
            let field = headers
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            if !field.is_empty() && if_none_match(&field, &etag) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"sha256:abc\"";

    #[test]
    fn if_none_match_compares_weakly_takes_lists_and_the_wildcard() {
        assert!(if_none_match("\"sha256:abc\"", TAG));
        assert!(if_none_match("W/\"sha256:abc\"", TAG), "weak comparison");
        assert!(if_none_match("  W/\"sha256:abc\"  ", TAG));
        assert!(if_none_match("\"x\", \"sha256:abc\"", TAG), "any member of a list");
        assert!(if_none_match("\"x\",W/\"sha256:abc\",\"y\"", TAG));
        assert!(if_none_match("\"x\" ,\t, \"sha256:abc\"", TAG), "empty list elements are allowed");
        assert!(if_none_match("*", TAG));
        assert!(if_none_match(" * ", TAG));
        assert!(if_none_match("\"a,b\", \"sha256:abc\"", TAG), "a comma inside a tag is part of it");

        assert!(!if_none_match("\"sha256:abd\"", TAG));
        assert!(!if_none_match("sha256:abc", TAG), "unquoted is malformed");
        assert!(!if_none_match("w/\"sha256:abc\"", TAG), "the weak prefix is case-sensitive");
        assert!(!if_none_match("\"x\", \"y\"", TAG));
        assert!(!if_none_match("\"sha256:abc", TAG), "unterminated");
        assert!(!if_none_match("\"x\", *", TAG), "`*` is not a list member");
        assert!(!if_none_match("", TAG));
        assert!(!if_none_match("\"\"", TAG));
        assert!(!if_none_match("\"sha256:abc\"x", "\"other\""));
    }
}

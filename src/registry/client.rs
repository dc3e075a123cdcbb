//! dockmaster as a registry client: named descriptors come from the
//! registry, checked against their digest and cached by ETag, and
//! `dockmaster publish` for build servers.
//!
//! The cache keeps every version fetched (`<cache>/<app>/<release>/N.yml`
//! with its ETag beside it): a registry that cannot be reached still
//! serves a version asked for by number that was fetched before; a request
//! for the latest cannot know what that is and fails (exit 5).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use super::lint::Located;
use super::store::VersionInfo;
use crate::config::Config;
use crate::descriptor::{Descriptor, DescriptorRef};
use crate::error::{Error, Result};

fn client(config: &Config) -> Result<reqwest::Client> {
    let timeout = match &config.registry.timeout {
        Some(t) => crate::config::parse_duration(t).map_err(|e| Error::Usage(format!("registry.timeout: {e}")))?,
        None => Duration::from_secs(10),
    };
    reqwest::Client::builder().timeout(timeout).build().map_err(|e| Error::Usage(format!("HTTP client: {e}")))
}

/// The read token to send, if any: `DOCKMASTER_REGISTRY_READ_TOKEN`, else
/// `registry.read_token_env` / `read_token_file` (an error when configured
/// but empty or unreadable).
fn read_token(config: &Config) -> Result<Option<String>> {
    if let Some(token) = std::env::var("DOCKMASTER_REGISTRY_READ_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        return Ok(Some(token.trim().to_string()));
    }
    let registry = &config.registry;
    if registry.read_token_env.is_none() && registry.read_token_file.is_none() {
        return Ok(None);
    }
    crate::secrets::read_secret(
        registry.read_token_env.as_deref(),
        registry.read_token_file.as_ref(),
        "registry.read_token_env / registry.read_token_file",
    )
    .map(Some)
}

/// A GET of `url`, with the read token when there is one.
fn get(config: &Config, url: reqwest::Url) -> Result<reqwest::RequestBuilder> {
    let request = client(config)?.get(url);
    Ok(match read_token(config)? {
        Some(token) => request.bearer_auth(token),
        None => request,
    })
}

fn cache_dir(config: &Config) -> PathBuf {
    config.registry.cache_dir.clone().unwrap_or_else(|| config.state_dir().join("registry-cache"))
}

/// A path segment safe on disk for any name (`TLO GE` → `TLO%20GE`).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect::<String>()
        .replace("..", "%2E%2E")
}

/// The registry URL of a descriptor.
fn url(base: &str, application: &str, release: &str, version: &str) -> Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(base.trim_end_matches('/'))
        .map_err(|e| Error::Usage(format!("registry.url `{base}`: {e}")))?;
    url.path_segments_mut()
        .map_err(|_| Error::Usage(format!("registry.url `{base}` cannot take a path")))?
        .pop_if_empty()
        .extend(["descriptor", "application", application, release, version]);
    Ok(url)
}

/// Resolves a named reference from the registry at `base`.
pub async fn resolve(config: &Config, base: &str, reference: &DescriptorRef) -> Result<Descriptor> {
    let DescriptorRef::Named { application, release, version } = reference else {
        return crate::descriptor::resolve(reference, &config.descriptor_root());
    };
    let wanted = version.clone().unwrap_or_else(|| "latest".into());
    let folder = cache_dir(config).join(segment(application)).join(segment(release));
    let cached = |v: &str| -> Option<(PathBuf, String)> {
        let path = folder.join(format!("{}.yml", segment(v)));
        let etag = std::fs::read_to_string(path.with_extension("etag")).ok()?;
        path.is_file().then_some((path, etag))
    };
    let mut request = get(config, url(base, application, release, &wanted)?)?;
    if let Some((_, etag)) = version.as_deref().and_then(cached) {
        request = request.header("If-None-Match", etag);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            if let Some((path, _)) = version.as_deref().and_then(cached) {
                tracing::warn!(error = %e.without_url(), "registry unreachable: using the cached version");
                return read(reference, version.clone(), &path);
            }
            return Err(Error::Unreachable(format!(
                "registry {base} unreachable ({}), and `{reference}` is not in the cache at {}",
                e.without_url(),
                folder.display()
            )));
        }
    };
    match response.status() {
        reqwest::StatusCode::NOT_MODIFIED => {
            let (path, _) = version
                .as_deref()
                .and_then(cached)
                .ok_or_else(|| Error::Internal("the registry answered 304 for a version that is not cached".into()))?;
            read(reference, version.clone(), &path)
        }
        reqwest::StatusCode::NOT_FOUND => {
            Err(Error::Descriptor(format!("`{reference}` is not in the registry at {base}{}", version_hint(version))))
        }
        status @ (reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN) => Err(Error::Denied(format!(
            "registry {base} answered {status} for `{reference}`: set DOCKMASTER_REGISTRY_READ_TOKEN \
             (or registry.read_token_env / read_token_file) to a token that may read it"
        ))),
        status if status.is_success() => {
            let header =
                |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let etag = header("etag");
            let number = header("x-dockmaster-version");
            let text = response
                .text()
                .await
                .map_err(|e| Error::Unreachable(format!("registry {base}: {}", e.without_url())))?;
            let digest = super::digest(&text);
            if etag.trim_matches('"') != digest {
                return Err(Error::Descriptor(format!(
                    "`{reference}` from {base} does not match its digest (ETag {etag}, content {digest}): refusing it"
                )));
            }
            let number = if number.is_empty() { wanted.clone() } else { number };
            std::fs::create_dir_all(&folder)
                .map_err(|e| Error::Usage(format!("registry cache {}: {e}", folder.display())))?;
            let path = folder.join(format!("{}.yml", segment(&number)));
            std::fs::write(&path, &text)
                .map_err(|e| Error::Usage(format!("registry cache {}: {e}", path.display())))?;
            let _ = std::fs::write(path.with_extension("etag"), &etag);
            read(reference, Some(number), &path)
        }
        // Any other refusal of the request is about what was asked (exit
        // 3), not an engine or registry that cannot be reached (exit 5).
        status if status.is_client_error() => {
            Err(Error::Descriptor(format!("registry {base} refused `{reference}` ({status}){}", version_hint(version))))
        }
        status => Err(Error::Unreachable(format!("registry {base} answered {status} for `{reference}`"))),
    }
}

/// Registry versions are numbers: a version that is not one is most often
/// a Rundeck option that was not filled in as meant.
fn version_hint(version: &Option<String>) -> String {
    match version {
        Some(v) if !v.chars().all(|c| c.is_ascii_digit()) => format!(
            "; versions are numbers and `{v}` is not one (a Rundeck job option left unexpanded, like \
             `${{option.version}}`, or the wrong option?)"
        ),
        _ => String::new(),
    }
}

/// The names the registry lists under `descriptor/application/<path…>`:
/// applications, the releases of one, or the version numbers of a release
/// (oldest first). An unknown application or release (the registry's
/// `404`) is an empty list.
pub async fn list(config: &Config, base: &str, path: &[&str]) -> Result<Vec<String>> {
    let mut url = reqwest::Url::parse(base.trim_end_matches('/'))
        .map_err(|e| Error::Usage(format!("registry.url `{base}`: {e}")))?;
    url.path_segments_mut()
        .map_err(|_| Error::Usage(format!("registry.url `{base}` cannot take a path")))?
        .pop_if_empty()
        .extend(["descriptor", "application"])
        .extend(path);
    let response = get(config, url)?
        .send()
        .await
        .map_err(|e| Error::Unreachable(format!("registry {base} unreachable: {}", e.without_url())))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if matches!(response.status(), reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN) {
        return Err(Error::Denied(format!(
            "registry {base} answered {} listing {}: set DOCKMASTER_REGISTRY_READ_TOKEN \
             (or registry.read_token_env / read_token_file) to a token that may read it",
            response.status(),
            path.join("/")
        )));
    }
    if !response.status().is_success() {
        return Err(Error::Unreachable(format!(
            "registry {base} answered {} listing {}",
            response.status(),
            path.join("/")
        )));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| Error::Unreachable(format!("registry {base}: the list is not JSON: {}", e.without_url())))?;
    let items = body.as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|item| match item {
            serde_json::Value::String(name) => Some(name.clone()),
            // Versions come as objects with their number.
            other => other.get("version").map(|v| v.to_string().trim_matches('"').to_string()),
        })
        .collect())
}

fn read(reference: &DescriptorRef, version: Option<String>, path: &Path) -> Result<Descriptor> {
    Descriptor::read(reference.clone(), version, path)
}

/// `dockmaster publish`: PUTs a fragment (with `?strict=true` when
/// `strict`); returns the new versions and what they reference but no
/// fragment defines. A strict refusal is a descriptor error listing every
/// warning, one per line.
pub async fn publish(
    config: &Config,
    base: &str,
    token: &str,
    file: &Path,
    applications: &[String],
    releases: &[String],
    strict: bool,
) -> Result<(Vec<VersionInfo>, Vec<Located>)> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Descriptor(format!("{}: cannot read the fragment: {e}", file.display())))?;
    let body = serde_json::json!({
        "fragment": base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
        "applications": applications,
        "releases": releases,
    });
    let mut url = format!("{}/fragment", base.trim_end_matches('/'));
    if strict {
        url.push_str("?strict=true");
    }
    let response = client(config)?
        .put(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| Error::Unreachable(format!("registry {base} unreachable: {}", e.without_url())))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    let message = answer["error"].as_str().unwrap_or("").to_string();
    let warnings: Vec<Located> = serde_json::from_value(answer["warnings"].clone()).unwrap_or_default();
    match status.as_u16() {
        200..=299 => serde_json::from_value(answer["versions"].clone())
            .map(|versions| (versions, warnings))
            .map_err(|e| Error::Internal(format!("unexpected answer from the registry: {e}"))),
        401 | 403 => Err(Error::Denied(format!("the registry refused the token: {message}"))),
        400 | 422 => {
            let mut text = format!("{}: {message}", file.display());
            for warning in &warnings {
                text.push_str("\n  ");
                text.push_str(&warning.line());
            }
            Err(Error::Descriptor(text))
        }
        _ => Err(Error::Unreachable(format!("registry {base} answered {status}: {message}"))),
    }
}

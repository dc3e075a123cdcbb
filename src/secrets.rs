//! Small shared pieces for secrets that reach dockmaster from outside:
//! reading them from the environment or a file, comparing them without
//! leaking timing, and reading request headers. Used by chat, hooks and
//! the registry alike.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Reads a secret from an environment variable or a file, never inline in
/// logs; `key` names the setting for errors.
pub fn read_secret(env: Option<&str>, file: Option<&PathBuf>, key: &str) -> Result<String> {
    if let Some(name) = env {
        if let Ok(value) = std::env::var(name) {
            if !value.trim().is_empty() {
                return Ok(value.trim().to_string());
            }
        }
    }
    if let Some(path) = file {
        let value = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("{key}: cannot read {}: {e}", path.display())))?;
        let value = value.lines().next().unwrap_or_default().trim().to_string();
        if !value.is_empty() {
            return Ok(value);
        }
    }
    let wanted = match (env, file) {
        (Some(name), Some(path)) => format!("set the environment variable {name}, or fill {}", path.display()),
        (Some(name), None) => format!("set the environment variable {name}"),
        (None, Some(path)) => format!("write the secret into {}", path.display()),
        (None, None) => "give it a `_env` or `_file` key".to_string(),
    };
    Err(Error::Usage(format!("{key}: no secret: {wanted}")))
}

/// A header's value as text; empty when missing.
pub fn header(headers: &axum::http::HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

//! The `registry` section: serving the compose fragment registry, and
//! resolving named descriptors from one. The registry itself is
//! `crate::registry`'s business.

use std::path::PathBuf;

use serde::Deserialize;

/// The `registry` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `dockmaster serve` hosts the registry (`PUT /fragment`,
    /// `GET /descriptor/application/...`).
    #[serde(default)]
    pub serve: bool,
    /// The registry's SQLite database; default `<state_dir>/registry.db`.
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// Who may publish: each token may be limited to some applications.
    #[serde(default)]
    pub tokens: Vec<Token>,
    /// Resolve named descriptors (`APPLICATION/RELEASE[/VERSION]`) from the
    /// registry at this URL instead of the descriptor folder.
    #[serde(default)]
    pub url: Option<String>,
    /// Where fetched descriptors are cached (by ETag); default
    /// `<state_dir>/registry-cache`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// How long a registry request may take (`10s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Who may read (`GET /descriptor/...`): when any is configured, every
    /// read needs one of these or a publishing token; none: reads are open.
    #[serde(default)]
    pub read_tokens: Vec<Token>,
    /// The client's read token: the variable holding it
    /// (`DOCKMASTER_REGISTRY_READ_TOKEN` wins over both).
    #[serde(default)]
    pub read_token_env: Option<String>,
    /// Or a file holding it.
    #[serde(default)]
    pub read_token_file: Option<PathBuf>,
    /// The largest fragment a publish may carry, in bytes (default 256 KiB);
    /// a larger body is answered 413 before it is decoded.
    #[serde(default)]
    pub max_fragment_bytes: Option<usize>,
    /// The most services one fragment may define (default 50).
    #[serde(default)]
    pub max_services: Option<usize>,
    /// The largest assembled descriptor, in bytes (default 1 MiB).
    #[serde(default)]
    pub max_descriptor_bytes: Option<usize>,
}

/// Default of `registry.max_fragment_bytes`: 256 KiB.
pub const DEFAULT_MAX_FRAGMENT_BYTES: usize = 256 * 1024;
/// Default of `registry.max_services`.
pub const DEFAULT_MAX_SERVICES: usize = 50;
/// Default of `registry.max_descriptor_bytes`: 1 MiB.
pub const DEFAULT_MAX_DESCRIPTOR_BYTES: usize = 1024 * 1024;

impl RegistryConfig {
    /// `max_fragment_bytes` in force.
    pub fn max_fragment_bytes(&self) -> usize {
        self.max_fragment_bytes.unwrap_or(DEFAULT_MAX_FRAGMENT_BYTES)
    }

    /// `max_services` in force.
    pub fn max_services(&self) -> usize {
        self.max_services.unwrap_or(DEFAULT_MAX_SERVICES)
    }

    /// `max_descriptor_bytes` in force.
    pub fn max_descriptor_bytes(&self) -> usize {
        self.max_descriptor_bytes.unwrap_or(DEFAULT_MAX_DESCRIPTOR_BYTES)
    }
}

/// A publishing (or, under `read_tokens`, reading) token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// A name for logs (never the token).
    pub name: String,
    /// The variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Or a file holding it.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Application patterns it may publish to, or read (`TLO *`); empty:
    /// all.
    #[serde(default)]
    pub applications: Vec<String>,
}

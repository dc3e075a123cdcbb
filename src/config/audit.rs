//! The `audit` section: where the audit trail is kept, and which values
//! never enter it. Keeping the trail is `crate::audit`'s business.

use serde::Deserialize;

/// The `audit` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The SQLite database. Default `<state_dir>/audit.db`. Relative paths
    /// are relative to the configuration file.
    #[serde(default)]
    pub database: Option<std::path::PathBuf>,
    /// Environment keys whose values are masked wherever dockmaster stores
    /// or shows a descriptor: a key is secret when it contains one of
    /// these, in any case. Default `PASSWORD`, `PASSWD`, `TOKEN`, `SECRET`,
    /// `KEY`, `CREDENTIAL`.
    #[serde(default)]
    pub secret_keys: Option<Vec<String>>,
}

/// The default words that make an environment key secret.
pub const DEFAULT_SECRET_KEYS: &[&str] = &["PASSWORD", "PASSWD", "TOKEN", "SECRET", "KEY", "CREDENTIAL"];

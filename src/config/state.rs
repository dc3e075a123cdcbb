//! The `state` section: where the audit trail, deploy history, approvals,
//! registry, replay cache, schedule runs and target locks are kept. The
//! backends themselves are `crate::state`'s business.

use serde::Deserialize;

/// The `state` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Where the state lives. Absent (the default): SQLite files in
    /// `state_dir` and flock files in `lock_dir`, which only processes on
    /// one host share. `postgres://user@host:port/database`: one
    /// PostgreSQL database shared by every dockmaster that names it (a
    /// Rundeck cluster, bot replicas, cron hosts). Put no password here:
    /// use `password_env`.
    #[serde(default)]
    pub url: Option<String>,
    /// The name of an environment variable holding the PostgreSQL
    /// password, so the configuration file holds no secret.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A PEM file of the CA(s) that sign the PostgreSQL server's
    /// certificate, for `?sslmode=require` in `url` (default: the system's
    /// trust store). Relative to the configuration file.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// How long to wait for PostgreSQL to answer a connection before the
    /// request is refused (exit 5), e.g. `5s`. Default 5s.
    #[serde(default)]
    pub connect_timeout: Option<String>,
}

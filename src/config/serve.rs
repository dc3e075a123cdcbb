//! The `serve` section: where `dockmaster serve` listens, and what clients
//! can hold of it. Serving is `crate::serve`'s business.

use serde::Deserialize;

/// Settings of the `serve` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on (`127.0.0.1:8080` by default). Listen on a
    /// public address only behind a proxy you trust: no endpoint here
    /// changes anything, but the option lists name your applications.
    #[serde(default)]
    pub listen: Option<String>,
    /// How long a shutdown waits for running chat commands to roll back
    /// and report (`120s`).
    #[serde(default)]
    pub shutdown_grace: Option<String>,
    /// Open connections at once (`512`); one more is accepted and closed
    /// at once. Keep it well below the process' file limit (`LimitNOFILE`).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// How long a client has to send a request's complete headers, from
    /// when it connects or got its previous answer (`10s`); then the
    /// connection is closed.
    #[serde(default)]
    pub header_timeout: Option<String>,
    /// The longest a read or write on a connection may wait (`60s`); then
    /// it is closed. Must be longer than `request_timeout`.
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// How long a handler may take to answer, reading the body included
    /// (`30s`); then `408`.
    #[serde(default)]
    pub request_timeout: Option<String>,
    /// The largest request body (`1MiB`; bytes, or `512k`, `1m`, `2MiB`);
    /// larger gets `413`.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
}

/// A byte size in the configuration: a number of bytes, or Compose's
/// notation (`512k`, `1m`, `1MiB`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    /// A number of bytes.
    Bytes(u64),
    /// Compose's notation, read when the limits are built.
    Text(String),
}

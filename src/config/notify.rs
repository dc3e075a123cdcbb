//! The `notify` section's webhooks: where reports are posted besides the
//! caller's own output. Sending them is `crate::notify`'s business.

use std::path::PathBuf;

use serde::Deserialize;

/// The platforms a webhook can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookKind {
    /// Slack incoming webhook: `text` plus colour-coded attachments.
    Slack,
    /// Mattermost incoming webhook: Slack-style attachments.
    Mattermost,
    /// Discord webhook: one embed (`?wait=true` is added).
    Discord,
    /// The JSON report (`--output json`), for tools.
    Json,
}

/// When a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// Every outcome.
    Always,
    /// Only when the deploy failed (or rolled back).
    Failure,
}

/// One configured webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// A name for messages.
    pub name: String,
    /// The platform.
    pub kind: WebhookKind,
    /// The URL in the environment variable of this name (preferred: URLs
    /// carry tokens).
    #[serde(default)]
    pub url_env: Option<String>,
    /// The URL in this file (first line).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The URL inline: only for URLs without secrets (a local relay).
    #[serde(default)]
    pub url: Option<String>,
    /// `always` (default) or `failure`.
    #[serde(default = "always")]
    pub when: When,
}

fn always() -> When {
    When::Always
}

//! Webhook reports: every deploy, from any way in, can also post its report
//! to incoming webhooks (Slack, Discord, Mattermost, or generic JSON).
//!
//! The report is what cron and schedules otherwise lack: somebody sees it.
//! A webhook that fails is retried with back-off and logged, and it never
//! changes the deploy's verdict or exit code. Webhook URLs carry tokens, so
//! they come from the environment or a file, and messages show only the
//! host.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::pipeline::Progress;
use crate::report;
use crate::request::{Action, Outcome};

pub use crate::config::notify::{Webhook, WebhookKind, When};

impl Webhook {
    /// The URL, from wherever the config says it is.
    pub fn resolve_url(&self) -> Result<String> {
        let url = if let Some(var) = &self.url_env {
            std::env::var(var).map_err(|_| {
                Error::Usage(format!("webhook `{}`: the environment variable {var} (url_env) is not set", self.name))
            })?
        } else if let Some(path) = &self.url_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Usage(format!("webhook `{}`: cannot read url_file {}: {e}", self.name, path.display()))
            })?;
            text.lines().next().unwrap_or_default().trim().to_string()
        } else if let Some(url) = &self.url {
            url.clone()
        } else {
            return Err(Error::Usage(format!("webhook `{}`: set url_env, url_file or url", self.name)));
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::Usage(format!("webhook `{}`: the URL must start with https:// or http://", self.name)));
        }
        Ok(url)
    }
}

/// The body a webhook gets for an outcome.
pub fn payload(kind: WebhookKind, outcome: &Outcome) -> serde_json::Value {
    match kind {
        WebhookKind::Slack | WebhookKind::Mattermost => report::chat::slack_message(outcome, None),
        WebhookKind::Discord => serde_json::json!({
            "username": "dockmaster",
            "allowed_mentions": {"parse": []},
            "embeds": [report::chat::discord_embed(outcome, None)],
        }),
        WebhookKind::Json => serde_json::from_str(&report::json::render(outcome)).unwrap_or_default(),
    }
}

/// `https://hooks.slack.com/services/T/B/secret` → `https://hooks.slack.com/…`.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}/…", rest.split('/').next().unwrap_or_default()),
        None => "(invalid URL)".into(),
    }
}

/// Whether an outcome failed, for `when: failure`.
fn failed(outcome: &Outcome) -> bool {
    outcome.exit_code() != 0 || outcome.rollback.is_some()
}

/// Posts the outcome to every configured webhook that wants it, retrying
/// each up to 3 times with back-off. Failures are reported as progress
/// warnings and change nothing else.
pub async fn send_all(webhooks: &[Webhook], outcome: &Outcome, progress: &dyn Progress) {
    if webhooks.is_empty() || !matches!(outcome.action, Action::Deploy | Action::Rollback | Action::Down) {
        return;
    }
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            progress.step(&format!("warning: webhooks not sent: cannot build an HTTP client: {e}"));
            return;
        }
    };
    let sends = webhooks.iter().filter(|w| w.when == When::Always || failed(outcome)).map(|hook| {
        let client = client.clone();
        async move {
            let url = match hook.resolve_url() {
                Ok(u) => u,
                Err(e) => return progress.step(&format!("warning: {e}")),
            };
            let url = if hook.kind == WebhookKind::Discord && !url.contains("wait=") {
                format!("{url}{}wait=true", if url.contains('?') { '&' } else { '?' })
            } else {
                url
            };
            let body = payload(hook.kind, outcome);
            let mut delay = Duration::from_millis(500);
            for attempt in 1..=3 {
                let result = client.post(&url).json(&body).send().await;
                let why = match result {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) => format!("HTTP {}", r.status()),
                    Err(e) => format!("{}", e.without_url()),
                };
                progress.step(&format!(
                    "warning: webhook `{}` ({}) attempt {attempt}/3 failed: {why}",
                    hook.name,
                    redact(&url)
                ));
                if attempt < 3 {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    });
    futures_util::future::join_all(sends).await;
}

/// Posts a request that ended in an error before it had an outcome (an
/// invalid descriptor, an unreachable engine) as a plain failure message.
pub async fn send_error(
    webhooks: &[Webhook],
    request: &crate::request::Request,
    target: Option<&str>,
    error: &Error,
    progress: &dyn Progress,
) {
    let summary = crate::request::DescriptorSummary {
        reference: request.descriptor.to_string(),
        version: None,
        source: request.descriptor.to_string(),
        digest: String::new(),
    };
    // The target the pipeline decided, when it got that far; else the one
    // it would have decided without loading the descriptor.
    let target = match target {
        Some(t) => t.to_string(),
        None => crate::target::of(&request.descriptor, &request.environment, request.project.as_deref(), None)
            .unwrap_or_else(|_| request.descriptor.default_project()),
    };
    let outcome = Outcome {
        error: Some(crate::request::OutcomeError::from(error)),
        ..Outcome::new(target, request.action, summary)
    };
    send_all(webhooks, &outcome, progress).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secret_path_in_messages() {
        assert_eq!(redact("https://hooks.slack.com/services/T0/B0/s3cr3t"), "https://hooks.slack.com/…");
        assert_eq!(redact("nonsense"), "(invalid URL)");
    }

    #[test]
    fn a_webhook_needs_a_url_from_somewhere_and_http() {
        let hook = Webhook {
            name: "ops".into(),
            kind: WebhookKind::Slack,
            url_env: None,
            url_file: None,
            url: Some("ftp://x".into()),
            when: When::Always,
        };
        assert!(hook.resolve_url().unwrap_err().to_string().contains("https://"));
        let hook = Webhook { url: None, url_env: Some("DOCKMASTER_TEST_SURELY_UNSET".into()), ..hook };
        assert!(hook.resolve_url().unwrap_err().to_string().contains("DOCKMASTER_TEST_SURELY_UNSET"));
    }
}

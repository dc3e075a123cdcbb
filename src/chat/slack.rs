//! Slack and Mattermost slash commands: one endpoint each.
//!
//! Slack signs each request (`X-Slack-Signature`: HMAC-SHA256 of
//! `v0:<timestamp>:<raw body>` with the app's signing secret); requests
//! older than five minutes, badly signed or seen before are refused with
//! 401 and nothing runs. Mattermost sends a per-command token instead,
//! compared in constant time. Both get an ephemeral acknowledgement at
//! once, and the report later at `response_url`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{command, same_secret, Chat, Reply, Speaker};

pub use crate::config::chat::{MattermostConfig, SlackConfig};

/// Checks a Slack signature: fresh timestamp, valid HMAC, never seen.
pub fn verify_slack(chat: &Chat, secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), String> {
    let timestamp = super::fresh_timestamp(headers, "x-slack-request-timestamp", now)?;
    let signature = super::header(headers, "x-slack-signature");
    let given = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| "missing or bad X-Slack-Signature".to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| "bad signature".to_string())?;
    if !chat.first_sighting(&crate::replay::ReplayCache::key("slack", &[timestamp.as_bytes(), body, &given])) {
        return Err("replayed request".into());
    }
    Ok(())
}

/// `POST /chat/slack`.
pub async fn slack(State(chat): State<Arc<Chat>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = chat.secrets.slack.clone() else { return StatusCode::NOT_FOUND.into_response() };
    if let Err(why) = verify_slack(&chat, &secret, &headers, &body, unix_now()) {
        tracing::warn!(%why, "refused a Slack request");
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    accept(chat, "slack", &body).await
}

/// `POST /chat/mattermost` (or GET, as Mattermost can be set to send).
pub async fn mattermost(
    State(chat): State<Arc<Chat>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(token) = chat.secrets.mattermost.clone() else { return StatusCode::NOT_FOUND.into_response() };
    let body = if body.is_empty() { Bytes::from(query.unwrap_or_default()) } else { body };
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token ").map(str::to_string))
        .or_else(|| form.get("token").cloned())
        .unwrap_or_default();
    if !same_secret(given.trim().as_bytes(), token.as_bytes()) {
        tracing::warn!("refused a Mattermost request with a wrong token");
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    accept(chat, "mattermost", &body).await
}

/// Parses the form, acknowledges, and runs the command in the background.
async fn accept(chat: Arc<Chat>, platform: &'static str, body: &[u8]) -> Response {
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(body) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not a form: {e}")).into_response(),
    };
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let speaker = Speaker {
        platform,
        user_id: field("user_id"),
        user_name: field("user_name"),
        channel_id: field("channel_id"),
        channel_name: field("channel_name"),
    };
    if let Some(reason) = chat.shutdown.reason() {
        return ephemeral(&format!("dockmaster is shutting down ({reason}); try again in a minute"));
    }
    let parsed = match command::parse(&field("text"), &chat.environments()) {
        Ok(c) => c,
        Err(e) => return ephemeral(&format!("{e}\nTry `{} help`.", field("command"))),
    };
    let response_url = field("response_url");
    if !(response_url.starts_with("https://") || response_url.starts_with("http://")) {
        return (StatusCode::BAD_REQUEST, "no response_url").into_response();
    }
    let ack = match parsed.verb {
        command::Verb::Help | command::Verb::History => "Looking that up…".to_string(),
        verb => format!("Working on `{} {}` in `{}`…", verb.as_str(), parsed.reference, parsed.environment),
    };
    let worker = chat.clone();
    if platform == "slack" && chat.secrets.slack_bot.is_some() {
        // App mode: a message in the channel with progress and buttons.
        chat.spawn(super::slack_app::run(worker, speaker, parsed, response_url, None, false)).await;
        return ephemeral(&ack);
    }
    chat.spawn(async move {
        let reply = worker.run(&speaker, &parsed).await;
        let body = match platform {
            "mattermost" => {
                let (reply, buttons) = super::buttons::finish(&worker.config, reply, &parsed, false);
                super::mattermost::message(&worker, &reply, &buttons, &response_url)
            }
            _ => message(&reply),
        };
        deliver(&worker.http, &response_url, &body).await;
    })
    .await;
    ephemeral(&ack)
}

/// The follow-up message for `response_url`: outcomes in the channel,
/// naming who asked; help, refusals and errors only to the requester.
pub fn message(reply: &Reply) -> Value {
    match reply {
        Reply::Outcome(outcome, asker) => {
            let mut body = crate::report::chat::slack_message(outcome, None);
            body["attachments"][0]["author_name"] = json!(crate::report::chat::fit(asker, 250));
            body["response_type"] = json!("in_channel");
            body["replace_original"] = json!(false);
            body
        }
        Reply::Text { text, private, .. } => json!({
            "response_type": if *private { "ephemeral" } else { "in_channel" },
            "replace_original": false,
            "text": crate::report::chat::fit(text, 3000),
        }),
    }
}

/// POSTs to `response_url`, retrying with back-off; failures are logged.
pub(super) async fn deliver(http: &reqwest::Client, url: &str, body: &Value) {
    let mut delay = std::time::Duration::from_millis(500);
    for attempt in 1..=3 {
        match http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(status = %r.status(), attempt, "response_url refused the report"),
            Err(e) => tracing::warn!(error = %e.without_url(), attempt, "response_url unreachable"),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

fn ephemeral(text: &str) -> Response {
    let body = json!({"response_type": "ephemeral", "text": text}).to_string();
    (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    crate::lock::now_secs() as i64
}

//! Mattermost's interactive message buttons.
//!
//! Mattermost does not sign what it sends to an integration. What it does
//! keep from its users is each button's `integration.context` (clients
//! never see it), so dockmaster puts the command a button stands for in
//! the context with an HMAC over it, keyed with the slash command's token,
//! and refuses a press whose context it did not write, whose time is over
//! (the `response_url` it answers at lives 30 minutes), or whose
//! `trigger_id` it has seen. The press then runs as the Mattermost user who
//! pressed (as Mattermost tells it), through identity, access and audit;
//! its report goes to the channel through the original command's
//! `response_url`, a refusal to the presser alone.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::buttons::{Button, Style};
use super::{Chat, Reply, Speaker};

/// How long a button works: Mattermost's `response_url` lives 30 minutes.
const BUTTON_LIFETIME: Duration = Duration::from_secs(29 * 60);

fn mac(token: &str, parts: &[&str]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(token.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The buttons of a report as Mattermost attachment actions, when
/// `chat.mattermost.actions_url` is set.
pub fn actions(chat: &Chat, buttons: &[Button], response_url: &str) -> Vec<Value> {
    let (Some(config), Some(token)) = (&chat.config.chat.mattermost, &chat.secrets.mattermost) else {
        return Vec::new();
    };
    let Some(base) = &config.actions_url else { return Vec::new() };
    let url = format!("{}/chat/mattermost/actions", base.trim_end_matches('/'));
    let issued = crate::lock::now_secs().to_string();
    buttons
        .iter()
        .map(|b| {
            let sealed = mac(token, &[b.verb, &b.reference, &b.environment, response_url, &issued]);
            json!({
                "id": b.verb,
                "name": b.label,
                "type": "button",
                "style": match b.style { Style::Danger => "danger", Style::Primary => "primary", Style::Plain => "default" },
                "integration": {"url": url, "context": {
                    "verb": b.verb, "ref": b.reference, "env": b.environment,
                    "response_url": response_url, "issued": issued, "mac": sealed,
                }},
            })
        })
        .collect()
}

/// A reply for Mattermost's `response_url`: Slack's message format, with
/// the report's buttons as interactive actions when Mattermost can reach
/// them back.
pub fn message(chat: &Chat, reply: &Reply, buttons: &[Button], response_url: &str) -> Value {
    let mut body = super::slack::message(reply);
    let drawn = actions(chat, buttons, response_url);
    if !drawn.is_empty() {
        body["attachments"][0]["actions"] = json!(drawn);
    }
    body
}

fn answer(text: &str) -> Response {
    let body = json!({"ephemeral_text": text}).to_string();
    (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /chat/mattermost/actions`: a button pressed on a report.
pub async fn press(State(chat): State<Arc<Chat>>, body: Bytes) -> Response {
    let Some(token) = chat.secrets.mattermost.clone() else { return StatusCode::NOT_FOUND.into_response() };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let context = &request["context"];
    let field = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let (verb, reference, environment, response_url, issued) = (
        field(context, "verb"),
        field(context, "ref"),
        field(context, "env"),
        field(context, "response_url"),
        field(context, "issued"),
    );
    let expected = mac(&token, &[&verb, &reference, &environment, &response_url, &issued]);
    if !super::same_secret(field(context, "mac").as_bytes(), expected.as_bytes()) || expected.is_empty() {
        tracing::warn!("refused a Mattermost button press whose context dockmaster did not write");
        return (StatusCode::UNAUTHORIZED, "not a dockmaster button").into_response();
    }
    let age = crate::lock::now_secs().saturating_sub(issued.parse().unwrap_or(0));
    if age > BUTTON_LIFETIME.as_secs() {
        return answer("This button has expired (Mattermost keeps a command's answer open for 30 minutes); type the command instead.");
    }
    let trigger = field(&request, "trigger_id");
    let press_key = if trigger.is_empty() { String::from_utf8_lossy(&body).into_owned() } else { trigger };
    if !chat.first_sighting(&crate::replay::ReplayCache::key("mattermost-press", &[press_key.as_bytes()])) {
        return (StatusCode::UNAUTHORIZED, "replayed press").into_response();
    }
    let Some((command, logs)) = super::buttons::pressed(&verb, &reference, &environment) else {
        return (StatusCode::BAD_REQUEST, "not a dockmaster button").into_response();
    };
    if let Some(reason) = chat.shutdown.reason() {
        return answer(&format!("dockmaster is shutting down ({reason}); try again in a minute"));
    }
    let speaker = Speaker {
        platform: "mattermost",
        user_id: field(&request, "user_id"),
        user_name: field(&request, "user_name"),
        channel_id: field(&request, "channel_id"),
        channel_name: field(&request, "channel_name"),
    };
    let ack = format!("Working on `{} {}` in `{}`…", command.verb.as_str(), command.reference, command.environment);
    let worker = chat.clone();
    chat.spawn(async move {
        let reply = worker.run(&speaker, &command).await;
        let (reply, buttons) = super::buttons::finish(&worker.config, reply, &command, logs);
        let body = message(&worker, &reply, &buttons, &response_url);
        super::slack::deliver(&worker.http, &response_url, &body).await;
    })
    .await;
    answer(&ack)
}

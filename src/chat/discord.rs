//! Discord through its HTTP interactions endpoint.
//!
//! Discord POSTs each slash command, signed with Ed25519 over timestamp +
//! body with the application's key; a bad signature is answered 401 (and
//! Discord checks that it is). A PING is answered with a PONG, a command
//! with a deferred response at once, then the report replaces it through
//! the interaction's webhook as an embed. An interaction token lives 15
//! minutes: a deploy that outlives it posts its report to the channel as
//! a normal message, with the bot token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{json, Value};

use super::buttons::{Button, Style};
use super::command::{Command, Verb};
use super::{Chat, Reply, Speaker};

pub use crate::config::chat::DiscordConfig;

/// How long an interaction token may be used for follow-ups, with a
/// margin for the request itself.
const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60 + 30);

/// Parses the configured public key.
pub fn public_key(config: &DiscordConfig) -> crate::error::Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(config.public_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| crate::error::Error::Usage("chat.discord.public_key: not 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| crate::error::Error::Usage(format!("chat.discord.public_key: not an Ed25519 key: {e}")))
}

/// Checks an interaction's signature, freshness and novelty.
pub fn verify(chat: &Chat, key: &VerifyingKey, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), String> {
    let timestamp = super::fresh_timestamp(headers, "x-signature-timestamp", now)?;
    let signature_hex = super::header(headers, "x-signature-ed25519");
    let signature: [u8; 64] = hex::decode(&signature_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "missing or bad X-Signature-Ed25519".to_string())?;
    let mut message = timestamp.clone().into_bytes();
    message.extend_from_slice(body);
    key.verify_strict(&message, &Signature::from_bytes(&signature)).map_err(|_| "bad signature".to_string())?;
    if !chat.first_sighting(&crate::replay::ReplayCache::key("discord", &[timestamp.as_bytes(), body, &signature])) {
        return Err("replayed request".into());
    }
    Ok(())
}

/// `POST /chat/discord`.
pub async fn interactions(State(chat): State<Arc<Chat>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(key) = chat.secrets.discord_key else { return StatusCode::NOT_FOUND.into_response() };
    if let Err(why) = verify(&chat, &key, &headers, &body, super::slack::unix_now()) {
        tracing::warn!(%why, "refused a Discord interaction");
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    let Ok(interaction) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    match respond(chat, interaction).await {
        Some(answer) => json_response(answer),
        None => (StatusCode::BAD_REQUEST, "unsupported interaction type").into_response(),
    }
}

/// The immediate answer to an interaction, however it arrived (the HTTP
/// endpoint, or the gateway): a PONG, autocomplete choices, or a deferred
/// response while the command runs in the background and later edits it.
/// `None` for interaction types dockmaster does not handle.
pub async fn respond(chat: Arc<Chat>, interaction: Value) -> Option<Value> {
    match interaction["type"].as_u64() {
        Some(1) => Some(json!({"type": 1})),
        Some(2) => Some(command(chat, interaction).await),
        Some(3) => Some(component(chat, interaction).await),
        Some(4) => Some(json!({"type": 8, "data": {"choices": autocomplete(&chat, &interaction).await}})),
        _ => None,
    }
}

/// Who sent an interaction, and where: in a server the user is under
/// `member`, in a direct message under `user`.
fn speaker_of(interaction: &Value) -> Speaker {
    let user =
        if interaction["member"]["user"].is_object() { &interaction["member"]["user"] } else { &interaction["user"] };
    Speaker {
        platform: "discord",
        user_id: user["id"].as_str().unwrap_or_default().to_string(),
        user_name: user["username"].as_str().unwrap_or_default().to_string(),
        channel_id: interaction["channel_id"].as_str().unwrap_or_default().to_string(),
        channel_name: interaction["channel"]["name"].as_str().unwrap_or_default().to_string(),
    }
}

/// A slash command: defer at once, run, then edit the deferred answer.
async fn command(chat: Arc<Chat>, interaction: Value) -> Value {
    let received = Instant::now();
    let speaker = speaker_of(&interaction);
    let data = &interaction["data"];
    let option = |name: &str| {
        data["options"].as_array().and_then(|opts| {
            opts.iter().find(|o| o["name"] == name).and_then(|o| o["value"].as_str()).map(|s| s.trim().to_string())
        })
    };
    let name = data["name"].as_str().unwrap_or_default();
    let text = [Some(name.to_string()), option("ref").map(|r| format!("\"{r}\"")), option("env"), option("version")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(reason) = chat.shutdown.reason() {
        let content = format!("dockmaster is shutting down ({reason}); try again in a minute");
        return json!({"type": 4, "data": {"content": content, "flags": 64}});
    }
    let parsed: Command = match super::command::parse(&text, &chat.environments()) {
        Ok(c) => c,
        Err(e) => return json!({"type": 4, "data": {"content": e, "flags": 64}}),
    };
    let token = interaction["token"].as_str().unwrap_or_default().to_string();
    // Help and refusals are only for the asker; reports for the channel.
    let flags = if parsed.verb == Verb::Help { 64 } else { 0 };
    let worker = chat.clone();
    chat.spawn(async move {
        let reply = worker.run(&speaker, &parsed).await;
        let (reply, buttons) = super::buttons::finish(&worker.config, reply, &parsed, false);
        deliver(&worker, &token, &speaker.channel_id, received, flags == 64, &reply, &buttons).await;
    })
    .await;
    json!({"type": 5, "data": {"flags": flags}})
}

/// The `custom_id` of a button: `dockmaster:<verb>:<env>:<reference>`
/// (Discord allows 100 characters; a longer one is not drawn).
fn custom_id(b: &Button) -> Option<String> {
    let id = format!("dockmaster:{}:{}:{}", b.verb, b.environment, b.reference);
    (id.chars().count() <= 100).then_some(id)
}

/// A button pressed on one of dockmaster's messages (a message component
/// interaction, signed like every interaction): the command it stands for
/// runs as the presser, through identity, access and audit. Its answer
/// goes to the channel as a new message; a refusal, and **Show logs**, to
/// the presser alone.
async fn component(chat: Arc<Chat>, interaction: Value) -> Value {
    let received = Instant::now();
    let id = interaction["data"]["custom_id"].as_str().unwrap_or_default();
    let mut parts = id.splitn(4, ':');
    let (Some("dockmaster"), Some(verb), Some(environment), Some(reference)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return json!({"type": 4, "data": {"content": "not a dockmaster button", "flags": 64}});
    };
    let Some((command, logs)) = super::buttons::pressed(verb, reference, environment) else {
        return json!({"type": 4, "data": {"content": "not a dockmaster button", "flags": 64}});
    };
    if let Some(reason) = chat.shutdown.reason() {
        let content = format!("dockmaster is shutting down ({reason}); try again in a minute");
        return json!({"type": 4, "data": {"content": content, "flags": 64}});
    }
    let speaker = speaker_of(&interaction);
    let token = interaction["token"].as_str().unwrap_or_default().to_string();
    let flags = if logs { 64 } else { 0 };
    let worker = chat.clone();
    chat.spawn(async move {
        let reply = worker.run(&speaker, &command).await;
        let (reply, buttons) = super::buttons::finish(&worker.config, reply, &command, logs);
        deliver(&worker, &token, &speaker.channel_id, received, flags == 64, &reply, &buttons).await;
    })
    .await;
    json!({"type": 5, "data": {"flags": flags}})
}

/// The message for a reply: an embed for a report (with its buttons, as
/// message components), text otherwise.
pub fn message(reply: &Reply, buttons: &[Button]) -> Value {
    match reply {
        Reply::Outcome(outcome, asker) => {
            let mut embed = crate::report::chat::discord_embed(outcome, None);
            embed["author"] = json!({"name": crate::report::chat::fit(asker, 256)});
            let mut body = json!({"embeds": [embed], "allowed_mentions": {"parse": []}});
            let drawn: Vec<Value> = buttons
                .iter()
                .filter_map(|b| {
                    let style = match b.style {
                        Style::Danger => 4,
                        Style::Primary => 1,
                        Style::Plain => 2,
                    };
                    Some(json!({"type": 2, "style": style, "label": b.label, "custom_id": custom_id(b)?}))
                })
                .collect();
            if !drawn.is_empty() {
                body["components"] = json!([{"type": 1, "components": drawn}]);
            }
            body
        }
        Reply::Text { text, .. } => json!({
            "content": crate::report::chat::fit(text, 2000),
            "allowed_mentions": {"parse": []},
        }),
    }
}

/// Edits the deferred answer; once the interaction token has expired, or
/// when Discord answers that it is gone or refused (404, 401, 403), posts
/// to the channel with the bot token instead, so no report is lost.
///
/// A private reply (help, a refusal, an error) to a command whose
/// deferred answer the channel sees is never edited into it: the deferred
/// answer is deleted and the reply sent as an ephemeral follow-up, which
/// only the asker sees. When the token is gone it is dropped (and logged),
/// never posted to the channel.
async fn deliver(
    chat: &Chat,
    token: &str,
    channel: &str,
    received: Instant,
    deferred_private: bool,
    reply: &Reply,
    buttons: &[Button],
) {
    let Some(config) = &chat.config.chat.discord else { return };
    let mut body = message(reply, buttons);
    let api = config.api_base.trim_end_matches('/');
    let webhook = format!("{api}/webhooks/{}/{token}", config.application_id);
    if reply.is_private() && !deferred_private {
        if received.elapsed() >= TOKEN_LIFETIME {
            return tracing::warn!("a private Discord reply outlived its interaction token; it was not sent");
        }
        let _ = chat.http.delete(format!("{webhook}/messages/@original")).send().await;
        body["flags"] = json!(64);
        if send(chat.http.post(&webhook), &body, "the asker").await != Sent::Done {
            tracing::warn!("a private Discord reply could not be sent; it is never posted to the channel");
        }
        return;
    }
    if received.elapsed() < TOKEN_LIFETIME {
        let edit = chat.http.patch(format!("{webhook}/messages/@original"));
        if send(edit, &body, "the interaction webhook").await != Sent::TokenGone {
            return;
        }
        tracing::warn!("the interaction token is gone or refused: posting the report with the bot token");
    }
    if deferred_private {
        return tracing::warn!(
            "a private Discord reply could not use its interaction; it is never posted to the channel"
        );
    }
    let Some(bot) = &chat.secrets.discord_bot else {
        tracing::error!("a Discord report could not use its interaction and no bot token is configured to post it");
        return;
    };
    let post =
        chat.http.post(format!("{api}/channels/{channel}/messages")).header("Authorization", format!("Bot {bot}"));
    send(post, &body, "the channel").await;
}

/// How a report's delivery ended.
#[derive(PartialEq)]
enum Sent {
    Done,
    /// Discord says the interaction token is unknown or not allowed: only
    /// the bot can still post.
    TokenGone,
    Failed,
}

/// Sends a report, retrying (three tries, backing off) what may pass later.
async fn send(request: reqwest::RequestBuilder, body: &Value, to: &str) -> Sent {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=3 {
        let Some(attempt_request) = request.try_clone() else { return Sent::Failed };
        match attempt_request.json(body).send().await {
            Ok(r) if r.status().is_success() => return Sent::Done,
            Ok(r) if matches!(r.status().as_u16(), 401 | 403 | 404) => {
                tracing::warn!(status = %r.status(), "Discord refused the report to {to}");
                return Sent::TokenGone;
            }
            Ok(r) => tracing::warn!(status = %r.status(), attempt, "Discord refused the report to {to}"),
            Err(e) => tracing::warn!(error = %e.without_url(), attempt, "Discord unreachable for {to}"),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    Sent::Failed
}

/// Descriptor references (`APPLICATION/RELEASE`) containing what is
/// typed, among those the asker may use the command on: a user nobody
/// mapped, or one without rights, is shown nothing.
async fn autocomplete(chat: &Chat, interaction: &Value) -> Vec<Value> {
    let options = interaction["data"]["options"].as_array().cloned().unwrap_or_default();
    let typed = options
        .iter()
        .find(|o| o["focused"] == true)
        .and_then(|o| o["value"].as_str())
        .unwrap_or_default()
        .to_lowercase();
    let environment = options
        .iter()
        .find(|o| o["name"] == "env")
        .and_then(|o| o["value"].as_str())
        .filter(|e| !e.trim().is_empty())
        .unwrap_or("default")
        .to_string();
    let verb = interaction["data"]["name"].as_str().unwrap_or_default().to_string();
    let root = chat.config.descriptor_root();
    let mut candidates = Vec::new();
    for app in crate::descriptor::folder::applications(&root).unwrap_or_default() {
        for release in crate::descriptor::folder::releases(&root, &app).unwrap_or_default() {
            let reference = format!("{app}/{release}");
            if reference.to_lowercase().contains(&typed) {
                candidates.push(reference);
            }
        }
    }
    let speaker = speaker_of(interaction);
    let visible = chat.visible_references(&speaker, &verb, &environment, candidates).await;
    visible
        .into_iter()
        .take(25)
        .map(|reference| json!({"name": crate::report::chat::fit(&reference, 100), "value": reference}))
        .collect()
}

/// The slash commands to register (`PUT /applications/{id}/commands`, or
/// per guild), printed by `dockmaster chat discord-commands`.
pub fn commands() -> Value {
    let reference = json!({"name": "ref", "description": "APPLICATION/RELEASE[/VERSION]", "type": 3, "required": true, "autocomplete": true});
    let env = json!({"name": "env", "description": "environment (default: default)", "type": 3, "required": false});
    let version = json!({"name": "version", "description": "version", "type": 3, "required": false});
    let mut list = Vec::new();
    for verb in Verb::ALL {
        let options = match verb {
            Verb::Help => json!([]),
            Verb::Rollback | Verb::Approve => json!([reference, env, version]),
            _ => json!([reference, env]),
        };
        list.push(json!({"name": verb.as_str(), "description": verb.usage(), "type": 1, "options": options}));
    }
    Value::Array(list)
}

/// Registers [`commands`] per configured guild, or globally, with the
/// bot token (a bulk overwrite: commands we no longer have disappear).
/// Returns where they were registered.
pub async fn register(chat: &Chat) -> crate::error::Result<Vec<String>> {
    use crate::error::Error;
    let (Some(config), Some(bot)) = (&chat.config.chat.discord, &chat.secrets.discord_bot) else {
        return Err(Error::Usage("registering Discord commands needs chat.discord with a bot token".into()));
    };
    let api = config.api_base.trim_end_matches('/');
    let app = &config.application_id;
    let urls: Vec<String> = if config.guilds.is_empty() {
        vec![format!("{api}/applications/{app}/commands")]
    } else {
        config.guilds.iter().map(|g| format!("{api}/applications/{app}/guilds/{g}/commands")).collect()
    };
    let mut done = Vec::new();
    for url in urls {
        let response = chat
            .http
            .put(&url)
            .header("Authorization", format!("Bot {bot}"))
            .json(&commands())
            .send()
            .await
            .map_err(|e| Error::Unreachable(format!("Discord unreachable: {}", e.without_url())))?;
        if !response.status().is_success() {
            return Err(Error::Usage(format!("Discord refused the commands: HTTP {}", response.status())));
        }
        done.push(url.trim_start_matches(api).to_string());
    }
    Ok(done)
}

fn json_response(value: Value) -> Response {
    (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

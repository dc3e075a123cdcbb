//! Slack in app mode (`chat.slack.bot_token_env`): a command gets one
//! message in the channel that shows where it is (planned, applying N/M,
//! watching, then the verdict) and ends with buttons; the report goes in a
//! thread under it.
//!
//! The message appears only once the request is authorized and planned,
//! so a refusal is never public: refusals, help and errors still go to the
//! asker alone, through the command's `response_url`. Buttons (**Roll
//! back** on a failure, **Approve** on a plan that needs an approval,
//! **Show logs** on a report) come back signed to `POST
//! /chat/slack/actions` and run as typed commands do: identity, access and
//! audit through the pipeline, with the answer in the message's thread, or
//! privately when it is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::buttons::{finish, pressed, Button, Style};
use super::command::Command;
use super::{Chat, Reply, Speaker};
use crate::pipeline::Phase;
use crate::report::chat::{fit, headline};

/// Slack's Web API with the bot token.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn of(chat: &Chat) -> Option<Api> {
        let config = chat.config.chat.slack.as_ref()?;
        Some(Api {
            http: chat.http.clone(),
            base: config.api_base.trim_end_matches('/').to_string(),
            token: chat.secrets.slack_bot.clone()?,
        })
    }

    /// Calls `method` with `body`; Slack answers 200 with `ok: false` for
    /// its own refusals, which are errors here too.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("Slack unreachable: {}", e.without_url()))?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(|e| format!("{method}: HTTP {status}: {e}"))?;
        if answer["ok"] != true {
            return Err(format!("{method}: {}", answer["error"].as_str().unwrap_or("refused")));
        }
        Ok(answer)
    }

    /// Posts a message (in `thread` when given); its `ts`.
    async fn post(&self, channel: &str, thread: Option<&str>, mut body: Value) -> Result<String, String> {
        body["channel"] = json!(channel);
        if let Some(ts) = thread {
            body["thread_ts"] = json!(ts);
        }
        let answer = self.call("chat.postMessage", &body).await?;
        Ok(answer["ts"].as_str().unwrap_or_default().to_string())
    }

    async fn update(&self, channel: &str, ts: &str, mut body: Value) -> Result<(), String> {
        body["channel"] = json!(channel);
        body["ts"] = json!(ts);
        self.call("chat.update", &body).await.map(|_| ())
    }
}

/// Where a command's message is: posted lazily, on the first sign of
/// progress after authorization.
#[derive(Default)]
struct Message {
    ts: Option<String>,
    changes: usize,
    applied: usize,
    phase: String,
}

/// The pipeline's progress, shown by editing the command's message. Phases
/// arrive synchronously; a task posts and edits, at most once a second,
/// always ending with the latest state.
struct Progress {
    state: Arc<Mutex<Message>>,
    wake: tokio::sync::mpsc::UnboundedSender<()>,
}

impl crate::pipeline::Progress for Progress {
    fn step(&self, _line: &str) {}

    fn phase(&self, phase: Phase) {
        let Ok(mut m) = self.state.lock() else { return };
        m.phase = match phase {
            Phase::Planned(0) => "planned: nothing to change".into(),
            Phase::Planned(n) => {
                m.changes = n;
                format!("planned: {n} services change")
            }
            // Not planned yet (identity, access, policy): nothing public.
            _ if m.phase.is_empty() => return,
            Phase::Applied => {
                m.applied = (m.applied + 1).min(m.changes.max(1));
                format!("applying {}/{}", m.applied, m.changes)
            }
            Phase::Watching => "watching until every service settles".into(),
            Phase::RollingBack => "rolling back".into(),
        };
        drop(m);
        let _ = self.wake.send(());
    }
}

/// The command's top line: what, where, who, and the phase.
fn progress_body(title: &str, asker: &str, phase: &str) -> Value {
    let text = format!("{title}: {phase}");
    json!({
        "text": fit(&text, 3000),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": fit(&format!("*{title}*\n{phase}"), 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(asker, 3000)}]},
        ],
    })
}

/// Runs a slash command (or a button press) in app mode. `thread`: the
/// message a button was pressed on, whose thread gets the answer. `logs`:
/// **Show logs** (a status whose answer is the services' log lines, for
/// the presser alone).
pub async fn run(
    chat: Arc<Chat>,
    speaker: Speaker,
    command: Command,
    response_url: String,
    thread: Option<String>,
    logs: bool,
) {
    let Some(api) = Api::of(&chat) else { return };
    let title = format!("{} {} in {}", command.verb.as_str(), command.reference, command.environment);
    let asker = super::asked_by(&speaker, None);
    let state = Arc::new(Mutex::new(Message::default()));
    let (wake, mut woken) = tokio::sync::mpsc::unbounded_channel::<()>();
    let progress = Progress { state: state.clone(), wake };

    // The editor: posts the message on the first wake, then edits it.
    let editor = {
        let (api, state, channel, title, asker, thread) =
            (api.clone(), state.clone(), speaker.channel_id.clone(), title.clone(), asker.clone(), thread.clone());
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                while woken.try_recv().is_ok() {}
                let (ts, phase) = match state.lock() {
                    Ok(m) => (m.ts.clone(), m.phase.clone()),
                    Err(_) => return,
                };
                let body = progress_body(&title, &asker, &phase);
                match ts {
                    Some(ts) => {
                        if let Err(e) = api.update(&channel, &ts, body).await {
                            tracing::warn!(error = %e, "could not update the command's Slack message");
                        }
                    }
                    None => match api.post(&channel, thread.as_deref(), body).await {
                        Ok(ts) => {
                            if let Ok(mut m) = state.lock() {
                                m.ts = Some(ts);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "could not post the command's Slack message"),
                    },
                }
                // Slack allows about one edit a second per message.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    let reply = chat.run_with(&speaker, &command, &progress).await;
    let (reply, buttons) = finish(&chat.config, reply, &command, logs);
    drop(progress);
    let _ = editor.await;
    let ts = state.lock().ok().and_then(|m| m.ts.clone());
    let channel = speaker.channel_id.as_str();

    match &reply {
        Reply::Outcome(outcome, asker) => {
            let mut top = progress_body(&title, asker, &headline(outcome));
            let buttons: Vec<Value> = buttons.iter().map(slack_button).collect();
            if !buttons.is_empty() {
                if let Some(blocks) = top["blocks"].as_array_mut() {
                    blocks.push(json!({"type": "actions", "block_id": "dockmaster", "elements": buttons}));
                }
            }
            let ts = match ts {
                Some(ts) => api.update(channel, &ts, top).await.map(|_| ts),
                None => api.post(channel, thread.as_deref(), top).await,
            };
            let report = super::slack::message(&reply);
            match ts {
                // The full report in the command's thread (a button's
                // answer: in the thread it was pressed in).
                Ok(ts) => {
                    let under = thread.unwrap_or(ts);
                    if let Err(e) = api.post(channel, Some(&under), report).await {
                        tracing::warn!(error = %e, "could not post the report in its Slack thread");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not post to the Slack channel; answering at response_url");
                    super::slack::deliver(&chat.http, &response_url, &report).await;
                }
            }
        }
        Reply::Text { private: true, .. } => {
            // Only the asker sees it; a public message that was already
            // up says the command stopped, and nothing else.
            super::slack::deliver(&chat.http, &response_url, &super::slack::message(&reply)).await;
            if let Some(ts) = ts {
                let body = progress_body(&title, &asker, "stopped; the reason was sent to the person who asked");
                let _ = api.update(channel, &ts, body).await;
            }
        }
        Reply::Text { text, .. } => {
            let body = json!({"text": fit(text, 3000)});
            if let Err(e) = api.post(channel, thread.as_deref(), body).await {
                tracing::warn!(error = %e, "could not post to the Slack channel; answering at response_url");
                super::slack::deliver(&chat.http, &response_url, &super::slack::message(&reply)).await;
            }
        }
    }
}

/// A button as Slack's Block Kit draws it; its value is the command.
fn slack_button(b: &Button) -> Value {
    let value = json!({"verb": b.verb, "ref": b.reference, "env": b.environment});
    let mut out = json!({
        "type": "button",
        "text": {"type": "plain_text", "text": b.label},
        "action_id": format!("dockmaster.{}", b.verb),
        "value": value.to_string(),
    });
    match b.style {
        Style::Danger => out["style"] = json!("danger"),
        Style::Primary => out["style"] = json!("primary"),
        Style::Plain => {}
    }
    out
}

/// `POST /chat/slack/actions`: a button pressed on one of dockmaster's
/// messages, signed as slash commands are. Answered at once; the command
/// it stands for runs in the background as the presser.
pub async fn actions(State(chat): State<Arc<Chat>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = chat.secrets.slack.clone() else { return StatusCode::NOT_FOUND.into_response() };
    if let Err(why) = super::slack::verify_slack(&chat, &secret, &headers, &body, super::slack::unix_now()) {
        tracing::warn!(%why, "refused a Slack action");
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let Ok(payload) = serde_json::from_str::<Value>(form.get("payload").map(String::as_str).unwrap_or_default()) else {
        return (StatusCode::BAD_REQUEST, "no payload").into_response();
    };
    if payload["type"] != "block_actions" {
        return StatusCode::OK.into_response();
    }
    let action = &payload["actions"][0];
    let value: Value = serde_json::from_str(action["value"].as_str().unwrap_or_default()).unwrap_or_default();
    let field = |k: &str| value[k].as_str().unwrap_or_default();
    let Some((command, logs)) = pressed(field("verb"), field("ref"), field("env")) else {
        return (StatusCode::BAD_REQUEST, "not a dockmaster button").into_response();
    };
    let user = &payload["user"];
    let speaker = Speaker {
        platform: "slack",
        user_id: user["id"].as_str().unwrap_or_default().to_string(),
        user_name: user["username"].as_str().or(user["name"].as_str()).unwrap_or_default().to_string(),
        channel_id: payload["channel"]["id"].as_str().unwrap_or_default().to_string(),
        channel_name: payload["channel"]["name"].as_str().unwrap_or_default().to_string(),
    };
    let response_url = payload["response_url"].as_str().unwrap_or_default().to_string();
    if !(response_url.starts_with("https://") || response_url.starts_with("http://")) {
        return (StatusCode::BAD_REQUEST, "no response_url").into_response();
    }
    let message = &payload["container"]["message_ts"];
    let thread = payload["message"]["thread_ts"]
        .as_str()
        .or(payload["message"]["ts"].as_str())
        .or(message.as_str())
        .map(str::to_string);
    if let Some(reason) = chat.shutdown.reason() {
        let body = json!({"response_type": "ephemeral", "replace_original": false,
            "text": format!("dockmaster is shutting down ({reason}); try again in a minute")});
        super::slack::deliver(&chat.http, &response_url, &body).await;
        return StatusCode::OK.into_response();
    }
    let worker = chat.clone();
    chat.spawn(async move { run(worker, speaker, command, response_url, thread, logs).await }).await;
    StatusCode::OK.into_response()
}

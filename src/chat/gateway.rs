//! Discord through its gateway (serenity): for a `serve` that Discord
//! cannot reach over HTTP. The bot connects out; interactions arrive as
//! gateway events and get exactly the answers the HTTP endpoint gives
//! ([`super::discord::respond`]), sent back through Discord's REST API.
//! Only the interaction events are needed, so no privileged intents.

use std::sync::Arc;

use serde_json::{json, Value};
use serenity::all::{
    CommandDataOptionValue, CommandInteraction, ComponentInteraction, Context, EventHandler, GatewayIntents,
    Interaction, Ready,
};
use serenity::async_trait;

use super::Chat;

struct Handler {
    chat: Arc<Chat>,
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _: Context, ready: Ready) {
        tracing::info!(bot = %ready.user.name, "connected to the Discord gateway");
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let (id, token, kind, value) = match &interaction {
            Interaction::Command(c) => (c.id, c.token.clone(), 2, as_http_json(c, 2)),
            Interaction::Autocomplete(c) => (c.id, c.token.clone(), 4, as_http_json(c, 4)),
            Interaction::Component(c) => (c.id, c.token.clone(), 3, component_json(c)),
            _ => return,
        };
        // Every replica connected to the gateway receives the interaction:
        // the one that records its id first in the shared replay cache
        // (PostgreSQL, with `state.url`) runs it, the others stay silent.
        let key = crate::replay::ReplayCache::key("discord-interaction", &[id.to_string().as_bytes()]);
        if kind != 4 && !self.chat.first_sighting(&key) {
            return tracing::info!(interaction = %id, "another replica has this interaction");
        }
        let Some(answer) = super::discord::respond(self.chat.clone(), value).await else { return };
        if let Err(e) = ctx.http.create_interaction_response(id, &token, &answer, Vec::new()).await {
            tracing::warn!(error = %e, "could not answer a Discord interaction");
        }
    }
}

/// The interaction as the HTTP endpoint receives it (the fields the
/// runner reads), so both ways in share one code path.
pub fn as_http_json(c: &CommandInteraction, kind: u8) -> Value {
    let options: Vec<Value> = c
        .data
        .options
        .iter()
        .filter_map(|o| match &o.value {
            CommandDataOptionValue::String(v) => Some(json!({"name": o.name, "value": v})),
            CommandDataOptionValue::Autocomplete { value, .. } => {
                Some(json!({"name": o.name, "value": value, "focused": true}))
            }
            _ => None,
        })
        .collect();
    json!({
        "type": kind,
        "id": c.id.to_string(),
        "token": c.token,
        "channel_id": c.channel_id.to_string(),
        "channel": {"name": c.channel.as_ref().and_then(|ch| ch.name.clone())},
        "user": {"id": c.user.id.to_string(), "username": c.user.name},
        "data": {"name": c.data.name, "options": options},
    })
}

/// A button press as the HTTP endpoint receives it.
pub fn component_json(c: &ComponentInteraction) -> Value {
    json!({
        "type": 3,
        "id": c.id.to_string(),
        "token": c.token,
        "channel_id": c.channel_id.to_string(),
        "user": {"id": c.user.id.to_string(), "username": c.user.name},
        "data": {"custom_id": c.data.custom_id},
    })
}

/// Connects with the bot token and serves interactions until shutdown.
/// Reconnects are serenity's; a refused token is logged and ends it.
pub async fn run(chat: Arc<Chat>) {
    let Some(token) = chat.secrets.discord_bot.clone() else {
        return tracing::error!("chat.discord.gateway needs a bot token (bot_token_env or bot_token_file)");
    };
    let shutdown = chat.shutdown.clone();
    let client = serenity::Client::builder(&token, GatewayIntents::empty()).event_handler(Handler { chat }).await;
    let mut client = match client {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "cannot start the Discord gateway client"),
    };
    let shards = client.shard_manager.clone();
    tokio::select! {
        result = client.start() => {
            if let Err(e) = result {
                tracing::error!(error = %e, "the Discord gateway connection ended");
            }
        }
        _ = shutdown.wait() => shards.shutdown_all().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the gateway hands over reads as the HTTP endpoint's JSON: the
    /// same fields the command runner takes.
    #[test]
    fn a_gateway_interaction_serialises_to_the_http_shape() {
        let payload = serde_json::json!({
            "id": "1200000000000000001", "application_id": "1200000000000000002", "type": 2,
            "token": "tok", "version": 1, "channel_id": "1200000000000000003", "guild_id": "1200000000000000004",
            "locale": "en-US", "app_permissions": "0", "entitlements": [], "authorizing_integration_owners": {},
            "attachment_size_limit": 8388608,
            "member": {"user": {"id": "80351110224678912", "username": "sam", "discriminator": "0", "avatar": null},
                       "roles": [], "joined_at": "2026-01-01T00:00:00+00:00", "deaf": false, "mute": false,
                       "flags": 0, "permissions": "0"},
            "data": {"id": "1200000000000000005", "name": "deploy", "type": 1,
                     "options": [{"name": "ref", "type": 3, "value": "TLO GE/Milestone/3"},
                                 {"name": "env", "type": 3, "value": "qa"}]},
        });
        let interaction: Interaction = serde_json::from_value(payload).expect("a Discord payload");
        let Interaction::Command(command) = interaction else { panic!("a command") };
        let value = as_http_json(&command, 2);
        assert_eq!(value["type"], 2);
        assert_eq!(value["token"], "tok");
        assert_eq!(value["channel_id"], "1200000000000000003");
        assert_eq!(value["user"]["id"], "80351110224678912");
        assert_eq!(value["user"]["username"], "sam");
        assert_eq!(value["data"]["name"], "deploy");
        let options = value["data"]["options"].as_array().unwrap();
        assert_eq!(options[0]["name"], "ref");
        assert_eq!(options[0]["value"], "TLO GE/Milestone/3");
        assert_eq!(options[1]["value"], "qa");
    }
}

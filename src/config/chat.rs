//! The `chat` section: the chat ways in (Slack, Mattermost, Discord) and
//! how a chat user becomes a directory user. Serving them is
//! `crate::chat`'s business.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The `chat` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Slack slash commands at `POST /chat/slack`.
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    /// Mattermost slash commands at `POST /chat/mattermost`.
    #[serde(default)]
    pub mattermost: Option<MattermostConfig>,
    /// Discord interactions at `POST /chat/discord`.
    #[serde(default)]
    pub discord: Option<DiscordConfig>,
    /// How a chat user becomes a directory user.
    #[serde(default)]
    pub users: UserMapping,
    /// Optional channel restrictions per environment.
    #[serde(default)]
    pub channels: Vec<ChannelRule>,
}

/// How a chat user becomes a directory user, by the platform's immutable
/// user id only, tried in this order: the table, the attribute. Names never
/// map a user: anyone can pick a user name (or one that looks like
/// someone's id).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserMapping {
    /// Explicit entries, `platform:user-id` to uid:
    /// `{"slack:U024BE7LH": alice, "discord:80351110224678912": bob}`. An
    /// entry keyed by a user name never matches.
    #[serde(default)]
    pub table: BTreeMap<String, String>,
    /// A directory attribute holding the chat user id (e.g. `slackId`):
    /// the user whose attribute equals the id.
    #[serde(default)]
    pub attribute: Option<String>,
    /// Removed: mapped users by name. Still read, so a configuration that
    /// sets it is refused with the way to migrate rather than silently
    /// leaving its users unmapped.
    #[serde(default)]
    pub same_name: Vec<String>,
}

impl UserMapping {
    /// Refuses the name-based mapping that was removed, saying how to move
    /// to ids (docs/chat.md, "Migrating from name mapping").
    pub fn validate(&self) -> Result<(), String> {
        if self.same_name.is_empty() {
            return Ok(());
        }
        Err(format!(
            "`chat.users.same_name` ({}) mapped chat users by their name, which anyone can choose; it was removed. \
             Map each person by their immutable platform id in `chat.users.table` (\"slack:U024BE7LH\": alice) or \
             with `chat.users.attribute` (a directory attribute holding the id); see docs/chat.md, \
             \"Migrating from name mapping\"",
            self.same_name.join(", ")
        ))
    }
}

/// Commands for `environments` only in `channels`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// Environment patterns this rule covers.
    pub environments: Vec<String>,
    /// Channel names (without `#`) or ids where they are allowed.
    pub channels: Vec<String>,
}

/// Slack's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The variable holding the app's signing secret.
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    /// Or a file holding it.
    #[serde(default)]
    pub signing_secret_file: Option<std::path::PathBuf>,
    /// The variable holding the app's bot token (`xoxb-…`). With it,
    /// dockmaster runs in app mode: each command gets a message in the
    /// channel that shows its progress and ends with buttons, and the
    /// report goes in a thread under it (see docs/chat.md).
    #[serde(default)]
    pub bot_token_env: Option<String>,
    /// Or a file holding the bot token.
    #[serde(default)]
    pub bot_token_file: Option<std::path::PathBuf>,
    /// Slack's Web API. Default `https://slack.com/api`; a test stand-in
    /// may take its place.
    #[serde(default = "default_slack_api")]
    pub api_base: String,
}

fn default_slack_api() -> String {
    "https://slack.com/api".to_string()
}

/// Mattermost's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostConfig {
    /// The variable holding the slash command's token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Or a file holding it.
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    /// The address Mattermost reaches this `serve` at (e.g.
    /// `https://dockmaster.example.org`). With it, reports carry
    /// interactive buttons whose presses Mattermost sends to
    /// `<actions_url>/chat/mattermost/actions`; without it, no buttons.
    #[serde(default)]
    pub actions_url: Option<String>,
}

/// Discord's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The application's id.
    pub application_id: String,
    /// The application's public key (hex), from the developer portal.
    pub public_key: String,
    /// The variable holding the bot token, used to post reports that
    /// outlive the interaction token and to register commands.
    #[serde(default)]
    pub bot_token_env: Option<String>,
    /// Or a file holding it.
    #[serde(default)]
    pub bot_token_file: Option<std::path::PathBuf>,
    /// Discord's API; a local stand-in in tests.
    #[serde(default = "default_api")]
    pub api_base: String,
    /// Also connect to Discord's gateway with the bot token (through
    /// serenity) and take interactions from there: for hosts Discord cannot
    /// reach over HTTP. The HTTP endpoint keeps working.
    #[serde(default)]
    pub gateway: bool,
    /// Guilds to register the slash commands in (instant); empty: register
    /// them globally (Discord may take up to an hour to show them).
    /// Registration needs the bot token and happens when `serve` starts.
    #[serde(default)]
    pub guilds: Vec<String>,
}

fn default_api() -> String {
    "https://discord.com/api/v10".into()
}

//! Chat as a way in: Slack and Mattermost slash commands and Discord
//! interactions, hosted by `dockmaster serve`.
//!
//! Every platform gives a few seconds to answer and a deploy takes longer,
//! so each endpoint verifies the request, acknowledges at once, and runs
//! the command in the background; the reply goes to the platform's
//! follow-up channel (`response_url`, the interaction's webhook). The
//! command itself goes through the same pipeline as every other way in:
//! identity (the chat user mapped to a directory user), access, policy,
//! audit.

pub mod buttons;
pub mod command;
pub mod discord;
pub mod gateway;
pub mod mattermost;
pub mod slack;
pub mod slack_app;
mod wording;
pub use wording::for_chat;

pub use crate::secrets::{header, read_secret, same_secret};

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::descriptor::DescriptorRef;
use crate::error::{Error, Result};
use crate::pipeline;
use crate::request::{Origin, Outcome, Request};
use crate::shutdown::Shutdown;
use command::Verb;

pub use crate::config::chat::{ChannelRule, ChatConfig, UserMapping};

/// Who is speaking and where, as the platform verified it.
#[derive(Debug, Clone)]
pub struct Speaker {
    /// `slack`, `mattermost` or `discord`.
    pub platform: &'static str,
    /// The platform's user id.
    pub user_id: String,
    /// The platform's user name.
    pub user_name: String,
    /// The channel id.
    pub channel_id: String,
    /// The channel name, when the platform gives it.
    pub channel_name: String,
}

/// What a command produced, for the platform to render.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A pipeline outcome (a report), and who asked for it (see
    /// [`asked_by`]), for the report to name.
    Outcome(Box<Outcome>, String),
    /// Plain text: help, history, a refusal, an error.
    Text {
        /// The message.
        text: String,
        /// Whether it is an error (rendered red where colours exist).
        error: bool,
        /// Only the asker sees it (help, refusals, errors): ephemeral on
        /// Slack and Mattermost, a private follow-up on Discord.
        private: bool,
    },
}

impl Reply {
    /// Whether only the asker should see this reply.
    pub fn is_private(&self) -> bool {
        matches!(self, Reply::Text { private: true, .. })
    }
}

/// Who asked, and where, as reports name them: "asked by alice (Slack
/// `alice` in #ops)".
pub fn asked_by(speaker: &Speaker, uid: Option<&str>) -> String {
    let platform = match speaker.platform {
        "slack" => "Slack",
        "mattermost" => "Mattermost",
        "discord" => "Discord",
        other => other,
    };
    let place = if speaker.channel_name.is_empty() {
        speaker.channel_id.clone()
    } else {
        format!("#{}", speaker.channel_name.trim_start_matches('#'))
    };
    match uid {
        Some(uid) => format!("asked by {uid} ({platform} `{}` in {place})", speaker.user_name),
        None => format!("asked by {platform} `{}` in {place}", speaker.user_name),
    }
}

/// The chat service shared by every endpoint.
pub struct Chat {
    /// The configuration.
    pub config: Config,
    /// For follow-up messages.
    pub http: reqwest::Client,
    /// Set on SIGTERM: running deploys roll back and report.
    pub shutdown: Shutdown,
    /// The platforms' secrets, read at start-up.
    pub secrets: Secrets,
    /// Commands still running, for a graceful shutdown.
    tasks: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
    /// Requests acted on within the replay window, persisted in the state
    /// folder so a restart does not reopen it.
    replay: crate::replay::ReplayCache,
}

/// The secrets of the configured platforms, read once at start-up so a
/// missing one stops `serve` instead of failing every command.
#[derive(Default)]
pub struct Secrets {
    /// Slack's signing secret.
    pub slack: Option<String>,
    /// Slack's bot token, in app mode.
    pub slack_bot: Option<String>,
    /// Mattermost's command token.
    pub mattermost: Option<String>,
    /// Discord's application key.
    pub discord_key: Option<ed25519_dalek::VerifyingKey>,
    /// Discord's bot token, when configured.
    pub discord_bot: Option<String>,
}

impl Secrets {
    fn read(config: &ChatConfig) -> Result<Secrets> {
        let mut secrets = Secrets::default();
        if let Some(slack) = &config.slack {
            let value = read_secret(
                slack.signing_secret_env.as_deref(),
                slack.signing_secret_file.as_ref(),
                "chat.slack.signing_secret",
            )?;
            secrets.slack = Some(value);
            if slack.bot_token_env.is_some() || slack.bot_token_file.is_some() {
                let bot =
                    read_secret(slack.bot_token_env.as_deref(), slack.bot_token_file.as_ref(), "chat.slack.bot_token")?;
                secrets.slack_bot = Some(bot);
            }
        }
        if let Some(mm) = &config.mattermost {
            secrets.mattermost =
                Some(read_secret(mm.token_env.as_deref(), mm.token_file.as_ref(), "chat.mattermost.token")?);
        }
        if let Some(discord) = &config.discord {
            secrets.discord_key = Some(discord::public_key(discord)?);
            if discord.bot_token_env.is_some() || discord.bot_token_file.is_some() {
                let bot = read_secret(
                    discord.bot_token_env.as_deref(),
                    discord.bot_token_file.as_ref(),
                    "chat.discord.bot_token",
                )?;
                secrets.discord_bot = Some(bot);
            }
        }
        Ok(secrets)
    }
}

/// How long a signed request stays valid (and remembered against replays).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

impl Chat {
    /// Builds the service; `None` when no platform is configured.
    pub fn new(config: Config, shutdown: Shutdown) -> Result<Option<Arc<Chat>>> {
        if config.chat.slack.is_none() && config.chat.mattermost.is_none() && config.chat.discord.is_none() {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| Error::Usage(format!("cannot build an HTTP client: {e}")))?;
        let secrets = Secrets::read(&config.chat)?;
        let replay = crate::replay::ReplayCache::for_config(&config)?;
        Ok(Some(Arc::new(Chat {
            config,
            http,
            shutdown,
            secrets,
            tasks: tokio::sync::Mutex::new(tokio::task::JoinSet::new()),
            replay,
        })))
    }

    /// True the first time a request (its canonical key, see
    /// [`crate::replay::ReplayCache::key`]) is seen within
    /// [`REPLAY_WINDOW`]. A cache that cannot be written refuses.
    pub fn first_sighting(&self, key: &str) -> bool {
        match self.replay.first_sighting(key, REPLAY_WINDOW) {
            Ok(first) => first,
            Err(e) => {
                tracing::error!(error = %e, "the replay cache failed: refusing the request");
                false
            }
        }
    }

    /// Runs `work` in the background, tracked for shutdown.
    pub async fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().await;
        while tasks.try_join_next().is_some() {}
        tasks.spawn(work);
    }

    /// Waits for running commands (which roll back on shutdown) up to
    /// `deadline`; returns how many were still running after it.
    pub async fn drain(&self, deadline: Duration) -> usize {
        let mut tasks = self.tasks.lock().await;
        let _ = tokio::time::timeout(deadline, async { while tasks.join_next().await.is_some() {} }).await;
        let left = tasks.len();
        tasks.abort_all();
        left
    }

    /// The environments a command may name.
    pub fn environments(&self) -> Vec<String> {
        self.config.environments.keys().cloned().collect()
    }

    /// Runs one parsed command for `speaker` to its reply. Every refusal
    /// is audited.
    pub async fn run(&self, speaker: &Speaker, command: &command::Command) -> Reply {
        self.run_with(speaker, command, &pipeline::Silent).await
    }

    /// [`Chat::run`], with the pipeline's progress going to `progress`
    /// (Slack's app mode edits its message as the deploy goes).
    pub async fn run_with(
        &self,
        speaker: &Speaker,
        command: &command::Command,
        progress: &dyn pipeline::Progress,
    ) -> Reply {
        if let Some(reason) = self.shutdown.reason() {
            return text(&format!("dockmaster is shutting down ({reason}); try again in a minute"), true);
        }
        let uid = match self.map_user(speaker).await {
            Ok(uid) => uid,
            Err(e) => return self.refuse(speaker, command, None, e),
        };
        // The pipeline applies the channel rules to what it runs (and
        // records the refusal); help and history are answered here.
        if matches!(command.verb, Verb::Help | Verb::History) {
            let origin = origin(speaker, &uid);
            if let Err(e) = pipeline::channel_rule(&self.config, &origin, &command.environment) {
                return self.refuse(speaker, command, Some(&uid), e);
            }
        }
        match command.verb {
            Verb::Help => self.help(&uid).await,
            Verb::History => self.history(speaker, &uid, command).await,
            verb => {
                let request = match self.request(speaker, &uid, command, verb) {
                    Ok(r) => r,
                    Err(e) => return text(&for_chat(&e), true),
                };
                match pipeline::run(&request, &self.config, progress, &self.shutdown).await {
                    Ok(outcome) => Reply::Outcome(Box::new(outcome), asked_by(speaker, Some(&uid))),
                    Err(e @ Error::Descriptor(_)) => match self.unknown_environment(command).await {
                        Some(message) => text(&message, true),
                        None => text(&format!("{} {}: {}", verb.as_str(), command.reference, for_chat(&e)), true),
                    },
                    Err(e) => text(&format!("{} {}: {}", verb.as_str(), command.reference, for_chat(&e)), true),
                }
            }
        }
    }

    /// Of `candidates` (descriptor references), those the chat user may
    /// `verb` in `environment`: none for a user nobody mapped, all of them
    /// when no access rules are configured. For autocomplete, which must
    /// not show strangers what exists.
    pub async fn visible_references(
        &self,
        speaker: &Speaker,
        verb: &str,
        environment: &str,
        candidates: Vec<String>,
    ) -> Vec<String> {
        let Ok(uid) = self.map_user(speaker).await else { return Vec::new() };
        let Some(access) = &self.config.access else { return candidates };
        let principal = match pipeline::identify(&self.config, Some(&uid), None, false, &pipeline::Silent).await {
            Ok(Some(p)) => p,
            _ => return Vec::new(),
        };
        candidates
            .into_iter()
            .filter(|r| {
                DescriptorRef::parse_named(r).is_ok_and(|d| {
                    crate::access::authorize(access, &principal, verb, &pipeline::scope(&d), environment).is_allowed()
                })
            })
            .collect()
    }

    /// When a reference was not found and its last word is no configured
    /// environment but the reference without it exists, the word was
    /// meant as an environment (`deploy Shop/web prdo`): say so, instead
    /// of "descriptor not found".
    async fn unknown_environment(&self, command: &command::Command) -> Option<String> {
        let (rest, word) = command.reference.trim().rsplit_once(' ')?;
        if word.contains('/') || command.environment != "default" {
            return None;
        }
        let shorter = DescriptorRef::parse_named(rest.trim()).ok()?;
        pipeline::resolve(&self.config, &shorter).await.ok()?;
        let mut known = vec!["default".to_string()];
        known.extend(self.environments());
        Some(format!(
            "`{word}` is not an environment here; the environments are: {}. Try `{} {} <ENV>`.",
            known.join(", "),
            command.verb.as_str(),
            rest.trim()
        ))
    }

    fn request(&self, speaker: &Speaker, uid: &str, command: &command::Command, verb: Verb) -> Result<Request> {
        let action = verb
            .action()
            .ok_or_else(|| Error::Usage(format!("`{}` is answered by chat itself, not the pipeline", verb.as_str())))?;
        Ok(Request {
            action,
            descriptor: DescriptorRef::parse_named(&command.reference)?,
            project: None,
            user: Some(uid.to_string()),
            password: None,
            environment: command.environment.clone(),
            origin: origin(speaker, uid),
            options: self.config.deploy_options()?,
            load: Default::default(),
            variables: Default::default(),
            adopt: false,
        })
    }

    /// The directory uid of a chat user, by the configured strategies.
    async fn map_user(&self, speaker: &Speaker) -> Result<String> {
        let users = &self.config.chat.users;
        // By the platform's immutable id only: a name (which anyone can
        // choose, even one that reads like someone's id) never maps a user.
        if let Some(uid) = users.table.get(&format!("{}:{}", speaker.platform, speaker.user_id)) {
            return Ok(uid.clone());
        }
        if let (Some(attribute), Some(directory)) =
            (&users.attribute, crate::identity::Directory::shared(self.config.ldap.as_ref())?)
        {
            match directory.lookup_by(attribute, &speaker.user_id).await {
                Ok(principal) => return Ok(principal.uid),
                Err(e @ Error::Unreachable(_)) => return Err(e),
                Err(_) => {}
            }
        }
        Err(Error::Denied(format!(
            "you ({} user `{}`, id {}) are not mapped to a directory user: ask an administrator to add \
             `\"{}:{}\": <your uid>` under chat.users.table{}",
            speaker.platform,
            speaker.user_name,
            speaker.user_id,
            speaker.platform,
            speaker.user_id,
            users
                .attribute
                .as_deref()
                .map(|a| format!(", or to record your id in the directory's `{a}`"))
                .unwrap_or_default()
        )))
    }

    /// Records a refusal that happened before the pipeline, and says why.
    fn refuse(&self, speaker: &Speaker, command: &command::Command, uid: Option<&str>, error: Error) -> Reply {
        let name = uid.unwrap_or(&speaker.user_name);
        let action = match command.verb {
            Verb::Help => "help",
            verb => verb.as_str(),
        };
        pipeline::record_refusal(
            &self.config,
            origin(speaker, name),
            action,
            &command.reference,
            &command.environment,
            &error,
        );
        text(&for_chat(&error), true)
    }

    /// What the caller may do, and how.
    async fn help(&self, uid: &str) -> Reply {
        let principal = match pipeline::identify(&self.config, Some(uid), None, false, &pipeline::Silent).await {
            Ok(p) => p,
            Err(e) => return text(&e.to_string(), true),
        };
        let allowed: Vec<Verb> = Verb::ALL
            .into_iter()
            .filter(|v| match (&self.config.access, &principal, v) {
                (_, _, Verb::Help) => true,
                (Some(access), Some(p), v) => crate::access::allowed_anywhere(access, p, v.as_str()),
                _ => true,
            })
            .collect();
        let mut lines = vec![format!("You are `{uid}`. You may:")];
        for verb in allowed {
            lines.push(format!("• `{}`", verb.usage()));
        }
        let mut envs = vec!["default".to_string()];
        envs.extend(self.environments());
        lines.push(format!("Environments: {}.", envs.join(", ")));
        Reply::Text { text: lines.join("\n"), error: false, private: true }
    }

    /// The last records of a target from the audit trail.
    async fn history(&self, speaker: &Speaker, uid: &str, command: &command::Command) -> Reply {
        let principal = match pipeline::identify(&self.config, Some(uid), None, false, &pipeline::Silent).await {
            Ok(p) => p,
            Err(e) => return self.refuse(speaker, command, Some(uid), e),
        };
        let reference = match DescriptorRef::parse_named(&command.reference) {
            Ok(r) => r,
            Err(e) => return text(&e.to_string(), true),
        };
        if let (Some(access), Some(p)) = (&self.config.access, &principal) {
            let scope = pipeline::scope(&reference);
            if let crate::access::Decision::Deny { reason } =
                crate::access::authorize(access, p, "history", &scope, &command.environment)
            {
                return self.refuse(speaker, command, Some(uid), Error::Denied(reason));
            }
        }
        let target = match crate::target::of(&reference, &command.environment, None, None) {
            Ok(t) => t,
            Err(e) => return text(&e.to_string(), true),
        };
        let query = crate::audit::Query { target: Some(target.clone()), limit: Some(10), ..Default::default() };
        let records = crate::callers::history::visible(&self.config, principal.as_ref(), &query);
        match records {
            Ok(records) if records.is_empty() => text(&format!("No history for `{target}` yet."), false),
            Ok(records) => {
                let table = crate::callers::history::render(&records);
                text(&format!("Last {} requests for `{target}`:\n```\n{table}```", records.len()), false)
            }
            Err(e) => text(&e.to_string(), true),
        }
    }
}

fn origin(speaker: &Speaker, user: &str) -> Origin {
    Origin::Chat {
        platform: speaker.platform.to_string(),
        user: user.to_string(),
        user_id: speaker.user_id.clone(),
        channel: if speaker.channel_name.is_empty() {
            speaker.channel_id.clone()
        } else {
            speaker.channel_name.clone()
        },
        channel_id: speaker.channel_id.clone(),
    }
}

/// A text reply; errors are private to the asker.
fn text(message: &str, error: bool) -> Reply {
    Reply::Text { text: message.to_string(), error, private: error }
}

/// The request timestamp in header `name` (Unix seconds, as text), when it
/// is within [`REPLAY_WINDOW`] of `now`: older requests may be replays.
pub fn fresh_timestamp(headers: &axum::http::HeaderMap, name: &str, now: i64) -> std::result::Result<String, String> {
    let timestamp = header(headers, name);
    let ts: i64 = timestamp.parse().map_err(|_| format!("missing or bad {name}"))?;
    if (now - ts).unsigned_abs() > REPLAY_WINDOW.as_secs() {
        return Err("stale request: the timestamp is more than five minutes off".into());
    }
    Ok(timestamp)
}

//! The vocabulary every part of dockmaster shares: what a caller asks for
//! (`Request`) and what the pipeline hands back (`Outcome`).
//!
//! Every way in (CLI, Rundeck, chat, schedule) only builds a `Request` and
//! renders an `Outcome`; it never talks to the engine, the directory or the
//! audit trail itself. That keeps the behaviour identical whichever button a
//! person pressed.

use std::time::Duration;

use serde::Serialize;

use crate::apply::RollbackReport;
use crate::descriptor::DescriptorRef;
use crate::health::HealthReport;
use crate::plan::Plan;

/// What the caller wants done to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Bring the target to the descriptor and watch it until healthy.
    Deploy,
    /// Show what a deploy would change, changing nothing.
    Plan,
    /// Report the health of what runs now, changing nothing.
    Status,
    /// Remove the target's containers and networks (volumes only on request).
    Down,
    /// Deploy the version before the one running now (or a named one).
    Rollback,
    /// Record an approval of one exact descriptor for an environment, so
    /// people without the `approve` right may deploy its structural change.
    Approve,
}

impl Action {
    /// The action's name as users type it and as access rules name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Plan => "plan",
            Action::Status => "status",
            Action::Down => "down",
            Action::Rollback => "rollback",
            Action::Approve => "approve",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = crate::error::Error;

    /// The one mapping from a typed verb to an action, for every way in:
    /// an unknown verb is an error, never a default.
    fn from_str(text: &str) -> crate::error::Result<Action> {
        const ALL: [Action; 6] =
            [Action::Deploy, Action::Plan, Action::Status, Action::Down, Action::Rollback, Action::Approve];
        let word = text.trim();
        ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(word)).ok_or_else(|| {
            crate::error::Error::Usage(format!(
                "`{word}` is not an action; one of: {}",
                ALL.map(Action::as_str).join(", ")
            ))
        })
    }
}

/// A secret value (a password): its `Debug` form is redacted so it cannot
/// reach a log, a report or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a request came from: recorded in the report and, later, the audit
/// trail, so "who changed what" has an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// A person (or a script, or cron) running the CLI.
    Cli {
        /// The operating-system user running the process.
        user: String,
    },
    /// A Rundeck job step; Rundeck authenticated the user.
    Rundeck {
        /// `RD_JOB_USERNAME`.
        user: String,
        /// `RD_JOB_EXECID`.
        execution: String,
        /// `RD_JOB_URL`: the execution's page.
        url: Option<String>,
        /// `RD_JOB_PROJECT`.
        project: String,
        /// `RD_JOB_NAME`.
        job: String,
    },
    /// A chat slash command; the platform verified the sender and
    /// dockmaster mapped them to a directory user.
    Chat {
        /// `slack`, `mattermost` or `discord`.
        platform: String,
        /// The directory uid the chat user maps to (or the chat name when
        /// unmapped, for the record).
        user: String,
        /// The platform's user id.
        user_id: String,
        /// The channel (name when the platform gives one, else id).
        channel: String,
        /// The channel's id, which `chat.channels` rules may name instead
        /// of its name (Discord gives no name).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        channel_id: String,
    },
    /// A schedule of `dockmaster serve`, running as its service account.
    Schedule {
        /// The schedule's name.
        name: String,
        /// The service account.
        user: String,
    },
    /// A build pipeline or git host calling `POST /hooks/{name}`.
    Hook {
        /// The hook's name.
        name: String,
        /// The service account.
        user: String,
        /// The id the hook answered with.
        id: String,
    },
}

impl Origin {
    /// Who the origin names, for lock messages and logs.
    pub fn who(&self) -> String {
        match self {
            Origin::Cli { user } => format!("{user} (cli)"),
            Origin::Rundeck { user, .. } => format!("{user} (rundeck)"),
            Origin::Chat { user, platform, .. } => format!("{user} ({platform})"),
            Origin::Schedule { user, name } => format!("{user} (schedule {name})"),
            Origin::Hook { user, name, .. } => format!("{user} (hook {name})"),
        }
    }

    /// The user the way in names (not yet checked against the directory).
    pub fn user(&self) -> &str {
        match self {
            Origin::Cli { user }
            | Origin::Rundeck { user, .. }
            | Origin::Chat { user, .. }
            | Origin::Schedule { user, .. }
            | Origin::Hook { user, .. } => user,
        }
    }

    /// The origin's kind and details, as the audit trail stores them.
    pub fn audit(&self) -> (String, serde_json::Value) {
        let mut detail = serde_json::to_value(self).unwrap_or_default();
        let kind = match detail.as_object_mut().and_then(|m| m.remove("kind")) {
            Some(serde_json::Value::String(kind)) => kind,
            _ => "unknown".to_string(),
        };
        // Chat records name the platform: `slack`, `discord`, `mattermost`.
        let kind = match self {
            Origin::Chat { platform, .. } => platform.clone(),
            _ => kind,
        };
        (kind, detail)
    }

    /// The origin of a CLI run by the current operating-system user.
    pub fn cli() -> Origin {
        // The account the process runs as, by name: cron and containers
        // often set no USER, and USER can say anything.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next());
        let named = uid.and_then(|uid| {
            let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 2 && fields[2] == uid).then(|| fields[0].to_string())
            })
        });
        let user = named
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .or_else(|| uid.map(|uid| format!("uid {uid}")))
            .unwrap_or_else(|| "unknown".to_string());
        Origin::Cli { user }
    }
}

/// How a deploy should behave; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOptions {
    /// How long the watch waits for every service to settle.
    pub timeout: Duration,
    /// How long a service without a healthcheck must run without restarting
    /// before it counts as running.
    pub stability_window: Duration,
    /// How many log lines a failing service's report carries.
    pub log_lines: usize,
    /// Build images even when an image of that name already exists.
    pub build: bool,
    /// With `down`: remove the stack's named volumes too.
    pub remove_volumes: bool,
    /// How long to wait for another deploy of the same target.
    pub lock_wait: Duration,
    /// How many services are created and started at once.
    pub parallelism: usize,
    /// Put the previous containers back when the deploy fails.
    pub rollback: bool,
    /// Deploy only when the plan changes something: under the same lock,
    /// an unchanged target is left alone (not even watched) and the one
    /// audit record says `unchanged`. What a schedule's `if-changed`
    /// policy asks for.
    pub only_if_changed: bool,
    /// Recreate every container even when nothing changed
    /// (`--force-recreate`).
    pub force_recreate: bool,
    /// Recreated containers start with new anonymous volumes; the old
    /// ones are removed with the old container (`--renew-anon-volumes`).
    pub renew_anon_volumes: bool,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            timeout: Duration::from_secs(120),
            stability_window: Duration::from_secs(3),
            log_lines: 20,
            build: false,
            remove_volumes: false,
            lock_wait: Duration::from_secs(60),
            parallelism: 32,
            rollback: true,
            only_if_changed: false,
            force_recreate: false,
            renew_anon_volumes: false,
        }
    }
}

impl crate::config::Config {
    /// The deploy behaviour the configuration sets, on top of the defaults;
    /// each way in then applies its own flags. (Here, beside
    /// [`DeployOptions`], so the configuration need not know them.)
    pub fn deploy_options(&self) -> crate::error::Result<DeployOptions> {
        let mut options = DeployOptions::default();
        let duration = |key: &str, value: &str| {
            crate::config::parse_duration(value)
                .map_err(|e| crate::error::Error::Usage(format!("configuration `{key}`: {e}")))
        };
        if let Some(t) = &self.deploy.timeout {
            options.timeout = duration("deploy.timeout", t)?;
        }
        if let Some(w) = &self.deploy.stability_window {
            options.stability_window = duration("deploy.stability_window", w)?;
        }
        if let Some(w) = &self.deploy.lock_wait {
            options.lock_wait = duration("deploy.lock_wait", w)?;
        }
        if let Some(n) = self.deploy.parallelism {
            options.parallelism = n.max(1);
        }
        if let Some(n) = self.deploy.log_lines {
            options.log_lines = n;
        }
        Ok(options)
    }
}

/// One request to the pipeline.
#[derive(Debug, Clone)]
pub struct Request {
    /// What to do.
    pub action: Action,
    /// Which descriptor, by reference or by file path.
    pub descriptor: DescriptorRef,
    /// A project (target) name that overrides the descriptor's own.
    pub project: Option<String>,
    /// Who the way in says is asking, already authenticated by it (Rundeck's
    /// `RD_JOB_USERNAME`); looked up in the directory, not trusted blindly.
    pub user: Option<String>,
    /// A password to check against the directory (CLI password login):
    /// then `user` is not trusted but authenticated by a bind.
    pub password: Option<Secret>,
    /// The environment to deploy to. Until environments are configured this
    /// only names the target; `default` is the local engine.
    pub environment: String,
    /// Where the request came from.
    pub origin: Origin,
    /// Deploy behaviour.
    pub options: DeployOptions,
    /// How the descriptor is read: profiles, an env file instead of
    /// `.env`, override files (the environment's own come first).
    pub load: crate::descriptor::compose::LoadOptions,
    /// Variables the way in supplies for interpolation (`${NAME}`), ahead
    /// of the process environment: Rundeck's secrets from Key Storage.
    /// Always treated as secret: their values are masked wherever they
    /// end up in the audit trail.
    pub variables: std::collections::BTreeMap<String, Secret>,
    /// Take over engine objects that carry no owner labels (made by an
    /// earlier dockmaster or by hand): an administrator's explicit choice
    /// (`--adopt`), see [`crate::ownership`].
    pub adopt: bool,
}

/// What the pipeline hands back to the way in, which renders it.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The target (project) the request acted on.
    pub target: String,
    /// The action that ran.
    pub action: Action,
    /// The descriptor that was resolved, with its digest.
    pub descriptor: DescriptorSummary,
    /// The plan that was computed (and, for deploys, applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The health of the target at the end (deploy and status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<HealthReport>,
    /// What a rollback restored, when the deploy failed and rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
    /// How the descriptor differs from what ran before (deploy, plan,
    /// approve): image-only or structural, with the differences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<crate::policy::Classification>,
    /// Where each service's image came from, for deploys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageUse>,
    /// An error that stopped the deploy halfway (the report and rollback
    /// say what state it left).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OutcomeError>,
    /// The engine the request acted on (`unix:///var/run/docker.sock`,
    /// `swarm tcp://manager:2376`), so a report says where things ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// `status` of a version that is not the one running: the version that
    /// runs instead (verdict `not-running`, exit 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_running: Option<String>,
}

/// Where a service's image came from and exactly which image it is.
#[derive(Debug, Clone, Serialize)]
pub struct ImageUse {
    /// The service.
    pub service: String,
    /// The image reference from the descriptor.
    pub image: String,
    /// The image ID on the engine.
    pub id: Option<String>,
    /// `present`, `built`, `pulled` or `archive`.
    pub source: String,
    /// The archive it was loaded from, for `archive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// Registry digests (`name@sha256:…`), when the image came from one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
}

/// An error carried inside an outcome, with the exit code it maps to.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeError {
    /// The exit code from the contract.
    pub exit_code: i32,
    /// What went wrong.
    pub message: String,
    /// Each violation or problem on its own, when the error lists them
    /// ([`crate::error::Error::items`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

impl From<&crate::error::Error> for OutcomeError {
    fn from(e: &crate::error::Error) -> OutcomeError {
        OutcomeError { exit_code: e.exit_code(), message: e.to_string(), items: e.items().to_vec() }
    }
}

impl Outcome {
    /// An outcome with nothing in it yet but what it is about; the stages
    /// fill in the plan, the report and the rest.
    pub fn new(target: String, action: Action, descriptor: DescriptorSummary) -> Outcome {
        Outcome {
            target,
            action,
            descriptor,
            plan: None,
            report: None,
            rollback: None,
            classification: None,
            images: vec![],
            error: None,
            engine: None,
            not_running: None,
        }
    }

    /// Whether this is a deploy that found nothing to change and so did
    /// nothing ([`DeployOptions::only_if_changed`]).
    pub fn unchanged(&self) -> bool {
        self.action == Action::Deploy
            && self.report.is_none()
            && self.error.is_none()
            && self.plan.as_ref().is_some_and(|p| p.is_noop())
    }

    /// The exit code the contract assigns to this outcome: 0 when every
    /// service is healthy (or nothing was watched), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if let Some(e) = &self.error {
            return e.exit_code;
        }
        match &self.report {
            Some(report) if !report.verdict.is_healthy() => crate::error::EXIT_UNHEALTHY,
            _ => 0,
        }
    }
}

/// What was deployed, for reports: enough to find the exact descriptor again.
#[derive(Debug, Clone, Serialize)]
pub struct DescriptorSummary {
    /// The reference as the user gave it.
    pub reference: String,
    /// The version that was resolved, when the source has versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where the descriptor came from (a file path, a registry URL).
    pub source: String,
    /// `sha256:` of the raw descriptor bytes.
    pub digest: String,
}

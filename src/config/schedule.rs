//! The `schedules` and `hooks` sections: jobs `serve` runs by itself, on
//! a cron expression or on a build pipeline's call. Running them is
//! `crate::schedule`'s business.

use std::str::FromStr;

use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde::Deserialize;

use crate::error::{Error, Result};

/// What a job does each time it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Deploy every time (a no-op deploy changes nothing).
    Always,
    /// Deploy only when the plan changes something: a new descriptor
    /// version or digest, or a new image behind a tag on the engine.
    IfChanged,
    /// Take the target down (volumes kept unless `reset_volumes`), then
    /// deploy: a fresh test environment every morning.
    Reset,
}

/// What a job does when another deploy holds the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnBusy {
    /// Wait up to `deploy.lock_wait`, then fail with exit 6.
    #[default]
    Wait,
    /// Give up at once and say so.
    Skip,
}

/// Where a hook's secret is checked, as the sender signs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookStyle {
    /// `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`.
    Github,
    /// `X-Gitlab-Token: <secret>`.
    Gitlab,
}

/// One schedule or hook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The name, in the audit trail, reports and `/hooks/{name}`.
    pub name: String,
    /// Schedules: the cron expression (`m h dom mon dow`, or with seconds
    /// first).
    #[serde(default)]
    pub cron: Option<String>,
    /// Schedules: the time zone the expression is read in (`Europe/Berlin`);
    /// default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Hooks: how the sender signs (`github` or `gitlab`).
    #[serde(default)]
    pub style: Option<HookStyle>,
    /// Hooks: the variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Hooks: or a file holding it.
    #[serde(default)]
    pub secret_file: Option<std::path::PathBuf>,
    /// Hooks: only pushes to these branches fire (`main`, or a full
    /// `refs/heads/main`); empty: any.
    #[serde(default)]
    pub branches: Vec<String>,
    /// The descriptor reference (`APPLICATION/RELEASE` for the latest).
    pub descriptor: String,
    /// The environment.
    #[serde(default = "default_environment")]
    pub environment: String,
    /// The directory user the job runs as.
    pub user: String,
    /// What each run does.
    #[serde(default = "default_policy")]
    pub policy: Policy,
    /// With `reset`: remove the named volumes too.
    #[serde(default)]
    pub reset_volumes: bool,
    /// When the target is busy.
    #[serde(default)]
    pub on_busy: OnBusy,
    /// Webhooks for this job's reports, besides `notify.webhooks`.
    #[serde(default)]
    pub notify: Vec<super::notify::Webhook>,
}

fn default_environment() -> String {
    "default".into()
}

fn default_policy() -> Policy {
    Policy::Always
}

impl Job {
    /// The parsed cron expression of a schedule.
    pub fn cron(&self) -> Result<Cron> {
        let text = self.cron.as_deref().unwrap_or_default();
        CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| Error::Usage(format!("schedules `{}`: cron `{text}`: {e}", self.name)))
    }

    /// The time zone of a schedule.
    pub fn timezone(&self) -> Result<chrono_tz::Tz> {
        let name = self.timezone.as_deref().unwrap_or("UTC");
        chrono_tz::Tz::from_str(name).map_err(|_| {
            Error::Usage(format!(
                "schedules `{}`: unknown time zone `{name}` (use a name like Europe/Berlin)",
                self.name
            ))
        })
    }
}

/// Checks schedules and hooks when the configuration loads.
pub fn validate(schedules: &[Job], hooks: &[Job]) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for job in schedules {
        if !names.insert(format!("s:{}", job.name)) {
            return Err(Error::Usage(format!("schedules: two schedules are named `{}`", job.name)));
        }
        if job.cron.is_none() {
            return Err(Error::Usage(format!("schedules `{}`: `cron` is required", job.name)));
        }
        job.cron()?;
        job.timezone()?;
        if job.style.is_some() || job.secret_env.is_some() || job.secret_file.is_some() || !job.branches.is_empty() {
            return Err(Error::Usage(format!(
                "schedules `{}`: style, secret_env, secret_file and branches belong to hooks",
                job.name
            )));
        }
        crate::descriptor::DescriptorRef::parse(&job.descriptor)?;
    }
    for job in hooks {
        if !names.insert(format!("h:{}", job.name)) {
            return Err(Error::Usage(format!("hooks: two hooks are named `{}`", job.name)));
        }
        if job.cron.is_some() || job.timezone.is_some() {
            return Err(Error::Usage(format!("hooks `{}`: cron and timezone belong to schedules", job.name)));
        }
        if job.style.is_none() {
            return Err(Error::Usage(format!("hooks `{}`: `style` (github or gitlab) is required", job.name)));
        }
        if job.secret_env.is_none() && job.secret_file.is_none() {
            return Err(Error::Usage(format!("hooks `{}`: `secret_env` or `secret_file` is required", job.name)));
        }
        if !job.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Error::Usage(format!("hooks `{}`: names are letters, digits, `-` and `_`", job.name)));
        }
        crate::descriptor::DescriptorRef::parse(&job.descriptor)?;
    }
    Ok(())
}

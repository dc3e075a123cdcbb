//! Scheduled redeploys and build triggers: jobs `dockmaster serve` runs by
//! itself, as a service account, with the same lock, audit and reports as
//! a person's deploy.
//!
//! A job names a descriptor, an environment, the directory user it runs as
//! (looked up at every run, so removing it from its group stops it) and a
//! policy: `always` deploy, deploy only `if-changed` (the plan is not a
//! no-op), or `reset` (down, then deploy). Schedules fire on a cron
//! expression in a time zone; hooks fire on `POST /hooks/{name}`.

pub mod hooks;
pub mod run;

use std::str::FromStr;

use chrono::{DateTime, Utc};
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
    pub notify: Vec<crate::notify::Webhook>,
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

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let tz = self.timezone()?;
        let local = after.with_timezone(&tz);
        Ok(self.cron()?.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc)))
    }

    /// How many runs fell strictly between `from` and `to` (capped at
    /// 1000), and the first of them.
    pub fn runs_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(usize, Option<DateTime<Utc>>)> {
        let mut count = 0;
        let mut first = None;
        let mut at = from;
        while let Some(next) = self.next_after(at)? {
            if next >= to || count >= 1000 {
                break;
            }
            first.get_or_insert(next);
            count += 1;
            at = next;
        }
        Ok((count, first))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(cron: &str, tz: &str) -> Job {
        serde_yaml::from_str(&format!("{{name: n, cron: \"{cron}\", timezone: {tz}, descriptor: a/b, user: svc}}"))
            .unwrap()
    }

    #[test]
    fn cron_with_optional_seconds_in_a_time_zone() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().with_timezone(&Utc);
        // 07:30 in Berlin (UTC+1 in November) is 06:30 UTC, the next day.
        let next = job("30 7 * * *", "Europe/Berlin").next_after(at).unwrap().unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-24T06:30:00+00:00");
        let every_10s = job("*/10 * * * * *", "UTC");
        assert_eq!(every_10s.next_after(at).unwrap().unwrap().to_rfc3339(), "2026-11-23T10:00:10+00:00");
        let later = DateTime::parse_from_rfc3339("2026-11-23T10:01:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(every_10s.runs_between(at, later).unwrap().0, 5, "10, 20, 30, 40, 50");
    }

    #[test]
    fn mistakes_are_found_at_load() {
        let bad = job("61 * * * *", "UTC");
        assert!(validate(&[bad], &[]).unwrap_err().to_string().contains("cron `61 * * * *`"));
        let tz = job("* * * * *", "Mars/Olympus");
        assert!(validate(&[tz], &[]).unwrap_err().to_string().contains("Mars/Olympus"));
    }
}

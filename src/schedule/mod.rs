//! Scheduled redeploys and build triggers: jobs `dockmaster serve` runs by
//! itself, as a service account, with the same lock, audit and reports as
//! a person's deploy.
//!
//! A job names a descriptor, an environment, the directory user it runs as
//! (looked up at every run, so removing it from its group stops it) and a
//! policy: `always` deploy, deploy only `if-changed` (the plan is not a
//! no-op), or `reset` (down, then deploy). Schedules fire on a cron
//! expression in a time zone; hooks fire on `POST /hooks/{name}`.

pub mod claim;
pub mod hooks;
pub mod run;

use chrono::{DateTime, Utc};

pub use crate::config::schedule::{validate, HookStyle, Job, OnBusy, Policy};
use crate::error::Result;

impl Job {
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

//! A container's state from the engine's container list, when the list
//! says enough.
//!
//! A no-op deploy keeps every container, and its verdict needs each one's
//! state. Inspecting them costs one engine request per service (fifty on
//! a fifty-service stack, each a round trip on a remote engine), while the
//! one list call the deploy made anyway already says, for each container,
//! whether it runs, its health (`Up 5 minutes (healthy)`), its image and
//! its published ports. [`conclusive`] turns such a list entry into a
//! [`ContainerSnapshot`] when that is all the health rules need: running
//! and healthy, or running without a healthcheck for a known while. Any
//! other state (starting, unhealthy, exited, restarting, paused) is
//! inspected as before, because its verdict or its report needs what only
//! an inspect has (exit code, probe output, restart count).

use std::time::{Duration, SystemTime};

use bollard::models::{ContainerSummary, ContainerSummaryHealthStatusEnum, ContainerSummaryStateEnum};

use super::{ContainerSnapshot, DockerEngine};
use crate::error::Result;

/// The snapshot a list entry stands for, when it is conclusive (see the
/// module doc); `None` when the container must be inspected.
pub fn conclusive(c: &ContainerSummary, now: SystemTime) -> Option<ContainerSnapshot> {
    if c.state != Some(ContainerSummaryStateEnum::RUNNING) {
        return None;
    }
    let status = c.status.as_deref()?;
    let (up, suffix) = uptime(status)?;
    // Newer engines say the health as a field; older ones only in the text.
    let health = match c.health.as_ref().and_then(|h| h.status) {
        Some(ContainerSummaryHealthStatusEnum::HEALTHY) => Some("healthy"),
        Some(ContainerSummaryHealthStatusEnum::NONE | ContainerSummaryHealthStatusEnum::EMPTY) | None => match suffix {
            None => None,
            Some("healthy") => Some("healthy"),
            Some(_) => return None,
        },
        Some(_) => return None,
    };
    let mut ports = Vec::new();
    let mut published: Vec<_> = c.ports.iter().flatten().filter(|p| p.public_port.is_some()).collect();
    published.sort_by_key(|p| (p.private_port.to_string(), p.typ.map(|t| t.to_string())));
    for p in published {
        let proto = p.typ.map(|t| t.to_string()).filter(|t| !t.is_empty()).unwrap_or_else(|| "tcp".into());
        let entry = format!(
            "{}:{}->{}/{proto}",
            p.ip.clone().unwrap_or_default(),
            p.public_port.unwrap_or_default(),
            p.private_port
        );
        if !ports.contains(&entry) {
            ports.push(entry);
        }
    }
    Some(ContainerSnapshot {
        id: c.id.clone().unwrap_or_default(),
        state: "running".into(),
        running: true,
        health: health.map(str::to_string),
        image_id: c.image_id.clone().unwrap_or_default(),
        ports,
        started_at: now.checked_sub(up),
        listed: true,
        ..ContainerSnapshot::default()
    })
}

/// How long at least a running container has been up, from the engine's
/// status text (`Up 5 minutes (healthy)`, the engine's human durations),
/// and the text in parentheses after it. `None` for any other status
/// (`Up 2 seconds (Paused)` included, through its suffix, by the caller).
fn uptime(status: &str) -> Option<(Duration, Option<&str>)> {
    let rest = status.strip_prefix("Up ")?;
    let (duration, suffix) = match rest.split_once(" (") {
        Some((d, s)) => (d, Some(s.strip_suffix(')')?)),
        None => (rest, None),
    };
    if suffix.is_some_and(|s| s == "Paused") {
        return None;
    }
    Some((at_least(duration.trim())?, suffix))
}

/// The shortest time the engine's human duration can stand for (it
/// rounds down, and hours to the nearest one).
fn at_least(text: &str) -> Option<Duration> {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    let seconds = match text {
        "Less than a second" => 0,
        "About a minute" => MINUTE,
        "About an hour" => HOUR,
        _ => {
            let (n, unit) = text.split_once(' ')?;
            let n: u64 = n.parse().ok()?;
            match unit.trim_end_matches('s') {
                "second" => n,
                "minute" => n * MINUTE,
                // "2 hours" is anything from 1.5 hours; never below an hour.
                "hour" => (n * HOUR).saturating_sub(HOUR / 2).max(HOUR),
                "day" => n * DAY,
                "week" => n * 7 * DAY,
                "month" => n * 30 * DAY,
                "year" => n * 365 * DAY,
                _ => return None,
            }
        }
    };
    Some(Duration::from_secs(seconds))
}

impl DockerEngine {
    /// A kept container's state: from the survey this engine holds when
    /// its list entry is [`conclusive`], else inspected.
    pub async fn kept_snapshot(&self, id: &str) -> Result<Option<ContainerSnapshot>> {
        let listed = self
            .survey
            .get()
            .and_then(|s| s.containers.iter().find(|c| c.id.as_deref() == Some(id)).cloned())
            .and_then(|c| conclusive(&c, SystemTime::now()));
        match listed {
            Some(snapshot) => Ok(Some(snapshot)),
            None => self.snapshot(id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{PortSummary, PortSummaryTypeEnum};

    fn entry(state: ContainerSummaryStateEnum, status: &str) -> ContainerSummary {
        ContainerSummary {
            id: Some("abc".into()),
            state: Some(state),
            status: Some(status.into()),
            image_id: Some("sha256:1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn running_and_healthy_is_conclusive() {
        let now = SystemTime::now();
        let s = conclusive(&entry(ContainerSummaryStateEnum::RUNNING, "Up 5 minutes (healthy)"), now).unwrap();
        assert!(s.running && s.listed);
        assert_eq!(s.health.as_deref(), Some("healthy"));
        assert_eq!(s.image_id, "sha256:1");
        assert_eq!(s.started_at, now.checked_sub(Duration::from_secs(300)));
    }

    #[test]
    fn without_healthcheck_the_uptime_is_a_lower_bound() {
        let now = SystemTime::now();
        let up = |status: &str| {
            conclusive(&entry(ContainerSummaryStateEnum::RUNNING, status), now)
                .and_then(|s| s.started_at)
                .map(|t| now.duration_since(t).unwrap().as_secs())
        };
        assert_eq!(up("Up Less than a second"), Some(0));
        assert_eq!(up("Up 1 second"), Some(1));
        assert_eq!(up("Up 42 seconds"), Some(42));
        assert_eq!(up("Up About a minute"), Some(60));
        assert_eq!(up("Up 7 minutes"), Some(420));
        assert_eq!(up("Up About an hour"), Some(3600));
        assert_eq!(up("Up 2 hours"), Some(5400));
        assert_eq!(up("Up 3 days"), Some(3 * 86400));
        assert_eq!(up("Up a while"), None, "an unknown wording is inspected");
    }

    #[test]
    fn anything_unsettled_or_failing_is_inspected() {
        let now = SystemTime::now();
        for (state, status) in [
            (ContainerSummaryStateEnum::RUNNING, "Up 5 seconds (health: starting)"),
            (ContainerSummaryStateEnum::RUNNING, "Up 5 minutes (unhealthy)"),
            (ContainerSummaryStateEnum::RUNNING, "Up 5 minutes (Paused)"),
            (ContainerSummaryStateEnum::PAUSED, "Up 5 minutes (Paused)"),
            (ContainerSummaryStateEnum::RESTARTING, "Restarting (1) 2 seconds ago"),
            (ContainerSummaryStateEnum::EXITED, "Exited (0) 5 minutes ago"),
            (ContainerSummaryStateEnum::CREATED, "Created"),
        ] {
            assert!(conclusive(&entry(state, status), now).is_none(), "{status}");
        }
    }

    #[test]
    fn published_ports_read_as_an_inspect_would() {
        let mut c = entry(ContainerSummaryStateEnum::RUNNING, "Up 5 minutes");
        let port = |ip: &str, public: Option<u16>| PortSummary {
            ip: Some(ip.into()),
            private_port: 80,
            public_port: public,
            typ: Some(PortSummaryTypeEnum::TCP),
        };
        c.ports = Some(vec![port("0.0.0.0", Some(8080)), port("::", Some(8080)), port("", None)]);
        let s = conclusive(&c, SystemTime::now()).unwrap();
        assert_eq!(s.ports, vec!["0.0.0.0:8080->80/tcp".to_string(), ":::8080->80/tcp".to_string()]);
    }
}

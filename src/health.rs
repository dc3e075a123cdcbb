//! The watch: are the services really up? And the `HealthReport` that says so.
//!
//! Pressing the button must tell the truth, so a service only counts when
//! the engine shows it settled: healthy by its healthcheck, running without
//! restarts for a stability window, or (one-shot services) exited 0. A crash
//! loop is caught by counting restarts, not by waiting for an exit that never
//! comes, and any failure ends the watch at once rather than at the deadline.
//!
//! The rules ([`assess`]) are pure; [`Watch`] feeds them engine snapshots,
//! woken by the engine's event stream and by a short tick.

use std::time::Duration;

use serde::Serialize;

use crate::engine::ContainerSnapshot;
use crate::stack::Condition;

mod watch;

pub use watch::Watch;

/// Restarts during a watch that make a service a crash loop. Docker's
/// restart back-off starts at 100 ms and doubles, so a service that dies at
/// once reaches this within about a second.
pub const CRASH_LOOP_RESTARTS: i64 = 3;

/// The status of one service, as reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    /// Its healthcheck passes.
    Healthy,
    /// No healthcheck; running without restarts for the stability window.
    Running,
    /// A one-shot service that exited 0: done, not dead.
    Completed,
    /// Not settled yet (healthcheck starting, stability window not over).
    Starting,
    /// Its healthcheck fails.
    Unhealthy,
    /// Crash loop or OOM kill.
    Crashed,
    /// Stopped when it should run (or a one-shot exited non-zero).
    Exited,
    /// No container (never created, removed, or not started because a
    /// dependency failed).
    Missing,
}

impl ServiceStatus {
    /// Settled and fine: the service needs nothing more.
    pub fn is_ok(self) -> bool {
        matches!(self, ServiceStatus::Healthy | ServiceStatus::Running | ServiceStatus::Completed)
    }

    /// Settled and failed: waiting longer will not help.
    pub fn is_failed(self) -> bool {
        matches!(
            self,
            ServiceStatus::Unhealthy | ServiceStatus::Crashed | ServiceStatus::Exited | ServiceStatus::Missing
        )
    }

    /// The status as reports print it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Healthy => "healthy",
            ServiceStatus::Running => "running",
            ServiceStatus::Completed => "completed",
            ServiceStatus::Starting => "starting",
            ServiceStatus::Unhealthy => "unhealthy",
            ServiceStatus::Crashed => "crashed",
            ServiceStatus::Exited => "exited",
            ServiceStatus::Missing => "missing",
        }
    }
}

/// The overall verdict: every service settled and fine, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every service is healthy, running or completed.
    Healthy,
    /// At least one service failed or did not settle before the deadline.
    Failed,
}

impl Verdict {
    /// True for [`Verdict::Healthy`].
    pub fn is_healthy(self) -> bool {
        self == Verdict::Healthy
    }
}

/// One service in a report.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceHealth {
    /// Service name.
    pub name: String,
    /// Container name, when there is a container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Its status.
    pub status: ServiceStatus,
    /// The engine's healthcheck status, when it has a healthcheck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Restarts since the watch began.
    pub restarts: i64,
    /// The image reference from the descriptor.
    pub image: String,
    /// The image ID the container runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Exit code of its last run, when it exited.
    pub exit_code: Option<i64>,
    /// Published ports.
    pub ports: Vec<String>,
    /// Seconds from the start of the watch until it settled.
    pub settle_seconds: Option<f64>,
    /// Why it failed (or is not settled), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Its last log lines, for services that failed.
    pub log_tail: Vec<String>,
}

/// The health of a whole target: what every report renders.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The target (project).
    pub target: String,
    /// The overall verdict.
    pub verdict: Verdict,
    /// One entry per service, in start order.
    pub services: Vec<ServiceHealth>,
    /// Seconds the watch took.
    pub elapsed_seconds: f64,
    /// The deadline passed before everything settled.
    pub timed_out: bool,
}

impl HealthReport {
    /// How many services are settled and fine.
    pub fn healthy_count(&self) -> usize {
        self.services.iter().filter(|s| s.status.is_ok()).count()
    }
}

/// What the rules need to know about a service besides its snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Expectation {
    /// Exiting 0 is done, not dead ([`Stack::is_one_shot`]).
    pub one_shot: bool,
    /// Running on is "not done yet": it must exit 0 to be done
    /// ([`Stack::must_finish`]).
    pub must_finish: bool,
    /// The engine's restart count when the watch began.
    pub baseline_restarts: i64,
    /// How long it must run without a restart when it has no healthcheck.
    pub stability_window: Duration,
}

/// The rules' answer for one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The status.
    pub status: ServiceStatus,
    /// Why, when it is not fine.
    pub cause: Option<String>,
}

/// Applies the health rules to one snapshot.
///
/// `running_for` is how long the watch has seen the container running
/// without a restart (zero when it has just (re)started).
pub fn assess(snapshot: Option<&ContainerSnapshot>, expect: &Expectation, running_for: Duration) -> Assessment {
    let ok = |status| Assessment { status, cause: None };
    let bad = |status, cause: String| Assessment { status, cause: Some(cause) };
    let Some(s) = snapshot else {
        return bad(ServiceStatus::Missing, "the container does not exist".into());
    };
    let restarts = (s.restart_count - expect.baseline_restarts).max(0);
    if s.oom_killed {
        return bad(ServiceStatus::Crashed, "killed by the kernel for running out of memory (OOM)".into());
    }
    if restarts >= CRASH_LOOP_RESTARTS {
        let code = s.exit_code.map(|c| format!(", last exit code {c}")).unwrap_or_default();
        return bad(ServiceStatus::Crashed, format!("crash loop: restarted {restarts} times during the deploy{code}"));
    }
    if let Some(error) = &s.error {
        if !s.running {
            return bad(ServiceStatus::Exited, format!("the engine could not start it: {error}"));
        }
    }
    if !s.running {
        if s.restarting {
            return bad(ServiceStatus::Starting, format!("restarting ({restarts} restarts so far)"));
        }
        return match (s.state.as_str(), s.exit_code) {
            ("created", _) => bad(ServiceStatus::Starting, "created, not started yet".into()),
            (_, Some(0)) if expect.one_shot => ok(ServiceStatus::Completed),
            (_, Some(0)) => bad(
                ServiceStatus::Exited,
                "exited with code 0 but is expected to keep running (label it `dockmaster.one-shot: \"true\"` if finishing is its job)".into(),
            ),
            (_, Some(code)) => bad(ServiceStatus::Exited, format!("exited with code {code}")),
            (state, None) => bad(ServiceStatus::Exited, format!("not running (state {state})")),
        };
    }
    match s.health.as_deref() {
        Some("healthy") => ok(ServiceStatus::Healthy),
        Some("unhealthy") => {
            let probe = s.last_probe_output.clone().filter(|o| !o.is_empty()).unwrap_or_else(|| "no output".into());
            bad(ServiceStatus::Unhealthy, format!("healthcheck failing: {probe}"))
        }
        Some(_) => bad(ServiceStatus::Starting, "healthcheck has not passed yet".into()),
        None if expect.must_finish => bad(ServiceStatus::Starting, "one-shot service still running".into()),
        None if running_for >= expect.stability_window => ok(ServiceStatus::Running),
        None => bad(
            ServiceStatus::Starting,
            format!(
                "running for {:.1}s of the {:.0}s stability window",
                running_for.as_secs_f64(),
                expect.stability_window.as_secs_f64()
            ),
        ),
    }
}

/// Whether a dependency's assessment satisfies a `depends_on` condition.
/// `Some(false)` means it never will (the dependency failed).
pub fn condition_met(condition: Condition, a: &Assessment, snapshot: Option<&ContainerSnapshot>) -> Option<bool> {
    if a.status.is_failed() {
        return Some(false);
    }
    match condition {
        Condition::ServiceStarted => {
            let started = snapshot.is_some_and(|s| s.running || s.exit_code.is_some());
            if started {
                Some(true)
            } else {
                None
            }
        }
        Condition::ServiceHealthy => {
            if a.status == ServiceStatus::Healthy || a.status == ServiceStatus::Running {
                Some(true)
            } else if a.status == ServiceStatus::Completed {
                Some(false)
            } else {
                None
            }
        }
        Condition::ServiceCompletedSuccessfully => {
            if a.status == ServiceStatus::Completed {
                Some(true)
            } else {
                None
            }
        }
    }
}

/// Seconds rounded to hundredths, for reports.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(one_shot: bool) -> Expectation {
        Expectation { one_shot, must_finish: one_shot, baseline_restarts: 0, stability_window: Duration::from_secs(3) }
    }

    fn running() -> ContainerSnapshot {
        ContainerSnapshot { state: "running".into(), running: true, ..Default::default() }
    }

    fn exited(code: i64) -> ContainerSnapshot {
        ContainerSnapshot { state: "exited".into(), exit_code: Some(code), ..Default::default() }
    }

    #[test]
    fn a_healthcheck_decides_when_there_is_one() {
        let mut s = running();
        s.health = Some("starting".into());
        assert_eq!(assess(Some(&s), &expect(false), Duration::from_secs(60)).status, ServiceStatus::Starting);
        s.health = Some("healthy".into());
        assert_eq!(assess(Some(&s), &expect(false), Duration::ZERO).status, ServiceStatus::Healthy);
        s.health = Some("unhealthy".into());
        s.last_probe_output = Some("connection refused".into());
        let a = assess(Some(&s), &expect(false), Duration::ZERO);
        assert_eq!(a.status, ServiceStatus::Unhealthy);
        assert!(a.cause.unwrap().contains("connection refused"));
    }

    #[test]
    fn without_a_healthcheck_the_stability_window_decides() {
        let s = running();
        assert_eq!(assess(Some(&s), &expect(false), Duration::from_secs(1)).status, ServiceStatus::Starting);
        assert_eq!(assess(Some(&s), &expect(false), Duration::from_secs(3)).status, ServiceStatus::Running);
    }

    #[test]
    fn a_one_shot_exiting_zero_is_completed_and_anything_else_exiting_is_not() {
        assert_eq!(assess(Some(&exited(0)), &expect(true), Duration::ZERO).status, ServiceStatus::Completed);
        assert_eq!(assess(Some(&exited(0)), &expect(false), Duration::ZERO).status, ServiceStatus::Exited);
        let a = assess(Some(&exited(2)), &expect(true), Duration::ZERO);
        assert_eq!((a.status, a.cause.as_deref()), (ServiceStatus::Exited, Some("exited with code 2")));
    }

    #[test]
    fn a_service_that_may_finish_is_judged_by_what_it_does() {
        // A data container lends its volumes: exit 0 is done, and running
        // on is watched like any service, never waited on to exit.
        let may = Expectation { must_finish: false, ..expect(true) };
        assert_eq!(assess(Some(&exited(0)), &may, Duration::ZERO).status, ServiceStatus::Completed);
        assert_eq!(assess(Some(&running()), &may, Duration::from_secs(3)).status, ServiceStatus::Running);
        // One that must finish is not done while it runs.
        assert_eq!(assess(Some(&running()), &expect(true), Duration::from_secs(60)).status, ServiceStatus::Starting);
    }

    #[test]
    fn restarts_and_oom_are_crashes() {
        let mut s = running();
        s.restart_count = 5;
        let mut e = expect(false);
        e.baseline_restarts = 4;
        assert_eq!(assess(Some(&s), &e, Duration::ZERO).status, ServiceStatus::Starting, "one restart is not a loop");
        e.baseline_restarts = 2;
        let a = assess(Some(&s), &e, Duration::ZERO);
        assert_eq!(a.status, ServiceStatus::Crashed);
        assert!(a.cause.unwrap().contains("crash loop"));
        let mut oom = exited(137);
        oom.oom_killed = true;
        assert_eq!(assess(Some(&oom), &expect(false), Duration::ZERO).status, ServiceStatus::Crashed);
        assert_eq!(assess(None, &expect(false), Duration::ZERO).status, ServiceStatus::Missing);
    }

    #[test]
    fn conditions() {
        let healthy = Assessment { status: ServiceStatus::Healthy, cause: None };
        let completed = Assessment { status: ServiceStatus::Completed, cause: None };
        let crashed = Assessment { status: ServiceStatus::Crashed, cause: None };
        let starting = Assessment { status: ServiceStatus::Starting, cause: None };
        let r = running();
        assert_eq!(condition_met(Condition::ServiceHealthy, &healthy, Some(&r)), Some(true));
        assert_eq!(condition_met(Condition::ServiceHealthy, &starting, Some(&r)), None);
        assert_eq!(condition_met(Condition::ServiceStarted, &starting, Some(&r)), Some(true));
        assert_eq!(condition_met(Condition::ServiceCompletedSuccessfully, &completed, None), Some(true));
        assert_eq!(condition_met(Condition::ServiceCompletedSuccessfully, &crashed, None), Some(false));
    }
}

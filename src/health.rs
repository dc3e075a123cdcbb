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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use serde::Serialize;

use crate::engine::{ContainerSnapshot, DockerEngine};
use crate::error::Result;
use crate::shutdown::Shutdown;
use crate::stack::{Condition, Stack};

/// Restarts during a watch that make a service a crash loop. Docker's
/// restart back-off starts at 100 ms and doubles, so a service that dies at
/// once reaches this within about a second.
pub const CRASH_LOOP_RESTARTS: i64 = 3;

/// How often snapshots are refreshed when no event arrives: bounds how
/// late a stability window or a deadline is noticed.
const TICK: Duration = Duration::from_millis(250);

/// Every this many ticks (5 s) the watch reads every container again,
/// events or not: the safety net under the event stream.
const FULL_READ_TICKS: u32 = 20;

/// Now, in Unix seconds, less a margin for a remote engine's clock: where
/// the event stream starts (events replayed twice only mark a container to
/// be read again).
fn since_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    now.saturating_sub(5) as i64
}

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

/// Per-service state the watch keeps between snapshots.
#[derive(Debug, Clone)]
struct Tracked {
    container: Option<String>,
    expect: Expectation,
    last_restarts: i64,
    running_since: Option<Instant>,
    settled_at: Option<Instant>,
    assessment: Assessment,
    snapshot: Option<ContainerSnapshot>,
}

/// Watches the containers of one target.
pub struct Watch<'a> {
    engine: &'a DockerEngine,
    stack: &'a Stack,
    started: Instant,
    log_lines: usize,
    tracked: BTreeMap<String, Tracked>,
    /// Report only services that have a container tracked (the watch of a
    /// rollback, where services new in the failed deploy are gone).
    only_tracked: bool,
    /// Containers the engine sent an event for since they were last read:
    /// only those are inspected again. Between events the last snapshot is
    /// re-assessed (the stability window is a matter of time, not of a new
    /// read), so a settled stack costs no engine request per tick.
    dirty: std::collections::HashSet<String>,
    /// The event stream failed: every container is read on every tick.
    polling: bool,
    /// Containers whose first `start` event was seen: that one is the
    /// start dockmaster made itself and read right after, so only later
    /// starts (a restart policy at work) mark the container to be read.
    own_starts: std::collections::HashSet<String>,
    /// Ticks since every container was last read; a full read every
    /// [`FULL_READ_TICKS`] is the safety net under the events.
    ticks: u32,
    events: std::pin::Pin<
        Box<
            dyn futures_util::Stream<Item = std::result::Result<bollard::models::EventMessage, bollard::errors::Error>>
                + Send,
        >,
    >,
}

impl<'a> Watch<'a> {
    /// Starts listening to the target's engine events. Call before the
    /// first container starts so no event is missed.
    pub fn new(engine: &'a DockerEngine, stack: &'a Stack, stability_window: Duration, log_lines: usize) -> Watch<'a> {
        let tracked = stack
            .services
            .keys()
            .map(|name| {
                let expect = Expectation {
                    one_shot: stack.is_one_shot(name),
                    must_finish: stack.must_finish(name),
                    baseline_restarts: 0,
                    stability_window,
                };
                let assessment = Assessment { status: ServiceStatus::Missing, cause: Some("not created yet".into()) };
                let t = Tracked {
                    container: None,
                    expect,
                    last_restarts: 0,
                    running_since: None,
                    settled_at: None,
                    assessment,
                    snapshot: None,
                };
                (name.clone(), t)
            })
            .collect();
        Watch {
            engine,
            stack,
            started: Instant::now(),
            log_lines,
            tracked,
            only_tracked: false,
            events: Box::pin(engine.events(&stack.name, since_now())),
            dirty: Default::default(),
            polling: false,
            own_starts: Default::default(),
            ticks: 0,
        }
    }

    /// Limits reports and settling to the services given a container with
    /// [`Watch::track`].
    pub fn only_tracked(mut self) -> Self {
        self.only_tracked = true;
        self
    }

    /// Whether a dependency meets a condition now, from the last refresh:
    /// `Some(true)` met, `Some(false)` never will be, `None` not yet.
    pub fn condition_state(&self, dependency: &str, condition: Condition) -> Option<bool> {
        let t = self.tracked.get(dependency)?;
        t.container.as_ref()?;
        condition_met(condition, &t.assessment, t.snapshot.as_ref())
    }

    /// A readable reason for a dependency that will never meet its
    /// condition.
    pub fn failure_of(&self, dependency: &str) -> String {
        match self.tracked.get(dependency) {
            Some(t) => {
                let why = t.assessment.cause.clone().unwrap_or_else(|| t.assessment.status.as_str().to_string());
                format!("dependency `{dependency}` is {}: {why}", t.assessment.status.as_str())
            }
            None => format!("dependency `{dependency}` is not part of the stack"),
        }
    }

    fn in_scope(&self) -> impl Iterator<Item = (&String, &Tracked)> {
        let only = self.only_tracked;
        self.tracked.iter().filter(move |(_, t)| !only || t.container.is_some())
    }

    /// Tells the watch which container runs a service now; restarts are
    /// counted from its current restart count.
    pub async fn track(&mut self, service: &str, container: &str) -> Result<()> {
        let snapshot = self.engine.snapshot(container).await?;
        if let Some(t) = self.tracked.get_mut(service) {
            t.container = Some(container.to_string());
            t.expect.baseline_restarts = snapshot.as_ref().map(|s| s.restart_count).unwrap_or(0);
            t.last_restarts = t.expect.baseline_restarts;
            // A container already running (kept by the plan) has been stable
            // since its engine-side start: count that time, so a no-op
            // deploy does not sit through the stability window again.
            t.running_since = snapshot.as_ref().filter(|s| s.running).and_then(|s| s.started_at).and_then(|started| {
                let age = std::time::SystemTime::now().duration_since(started).ok()?;
                Instant::now().checked_sub(age)
            });
            t.settled_at = None;
        }
        // The snapshot just read is fresh: assess it without a second
        // round trip (a no-op deploy tracks every service).
        self.apply_snapshot(service, snapshot);
        Ok(())
    }

    /// The current assessment of a service.
    pub fn assessment(&self, service: &str) -> Option<&Assessment> {
        self.tracked.get(service).map(|t| &t.assessment)
    }

    /// Re-reads one service's container when the engine said something
    /// happened to it (or events are unavailable), and re-applies the rules.
    pub async fn refresh(&mut self, service: &str) -> Result<()> {
        let Some(container) = self.tracked.get(service).and_then(|t| t.container.clone()) else {
            return Ok(());
        };
        let full_read = self.polling || self.ticks >= FULL_READ_TICKS;
        let snapshot = if self.dirty.remove(&container) || full_read {
            self.engine.snapshot(&container).await?
        } else {
            self.tracked.get(service).and_then(|t| t.snapshot.clone())
        };
        self.apply_snapshot(service, snapshot);
        Ok(())
    }

    /// Applies the rules to a snapshot just read for `service`.
    fn apply_snapshot(&mut self, service: &str, snapshot: Option<ContainerSnapshot>) {
        let now = Instant::now();
        let Some(t) = self.tracked.get_mut(service) else { return };
        if let Some(s) = &snapshot {
            if s.restart_count != t.last_restarts || !s.running {
                t.running_since = None;
            }
            if s.running && t.running_since.is_none() {
                t.running_since = Some(now);
            }
            t.last_restarts = s.restart_count;
        }
        let running_for = t.running_since.map(|since| now - since).unwrap_or_default();
        t.assessment = assess(snapshot.as_ref(), &t.expect, running_for);
        if t.assessment.status.is_ok() {
            t.settled_at.get_or_insert(now);
        } else {
            t.settled_at = None;
        }
        t.snapshot = snapshot;
    }

    /// Re-assesses every tracked service, reading again (concurrently)
    /// those the engine sent events for.
    async fn refresh_all(&mut self) -> Result<()> {
        let full_read = self.polling || self.ticks >= FULL_READ_TICKS;
        let mut reads = Vec::new();
        for (name, t) in &self.tracked {
            if let Some(id) = &t.container {
                if full_read || self.dirty.contains(id) {
                    reads.push((name.clone(), id.clone()));
                }
            }
        }
        if full_read {
            self.ticks = 0;
        }
        let engine = self.engine;
        let snapshots = futures_util::future::join_all(reads.iter().map(|(_, id)| engine.snapshot(id))).await;
        let mut fresh = BTreeMap::new();
        for ((name, id), snapshot) in reads.into_iter().zip(snapshots) {
            self.dirty.remove(&id);
            fresh.insert(name, snapshot?);
        }
        let names: Vec<String> =
            self.tracked.iter().filter(|(_, t)| t.container.is_some()).map(|(n, _)| n.clone()).collect();
        for name in names {
            let snapshot = match fresh.remove(&name) {
                Some(s) => s,
                None => self.tracked.get(&name).and_then(|t| t.snapshot.clone()),
            };
            self.apply_snapshot(&name, snapshot);
        }
        Ok(())
    }

    /// Waits for the next engine event or tick, whichever comes first, and
    /// notes which containers the events were about.
    pub async fn wait_for_news(&mut self) {
        self.ticks += 1;
        let first = tokio::time::timeout(TICK, self.events.next()).await;
        let mut next = match first {
            Err(_) => return,
            Ok(item) => Some(item),
        };
        // Take every event already waiting, so a burst costs one round.
        while let Some(item) = next.take() {
            match item {
                Some(Ok(event)) => {
                    let first_start = event.action.as_deref() == Some("start");
                    if let Some(id) = event.actor.and_then(|a| a.id) {
                        if !(first_start && self.own_starts.insert(id.clone())) {
                            self.dirty.insert(id);
                        }
                    }
                }
                // The event stream broke or ended: carry on with ticks
                // alone, reading every container each time.
                Some(Err(e)) => {
                    tracing::debug!("engine event stream failed, polling instead: {e}");
                    self.events = Box::pin(futures_util::stream::pending());
                    self.polling = true;
                }
                None => {
                    self.events = Box::pin(futures_util::stream::pending());
                    self.polling = true;
                }
            }
            next = self.events.next().now_or_never();
        }
    }

    /// Waits until `dependency` meets `condition`. Returns `Ok(None)` when it
    /// does, or `Ok(Some(reason))` when it failed or the deadline passed.
    pub async fn wait_condition(
        &mut self,
        dependency: &str,
        condition: Condition,
        deadline: Instant,
    ) -> Result<Option<String>> {
        loop {
            self.refresh(dependency).await?;
            let Some(t) = self.tracked.get(dependency) else {
                return Ok(Some(format!("dependency `{dependency}` is not part of the stack")));
            };
            match condition_met(condition, &t.assessment, t.snapshot.as_ref()) {
                Some(true) => return Ok(None),
                Some(false) => {
                    let why = t.assessment.cause.clone().unwrap_or_else(|| t.assessment.status.as_str().to_string());
                    return Ok(Some(format!("dependency `{dependency}` is {}: {why}", t.assessment.status.as_str())));
                }
                None if Instant::now() >= deadline => {
                    return Ok(Some(format!(
                        "dependency `{dependency}` did not reach {} before the deadline ({})",
                        condition.as_str(),
                        t.assessment.status.as_str()
                    )))
                }
                None => self.wait_for_news().await,
            }
        }
    }

    /// Watches every tracked service until all are settled and fine, one
    /// fails, or the deadline passes; then builds the report.
    ///
    /// A shutdown request ends the watch too; the caller reads the reason
    /// from `shutdown`.
    pub async fn until_settled(&mut self, deadline: Instant, shutdown: &Shutdown) -> Result<HealthReport> {
        loop {
            self.refresh_all().await?;
            let any_failed = self.in_scope().any(|(_, t)| t.assessment.status.is_failed());
            let all_ok = self.in_scope().all(|(_, t)| t.assessment.status.is_ok());
            if any_failed || all_ok || shutdown.reason().is_some() {
                return Ok(self.report(false).await);
            }
            if Instant::now() >= deadline {
                return Ok(self.report(true).await);
            }
            self.wait_for_news().await;
        }
    }

    /// Marks a service that was never started, with the reason.
    pub fn not_started(&mut self, service: &str, reason: String) {
        if let Some(t) = self.tracked.get_mut(service) {
            t.assessment = Assessment { status: ServiceStatus::Missing, cause: Some(format!("not started: {reason}")) };
        }
    }

    /// The report as things stand. With `timed_out`, services that had not
    /// settled are failed by the deadline.
    pub async fn report(&mut self, timed_out: bool) -> HealthReport {
        let order: Vec<String> = self
            .stack
            .start_levels()
            .map(|l| l.concat())
            .unwrap_or_else(|_| self.tracked.keys().cloned().collect())
            .into_iter()
            .filter(|name| self.in_scope().any(|(n, _)| n == name))
            .collect();
        let mut services = Vec::new();
        for name in order {
            let Some(t) = self.tracked.get(&name).cloned() else { continue };
            let mut cause = t.assessment.cause.clone();
            if timed_out && !t.assessment.status.is_ok() {
                let why = cause.unwrap_or_default();
                cause = Some(format!("not settled before the deadline: {why}"));
            }
            let failed = !t.assessment.status.is_ok();
            let log_tail = match (&t.container, failed) {
                (Some(id), true) => self.engine.log_tail(id, self.log_lines).await,
                _ => vec![],
            };
            let s = t.snapshot.as_ref();
            services.push(ServiceHealth {
                name: name.clone(),
                container: t.container.as_ref().map(|_| self.stack.container_name(&name)),
                status: t.assessment.status,
                health: s.and_then(|s| s.health.clone()),
                restarts: s.map(|s| (s.restart_count - t.expect.baseline_restarts).max(0)).unwrap_or(0),
                image: self.stack.services.get(&name).map(|svc| svc.image.clone()).unwrap_or_default(),
                image_id: s.map(|s| s.image_id.clone()),
                exit_code: s.and_then(|s| s.exit_code),
                ports: s.map(|s| s.ports.clone()).unwrap_or_default(),
                settle_seconds: t.settled_at.map(|at| round2((at - self.started).as_secs_f64())),
                cause,
                log_tail,
            });
        }
        let verdict = if services.iter().all(|s| s.status.is_ok()) { Verdict::Healthy } else { Verdict::Failed };
        HealthReport {
            target: self.stack.name.clone(),
            verdict,
            services,
            elapsed_seconds: round2(self.started.elapsed().as_secs_f64()),
            timed_out,
        }
    }
}

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

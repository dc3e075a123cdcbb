//! The engine side of the watch: which containers to read and when.
//! [`Watch`] subscribes to the target's engine events, reads a container
//! again only when the engine says something happened to it (with a full
//! read every few seconds as a safety net), and feeds the snapshots to the
//! pure rules of [`super::assess`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};

use super::{
    assess, condition_met, round2, Assessment, Expectation, HealthReport, ServiceHealth, ServiceStatus, Verdict,
};
use crate::engine::{ContainerSnapshot, DockerEngine};
use crate::error::Result;
use crate::shutdown::Shutdown;
use crate::stack::{Condition, Stack};

/// How often snapshots are refreshed when no event arrives: bounds how
/// late a stability window or a deadline is noticed.
const TICK: Duration = Duration::from_millis(250);

/// This often (wall time, whatever the number of events meanwhile) the
/// watch reads again every container that has not settled yet, events or
/// not: the safety net under the event stream. Settled containers are read
/// on their events only (a `die`, `oom`, `restart` or health change), so a
/// healthy stack costs nothing while a slow one finishes.
const FULL_READ_EVERY: Duration = Duration::from_secs(15);

/// Now, in Unix seconds, less a margin for a remote engine's clock: where
/// the event stream starts (events replayed twice only mark a container to
/// be read again).
fn since_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    now.saturating_sub(5) as i64
}

/// Per-service state the watch keeps between snapshots.
#[derive(Debug, Clone)]
struct Tracked {
    container: Option<String>,
    expect: Expectation,
    last_restarts: i64,
    running_since: Option<Instant>,
    settled_at: Option<Instant>,
    /// The container was first read from the list ([`ContainerSnapshot::listed`]),
    /// which has no restart count: the first inspect sets the baseline.
    baseline_pending: bool,
    /// When the container was tracked, to tell a restart that happened
    /// before that first inspect.
    tracked_at: Option<std::time::SystemTime>,
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
    /// When the unsettled containers were last all read (see
    /// [`FULL_READ_EVERY`]).
    last_full: Instant,
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
                    baseline_pending: false,
                    tracked_at: None,
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
            last_full: Instant::now(),
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
        self.track_read(service, container, snapshot);
        Ok(())
    }

    /// [`Watch::track`] with the container already read (the apply stage
    /// reads each service's container inside its own step, at once).
    pub fn track_read(&mut self, service: &str, container: &str, snapshot: Option<ContainerSnapshot>) {
        if let Some(t) = self.tracked.get_mut(service) {
            t.container = Some(container.to_string());
            t.baseline_pending = snapshot.as_ref().is_some_and(|s| s.listed);
            t.tracked_at = Some(std::time::SystemTime::now());
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
        let snapshot = if self.dirty.remove(&container) || self.polling {
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
        if let Some(s) = snapshot.as_ref().filter(|s| t.baseline_pending && !s.listed) {
            // The first inspect of a container first read from the list:
            // restarts count from here; one that started again after it was
            // tracked has not been stable since.
            t.baseline_pending = false;
            t.expect.baseline_restarts = s.restart_count;
            t.last_restarts = s.restart_count;
            if s.started_at.zip(t.tracked_at).is_some_and(|(started, tracked)| started > tracked) {
                t.running_since = None;
            }
        }
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
        let safety_net = self.last_full.elapsed() >= FULL_READ_EVERY;
        let mut reads = Vec::new();
        for (name, t) in &self.tracked {
            if let Some(id) = &t.container {
                let unsettled = !t.assessment.status.is_ok();
                if self.polling || self.dirty.contains(id) || (safety_net && unsettled) {
                    reads.push((name.clone(), id.clone()));
                }
            }
        }
        if safety_net {
            self.last_full = Instant::now();
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
        let first = tokio::time::timeout(TICK, self.events.next()).await;
        let mut next = match first {
            Err(_) => return,
            Ok(item) => Some(item),
        };
        // Take every event already waiting, so a burst costs one round.
        while let Some(item) = next.take() {
            match item {
                Some(Ok(event)) => {
                    let action = event.action.unwrap_or_default();
                    if let Some(id) = event.actor.and_then(|a| a.id) {
                        let own_start = action == "start" && self.own_starts.insert(id.clone());
                        let said = action == "health_status: healthy" && self.turned_healthy(&id);
                        if !own_start && !said {
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

    /// A running container's healthcheck passed, as the engine's event
    /// says: its snapshot takes the news without a read (on a cold deploy
    /// that is one inspect less per service). `false` when the event is
    /// not enough (the container is not tracked, not known to run, or
    /// already due to be read).
    fn turned_healthy(&mut self, id: &str) -> bool {
        if self.polling || self.dirty.contains(id) {
            return false;
        }
        let tracked = self.tracked.values_mut().find(|t| t.container.as_deref() == Some(id));
        match tracked.and_then(|t| t.snapshot.as_mut()).filter(|s| s.running) {
            Some(snapshot) => {
                snapshot.health = Some("healthy".into());
                true
            }
            None => false,
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

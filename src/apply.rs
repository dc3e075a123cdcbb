//! The apply stage: carries out a `Plan` on the engine, watches the result,
//! and puts the previous containers back if anything goes wrong.
//!
//! - **Parallel, in dependency order.** A service starts as soon as each of
//!   its dependencies meets its condition, not when a whole "level" is done;
//!   independent services are created and started concurrently, at most
//!   `parallelism` at a time.
//! - **Nothing lost.** A replaced container is renamed and kept (running for
//!   start-first, stopped for stop-first) until every service is healthy.
//!   On any failure (unhealthy, crash loop, deadline, an engine error
//!   halfway, SIGINT/SIGTERM) the new containers are removed, the kept ones
//!   get their names back and are started again, and that restored state is
//!   watched and reported. Named volumes are never removed by a deploy.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;

use crate::engine::{DockerEngine, PREVIOUS_SUFFIX};
use crate::error::Error;
use crate::health::{HealthReport, Watch};
use crate::pipeline::Applied;
use crate::pipeline::Progress;
use crate::plan::{self, ChangeKind, ObservedContainer, Plan, ServiceChange, Strategy};
use crate::request::DeployOptions;
use crate::shutdown::Shutdown;
use crate::stack::Stack;

/// What a rollback did, for every report.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// Why the deploy was rolled back.
    pub reason: String,
    /// The descriptor version running again, when the previous containers
    /// recorded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether the target ran anything before this deploy. A failed first
    /// deploy has nothing to restore: its containers, and the networks and
    /// volumes it created, are removed, and no "restored" health is
    /// reported (an empty report would read HEALTHY 0/0).
    pub previous: bool,
    /// The health of the restored containers; absent when there was no
    /// previous version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<HealthReport>,
}

impl RollbackReport {
    /// Whether the previous version is back and healthy (a failed first
    /// deploy has none: false).
    pub fn restored_healthy(&self) -> bool {
        self.restored.as_ref().is_some_and(|r| !r.services.is_empty() && r.verdict.is_healthy())
    }

    /// One sentence on what the rollback left running.
    pub fn summary(&self) -> String {
        match &self.restored {
            None => "no previous version; the failed containers were removed".to_string(),
            Some(r) => format!("{}/{} previous services healthy", r.healthy_count(), r.services.len()),
        }
    }
}

/// What to undo if the deploy fails, recorded as each change is made.
#[derive(Debug, Clone)]
pub(crate) enum Undo {
    /// A container that did not exist before.
    Created { id: String, name: String },
    /// A stopped container that was started.
    Started { id: String, name: String },
    /// A container replaced by a new one; the old one is kept renamed.
    Replaced {
        service: String,
        old_id: String,
        old_name: String,
        was_running: bool,
        new_id: Option<String>,
        /// The old container's anonymous volumes: those its successor does
        /// not mount are removed with it on success.
        anonymous: Vec<String>,
    },
}

/// The outcome of one service's change.
struct Step {
    service: String,
    id: Option<String>,
    undo: Option<Undo>,
    error: Option<Error>,
    /// The container read right after the change, inside the step, so
    /// the reads of many services run at once (not one by one when the
    /// watch starts tracking them).
    snapshot: Option<Option<crate::engine::ContainerSnapshot>>,
}

/// Everything the apply stage needs, borrowed from the pipeline.
pub struct Apply<'a> {
    /// The engine.
    pub engine: &'a DockerEngine,
    /// The desired stack.
    pub stack: &'a Stack,
    /// The plan to carry out.
    pub plan: &'a Plan,
    /// The target's containers before the deploy.
    pub observed: &'a [ObservedContainer],
    /// Deploy behaviour.
    pub options: &'a DeployOptions,
    /// Where progress lines go.
    pub progress: &'a dyn Progress,
    /// SIGINT/SIGTERM.
    pub shutdown: &'a Shutdown,
    /// Labels recording the descriptor on every new container.
    pub descriptor_labels: BTreeMap<String, String>,
    /// Containers an earlier deploy kept aside and never cleared (id,
    /// name), observed with the rest before anything changed.
    pub leftovers: Vec<(String, String)>,
    /// The image ID each service's image has on the engine (after the
    /// images were prepared), for the report of a container not read.
    pub images: &'a plan::ImageIds,
}

impl Apply<'_> {
    /// Applies the plan and watches it until every service settles, one
    /// fails, or the deadline passes. What follows (finishing, rolling
    /// back or leaving it) is the pipeline's decision.
    pub(crate) async fn run(&self) -> Applied<Undo> {
        // Containers kept aside by an earlier deploy that was killed or run
        // with --no-rollback would block this deploy's renames: the target's
        // state is what runs under the real names now, so they go first.
        if let Err(e) = self.clear_leftovers().await {
            let report = Watch::new(self.engine, self.stack, self.options.stability_window, 0).report(false).await;
            return Applied { report, undo: vec![], error: Some(e) };
        }
        let deadline = Instant::now() + self.options.timeout;
        let mut watch = Watch::new(self.engine, self.stack, self.options.stability_window, self.options.log_lines);
        let mut undo: Vec<Undo> = Vec::new();
        let scheduled = self.schedule(&mut watch, &mut undo, deadline).await;
        let (report, error) = match scheduled {
            Ok(()) if self.shutdown.reason().is_none() => {
                self.progress.step("watching until every service settles");
                self.progress.phase(crate::pipeline::Phase::Watching);
                match watch.until_settled(deadline, self.shutdown).await {
                    Ok(report) => (report, None),
                    Err(e) => (watch.report(false).await, Some(e)),
                }
            }
            Ok(()) => (watch.report(false).await, None),
            Err(e) => (watch.report(false).await, Some(e)),
        };
        Applied { report, undo, error }
    }

    /// Starts services as their dependencies allow, `parallelism` at a time.
    async fn schedule(&self, watch: &mut Watch<'_>, undo: &mut Vec<Undo>, deadline: Instant) -> Result<(), Error> {
        let mut pending: Vec<&ServiceChange> =
            self.plan.services.iter().filter(|c| c.action != ChangeKind::Remove).collect();
        let mut started: Vec<String> = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        let mut failure: Option<String> = None;
        let mut announced: Vec<String> = Vec::new();
        let limit = self.options.parallelism.max(1);
        loop {
            if let Some(signal) = self.shutdown.reason() {
                failure.get_or_insert(format!("interrupted by {signal}"));
            }
            if failure.is_none() && Instant::now() >= deadline {
                failure = Some("the deadline passed before its dependencies were ready".into());
            }
            if let Some(reason) = &failure {
                for change in pending.drain(..) {
                    watch.not_started(&change.service, reason.clone());
                }
            }
            // Launch every pending service whose dependencies are met.
            let mut i = 0;
            while i < pending.len() && in_flight.len() < limit {
                match self.readiness(pending[i], watch, &started) {
                    Readiness::Ready => {
                        let change = pending.remove(i);
                        in_flight.push(self.apply_one(change));
                    }
                    Readiness::Never(reason) => {
                        let change = pending.remove(i);
                        self.progress.step(&format!("not starting `{}`: {reason}", change.service));
                        watch.not_started(&change.service, reason.clone());
                        failure.get_or_insert(reason);
                    }
                    Readiness::Waiting => {
                        let service = &pending[i].service;
                        if !announced.contains(service) {
                            announced.push(service.clone());
                            let deps: Vec<String> = self
                                .stack
                                .dependencies(service)
                                .iter()
                                .map(|(name, d)| format!("{name} ({})", d.condition.as_str()))
                                .collect();
                            self.progress.step(&format!("`{service}` waits for {}", deps.join(", ")));
                        }
                        i += 1;
                    }
                }
            }
            if pending.is_empty() && in_flight.is_empty() {
                return Ok(());
            }
            tokio::select! {
                Some(step) = in_flight.next(), if !in_flight.is_empty() => {
                    let mut step: Step = step;
                    undo.extend(step.undo);
                    if let Some(id) = &step.id {
                        match step.snapshot.take() {
                            Some(snapshot) => watch.track_read(&step.service, id, snapshot),
                            None => watch.track(&step.service, id).await?,
                        }
                        started.push(step.service.clone());
                    }
                    if let Some(e) = step.error {
                        // Let the others finish their current call, then stop.
                        for change in pending.drain(..) {
                            watch.not_started(&change.service, format!("the deploy stopped: {e}"));
                        }
                        while let Some(step) = in_flight.next().await {
                            undo.extend(step.undo);
                        }
                        return Err(e);
                    }
                }
                // Services held back only by the parallelism limit wait for
                // a step to finish, not for engine news: a no-op then never
                // opens the event stream.
                _ = watch.wait_for_news(), if !pending.is_empty() && in_flight.len() < limit => {
                    // Refresh only what pending services wait for.
                    for dep in self.awaited(&pending, &started) {
                        watch.refresh(&dep).await?;
                    }
                }
            }
        }
    }

    /// Dependencies of pending services that have started: the ones whose
    /// state can change what is ready.
    fn awaited(&self, pending: &[&ServiceChange], started: &[String]) -> Vec<String> {
        let mut deps: Vec<String> = pending
            .iter()
            .flat_map(|c| self.stack.dependencies(&c.service).into_keys())
            .filter(|d| started.contains(d))
            .collect();
        deps.sort();
        deps.dedup();
        deps
    }

    fn readiness(&self, change: &ServiceChange, watch: &Watch<'_>, started: &[String]) -> Readiness {
        for (dependency, dep) in self.stack.dependencies(&change.service) {
            if !started.contains(&dependency) {
                return Readiness::Waiting;
            }
            match watch.condition_state(&dependency, dep.condition) {
                Some(true) => {}
                None => return Readiness::Waiting,
                Some(false) if dep.required => return Readiness::Never(watch.failure_of(&dependency)),
                Some(false) => self.progress.step(&format!(
                    "warning: optional dependency of `{}` not met: {}",
                    change.service,
                    watch.failure_of(&dependency)
                )),
            }
        }
        Readiness::Ready
    }

    /// Carries out one service's change and says what to undo.
    async fn apply_one(&self, change: &ServiceChange) -> Step {
        let mut step = Step { service: change.service.clone(), id: None, undo: None, error: None, snapshot: None };
        let existing = self.observed.iter().find(|c| c.service == change.service);
        let result = match (change.action, existing) {
            (ChangeKind::Keep, Some(c)) => {
                step.id = Some(c.id.clone());
                Ok(())
            }
            (ChangeKind::Start, Some(c)) => {
                self.progress.step(&format!("starting {} ({})", change.container, change.reasons.join("; ")));
                step.undo = Some(Undo::Started { id: c.id.clone(), name: c.name.clone() });
                step.id = Some(c.id.clone());
                self.start(&c.id, change).await
            }
            (ChangeKind::Recreate, Some(c)) => self.replace(change, c, &mut step).await,
            _ => self.create_and_start(change, &mut step).await,
        };
        step.error = result.err();
        if change.action != ChangeKind::Keep {
            self.progress.phase(crate::pipeline::Phase::Applied);
        }
        if let (None, Some(id)) = (&step.error, &step.id) {
            // A kept container is read from the deploy's container list
            // when that says enough (a no-op costs no inspect per service).
            let snapshot = match change.action {
                ChangeKind::Keep => self.engine.kept_snapshot(id).await,
                ChangeKind::Create | ChangeKind::Recreate => match self.just_started(id, change) {
                    Some(snapshot) => Ok(Some(snapshot)),
                    None => self.engine.snapshot(id).await,
                },
                _ => self.engine.snapshot(id).await,
            };
            match snapshot {
                Ok(snapshot) => step.snapshot = Some(snapshot),
                Err(e) => step.error = Some(e),
            }
        }
        step
    }

    /// What a container this deploy just created and started is, without
    /// asking the engine: running, no restarts yet, its healthcheck not
    /// passed yet, the image prepared for it. Only for a service whose
    /// descriptor gives it a healthcheck (an image's own one, or none,
    /// would need an inspect to be known) and publishes no port (a host
    /// port the engine picks is only known by reading). Its engine events
    /// bring the rest: `healthy` is taken as it is, anything else has the
    /// container read.
    fn just_started(&self, id: &str, change: &ServiceChange) -> Option<crate::engine::ContainerSnapshot> {
        let svc = self.stack.services.get(&change.service)?;
        let check = svc.healthcheck.as_ref()?;
        let disabled = check.disable || check.test.first().is_some_and(|t| t == "NONE");
        if disabled || !svc.ports.is_empty() {
            return None;
        }
        Some(crate::engine::ContainerSnapshot {
            id: id.to_string(),
            state: "running".into(),
            running: true,
            health: Some("starting".into()),
            image_id: self.images.get(&change.service).cloned().flatten().unwrap_or_default(),
            started_at: Some(std::time::SystemTime::now()),
            ..Default::default()
        })
    }

    async fn replace(&self, change: &ServiceChange, old: &ObservedContainer, step: &mut Step) -> Result<(), Error> {
        let strategy = change.strategy.unwrap_or(Strategy::StopFirst);
        self.progress.step(&format!(
            "replacing {} ({}): {}",
            change.container,
            match strategy {
                Strategy::StartFirst => "start-first",
                Strategy::StopFirst => "stop-first",
            },
            change.reasons.join("; ")
        ));
        // The old container's anonymous volumes (a v1 data container's
        // `/var/lib/mysql`) go to the new one, as Compose hands them over,
        // so their data survives the recreate; `--renew-anon-volumes`
        // starts the new one with fresh ones instead.
        let anonymous = self.engine.anonymous_volumes(&old.id).await?;
        let inherit = if self.options.renew_anon_volumes { Vec::new() } else { anonymous.clone() };
        if strategy == Strategy::StopFirst {
            self.pre_stop(old).await?;
            self.engine.stop(&old.id, &old.name).await?;
        }
        let kept = format!("{}{PREVIOUS_SUFFIX}", old.name);
        self.engine.rename(&old.id, &kept).await?;
        step.undo = Some(Undo::Replaced {
            service: change.service.clone(),
            old_id: old.id.clone(),
            old_name: old.name.clone(),
            was_running: old.running,
            new_id: None,
            anonymous: anonymous.into_iter().map(|(_, name)| name).collect(),
        });
        let id = self.create(change, &inherit).await?;
        if let Some(Undo::Replaced { new_id, .. }) = &mut step.undo {
            *new_id = Some(id.clone());
        }
        step.id = Some(id.clone());
        self.start(&id, change).await
    }

    /// Starts a container, then runs its service's `post_start` hooks, as
    /// Compose does.
    async fn start(&self, id: &str, change: &ServiceChange) -> Result<(), Error> {
        self.engine.start(id, &change.container).await?;
        let hooks = self.stack.services.get(&change.service).map(|s| s.post_start.as_slice()).unwrap_or_default();
        self.engine.run_hooks(id, &change.container, "post_start", hooks).await
    }

    /// Runs the `pre_stop` hooks of a running container that is about to
    /// be stopped (the ones of the service as now described).
    async fn pre_stop(&self, old: &ObservedContainer) -> Result<(), Error> {
        let hooks = self.stack.services.get(&old.service).map(|s| s.pre_stop.as_slice()).unwrap_or_default();
        if !old.running || hooks.is_empty() {
            return Ok(());
        }
        self.engine.run_hooks(&old.id, &old.name, "pre_stop", hooks).await
    }

    async fn create_and_start(&self, change: &ServiceChange, step: &mut Step) -> Result<(), Error> {
        let id = self.create(change, &[]).await?;
        step.undo = Some(Undo::Created { id: id.clone(), name: change.container.clone() });
        step.id = Some(id.clone());
        self.start(&id, change).await
    }

    async fn create(&self, change: &ServiceChange, inherit: &[(String, String)]) -> Result<String, Error> {
        let svc = self
            .stack
            .services
            .get(&change.service)
            .ok_or_else(|| Error::Engine(format!("planned service `{}` is not in the stack", change.service)))?;
        self.progress.step(&format!("creating {} for `{}`", change.container, change.service));
        let hash = plan::config_hash(self.stack, &change.service, svc);
        self.engine.create_container(self.stack, &change.service, svc, &hash, &self.descriptor_labels, inherit).await
    }

    /// Success: the kept containers and the services no longer in the
    /// descriptor go, and so do containers a killed deploy left behind.
    pub(crate) async fn finalize(&self, undo: &[Undo]) {
        // Old containers stop with their grace period, all at once. Their
        // anonymous volumes go with them unless the successor mounts them
        // (the engine keeps a volume still in use), so none is left
        // dangling by a recreate.
        let removals = undo.iter().filter_map(|u| match u {
            Undo::Replaced { old_id, old_name, anonymous, .. } => Some(async move {
                if let Err(e) = self.engine.remove_container_with(old_id, old_name, true).await {
                    self.progress.step(&format!("warning: could not remove the replaced container {old_name}: {e}"));
                    return;
                }
                // A volume handed down by an earlier recreate is mounted by
                // name, so the engine does not remove it with the container:
                // one the successor does not use goes here.
                for volume in anonymous {
                    if let Err(e) = self.engine.remove_unused_volume(volume).await {
                        self.progress.step(&format!("warning: could not remove anonymous volume {volume}: {e}"));
                    }
                }
            }),
            _ => None,
        });
        futures_util::future::join_all(removals).await;
        for change in self.plan.services_with(ChangeKind::Remove) {
            self.progress.step(&format!(
                "removing {} (service `{}` is no longer in the descriptor)",
                change.container, change.service
            ));
            self.progress.phase(crate::pipeline::Phase::Applied);
            if let Some(c) = self.observed.iter().find(|c| c.name == change.container) {
                if let Err(e) = self.engine.remove_container(&c.id, &c.name).await {
                    self.progress.step(&format!("warning: could not remove {}: {e}", c.name));
                }
            }
        }
    }

    /// Removes `_dm_previous` containers an earlier deploy left behind.
    async fn clear_leftovers(&self) -> Result<(), Error> {
        let removals = self.leftovers.iter().map(|(id, name)| async move {
            self.progress.step(&format!("removing {name}, kept aside by an earlier deploy that did not finish"));
            self.engine.remove_container(id, name).await
        });
        for result in futures_util::future::join_all(removals).await {
            result?;
        }
        Ok(())
    }

    /// Failure: undo every change in reverse order, then watch what is back.
    pub(crate) async fn roll_back(&self, undo: &[Undo], reason: String) -> RollbackReport {
        // Each undo touches only its own service's containers, so they run
        // at once; within one, the steps keep their order.
        let steps = undo.iter().rev().map(|u| async move {
            let result = match u {
                Undo::Created { id, name } => self.engine.discard(id, name).await,
                Undo::Started { id, name } => self.engine.stop(id, name).await,
                Undo::Replaced { old_id, old_name, was_running, new_id, service, .. } => {
                    self.progress.step(&format!("restoring the previous container of `{service}`"));
                    let mut r = Ok(());
                    if let Some(new_id) = new_id {
                        r = self.engine.discard(new_id, old_name).await;
                    }
                    if r.is_ok() {
                        r = self.engine.rename(old_id, old_name).await;
                    }
                    if r.is_ok() && *was_running {
                        r = self.engine.start(old_id, old_name).await;
                    }
                    r
                }
            };
            if let Err(e) = result {
                self.progress.step(&format!("warning: rollback step failed: {e}"));
            }
        });
        futures_util::future::join_all(steps).await;
        self.remove_created_objects().await;
        if self.observed.is_empty() {
            self.progress.step("rolled back: no previous version; the failed containers were removed");
            return RollbackReport { reason, version: None, previous: false, restored: None };
        }
        // Watch what runs now: the kept services and the restored ones.
        let mut watch =
            Watch::new(self.engine, self.stack, self.options.stability_window, self.options.log_lines).only_tracked();
        let mut version = None;
        if let Ok(now) = self.engine.observe(&self.stack.name).await {
            for c in &now {
                if c.running || c.exit_code == Some(0) {
                    let _ = watch.track(&c.service, &c.id).await;
                }
                version = version.or_else(|| c.descriptor_version.clone());
            }
        }
        let deadline = Instant::now() + self.options.timeout;
        let restored = match watch.until_settled(deadline, &Shutdown::never()).await {
            Ok(report) => report,
            Err(_) => watch.report(false).await,
        };
        let rollback = RollbackReport { reason, version, previous: true, restored: Some(restored) };
        self.progress.step(&format!("rolled back: {}", rollback.summary()));
        rollback
    }

    /// The networks and volumes this deploy created belong to no previous
    /// container: a rollback removes them, so nothing is left dangling.
    async fn remove_created_objects(&self) {
        for network in &self.plan.networks {
            self.progress.step(&format!("removing network {network}, created by the failed deploy"));
            if let Err(e) = self.engine.remove_network(network).await {
                self.progress.step(&format!("warning: could not remove network {network}: {e}"));
            }
        }
        for volume in &self.plan.volumes {
            self.progress.step(&format!("removing volume {volume}, created by the failed deploy"));
            if let Err(e) = self.engine.remove_volume(volume).await {
                self.progress.step(&format!("warning: could not remove volume {volume}: {e}"));
            }
        }
    }
}

enum Readiness {
    Ready,
    Waiting,
    Never(String),
}

//! Health on Swarm: per service, tasks running over replicas desired, and
//! the update state Swarm reports.
//!
//! A task of a service with a healthcheck only reaches `running` once its
//! container is healthy (Swarm's executor waits for that before it reports
//! the task started, and replaces it when it turns unhealthy), so running
//! tasks of such a service are healthy tasks. Task errors ("no suitable
//! node", "task: non-zero exit (1)") are quoted in the report as Swarm
//! wrote them.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bollard::models::{ServiceUpdateStatusStateEnum as UpdateState, Task, TaskState};
use bollard::query_parameters::ListTasksOptionsBuilder;

use super::{spec, SwarmEngine};
use crate::error::Result;
use crate::health::{HealthReport, ServiceHealth, ServiceStatus, Verdict, CRASH_LOOP_RESTARTS};
use crate::pipeline::Cx;
use crate::stack::Stack;

/// How often the manager is asked again.
const POLL: Duration = Duration::from_millis(500);

/// Why services are watched, which decides what counts as settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Watched {
    /// After an apply: until everything settles or the deadline passes.
    Deploy,
    /// After asking Swarm to roll back: a completed rollback is the goal.
    Rollback,
    /// What runs now, once.
    Status,
}

/// Watches `services` of the stack and reports their health.
///
/// `updated` names the services this deploy updated: for them, Swarm's
/// update status only counts once it is about this update (the old tasks
/// still run, and the last update's `completed` still shows, until Swarm's
/// updater picks the new spec up).
pub(super) async fn watch(
    engine: &SwarmEngine,
    cx: &Cx<'_>,
    stack: &Stack,
    services: &[String],
    updated: &HashMap<String, Option<String>>,
    mode: Watched,
) -> Result<HealthReport> {
    let started = Instant::now();
    let since = SystemTime::now() - Duration::from_secs(1);
    let deadline = started + cx.request.options.timeout;
    let mut settled_at: HashMap<String, f64> = HashMap::new();
    let mut last_line = String::new();
    loop {
        let mut report = Vec::new();
        for name in services {
            let svc = &stack.services[name];
            let swarm_name = spec::service_name(stack, name);
            let mut service = engine.inspect(&swarm_name).await?;
            // A rollback that finished before this deploy (or this status)
            // is history: the service runs its previous spec, which is the
            // one the descriptor asks for now. Only this deploy's own
            // updates can fail by being rolled back.
            if mode != Watched::Rollback && !updated.contains_key(name) {
                if let Some(s) = service
                    .as_mut()
                    .filter(|s| s.update_status.as_ref().and_then(|u| u.state) == Some(UpdateState::ROLLBACK_COMPLETED))
                {
                    s.update_status = None;
                }
            }
            let tasks = tasks(engine, &swarm_name).await?;
            let mut health =
                assess(name, &swarm_name, service.as_ref(), &tasks, svc.healthcheck.is_some(), mode, since);
            let fresh = updated.get(name).is_none_or(|before| update_started(service.as_ref(), before.as_deref()));
            if mode == Watched::Deploy && !fresh {
                health.status = ServiceStatus::Starting;
                health.cause = Some("waiting for Swarm to start the update".into());
            }
            health.image = svc.image.clone();
            if health.status.is_ok() || health.status.is_failed() {
                let at = *settled_at.entry(name.clone()).or_insert(started.elapsed().as_secs_f64());
                health.settle_seconds = Some(at);
            }
            report.push(health);
        }
        let all_settled = report.iter().all(|s| s.status.is_ok() || s.status.is_failed());
        let timed_out = Instant::now() >= deadline && !all_settled;
        let stop = mode == Watched::Status || all_settled || timed_out || cx.shutdown.reason().is_some();
        let line = report
            .iter()
            .map(|s| format!("{} {}", s.name, s.container.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ");
        if !stop && line != last_line {
            cx.progress.step(&format!("waiting: {line}"));
            last_line = line;
        }
        if stop {
            let mut services = report;
            if let Some(reason) = cx.shutdown.reason().filter(|_| !all_settled) {
                for s in services.iter_mut().filter(|s| !s.status.is_ok()) {
                    s.cause = Some(format!("the watch was stopped: {reason}"));
                }
            }
            let verdict = if services.iter().all(|s| s.status.is_ok()) { Verdict::Healthy } else { Verdict::Failed };
            return Ok(HealthReport {
                target: stack.name.clone(),
                verdict,
                services,
                elapsed_seconds: started.elapsed().as_secs_f64(),
                timed_out,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = cx.shutdown.wait() => {}
        }
    }
}

async fn tasks(engine: &SwarmEngine, swarm_name: &str) -> Result<Vec<Task>> {
    let filters: HashMap<String, Vec<String>> =
        [("service".to_string(), vec![swarm_name.to_string()])].into_iter().collect();
    let options = ListTasksOptionsBuilder::default().filters(&filters).build();
    engine
        .engine
        .docker()
        .list_tasks(Some(options))
        .await
        .map_err(|e| engine.fail(&format!("list tasks of {swarm_name}"), e))
}

/// The health rules for one Swarm service.
fn assess(
    name: &str,
    swarm_name: &str,
    service: Option<&bollard::models::Service>,
    tasks: &[Task],
    has_healthcheck: bool,
    mode: Watched,
    since: SystemTime,
) -> ServiceHealth {
    let mut health = ServiceHealth {
        name: name.to_string(),
        container: None,
        status: ServiceStatus::Missing,
        health: None,
        restarts: 0,
        image: String::new(),
        image_id: None,
        exit_code: None,
        ports: vec![],
        settle_seconds: None,
        cause: None,
        log_tail: vec![],
    };
    let Some(service) = service else {
        health.cause = Some(format!("Swarm has no service {swarm_name}"));
        return health;
    };
    let desired = service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let current = |t: &&Task| t.desired_state == Some(TaskState::RUNNING);
    let running = tasks.iter().filter(current).filter(|t| state(t) == Some(TaskState::RUNNING)).count();
    let mut failed: Vec<&Task> = tasks
        .iter()
        .filter(|t| matches!(state(t), Some(TaskState::FAILED | TaskState::REJECTED)))
        .filter(|t| created(t).is_some_and(|c| c >= since))
        .collect();
    failed.sort_by_key(|t| std::cmp::Reverse(t.updated_at.clone()));
    let stuck = tasks.iter().filter(current).find_map(|t| {
        let err = t.status.as_ref()?.err.clone()?;
        (state(t) == Some(TaskState::PENDING) && !err.is_empty()).then_some(err)
    });
    let last_error = failed.first().and_then(|t| t.status.as_ref()).and_then(|s| s.err.clone().or(s.message.clone()));
    health.restarts = failed.len() as i64;
    health.exit_code = failed
        .first()
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.exit_code);
    health.container = Some(format!("{swarm_name} ({running}/{desired} tasks)"));
    health.ports = service
        .endpoint
        .as_ref()
        .and_then(|e| e.ports.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| Some(format!("*:{}->{}", p.published_port?, p.target_port?)))
        .collect();
    let update = service.update_status.as_ref();
    let message = update.and_then(|u| u.message.clone()).unwrap_or_default();
    let with_error = |text: String| match &last_error {
        Some(e) => format!("{text}; last task error: {e}"),
        None => text,
    };
    let ok = if has_healthcheck { ServiceStatus::Healthy } else { ServiceStatus::Running };
    let (status, cause) = match (update.and_then(|u| u.state), mode) {
        (Some(UpdateState::ROLLBACK_COMPLETED), Watched::Rollback) if running >= desired => (ok, None),
        (
            Some(UpdateState::ROLLBACK_STARTED | UpdateState::ROLLBACK_COMPLETED | UpdateState::ROLLBACK_PAUSED),
            Watched::Rollback,
        ) => (ServiceStatus::Starting, Some(format!("Swarm is rolling back: {message}"))),
        (Some(UpdateState::ROLLBACK_STARTED | UpdateState::ROLLBACK_COMPLETED | UpdateState::ROLLBACK_PAUSED), _) => {
            let failure = if has_healthcheck { ServiceStatus::Unhealthy } else { ServiceStatus::Crashed };
            (failure, Some(with_error(format!("Swarm rolled the update back: {message}"))))
        }
        (Some(UpdateState::PAUSED), _) => {
            (ServiceStatus::Exited, Some(with_error(format!("Swarm paused the update: {message}"))))
        }
        (Some(UpdateState::UPDATING), _) => {
            (ServiceStatus::Starting, Some(format!("updating: {running}/{desired} tasks running")))
        }
        _ if desired == 0 => (ServiceStatus::Completed, None),
        _ if running >= desired => (ok, None),
        _ if stuck.is_some() => {
            (ServiceStatus::Missing, Some(format!("tasks cannot be placed: {}", stuck.unwrap_or_default())))
        }
        _ if failed.len() as i64 >= CRASH_LOOP_RESTARTS => {
            (ServiceStatus::Crashed, Some(with_error(format!("{} tasks failed during the deploy", failed.len()))))
        }
        _ => (ServiceStatus::Starting, Some(with_error(format!("{running}/{desired} tasks running")))),
    };
    health.status = status;
    health.cause = cause;
    if has_healthcheck {
        health.health = Some(if status.is_ok() { "healthy" } else { "unhealthy" }.to_string())
            .filter(|_| !matches!(status, ServiceStatus::Starting));
    }
    health
}

/// Whether Swarm's update status is about this deploy's update: its
/// updater (or its rollback) has started since, so the start time it
/// reports is no longer `before`, the one it reported before the update.
/// (Compared as text: no clock, neither ours nor the manager's, is trusted.)
fn update_started(service: Option<&bollard::models::Service>, before: Option<&str>) -> bool {
    let Some(service) = service else { return true };
    let started = service.update_status.as_ref().and_then(|u| u.started_at.as_ref()).map(|t| t.to_string());
    started.is_some_and(|started| Some(started.as_str()) != before)
}

/// When Swarm's updater last started on a service, as the manager wrote it.
pub(super) fn update_start(service: &bollard::models::Service) -> Option<String> {
    service.update_status.as_ref()?.started_at.as_ref().map(|t| t.to_string())
}

fn time(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(SystemTime::from)
}

fn state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

fn created(task: &Task) -> Option<SystemTime> {
    time(&task.created_at.as_ref()?.to_string())
}

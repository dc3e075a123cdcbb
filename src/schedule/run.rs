//! Running jobs: one run of a schedule or hook, and the loop that fires
//! each schedule on time, never overlapping itself.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Job, OnBusy, Policy};
use crate::config::Config;
use crate::descriptor::DescriptorRef;
use crate::error::{Error, Result};
use crate::pipeline::{self, Silent};
use crate::request::{Action, Origin, Outcome, Request};
use crate::shutdown::Shutdown;

/// Runs `job` once under `origin`: the policy decides whether (and how)
/// it deploys. Every request it makes is audited by the pipeline; the
/// job's own webhooks get the report too.
pub async fn run_once(config: &Config, job: &Job, origin: Origin, shutdown: &Shutdown) -> Result<Outcome> {
    let request = |action: Action| -> Result<Request> {
        let mut options = config.deploy_options()?;
        if job.on_busy == OnBusy::Skip {
            options.lock_wait = std::time::Duration::ZERO;
        }
        options.remove_volumes = job.reset_volumes;
        Ok(Request {
            action,
            descriptor: DescriptorRef::parse(&job.descriptor)?,
            project: None,
            user: Some(job.user.clone()),
            password: None,
            environment: job.environment.clone(),
            origin: origin.clone(),
            options,
            load: Default::default(),
            variables: Default::default(),
            adopt: false,
        })
    };
    let result = match job.policy {
        Policy::Always => pipeline::run(&request(Action::Deploy)?, config, &Silent, shutdown).await,
        Policy::IfChanged => {
            // One request under one lock: the pipeline plans, and deploys
            // only when something changed; its one record says which.
            let mut once = request(Action::Deploy)?;
            once.options.only_if_changed = true;
            let outcome = pipeline::run(&once, config, &Silent, shutdown).await?;
            if outcome.unchanged() {
                // Nothing changed: no report to the job's webhooks either.
                tracing::info!(job = %job.name, target = %outcome.target, "nothing changed: no deploy");
                return Ok(outcome);
            }
            Ok(outcome)
        }
        Policy::Reset => {
            pipeline::run(&request(Action::Down)?, config, &Silent, shutdown).await?;
            pipeline::run(&request(Action::Deploy)?, config, &Silent, shutdown).await
        }
    };
    match &result {
        Ok(outcome) => crate::notify::send_all(&job.notify, outcome, &Silent).await,
        Err(e) => crate::notify::send_error(&job.notify, &request(Action::Deploy)?, None, e, &Silent).await,
    }
    result
}

/// Starts one loop per schedule. Each sleeps until its next time, runs,
/// and computes the next time from when the run ended, so a run never
/// overlaps the next one (times that passed meanwhile are skipped, and
/// logged). Missed runs while `serve` was down are recorded once.
pub fn start(config: Arc<Config>, shutdown: Shutdown, tasks: &mut tokio::task::JoinSet<()>) {
    for job in config.schedules.clone() {
        let config = config.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            report_missed(&config, &job);
            loop {
                let next = match job.next_after(Utc::now()) {
                    Ok(Some(next)) => next,
                    Ok(None) => return tracing::warn!(schedule = %job.name, "the cron expression never fires again"),
                    Err(e) => return tracing::error!(schedule = %job.name, error = %e, "schedule stopped"),
                };
                let wait = (next - Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait() => return,
                }
                // Every replica wakes; the one that claims the time runs it.
                let due = next.timestamp();
                match claim_run(&config, &job.name, due).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(schedule = %job.name, error = %e, "run skipped: cannot claim it");
                        continue;
                    }
                }
                tracing::info!(schedule = %job.name, "running");
                let origin = Origin::Schedule { name: job.name.clone(), user: job.user.clone() };
                let result = run_once(&config, &job, origin, &shutdown).await;
                let verdict = match &result {
                    Ok(o) if o.exit_code() == 0 => {
                        crate::metrics::schedule_succeeded(&job.name);
                        "ok".to_string()
                    }
                    Ok(o) => format!("exit {}", o.exit_code()),
                    Err(e) => format!("{e}"),
                };
                tracing::info!(schedule = %job.name, %verdict, "run finished");
                if let Ok((skipped, _)) = job.runs_between(next, Utc::now()) {
                    if skipped > 0 {
                        tracing::warn!(schedule = %job.name, skipped, "times passed while the run was going; skipped");
                    }
                }
            }
        });
    }
}

/// Claims the run of `schedule` due at `due`: `false` (and a log line)
/// when another replica has it.
async fn claim_run(config: &Config, schedule: &str, due: i64) -> Result<bool> {
    let db = super::claim::database(config)?;
    let name = schedule.to_string();
    tokio::task::spawn_blocking(move || {
        let claimed = super::claim::claim(&db, &name, due, super::claim::Kind::Run)?;
        if !claimed {
            let by = super::claim::claimant(&db, &name, due, super::claim::Kind::Run).unwrap_or_default();
            tracing::info!(schedule = %name, claimed_by = %by, "this time's run was claimed by another replica");
        }
        Ok(claimed)
    })
    .await
    .map_err(|e| Error::Internal(format!("schedule claim task failed: {e}")))?
}

/// When `serve` was down across a schedule's times: one audit record
/// (verdict `missed`) and one log line, not a burst of late runs; with
/// several replicas, one of them reports it.
fn report_missed(config: &Config, job: &Job) {
    let Some(last) = last_run(config, &job.name) else { return };
    let Some(last) = DateTime::<Utc>::from_timestamp(last.started as i64, 0) else { return };
    let Ok((missed, first)) = job.runs_between(last, Utc::now()) else { return };
    if missed == 0 {
        return;
    }
    let claimed = super::claim::database(config).and_then(|db| {
        let due = first.map(|t| t.timestamp()).unwrap_or_default();
        crate::state::off_runtime(|| super::claim::claim(&db, &job.name, due, super::claim::Kind::Missed))
    });
    if !matches!(claimed, Ok(true)) {
        return;
    }
    let first = first.map(|t| t.to_rfc3339()).unwrap_or_default();
    let message = format!(
        "{missed} run(s) of schedule `{}` were missed while dockmaster was not running (the first at {first}); \
         they are not replayed: the next run is on schedule",
        job.name
    );
    tracing::warn!(schedule = %job.name, missed, "{message}");
    let origin = Origin::Schedule { name: job.name.clone(), user: job.user.clone() };
    let missed = Error::Unreachable(message);
    pipeline::record_event(config, origin, "deploy", &job.descriptor, &job.environment, "missed", &missed);
}

/// The last audit record of a schedule, if any.
pub fn last_run(config: &Config, name: &str) -> Option<crate::audit::Record> {
    let store = crate::audit::existing(config).ok()??;
    let query = crate::audit::Query {
        origin: Some("schedule".into()),
        origin_name: Some(name.to_string()),
        limit: Some(1),
        ..Default::default()
    };
    store.query(&query).ok()?.into_iter().next()
}

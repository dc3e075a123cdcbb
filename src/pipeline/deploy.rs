//! The deploy stages every engine goes through, in one order: check,
//! prepare, plan, apply (with its watch), then finish, roll back, or leave
//! the failure in place (`--no-rollback`). The engines carry out the
//! steps; the order and the decisions between them are made here, once,
//! so one engine and Swarm cannot drift apart on them again.

use super::{Cx, Engine, Phase};
use crate::error::{Error, Result};
use crate::health::HealthReport;
use crate::plan::{self, ChangeKind, Observed, Plan};
use crate::request::{Action, DescriptorSummary, Outcome, OutcomeError};
use crate::stack::Stack;

/// What applying a plan did (an error before the first change is the
/// apply's `Err` instead, with nothing to undo): the health of the deployed services (before
/// any rollback, so the failing services' causes and logs are the new
/// version's), what to undo, and an engine error that stopped it halfway.
pub(crate) struct Applied<U> {
    /// The health of what was deployed.
    pub report: HealthReport,
    /// Each change made, in order, as the engine undoes it.
    pub undo: Vec<U>,
    /// An engine error that stopped the apply halfway.
    pub error: Option<Error>,
}

/// A deploy once planned: what the engine's steps after the plan share.
pub(crate) struct Planned<'a> {
    /// The stack being deployed.
    pub stack: &'a Stack,
    /// Its plan.
    pub plan: &'a Plan,
    /// What the engine ran before anything changed.
    pub observed: &'a Observed,
}

/// Deploys `stack` on `engine` from what `observed` saw: the target's
/// lock is held and nothing else changes the target meanwhile.
pub(super) async fn deploy<E: Engine>(
    engine: &E,
    cx: &Cx<'_>,
    stack: &Stack,
    mut observed: Observed,
    summary: DescriptorSummary,
) -> Result<Outcome> {
    let Cx { request, progress, shutdown, .. } = *cx;
    engine.check(stack)?;
    let images = engine.prepare(cx, stack, &mut observed).await?;
    let mut plan = plan::diff(stack, &observed, &engine.rules());
    if request.options.force_recreate {
        plan::force_recreate(&mut plan, stack);
    }
    for warning in &plan.warnings {
        progress.step(&format!("warning: {warning}"));
    }
    if plan.is_noop() {
        progress.step(&format!("no changes: all {} services of `{}` are up to date", plan.services.len(), stack.name));
    }
    progress.phase(Phase::Planned(plan.services.iter().filter(|s| s.action != ChangeKind::Keep).count()));
    let planned = Planned { stack, plan: &plan, observed: &observed };
    let applied = engine.apply(cx, &planned, &summary).await?;
    let interrupted = shutdown.reason();
    let healthy = applied.report.verdict.is_healthy() && applied.error.is_none() && interrupted.is_none();
    let rollback = if healthy {
        engine.finish(cx, &planned, &applied.undo).await?;
        None
    } else {
        let reason = match (&interrupted, &applied.error) {
            (Some(signal), _) => format!("interrupted by {signal}"),
            (None, Some(e)) => format!("engine error: {e}"),
            (None, None) => failure_summary(&applied.report),
        };
        if request.options.rollback {
            progress.step(&format!("deploy failed ({reason}); rolling back"));
            progress.phase(Phase::RollingBack);
            Some(engine.undo(cx, &planned, &applied.undo, reason).await?)
        } else {
            progress.step(&format!("deploy failed ({reason}); --no-rollback: leaving the failed state in place"));
            None
        }
    };
    Ok(Outcome {
        plan: Some(plan),
        report: Some(applied.report),
        rollback,
        images,
        error: applied.error.as_ref().map(OutcomeError::from),
        ..Outcome::new(stack.name.clone(), Action::Deploy, summary)
    })
}

/// One line naming the failed services (or, at the deadline, the ones that
/// never settled).
fn failure_summary(report: &HealthReport) -> String {
    let named = |failed: fn(&crate::health::ServiceHealth) -> bool| -> Vec<String> {
        report.services.iter().filter(|s| failed(s)).map(|s| format!("{} {}", s.name, s.status.as_str())).collect()
    };
    let mut failing = if report.timed_out { vec![] } else { named(|s| s.status.is_failed()) };
    if failing.is_empty() {
        failing = named(|s| !s.status.is_ok());
    }
    if report.timed_out {
        format!("deadline passed: {}", failing.join(", "))
    } else {
        failing.join(", ")
    }
}

//! The audit stage: the one record every request leaves, whatever became
//! of it, and the records of refusals and events outside a request.

use super::*;
use crate::audit::{self, Record};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::request::{Outcome, Request};

/// The audit record of one request.
pub(super) fn record(request: &Request, trail: &Trail, result: &Result<Outcome>, started: u64) -> Record {
    let (origin, origin_detail) = request.origin.audit();
    let mut r = Record {
        started,
        finished: audit::now(),
        // The directory's spelling when it answered, else what the way in
        // claimed (the directory may be the thing that failed).
        user: trail
            .principal
            .as_ref()
            .map(|p| p.uid.clone())
            .or_else(|| request.user.clone())
            .unwrap_or_else(|| request.origin.user().to_string()),
        groups: trail.principal.as_ref().map(|p| p.groups.clone()).unwrap_or_default(),
        origin,
        origin_detail,
        action: request.action.as_str().to_string(),
        reference: request.descriptor.to_string(),
        environment: request.environment.clone(),
        target: trail.target.clone(),
        version: trail.summary.as_ref().and_then(|s| s.version.clone()),
        digest: trail.summary.as_ref().map(|s| s.digest.clone()),
        decision: trail.decision.clone(),
        classification: trail.classification.as_ref().map(|c| c.class.as_str().to_string()),
        differences: trail.classification.as_ref().map(|c| c.differences.clone()).unwrap_or_default(),
        violations: trail.violations.clone(),
        descriptor: trail.descriptor.clone(),
        engine: trail.engine.clone(),
        ..Record::default()
    };
    match result {
        Ok(outcome) => {
            r.target = Some(outcome.target.clone());
            r.version = outcome.descriptor.version.clone();
            r.digest = Some(outcome.descriptor.digest.clone());
            r.plan = outcome.plan.as_ref().map(plan_line);
            r.rolled_back = outcome.rollback.is_some();
            r.exit_code = outcome.exit_code();
            r.error = outcome.error.as_ref().map(|e| e.message.clone());
            r.verdict = match (&outcome.report, &outcome.error) {
                _ if outcome.unchanged() => "unchanged",
                _ if outcome.not_running.is_some() => "not-running",
                (_, Some(_)) => "error",
                (Some(report), None) if report.verdict.is_healthy() => "healthy",
                (Some(_), None) => "unhealthy",
                (None, None) => "ok",
            }
            .to_string();
        }
        Err(e) => {
            r.exit_code = e.exit_code();
            r.error = Some(e.to_string());
            // A refusal names what it was about, so `history REF` finds it.
            if r.target.is_none() {
                r.target =
                    crate::target::of(&request.descriptor, &request.environment, request.project.as_deref(), None).ok();
            }
            r.verdict = e.verdict().to_string();
        }
    }
    r
}

/// A plan in one line, for the audit trail: `2 create, 1 recreate, 3 keep`.
pub(super) fn plan_line(plan: &Plan) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for change in &plan.services {
        *counts.entry(change.action.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// Records a request a way in refused before it reached [`run`] (a chat
/// user nobody mapped, a command from the wrong channel), so the trail
/// holds every request. A failure to write is logged: the refusal stands.
pub fn record_refusal(
    config: &Config,
    origin: crate::request::Origin,
    action: &str,
    reference: &str,
    environment: &str,
    error: &Error,
) {
    record_event(config, origin, action, reference, environment, error.verdict(), error);
}

/// Records something that happened to a request outside [`run`] with
/// its own verdict (`missed` for a schedule's runs lost while `serve` was
/// down).
pub fn record_event(
    config: &Config,
    origin: crate::request::Origin,
    action: &str,
    reference: &str,
    environment: &str,
    verdict: &str,
    error: &Error,
) {
    let (kind, detail) = origin.audit();
    let now = audit::now();
    let record = Record {
        started: now,
        finished: now,
        user: origin.user().to_string(),
        origin: kind,
        origin_detail: detail,
        action: action.to_string(),
        reference: reference.to_string(),
        environment: environment.to_string(),
        verdict: verdict.to_string(),
        exit_code: error.exit_code(),
        error: Some(error.to_string()),
        ..Record::default()
    };
    // Refusals before the pipeline (an unmapped chat user) count in the
    // metrics as those inside it do.
    crate::metrics::observe(&record, None, 0.0);
    if let Err(e) = audit::open(config).and_then(|store| store.append(&record)) {
        tracing::error!(error = %e, "the audit record of a refused request was not written");
    }
}

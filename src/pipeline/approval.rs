//! The approval gate: structural changes need an approval bound to the
//! exact descriptor (digest) and environment; `approve` records one; a
//! rollback finds the version to go back to in the trail.

use super::*;
use crate::audit::{self, Approval};
use crate::config::Config;
use crate::descriptor::DescriptorRef;
use crate::error::{Error, Result};
use crate::policy::{ChangeClass, Classification};
use crate::request::{DescriptorSummary, Request};
use crate::stack::Stack;

/// Structural changes need an approver where access rules are in force:
/// the deployer's own `approve` right, or an approval recorded for this
/// exact descriptor (reference, version and digest) and environment.
#[allow(clippy::too_many_arguments)]
pub(super) fn approval_gate(
    request: &Request,
    config: &Config,
    store: &audit::Store,
    trail: &mut Trail,
    summary: &DescriptorSummary,
    bound: &str,
    classification: &Classification,
    progress: &dyn Progress,
) -> Result<()> {
    let (Some(access), Some(principal)) = (&config.access, &trail.principal) else { return Ok(()) };
    match classification.class {
        ChangeClass::None => return Ok(()),
        ChangeClass::ImageOnly => {
            progress.step("change: image-only (self-service)");
            return Ok(());
        }
        ChangeClass::Structural => {}
    }
    if !config.policy.approval_needed(&request.environment) {
        progress
            .step(&format!("change: structural; no approval needed in `{}` (policy.approval)", request.environment));
        return Ok(());
    }
    let scope = scope(&request.descriptor);
    if crate::access::authorize(access, principal, "approve", &scope, &request.environment).is_allowed() {
        progress.step(&format!("change: structural, approved by {} (who may approve)", principal.uid));
        return Ok(());
    }
    let version = summary.version.clone().unwrap_or_default();
    if let Some(a) = store.approval(&scope, &version, bound, &request.environment)? {
        let note = format!("approved by {} at {}", a.approver, audit::timestamp(a.time));
        progress.step(&format!("change: structural, {note}"));
        trail.decision = Some(format!("{}; structural change {note}", trail.decision.clone().unwrap_or_default()));
        return Ok(());
    }
    let list: Vec<String> = classification.differences.iter().map(|d| format!("  - {d}")).collect();
    let approve = match &summary.version {
        Some(v) => format!("dockmaster approve '{scope}/{v}' --env {}", request.environment),
        None => format!("dockmaster approve '{scope}' --env {}", request.environment),
    };
    Err(Error::Denied(format!(
        "{} is a structural change, which needs an approval in `{}`; {} may only change images here. \
         Someone with the `approve` right can run `{approve}`, or deploy it. Differences:\n{}",
        request.descriptor,
        request.environment,
        principal.uid,
        list.join("\n")
    )))
}

/// Records an approval of the resolved descriptor for the environment.
pub(super) fn approve(
    request: &Request,
    store: &audit::Store,
    trail: &Trail,
    summary: &DescriptorSummary,
    bound: &str,
    classification: &Classification,
    progress: &dyn Progress,
) -> Result<()> {
    let approver = match &trail.principal {
        Some(p) => p.uid.clone(),
        None => request.origin.user().to_string(),
    };
    let approval = Approval {
        time: audit::now(),
        approver,
        reference: scope(&request.descriptor),
        version: summary.version.clone().unwrap_or_default(),
        digest: bound.to_string(),
        environment: request.environment.clone(),
        differences: classification.differences.clone(),
    };
    store.approve(&approval)?;
    progress.step(&format!(
        "approved {} ({}) for `{}`: {} structural difference(s) from what runs now",
        request.descriptor,
        bound,
        request.environment,
        classification.differences.len()
    ));
    Ok(())
}

/// The version a rollback deploys: the one asked for, or the last version
/// that came up healthy before the one running now, from the audit trail.
pub(super) fn rollback_version(request: &Request, store: &audit::Store, stack: &Stack) -> Result<String> {
    let DescriptorRef::Named { version, .. } = &request.descriptor else {
        return Err(Error::Usage(format!(
            "rollback needs a named descriptor (APPLICATION/RELEASE), not the file {}: deploy the previous file instead",
            request.descriptor
        )));
    };
    if let Some(v) = version {
        return Ok(v.clone());
    }
    let query = audit::Query {
        target: Some(stack.name.clone()),
        actions: Some(vec!["deploy".into(), "rollback".into()]),
        limit: Some(500),
        ..audit::Query::default()
    };
    let past = store.query(&query)?;
    match audit::rollback_candidates(&past) {
        (_, Some(previous)) => Ok(previous),
        (Some(current), None) => Err(Error::Usage(format!(
            "{}: version {current} is the only healthy version in the audit trail; name one with --to",
            stack.name
        ))),
        (None, _) => Err(Error::Usage(format!(
            "{}: no healthy deploy in the audit trail at {}; name the version with --to",
            stack.name,
            store.database().shown()
        ))),
    }
}

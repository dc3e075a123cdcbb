//! The JSON report (`--output json`): one object, for scripts and tools.
//!
//! Its shape is a contract documented in `docs/commands.md`: fields may be
//! added, never renamed or removed.

use serde::Serialize;

use super::Changes;
use crate::health::{ServiceHealth, Verdict};
use crate::request::{Action, DescriptorSummary, Outcome};

#[derive(Serialize)]
struct JsonReport<'a> {
    target: &'a str,
    action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<Verdict>,
    descriptor: &'a DescriptorSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    services: Option<&'a [ServiceHealth]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<Changes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a crate::plan::Plan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification: Option<&'a crate::policy::Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timed_out: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rolled_back: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback: Option<&'a crate::apply::RollbackReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a crate::request::OutcomeError>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    images: &'a [crate::request::ImageUse],
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<&'a str>,
    /// `status` of a version that does not run: the version that does.
    #[serde(skip_serializing_if = "Option::is_none")]
    running_version: Option<&'a str>,
}

/// Renders an outcome as one JSON object (pretty-printed, newline-ended).
pub fn render(outcome: &Outcome) -> String {
    let report = outcome.report.as_ref();
    let doc = JsonReport {
        target: &outcome.target,
        action: outcome.action,
        verdict: report.map(|r| r.verdict),
        descriptor: &outcome.descriptor,
        services: report.map(|r| r.services.as_slice()),
        changes: outcome.plan.as_ref().map(Changes::of),
        plan: outcome.plan.as_ref(),
        classification: outcome.classification.as_ref(),
        elapsed_seconds: report.map(|r| r.elapsed_seconds),
        timed_out: report.map(|r| r.timed_out),
        rolled_back: matches!(outcome.action, Action::Deploy | Action::Rollback).then_some(outcome.rollback.is_some()),
        rollback: outcome.rollback.as_ref(),
        error: outcome.error.as_ref(),
        images: &outcome.images,
        engine: outcome.engine.as_deref(),
        running_version: outcome.not_running.as_deref(),
    };
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HealthReport, ServiceStatus};
    use crate::plan::{ChangeKind, Plan, ServiceChange};

    #[test]
    fn the_documented_fields_are_there() {
        let outcome = Outcome {
            target: "shop".into(),
            action: Action::Deploy,
            descriptor: DescriptorSummary {
                reference: "Shop/Main/3".into(),
                version: Some("3".into()),
                source: "descriptors/Shop/Main/3.yml".into(),
                digest: "sha256:00".into(),
            },
            plan: Some(Plan {
                target: "shop".into(),
                services: vec![ServiceChange {
                    service: "web".into(),
                    container: "shop-web-1".into(),
                    action: ChangeKind::Recreate,
                    reasons: vec!["`environment` changed".into()],
                    level: 0,
                    strategy: None,
                }],
                networks: vec![],
                volumes: vec![],
                warnings: vec![],
            }),
            report: Some(HealthReport {
                target: "shop".into(),
                verdict: Verdict::Failed,
                services: vec![ServiceHealth {
                    name: "web".into(),
                    container: Some("shop-web-1".into()),
                    status: ServiceStatus::Crashed,
                    health: None,
                    restarts: 3,
                    image: "app:1".into(),
                    image_id: Some("sha256:ab".into()),
                    exit_code: Some(1),
                    ports: vec![],
                    settle_seconds: None,
                    cause: Some("crash loop".into()),
                    log_tail: vec!["boom".into()],
                }],
                elapsed_seconds: 1.5,
                timed_out: false,
            }),
            rollback: None,
            classification: None,
            images: vec![],
            error: None,
            engine: None,
            not_running: None,
        };
        let v: serde_json::Value = serde_json::from_str(&render(&outcome)).unwrap();
        assert_eq!(v["target"], "shop");
        assert_eq!(v["verdict"], "failed");
        assert_eq!(v["services"][0]["status"], "crashed");
        assert_eq!(v["services"][0]["exit_code"], 1);
        assert_eq!(v["services"][0]["log_tail"][0], "boom");
        assert_eq!(v["changes"]["recreated"][0]["service"], "web");
        assert_eq!(v["changes"]["created"], serde_json::json!([]));
        assert_eq!(v["rolled_back"], false);
    }
}

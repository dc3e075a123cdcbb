//! The terminal report: a table a person reads at a glance, then the
//! verdict. Plain text with no colour codes, so it reads the same in a
//! terminal, a Rundeck log and a cron mail.

use std::fmt::Write;

use super::Changes;
use crate::health::{HealthReport, ServiceHealth};
use crate::plan::{short_id, Plan};
use crate::request::{Action, Outcome};

/// Renders an outcome for a person.
pub fn render(outcome: &Outcome) -> String {
    let mut out = String::new();
    let d = &outcome.descriptor;
    let version = d.version.as_ref().map(|v| format!(" version {v}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {} ({}{version}, {})",
        outcome.action.as_str(),
        outcome.target,
        d.reference,
        short_digest(&d.digest)
    );
    if let Some(engine) = &outcome.engine {
        let _ = writeln!(out, "engine: {engine}");
    }
    if let Some(c) = &outcome.classification {
        render_classification(&mut out, outcome.action, c);
    }
    if let Some(plan) = &outcome.plan {
        match outcome.action {
            Action::Plan => render_plan(&mut out, plan),
            Action::Down => render_down(&mut out, plan),
            _ => render_changes(&mut out, plan),
        }
    }
    for image in outcome.images.iter().filter(|i| i.source != "present") {
        let from = match &image.archive {
            Some(path) => format!("loaded from archive {path}"),
            None => image.source.clone(),
        };
        let id = image.id.as_deref().map(short_id).unwrap_or("-");
        let _ = writeln!(out, "image {} for {}: {from} ({id})", image.image, image.service);
    }
    if let Some(report) = &outcome.report {
        out.push('\n');
        render_health(&mut out, report);
    }
    match (&outcome.error, &outcome.not_running) {
        (Some(e), Some(_)) => {
            let _ = writeln!(out, "\nNOT RUNNING: {}", e.message);
        }
        (Some(e), None) => {
            let _ = writeln!(out, "\nERROR: {}", e.message);
        }
        (None, _) => {}
    }
    if let Some(rb) = &outcome.rollback {
        match &rb.restored {
            Some(restored) => {
                let version = rb.version.as_ref().map(|v| format!(" (version {v})")).unwrap_or_default();
                let _ = writeln!(out, "\nROLLED BACK: {}; the previous containers{version} are back:\n", rb.reason);
                render_health(&mut out, restored);
            }
            None => {
                let _ = writeln!(out, "\nROLLED BACK: {}; {}", rb.reason, rb.summary());
            }
        }
    }
    out
}

/// The change class; the differences in full for plans and approvals,
/// where a person decides on them.
fn render_classification(out: &mut String, action: Action, c: &crate::policy::Classification) {
    let detail = match c.class {
        crate::policy::ChangeClass::Structural => format!(" ({} structural differences)", c.differences.len()),
        _ => String::new(),
    };
    let _ = writeln!(out, "change: {}{detail}", c.class.as_str());
    if matches!(action, Action::Plan | Action::Approve) {
        for line in c.images.iter().chain(&c.differences) {
            let _ = writeln!(out, "  - {line}");
        }
    }
}

fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", hex.get(..12).unwrap_or(hex))
}

fn render_plan(out: &mut String, plan: &Plan) {
    let rows: Vec<Vec<String>> = plan
        .services
        .iter()
        .map(|c| {
            let strategy = match c.strategy {
                Some(crate::plan::Strategy::StartFirst) => "start-first",
                Some(crate::plan::Strategy::StopFirst) => "stop-first",
                None => "-",
            };
            vec![
                c.service.clone(),
                c.action.as_str().into(),
                strategy.into(),
                c.container.clone(),
                c.reasons.join("; "),
            ]
        })
        .collect();
    out.push('\n');
    table(out, &["SERVICE", "ACTION", "STRATEGY", "CONTAINER", "WHY"], &rows);
    for n in &plan.networks {
        let _ = writeln!(out, "network {n}: create");
    }
    for v in &plan.volumes {
        let _ = writeln!(out, "volume {v}: create");
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let changes = Changes::of(plan);
    let _ = writeln!(out, "\n{}", summary_line(&changes, plan));
    if plan.is_noop() {
        let _ = writeln!(out, "Nothing to do: a deploy would change nothing.");
    }
}

fn render_changes(out: &mut String, plan: &Plan) {
    let changes = Changes::of(plan);
    if plan.is_noop() {
        let _ = writeln!(out, "No changes: all {} services are up to date.", plan.services.len());
        return;
    }
    let _ = writeln!(out, "{}", summary_line(&changes, plan));
    for r in &changes.recreated {
        let _ = writeln!(out, "  recreated {}: {}", r.service, r.reasons.join("; "));
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
}

fn render_down(out: &mut String, plan: &Plan) {
    if plan.services.is_empty() && plan.networks.is_empty() {
        let _ = writeln!(out, "Nothing to remove: no container of {} exists.", plan.target);
    }
    for c in &plan.services {
        let _ = writeln!(out, "removed container {}", c.container);
    }
    for n in &plan.networks {
        let _ = writeln!(out, "removed network {n}");
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "{w}");
    }
}

fn summary_line(changes: &Changes, plan: &Plan) -> String {
    let mut line = format!(
        "Changes: {} created, {} recreated, {} unchanged, {} removed",
        changes.created.len(),
        changes.recreated.len(),
        changes.unchanged.len(),
        changes.removed.len()
    );
    if !changes.started.is_empty() {
        let _ = write!(line, ", {} restarted", changes.started.len());
    }
    if !plan.networks.is_empty() || !plan.volumes.is_empty() {
        let _ = write!(line, " (+{} networks, {} volumes)", plan.networks.len(), plan.volumes.len());
    }
    line
}

fn render_health(out: &mut String, report: &HealthReport) {
    let rows: Vec<Vec<String>> = report.services.iter().map(row).collect();
    table(out, &["SERVICE", "STATUS", "HEALTH", "RESTARTS", "IMAGE ID", "PORTS", "SETTLED"], &rows);
    let failing: Vec<&ServiceHealth> = report.services.iter().filter(|s| !s.status.is_ok()).collect();
    for s in &failing {
        let cause = s.cause.as_deref().unwrap_or("not healthy");
        let _ = writeln!(out, "\n{} is {}: {cause}", s.name, s.status.as_str());
        if let Some(code) = s.exit_code {
            let _ = writeln!(out, "  exit code: {code}");
        }
        if !s.log_tail.is_empty() {
            let _ = writeln!(out, "  last {} log lines:", s.log_tail.len());
            for line in &s.log_tail {
                let _ = writeln!(out, "  | {line}");
            }
        }
    }
    let total = report.services.len();
    let ok = report.healthy_count();
    let verdict = if report.verdict.is_healthy() { "HEALTHY" } else { "FAILED" };
    let why = if report.timed_out { ", deadline passed" } else { "" };
    let _ = writeln!(out, "\nVERDICT: {verdict} - {ok}/{total} services healthy ({:.1}s{why})", report.elapsed_seconds);
}

fn row(s: &ServiceHealth) -> Vec<String> {
    vec![
        s.name.clone(),
        s.status.as_str().to_string(),
        s.health.clone().unwrap_or_else(|| "-".into()),
        s.restarts.to_string(),
        s.image_id.as_deref().map(short_id).unwrap_or("-").to_string(),
        if s.ports.is_empty() { "-".into() } else { s.ports.join(",") },
        s.settle_seconds.map(|t| format!("{t:.1}s")).unwrap_or_else(|| "-".into()),
    ]
}

/// Left-aligned columns separated by two spaces.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                s.push_str(cell);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{ServiceStatus, Verdict};
    use crate::request::DescriptorSummary;

    fn service(name: &str, status: ServiceStatus) -> ServiceHealth {
        ServiceHealth {
            name: name.into(),
            container: Some(format!("p-{name}-1")),
            status,
            health: None,
            restarts: 0,
            image: "img".into(),
            image_id: Some("sha256:0123456789abcdef".into()),
            exit_code: None,
            ports: vec![],
            settle_seconds: Some(1.25),
            cause: None,
            log_tail: vec![],
        }
    }

    #[test]
    fn a_failed_report_names_the_service_its_cause_and_its_logs() {
        let mut bad = service("worker", ServiceStatus::Crashed);
        bad.cause = Some("crash loop: restarted 3 times".into());
        bad.exit_code = Some(1);
        bad.log_tail = vec!["fatal: no database".into()];
        let outcome = Outcome {
            target: "p".into(),
            action: Action::Status,
            descriptor: DescriptorSummary {
                reference: "p.yml".into(),
                version: None,
                source: "p.yml".into(),
                digest: "sha256:abcdef0123456789".into(),
            },
            plan: None,
            report: Some(HealthReport {
                target: "p".into(),
                verdict: Verdict::Failed,
                services: vec![service("web", ServiceStatus::Healthy), bad],
                elapsed_seconds: 2.0,
                timed_out: false,
            }),
            rollback: None,
            classification: None,
            images: vec![],
            error: None,
            engine: None,
            not_running: None,
        };
        let text = render(&outcome);
        assert!(text.contains("worker is crashed: crash loop"), "{text}");
        assert!(text.contains("| fatal: no database"), "{text}");
        assert!(text.contains("VERDICT: FAILED - 1/2 services healthy"), "{text}");
        assert!(text.contains("0123456789ab"), "{text}");
        assert!(!text.contains('\u{1b}'), "no terminal escape codes");
    }
}

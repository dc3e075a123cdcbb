//! Reports for chat: Slack and Mattermost messages, Discord embeds.
//!
//! Each platform rejects a message over its limits, and a rejected report
//! is a report nobody sees. So every renderer fits its platform's limits by
//! truncating with a visible marker, never by being refused: Discord embeds
//! (title 256, description 4096, 25 fields of name 256 / value 1024,
//! footer 2048, 6000 characters in all) and Slack attachments.

use serde_json::{json, Value};

use crate::health::{HealthReport, ServiceHealth};
use crate::request::Outcome;

/// Green, amber, red: healthy; failed but the previous version is back and
/// healthy; failed.
const GREEN: u32 = 0x2e_b8_86;
const AMBER: u32 = 0xda_a0_38;
const RED: u32 = 0xa3_02_00;

/// What a truncated text ends with.
pub const MARKER: &str = "… (truncated)";

/// Cuts `text` to at most `max` characters, ending with [`MARKER`] when cut.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(MARKER.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(MARKER);
    out
}

fn colour(outcome: &Outcome) -> u32 {
    match (&outcome.report, &outcome.rollback) {
        // Amber: it failed, but the previous version is back and healthy.
        (_, Some(rb)) if rb.restored_healthy() => AMBER,
        (_, Some(_)) => RED,
        (Some(r), None) if r.verdict.is_healthy() && outcome.error.is_none() => GREEN,
        (None, None) if outcome.error.is_none() => GREEN,
        _ => RED,
    }
}

/// One line: what happened to which target.
pub fn headline(outcome: &Outcome) -> String {
    let what = format!("{} {}", outcome.action.as_str(), outcome.target);
    let version = outcome.descriptor.version.as_ref().map(|v| format!(" version {v}")).unwrap_or_default();
    match (&outcome.report, &outcome.rollback) {
        (Some(_), Some(rb)) if !rb.previous => {
            format!("{what}{version} FAILED ({}); {}", rb.reason, rb.summary())
        }
        (Some(r), Some(rb)) => format!(
            "{what}{version} FAILED and was rolled back ({}); {}/{} services were healthy",
            rb.reason,
            r.healthy_count(),
            r.services.len()
        ),
        (Some(r), None) if r.verdict.is_healthy() && outcome.error.is_none() => {
            format!("{what}{version} is HEALTHY: {}/{} services healthy", r.healthy_count(), r.services.len())
        }
        (Some(r), None) => {
            format!("{what}{version} FAILED: {}/{} services healthy", r.healthy_count(), r.services.len())
        }
        (None, _) => match (&outcome.error, &outcome.plan) {
            (Some(e), _) => format!("{what}{version} FAILED: {}", e.message),
            (None, Some(plan)) if outcome.action == crate::request::Action::Plan => {
                let changing = plan.services.iter().filter(|s| s.action != crate::plan::ChangeKind::Keep).count();
                match changing {
                    0 if plan.is_noop() => format!("{what}{version}: nothing to change"),
                    n => format!("{what}{version}: {n} of {} services change", plan.services.len()),
                }
            }
            (None, _) => format!("{what}{version} done"),
        },
    }
}

/// A plan's changes, one line per service that changes (kept services
/// are counted, not listed), then new networks and volumes, cut to `max`
/// characters with a note of what was left out.
pub fn plan_lines(plan: &crate::plan::Plan, max: usize) -> String {
    let mut lines = Vec::new();
    let mut kept = 0;
    for s in &plan.services {
        if s.action == crate::plan::ChangeKind::Keep {
            kept += 1;
            continue;
        }
        let mut line = format!("• {}: {}", s.service, s.action.as_str());
        if !s.reasons.is_empty() {
            line.push_str(&format!(" ({})", s.reasons.join(", ")));
        }
        match s.strategy {
            Some(crate::plan::Strategy::StartFirst) => line.push_str(", start-first: no downtime"),
            Some(crate::plan::Strategy::StopFirst) => line.push_str(", stop-first: a short outage"),
            None => {}
        }
        lines.push(line);
    }
    if lines.is_empty() {
        lines.push("Nothing to change: every service is up to date.".to_string());
    } else if kept > 0 {
        lines.push(format!("{kept} other services unchanged"));
    }
    for n in &plan.networks {
        lines.push(format!("• network {n}: create"));
    }
    for v in &plan.volumes {
        lines.push(format!("• volume {v}: create"));
    }
    for w in &plan.warnings {
        lines.push(format!("⚠ {w}"));
    }
    // Whole lines only, and say how many did not fit.
    let mut text = String::new();
    for (i, line) in lines.iter().enumerate() {
        let rest = lines.len() - i;
        if text.chars().count() + line.chars().count() + 40 > max && rest > 0 {
            text.push_str(&format!("… {rest} more lines: run the plan where it can show all of them"));
            break;
        }
        text.push_str(line);
        text.push('\n');
    }
    text.trim_end().to_string()
}

fn service_line(s: &ServiceHealth) -> String {
    let mut line = s.status.as_str().to_string();
    if s.restarts > 0 {
        line.push_str(&format!(", {} restarts", s.restarts));
    }
    if let Some(code) = s.exit_code.filter(|_| !s.status.is_ok()) {
        line.push_str(&format!(", exit {code}"));
    }
    if let Some(cause) = &s.cause {
        line.push_str(&format!("\n{cause}"));
    }
    line
}

/// The failing services' last log lines, as one code block.
fn log_block(report: &HealthReport, max: usize) -> Option<String> {
    let mut text = String::new();
    for s in report.services.iter().filter(|s| !s.status.is_ok() && !s.log_tail.is_empty()) {
        text.push_str(&format!("{}:\n", s.name));
        for line in &s.log_tail {
            text.push_str(&format!("  {}\n", line.replace("```", "'''")));
        }
    }
    if text.is_empty() {
        return None;
    }
    // Leave room for the fences.
    Some(format!("```\n{}\n```", fit(text.trim_end(), max.saturating_sub(8))))
}

/// A Discord embed (`embeds: [..]` of a webhook or interaction response).
pub fn discord_embed(outcome: &Outcome, link: Option<&str>) -> Value {
    let title = fit(&headline(outcome), 256);
    let mut description = format!("`{}` ({})", outcome.descriptor.reference, short(&outcome.descriptor.digest));
    let mut fields = Vec::new();
    if let Some(report) = &outcome.report {
        // 25 fields at most: keep 24 services, then say how many are left.
        let shown = report.services.iter().take(24);
        for s in shown {
            fields.push(json!({"name": fit(&s.name, 256), "value": fit(&service_line(s), 1024), "inline": true}));
        }
        if report.services.len() > 24 {
            let rest = report.services.len() - 24;
            fields.push(json!({"name": "…", "value": format!("{rest} more services not shown"), "inline": false}));
        }
        if let Some(block) = log_block(report, 1500) {
            description.push_str("\n\n");
            description.push_str(&block);
        }
    }
    if let Some(rb) = &outcome.rollback {
        description.push_str(&format!("\n\nRolled back: {}", rb.summary()));
    }
    if let (crate::request::Action::Plan, Some(plan)) = (outcome.action, &outcome.plan) {
        description.push_str("\n\n");
        description.push_str(&plan_lines(plan, 3000));
    }
    // The reference, not the file it came from: a path names the server.
    let footer = format!("dockmaster · {} · {}", outcome.descriptor.reference, short(&outcome.descriptor.digest));
    let mut embed = json!({
        "title": title,
        "description": fit(&description, 4096),
        "color": colour(outcome),
        "fields": fields,
        "footer": {"text": fit(&footer, 2048)},
    });
    if let Some(url) = link {
        embed["url"] = json!(url);
    }
    shrink_to_total(&mut embed, 6000);
    embed
}

/// Discord counts title, description, field names and values and the
/// footer towards 6000 characters: drop fields from the end until it fits.
fn shrink_to_total(embed: &mut Value, total: usize) {
    let size = |e: &Value| {
        let len = |v: &Value| v.as_str().map(|s| s.chars().count()).unwrap_or(0);
        len(&e["title"])
            + len(&e["description"])
            + len(&e["footer"]["text"])
            + e["fields"]
                .as_array()
                .map(|f| f.iter().map(|f| len(&f["name"]) + len(&f["value"])).sum::<usize>())
                .unwrap_or(0)
    };
    let mut dropped = 0;
    while size(embed) > total {
        let popped = embed["fields"].as_array_mut().and_then(|f| f.pop());
        if popped.is_none() {
            let d = embed["description"].as_str().unwrap_or_default().to_string();
            embed["description"] = json!(fit(&d, 1000));
            break;
        }
        dropped += 1;
    }
    if dropped > 0 {
        let marker = json!({"name": "…", "value": format!("{dropped} fields {MARKER}"), "inline": false});
        if let Some(fields) = embed["fields"].as_array_mut() {
            fields.push(marker);
        }
        if size(embed) > total {
            if let Some(fields) = embed["fields"].as_array_mut() {
                fields.pop();
            }
        }
    }
}

/// A Slack (or Mattermost) message with one colour-coded attachment.
pub fn slack_message(outcome: &Outcome, link: Option<&str>) -> Value {
    let colour = format!("#{:06x}", colour(outcome));
    let mut fields = Vec::new();
    let mut details = String::new();
    if let Some(report) = &outcome.report {
        for s in report.services.iter().take(40) {
            fields.push(json!({"title": s.name, "value": fit(&service_line(s), 500), "short": true}));
        }
        if report.services.len() > 40 {
            fields.push(json!({"title": "…", "value": format!("{} more services not shown", report.services.len() - 40), "short": false}));
        }
        if let Some(block) = log_block(report, 3000) {
            details = block;
        }
    }
    if let (crate::request::Action::Plan, Some(plan)) = (outcome.action, &outcome.plan) {
        details = plan_lines(plan, 3000);
    }
    let mut attachment = json!({
        "color": colour,
        "title": fit(&headline(outcome), 250),
        "text": details,
        "fields": fields,
        "footer": fit(&format!("dockmaster · {} · {}", outcome.descriptor.reference, short(&outcome.descriptor.digest)), 300),
        "mrkdwn_in": ["text"],
    });
    if let Some(url) = link {
        attachment["title_link"] = json!(url);
    }
    json!({"text": fit(&headline(outcome), 3000), "attachments": [attachment]})
}

fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", hex.get(..12).unwrap_or(hex))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{ServiceStatus, Verdict};
    use crate::request::{Action, DescriptorSummary};

    fn outcome(services: usize, failing_logs: usize) -> Outcome {
        let services = (0..services)
            .map(|i| ServiceHealth {
                name: format!("service-{i:03}"),
                container: None,
                status: if i == 0 { ServiceStatus::Crashed } else { ServiceStatus::Healthy },
                health: None,
                restarts: if i == 0 { 3 } else { 0 },
                image: "img".into(),
                image_id: None,
                exit_code: if i == 0 { Some(1) } else { None },
                ports: vec![],
                settle_seconds: None,
                cause: if i == 0 { Some("crash loop".into()) } else { None },
                log_tail: if i == 0 {
                    (0..failing_logs).map(|n| format!("log line {n} {}", "x".repeat(80))).collect()
                } else {
                    vec![]
                },
            })
            .collect();
        Outcome {
            target: "shop".into(),
            action: Action::Deploy,
            descriptor: DescriptorSummary {
                reference: "Shop/Main/3".into(),
                version: Some("3".into()),
                source: "descriptors".into(),
                digest: "sha256:0123456789abcdef".into(),
            },
            plan: None,
            report: Some(HealthReport {
                target: "shop".into(),
                verdict: Verdict::Failed,
                services,
                elapsed_seconds: 1.0,
                timed_out: false,
            }),
            rollback: None,
            classification: None,
            images: vec![],
            error: None,
            engine: None,
            not_running: None,
        }
    }

    #[test]
    fn a_huge_report_still_fits_discords_limits_with_a_visible_marker() {
        let embed = discord_embed(&outcome(60, 500), Some("http://127.0.0.1/x"));
        let fields = embed["fields"].as_array().unwrap();
        assert!(fields.len() <= 25, "{} fields", fields.len());
        assert!(embed["description"].as_str().unwrap().chars().count() <= 4096);
        assert!(embed["description"].as_str().unwrap().contains(MARKER));
        let total: usize = embed["title"].as_str().unwrap().chars().count()
            + embed["description"].as_str().unwrap().chars().count()
            + embed["footer"]["text"].as_str().unwrap().chars().count()
            + fields
                .iter()
                .map(|f| f["name"].as_str().unwrap().len() + f["value"].as_str().unwrap().len())
                .sum::<usize>();
        assert!(total <= 6000, "{total}");
        assert_eq!(embed["color"], RED);
        assert_eq!(fields[0]["name"], "service-000");
        assert!(fields[0]["value"].as_str().unwrap().contains("crashed"));
    }

    #[test]
    fn slack_messages_are_colour_coded_and_carry_the_failing_logs() {
        let msg = slack_message(&outcome(3, 5), None);
        let a = &msg["attachments"][0];
        assert_eq!(a["color"], "#a30200");
        assert!(a["text"].as_str().unwrap().starts_with("```"));
        assert!(a["text"].as_str().unwrap().contains("log line 4"));
        assert_eq!(a["fields"].as_array().unwrap().len(), 3);
        assert!(msg["text"].as_str().unwrap().contains("FAILED"));
    }

    #[test]
    fn fit_marks_what_it_cuts() {
        assert_eq!(fit("short", 10), "short");
        let cut = fit(&"a".repeat(100), 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with(MARKER));
    }
}

//! Process metrics for `GET /metrics`, in Prometheus' text format.
//!
//! Every request the pipeline finishes is counted by action, origin and
//! verdict; deploys add their duration and time to healthy; rollbacks,
//! denials, lock waits and each schedule's last success are kept too. The
//! counters live in this process (`serve`): a CLI run counts only itself,
//! so scrape `serve`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the duration histograms.
const BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, value: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if value <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct Metrics {
    requests: BTreeMap<(String, String, String), u64>,
    deploy_seconds: BTreeMap<String, Histogram>,
    healthy_seconds: Histogram,
    rollbacks: u64,
    denials: BTreeMap<String, u64>,
    lock_waits: u64,
    lock_wait_seconds: f64,
    schedule_success: BTreeMap<String, u64>,
    registry_refused: BTreeMap<u16, u64>,
}

static METRICS: Mutex<Option<Metrics>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Metrics) -> T) -> T {
    let mut guard = METRICS.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(Metrics::default))
}

/// Counts one finished request from its audit record; `healthy_after` is
/// the seconds a healthy deploy took to become healthy, `seconds` how long
/// the request took (measured, not the record's whole-second timestamps).
pub fn observe(record: &crate::audit::Record, healthy_after: Option<f64>, seconds: f64) {
    with(|m| {
        let key = (record.action.clone(), record.origin.clone(), record.verdict.clone());
        *m.requests.entry(key).or_default() += 1;
        if matches!(record.action.as_str(), "deploy" | "rollback") && record.verdict != "denied" {
            m.deploy_seconds.entry(record.verdict.clone()).or_default().observe(seconds);
        }
        if let Some(s) = healthy_after {
            m.healthy_seconds.observe(s);
        }
        if record.rolled_back {
            m.rollbacks += 1;
        }
        if record.verdict == "denied" {
            *m.denials.entry(record.origin.clone()).or_default() += 1;
        }
    });
}

/// Counts a deploy that had to wait for another's lock.
pub fn lock_waited(seconds: f64) {
    with(|m| {
        m.lock_waits += 1;
        m.lock_wait_seconds += seconds;
    });
}

/// Records that a schedule's run succeeded now.
pub fn schedule_succeeded(name: &str) {
    with(|m| {
        m.schedule_success.insert(name.to_string(), crate::lock::now_secs());
    });
}

/// Counts a publish the registry refused, by HTTP status.
pub fn registry_refused(status: u16) {
    with(|m| {
        *m.registry_refused.entry(status).or_default() += 1;
    });
}

fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The metrics in Prometheus' text exposition format.
pub fn render() -> String {
    with(|m| {
        let mut out = String::new();
        out.push_str("# HELP dockmaster_requests_total Requests finished, by action, origin and verdict.\n");
        out.push_str("# TYPE dockmaster_requests_total counter\n");
        for ((action, origin, verdict), n) in &m.requests {
            let _ = writeln!(
                out,
                "dockmaster_requests_total{{action=\"{}\",origin=\"{}\",verdict=\"{}\"}} {n}",
                label(action),
                label(origin),
                label(verdict)
            );
        }
        out.push_str("# HELP dockmaster_deploy_duration_seconds Deploys and rollbacks from request to verdict.\n");
        out.push_str("# TYPE dockmaster_deploy_duration_seconds histogram\n");
        for (verdict, h) in &m.deploy_seconds {
            h.render(&mut out, "dockmaster_deploy_duration_seconds", &format!("verdict=\"{}\"", label(verdict)));
        }
        out.push_str("# HELP dockmaster_time_to_healthy_seconds From the start of a watch to all-healthy.\n");
        out.push_str("# TYPE dockmaster_time_to_healthy_seconds histogram\n");
        m.healthy_seconds.render(&mut out, "dockmaster_time_to_healthy_seconds", "");
        out.push_str("# HELP dockmaster_rollbacks_total Failed deploys put back to the previous containers.\n");
        out.push_str("# TYPE dockmaster_rollbacks_total counter\n");
        let _ = writeln!(out, "dockmaster_rollbacks_total {}", m.rollbacks);
        out.push_str("# HELP dockmaster_denials_total Requests refused (access, policy, approval), by origin.\n");
        out.push_str("# TYPE dockmaster_denials_total counter\n");
        for (origin, n) in &m.denials {
            let _ = writeln!(out, "dockmaster_denials_total{{origin=\"{}\"}} {n}", label(origin));
        }
        out.push_str("# HELP dockmaster_lock_waits_total Deploys that waited for another deploy of their target.\n");
        out.push_str("# TYPE dockmaster_lock_waits_total counter\n");
        let _ = writeln!(out, "dockmaster_lock_waits_total {}", m.lock_waits);
        out.push_str("# HELP dockmaster_lock_wait_seconds_total Time spent waiting for target locks.\n");
        out.push_str("# TYPE dockmaster_lock_wait_seconds_total counter\n");
        let _ = writeln!(out, "dockmaster_lock_wait_seconds_total {}", m.lock_wait_seconds);
        out.push_str("# HELP dockmaster_schedule_last_success_timestamp_seconds When each schedule last succeeded.\n");
        out.push_str("# TYPE dockmaster_schedule_last_success_timestamp_seconds gauge\n");
        for (name, at) in &m.schedule_success {
            let _ = writeln!(
                out,
                "dockmaster_schedule_last_success_timestamp_seconds{{schedule=\"{}\"}} {at}",
                label(name)
            );
        }
        out.push_str("# HELP dockmaster_registry_refused_total Fragments the registry refused, by HTTP status.\n");
        out.push_str("# TYPE dockmaster_registry_refused_total counter\n");
        for (status, n) in &m.registry_refused {
            let _ = writeln!(out, "dockmaster_registry_refused_total{{status=\"{status}\"}} {n}");
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_types_labels_and_cumulative_buckets() {
        let record = crate::audit::Record {
            action: "deploy".into(),
            origin: "schedule".into(),
            verdict: "healthy".into(),
            started: 100,
            finished: 107,
            ..Default::default()
        };
        observe(&record, Some(4.0), 7.25);
        schedule_succeeded("nightly \"x\"");
        let text = render();
        assert!(text.contains("dockmaster_requests_total{action=\"deploy\",origin=\"schedule\",verdict=\"healthy\"}"));
        assert!(text.contains("dockmaster_deploy_duration_seconds_bucket{verdict=\"healthy\",le=\"5\"} 0"), "{text}");
        assert!(text.contains("dockmaster_deploy_duration_seconds_bucket{verdict=\"healthy\",le=\"10\"} 1"), "{text}");
        assert!(text.contains("dockmaster_time_to_healthy_seconds_bucket{le=\"5\"}"), "{text}");
        assert!(text.contains("schedule=\"nightly \\\"x\\\"\""), "{text}");
        assert!(
            text.contains("dockmaster_deploy_duration_seconds_sum{verdict=\"healthy\"} 7.25"),
            "measured, not whole seconds: {text}"
        );
    }
}

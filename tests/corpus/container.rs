//! The rest of a service's fields that the goldens print and the model
//! holds: how it is built, who and where it runs as, how it stops, its
//! kernel settings and logging, and what `deploy:` tells Swarm. Read both
//! ways into [`Facts`] like the fields in `golden.rs`, so a difference
//! names its field.

use std::collections::BTreeMap;

use serde_yaml::Value;

use dockmaster::stack::Service;

use crate::golden::{duration_ms, host_path, list, show, text, Facts, Paths};

/// Plain text fields, the same key on both sides.
const TEXT_FIELDS: &[&str] = &["container_name", "hostname", "user", "working_dir", "stop_signal", "ipc", "pid"];

fn model_text<'a>(svc: &'a Service, key: &str) -> Option<&'a String> {
    match key {
        "container_name" => svc.container_name.as_ref(),
        "hostname" => svc.hostname.as_ref(),
        "user" => svc.user.as_ref(),
        "working_dir" => svc.working_dir.as_ref(),
        "stop_signal" => svc.stop_signal.as_ref(),
        "ipc" => svc.ipc.as_ref(),
        "pid" => svc.pid.as_ref(),
        _ => None,
    }
}

fn text_map(v: Option<&Value>) -> BTreeMap<String, String> {
    match v {
        Some(Value::Mapping(map)) => {
            map.iter().map(|(k, v)| (text(k).unwrap_or_default(), text(v).unwrap_or_default())).collect()
        }
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(text)
            .map(|i| match i.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (i, String::new()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `(parallelism, delay ms, failure_action, monitor ms, max_failure_ratio, order)`.
type Rollout = (Option<u64>, Option<u64>, Option<String>, Option<u64>, Option<String>, Option<String>);

fn golden_rollout(v: Option<&Value>) -> Option<Rollout> {
    let v = v.filter(|v| !v.is_null())?;
    let t = |k: &str| v.get(k).and_then(text);
    Some((
        t("parallelism").and_then(|p| p.parse().ok()),
        t("delay").and_then(|d| duration_ms(&d)),
        t("failure_action"),
        t("monitor").and_then(|d| duration_ms(&d)),
        t("max_failure_ratio").and_then(|r| r.parse::<f64>().ok()).map(|r| r.to_string()),
        t("order"),
    ))
}

/// The extra facts of a golden service.
pub fn golden(svc: &Value, paths: &Paths<'_>) -> Facts {
    let mut f = Facts::new();
    let get = |k: &str| svc.get(k).filter(|v| !v.is_null());
    for key in TEXT_FIELDS {
        if let Some(t) = get(key).and_then(text) {
            f.insert(key, t);
        }
    }
    if let Some(d) = get("stop_grace_period").and_then(text).and_then(|d| duration_ms(&d)) {
        f.insert("stop_grace_period", d.to_string());
    }
    if let Some(init) = get("init").and_then(Value::as_bool) {
        f.insert("init", init.to_string());
    }
    for key in ["privileged", "tty", "stdin_open", "read_only"] {
        if get(key).and_then(Value::as_bool) == Some(true) {
            f.insert(key, "true".into());
        }
    }
    for key in ["cap_add", "cap_drop", "dns", "dns_search", "security_opt"] {
        let mut items: Vec<String> = list(get(key)).iter().filter_map(text).collect();
        items.sort();
        if !items.is_empty() {
            f.insert(key, show(items));
        }
    }
    let sysctls = text_map(get("sysctls"));
    if !sysctls.is_empty() {
        f.insert("sysctls", show(sysctls));
    }
    if let Some(l) = get("logging") {
        f.insert("logging", show((l.get("driver").and_then(text), text_map(l.get("options")))));
    }
    if let Some(b) = get("build") {
        let (context, dockerfile, args, target) = match b {
            Value::Mapping(_) => (
                b.get("context").and_then(text).unwrap_or_else(|| ".".into()),
                b.get("dockerfile").and_then(text),
                text_map(b.get("args")),
                b.get("target").and_then(text),
            ),
            other => (text(other).unwrap_or_default(), None, BTreeMap::new(), None),
        };
        let dockerfile = dockerfile.unwrap_or_else(|| "Dockerfile".into());
        f.insert("build", show((host_path(&context, paths), dockerfile, args, target)));
    }
    if let Some(d) = get("deploy") {
        let replicas = d.get("replicas").and_then(text).and_then(|r| r.parse::<u64>().ok());
        let placement = d.get("placement");
        let mut constraints: Vec<String> =
            list(placement.and_then(|p| p.get("constraints"))).iter().filter_map(text).collect();
        constraints.sort();
        let spread: Vec<String> = list(placement.and_then(|p| p.get("preferences")))
            .iter()
            .filter_map(|p| p.get("spread").and_then(text))
            .collect();
        let per_node = placement.and_then(|p| p.get("max_replicas_per_node")).and_then(text);
        let restart = d.get("restart_policy").map(|r| {
            let t = |k: &str| r.get(k).and_then(text);
            (
                t("condition").unwrap_or_else(|| "any".into()),
                t("delay").and_then(|d| duration_ms(&d)),
                t("max_attempts"),
                t("window").and_then(|d| duration_ms(&d)),
            )
        });
        let swarm = (
            replicas,
            golden_rollout(d.get("update_config")),
            golden_rollout(d.get("rollback_config")),
            (constraints, spread, per_node),
            restart,
            text_map(d.get("labels")),
        );
        if swarm != (None, None, None, (vec![], vec![], None), None, BTreeMap::new()) {
            f.insert("deploy", show(swarm));
        }
    }
    f
}

/// The extra facts of a loaded service.
pub fn model(svc: &Service) -> Facts {
    let mut f = Facts::new();
    for key in TEXT_FIELDS {
        if let Some(t) = model_text(svc, key) {
            f.insert(key, t.clone());
        }
    }
    if let Some(d) = svc.stop_grace_period {
        f.insert("stop_grace_period", d.as_millis().to_string());
    }
    if let Some(init) = svc.init {
        f.insert("init", init.to_string());
    }
    for (key, on) in
        [("privileged", svc.privileged), ("tty", svc.tty), ("stdin_open", svc.stdin_open), ("read_only", svc.read_only)]
    {
        if on {
            f.insert(key, "true".into());
        }
    }
    for (key, items) in [
        ("cap_add", &svc.cap_add),
        ("cap_drop", &svc.cap_drop),
        ("dns", &svc.dns),
        ("dns_search", &svc.dns_search),
        ("security_opt", &svc.security_opt),
    ] {
        let mut items = items.clone();
        items.sort();
        if !items.is_empty() {
            f.insert(key, show(items));
        }
    }
    if !svc.sysctls.is_empty() {
        f.insert("sysctls", show(&svc.sysctls));
    }
    if let Some(l) = &svc.logging {
        f.insert("logging", show((&l.driver, &l.options)));
    }
    if let Some(b) = &svc.build {
        f.insert("build", show((b.context.display().to_string(), &b.dockerfile, &b.args, &b.target)));
    }
    if let Some(s) = svc.swarm.as_ref().filter(|s| !s.is_empty()) {
        let rollout = |u: &Option<dockmaster::stack::UpdateConfig>| -> Option<Rollout> {
            u.as_ref().map(|u| {
                (
                    u.parallelism,
                    u.delay.map(|d| d.as_millis() as u64),
                    u.failure_action.clone(),
                    u.monitor.map(|d| d.as_millis() as u64),
                    u.max_failure_ratio.map(|r| r.to_string()),
                    u.order.clone(),
                )
            })
        };
        let mut constraints = s.placement.constraints.clone();
        constraints.sort();
        let restart = s.restart_policy.as_ref().map(|r| {
            (
                r.condition.clone(),
                r.delay.map(|d| d.as_millis() as u64),
                r.max_attempts.map(|n| n.to_string()),
                r.window.map(|d| d.as_millis() as u64),
            )
        });
        let swarm = (
            s.replicas,
            rollout(&s.update_config),
            rollout(&s.rollback_config),
            (constraints, s.placement.spread.clone(), s.placement.max_replicas_per_node.map(|n| n.to_string())),
            restart,
            s.labels.clone(),
        );
        f.insert("deploy", show(swarm));
    }
    f
}

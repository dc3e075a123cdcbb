//! The normalised model written back as a Compose file, in the long syntax
//! `docker compose config` prints: what `dockmaster config` shows, so a
//! person can see exactly what will be deployed (a v1 file included).

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::stack::{Condition, MountKind, Service, Stack, VolumesFromSource};

/// The stack as a Compose document (a JSON value: print it as YAML or JSON).
pub fn compose_document(stack: &Stack) -> Value {
    let mut doc = Map::new();
    doc.insert("name".into(), json!(stack.name));
    let services: Map<String, Value> = stack.services.iter().map(|(n, s)| (n.clone(), service(stack, n, s))).collect();
    doc.insert("services".into(), Value::Object(services));
    if !stack.networks.is_empty() {
        let nets = stack
            .networks
            .iter()
            .map(|(k, n)| {
                let mut m = Map::new();
                m.insert("name".into(), json!(stack.network_name(k)));
                put_if(&mut m, "external", n.external, json!(true));
                if let Some(d) = &n.driver {
                    m.insert("driver".into(), json!(d));
                }
                put_if(&mut m, "driver_opts", !n.driver_opts.is_empty(), json!(n.driver_opts));
                put_if(&mut m, "internal", n.internal, json!(true));
                if !n.subnets.is_empty() {
                    let config: Vec<Value> = n.subnets.iter().map(|s| json!({"subnet": s})).collect();
                    m.insert("ipam".into(), json!({"config": config}));
                }
                put_if(&mut m, "labels", !n.labels.is_empty(), json!(n.labels));
                (k.clone(), Value::Object(m))
            })
            .collect();
        doc.insert("networks".into(), Value::Object(nets));
    }
    if !stack.volumes.is_empty() {
        let vols = stack
            .volumes
            .iter()
            .map(|(k, v)| {
                let mut m = Map::new();
                m.insert("name".into(), json!(stack.volume_name(k)));
                put_if(&mut m, "external", v.external, json!(true));
                if let Some(d) = &v.driver {
                    m.insert("driver".into(), json!(d));
                }
                put_if(&mut m, "driver_opts", !v.driver_opts.is_empty(), json!(v.driver_opts));
                put_if(&mut m, "labels", !v.labels.is_empty(), json!(v.labels));
                (k.clone(), Value::Object(m))
            })
            .collect();
        doc.insert("volumes".into(), Value::Object(vols));
    }
    Value::Object(doc)
}

fn put_if(m: &mut Map<String, Value>, key: &str, condition: bool, value: Value) {
    if condition {
        m.insert(key.into(), value);
    }
}

/// Durations as Compose writes them: `1m30s`, `500ms`.
fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

fn service(stack: &Stack, name: &str, s: &Service) -> Value {
    let mut m = Map::new();
    m.insert("image".into(), json!(s.image));
    if let Some(b) = &s.build {
        let mut build = json!({"context": b.context, "dockerfile": b.dockerfile});
        if !b.args.is_empty() {
            build["args"] = json!(b.args);
        }
        if let Some(t) = &b.target {
            build["target"] = json!(t);
        }
        m.insert("build".into(), build);
    }
    if let Some(c) = &s.command {
        m.insert("command".into(), json!(c));
    }
    if let Some(e) = &s.entrypoint {
        m.insert("entrypoint".into(), json!(e));
    }
    put_if(&mut m, "environment", !s.environment.is_empty(), json!(s.environment));
    if !s.ports.is_empty() {
        let ports: Vec<Value> = s
            .ports
            .iter()
            .map(|p| {
                let mut port = json!({"target": p.target, "protocol": p.protocol, "mode": "ingress"});
                if let Some(published) = p.published {
                    port["published"] = json!(published.to_string());
                }
                if let Some(ip) = &p.host_ip {
                    port["host_ip"] = json!(ip);
                }
                port
            })
            .collect();
        m.insert("ports".into(), json!(ports));
    }
    if !s.volumes.is_empty() {
        let volumes: Vec<Value> = s
            .volumes
            .iter()
            .map(|v| {
                let kind = match v.kind {
                    MountKind::Volume => "volume",
                    MountKind::Bind => "bind",
                    MountKind::Tmpfs => "tmpfs",
                };
                let mut mount = json!({"type": kind, "target": v.target});
                if let Some(source) = &v.source {
                    mount["source"] = json!(source);
                }
                if v.read_only {
                    mount["read_only"] = json!(true);
                }
                mount
            })
            .collect();
        m.insert("volumes".into(), json!(volumes));
    }
    if !s.volumes_from.is_empty() {
        let from: Vec<String> = s
            .volumes_from
            .iter()
            .map(|v| {
                let mode = if v.read_only { "ro" } else { "rw" };
                match &v.source {
                    VolumesFromSource::Service(x) => format!("service:{x}:{mode}"),
                    VolumesFromSource::Container(x) => format!("container:{x}:{mode}"),
                }
            })
            .collect();
        m.insert("volumes_from".into(), json!(from));
    }
    if let Some(mode) = &s.network_mode {
        m.insert("network_mode".into(), json!(mode));
    } else if !s.networks.is_empty() {
        // Only what the service names: the implicit `default` stays implicit,
        // so the printed file loads back to the very same model (and hash).
        let nets: Map<String, Value> = s
            .networks
            .iter()
            .map(|(k, a)| {
                let k = k.clone();
                let mut n = Map::new();
                put_if(&mut n, "aliases", !a.aliases.is_empty(), json!(a.aliases));
                if let Some(ip) = &a.ipv4_address {
                    n.insert("ipv4_address".into(), json!(ip));
                }
                if let Some(ip) = &a.ipv6_address {
                    n.insert("ipv6_address".into(), json!(ip));
                }
                (k, if n.is_empty() { Value::Null } else { Value::Object(n) })
            })
            .collect();
        m.insert("networks".into(), Value::Object(nets));
    }
    put_if(&mut m, "links", !s.links.is_empty(), json!(s.links));
    if !s.depends_on.is_empty() {
        let deps: Map<String, Value> = s
            .depends_on
            .iter()
            .map(|(k, d)| {
                let condition = match d.condition {
                    Condition::ServiceStarted => "service_started",
                    Condition::ServiceHealthy => "service_healthy",
                    Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
                };
                (k.clone(), json!({"condition": condition, "required": d.required, "restart": d.restart}))
            })
            .collect();
        m.insert("depends_on".into(), Value::Object(deps));
    }
    if let Some(h) = &s.healthcheck {
        let mut hc = Map::new();
        if h.disable {
            hc.insert("disable".into(), json!(true));
        } else {
            put_if(&mut hc, "test", !h.test.is_empty(), json!(h.test));
        }
        for (key, value) in [
            ("interval", h.interval),
            ("timeout", h.timeout),
            ("start_period", h.start_period),
            ("start_interval", h.start_interval),
        ] {
            if let Some(d) = value {
                hc.insert(key.into(), json!(duration(d)));
            }
        }
        if let Some(r) = h.retries {
            hc.insert("retries".into(), json!(r));
        }
        m.insert("healthcheck".into(), Value::Object(hc));
    }
    for (key, value) in [
        ("restart", s.restart.as_ref()),
        ("container_name", s.container_name.as_ref()),
        ("hostname", s.hostname.as_ref()),
        ("user", s.user.as_ref()),
        ("working_dir", s.working_dir.as_ref()),
        ("stop_signal", s.stop_signal.as_ref()),
    ] {
        if let Some(v) = value {
            m.insert(key.into(), json!(v));
        }
    }
    if let Some(d) = s.stop_grace_period {
        m.insert("stop_grace_period".into(), json!(duration(d)));
    }
    put_if(&mut m, "labels", !s.labels.is_empty(), json!(s.labels));
    put_if(&mut m, "privileged", s.privileged, json!(true));
    put_if(&mut m, "tty", s.tty, json!(true));
    put_if(&mut m, "stdin_open", s.stdin_open, json!(true));
    put_if(&mut m, "extra_hosts", !s.extra_hosts.is_empty(), json!(s.extra_hosts));
    let r = &s.resources;
    if !r.is_empty() {
        let mut limits = Map::new();
        if let Some(c) = r.cpus {
            limits.insert("cpus".into(), json!(c.to_string()));
        }
        if let Some(mem) = r.memory {
            limits.insert("memory".into(), json!(mem.to_string()));
        }
        if let Some(p) = r.pids_limit {
            limits.insert("pids".into(), json!(p));
        }
        let mut resources = json!({"limits": limits});
        if let Some(mem) = r.memory_reservation {
            resources["reservations"] = json!({"memory": mem.to_string()});
        }
        m.insert("deploy".into(), json!({"resources": resources}));
    }
    if let Some(l) = &s.logging {
        let mut logging = Map::new();
        if let Some(d) = &l.driver {
            logging.insert("driver".into(), json!(d));
        }
        put_if(&mut logging, "options", !l.options.is_empty(), json!(l.options));
        m.insert("logging".into(), Value::Object(logging));
    }
    if let Some(p) = s.pull_policy {
        m.insert("pull_policy".into(), serde_json::to_value(p).unwrap_or(Value::Null));
    }
    let _ = (stack, name);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_compose() {
        assert_eq!(duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_secs(0)), "0s");
        assert_eq!(duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn the_rendered_file_loads_back_to_the_same_model() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a/compose.yaml");
        std::fs::create_dir_all(first.parent().unwrap()).unwrap();
        std::fs::write(
            &first,
            "name: shop\nservices:\n  db:\n    image: db:1\n    healthcheck: {test: [\"CMD\", \"true\"], interval: 1m30s, retries: 3}\n    volumes: [\"data:/var/lib/db\"]\n  web:\n    image: web:1\n    ports: [\"127.0.0.1:8080:80\"]\n    environment: {MODE: prod}\n    depends_on: {db: {condition: service_healthy}}\n    volumes_from: [\"db:ro\"]\n    deploy: {resources: {limits: {cpus: \"0.5\", memory: 64m}}}\nvolumes:\n  data: {}\n",
        )
        .unwrap();
        let load = |path: &std::path::Path| {
            let d =
                crate::descriptor::Descriptor::read(crate::descriptor::DescriptorRef::File(path.into()), None, path)
                    .unwrap();
            crate::descriptor::compose::load_with_env(&d, "x", &|_| None).unwrap()
        };
        let stack = load(&first);
        let second = dir.path().join("a/rendered.yaml");
        std::fs::write(&second, serde_yaml::to_string(&compose_document(&stack)).unwrap()).unwrap();
        let again = load(&second);
        assert_eq!(again.services, stack.services);
    }
}

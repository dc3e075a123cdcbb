//! One service rendered as Compose's long syntax: image, build, ports,
//! mounts, networks, dependencies, healthcheck, `deploy:` (resources,
//! devices and the Swarm settings), logging, secrets and configs. Kept apart
//! from the document's frame in `mod.rs` because it is the bulk of the
//! mapping; the engine-level tuning keys are in the sibling `host` module.

use serde_json::{json, Map, Value};

use super::host::{device_request, host, kernel};
use super::{duration, put_if};
use crate::stack::{Condition, Mount, MountKind, Service, Stack, VolumesFromSource};

pub(super) fn service(stack: &Stack, name: &str, s: &Service) -> Value {
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
        if !b.cache_from.is_empty() {
            build["cache_from"] = json!(b.cache_from);
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
    let volumes: Vec<Value> = s.volumes.iter().filter(|v| v.kind != MountKind::Tmpfs).map(mount).collect();
    put_if(&mut m, "volumes", !volumes.is_empty(), json!(volumes));
    // tmpfs mounts in the service's `tmpfs:` form, the one that holds every option.
    let tmpfs: Vec<String> = s.volumes.iter().filter(|v| v.kind == MountKind::Tmpfs).map(tmpfs_entry).collect();
    put_if(&mut m, "tmpfs", !tmpfs.is_empty(), json!(tmpfs));
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
    let mut deploy = s.swarm.as_ref().map(swarm_deploy).unwrap_or_default();
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
        deploy.insert("resources".into(), resources);
    }
    if !s.device_requests.is_empty() {
        let devices: Vec<Value> = s.device_requests.iter().map(device_request).collect();
        let resources = deploy.entry("resources").or_insert_with(|| json!({}));
        let reservations = &mut resources["reservations"];
        if reservations.is_null() {
            *reservations = json!({});
        }
        reservations["devices"] = json!(devices);
    }
    put_if(&mut m, "deploy", !deploy.is_empty(), Value::Object(deploy));
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
    kernel(&mut m, s);
    host(&mut m, s);
    for (key, files) in [("secrets", &s.secrets), ("configs", &s.configs)] {
        let refs: Vec<Value> = files
            .iter()
            .map(|f| {
                let mut r = json!({"source": f.name, "target": f.target});
                if let Some(uid) = &f.uid {
                    r["uid"] = json!(uid);
                }
                if let Some(gid) = &f.gid {
                    r["gid"] = json!(gid);
                }
                if let Some(mode) = f.mode {
                    r["mode"] = json!(format!("0{mode:o}"));
                }
                r
            })
            .collect();
        put_if(&mut m, key, !refs.is_empty(), json!(refs));
    }
    put_if(&mut m, "profiles", !s.profiles.is_empty(), json!(s.profiles));
    let _ = (stack, name);
    Value::Object(m)
}

/// The Swarm settings of `deploy:` (replicas, rollout, placement, Swarm's
/// restart policy, service labels), as the loader reads them back.
fn swarm_deploy(sw: &crate::stack::SwarmDeploy) -> Map<String, Value> {
    let mut d = Map::new();
    if let Some(mode) = &sw.mode {
        d.insert("mode".into(), json!(mode));
    }
    if let Some(n) = sw.replicas {
        d.insert("replicas".into(), json!(n));
    }
    for (key, config) in [("update_config", &sw.update_config), ("rollback_config", &sw.rollback_config)] {
        let Some(c) = config else { continue };
        let mut u = Map::new();
        put_if(&mut u, "parallelism", c.parallelism.is_some(), json!(c.parallelism));
        if let Some(delay) = c.delay {
            u.insert("delay".into(), json!(duration(delay)));
        }
        put_if(&mut u, "failure_action", c.failure_action.is_some(), json!(c.failure_action));
        if let Some(monitor) = c.monitor {
            u.insert("monitor".into(), json!(duration(monitor)));
        }
        put_if(&mut u, "max_failure_ratio", c.max_failure_ratio.is_some(), json!(c.max_failure_ratio));
        put_if(&mut u, "order", c.order.is_some(), json!(c.order));
        d.insert(key.into(), Value::Object(u));
    }
    let p = &sw.placement;
    if !p.is_empty() {
        let mut placement = Map::new();
        put_if(&mut placement, "constraints", !p.constraints.is_empty(), json!(p.constraints));
        let spread: Vec<Value> = p.spread.iter().map(|s| json!({"spread": s})).collect();
        put_if(&mut placement, "preferences", !spread.is_empty(), json!(spread));
        put_if(
            &mut placement,
            "max_replicas_per_node",
            p.max_replicas_per_node.is_some(),
            json!(p.max_replicas_per_node),
        );
        d.insert("placement".into(), Value::Object(placement));
    }
    if let Some(r) = &sw.restart_policy {
        let mut restart = Map::new();
        restart.insert("condition".into(), json!(r.condition));
        if let Some(delay) = r.delay {
            restart.insert("delay".into(), json!(duration(delay)));
        }
        put_if(&mut restart, "max_attempts", r.max_attempts.is_some(), json!(r.max_attempts));
        if let Some(window) = r.window {
            restart.insert("window".into(), json!(duration(window)));
        }
        d.insert("restart_policy".into(), Value::Object(restart));
    }
    put_if(&mut d, "labels", !sw.labels.is_empty(), json!(sw.labels));
    d
}

/// One volume or bind mount in the long syntax, with its options.
fn mount(v: &Mount) -> Value {
    let kind = if v.kind == MountKind::Bind { "bind" } else { "volume" };
    let mut mount = json!({"type": kind, "target": v.target});
    if let Some(source) = &v.source {
        mount["source"] = json!(source);
    }
    if v.read_only {
        mount["read_only"] = json!(true);
    }
    let mut bind = Map::new();
    if let Some(z) = &v.selinux {
        bind.insert("selinux".into(), json!(z));
    }
    if let Some(p) = &v.propagation {
        bind.insert("propagation".into(), json!(p));
    }
    put_if(mount.as_object_mut().expect("a mapping"), "bind", !bind.is_empty(), Value::Object(bind));
    let mut volume = Map::new();
    put_if(&mut volume, "nocopy", v.nocopy, json!(true));
    if let Some(sub) = &v.subpath {
        volume.insert("subpath".into(), json!(sub));
    }
    put_if(mount.as_object_mut().expect("a mapping"), "volume", !volume.is_empty(), Value::Object(volume));
    mount
}

/// One tmpfs mount as `PATH[:OPTIONS]`.
fn tmpfs_entry(v: &Mount) -> String {
    let mut options: Vec<String> = Vec::new();
    if v.read_only {
        options.push("ro".into());
    }
    if let Some(size) = v.tmpfs_size {
        options.push(format!("size={size}"));
    }
    if let Some(mode) = v.tmpfs_mode {
        options.push(format!("mode={mode:o}"));
    }
    options.extend(v.tmpfs_flags.iter().cloned());
    if options.is_empty() {
        v.target.clone()
    } else {
        format!("{}:{}", v.target, options.join(","))
    }
}

//! The normalised model written back as a Compose file, in the long syntax
//! `docker compose config` prints: what `dockmaster config` shows, so a
//! person can see exactly what will be deployed (a v1 file included).

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::stack::{Condition, DeviceRequest, FileSource, Hook, Mount, MountKind, Service, Stack, VolumesFromSource};

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
                    let config: Vec<Value> = n
                        .subnets
                        .iter()
                        .map(|s| {
                            let mut pool = json!({"subnet": s.subnet});
                            if let Some(g) = &s.gateway {
                                pool["gateway"] = json!(g);
                            }
                            if let Some(r) = &s.ip_range {
                                pool["ip_range"] = json!(r);
                            }
                            if !s.aux_addresses.is_empty() {
                                pool["aux_addresses"] = json!(s.aux_addresses);
                            }
                            pool
                        })
                        .collect();
                    m.insert("ipam".into(), json!({"config": config}));
                }
                put_if(&mut m, "enable_ipv6", n.enable_ipv6, json!(true));
                put_if(&mut m, "attachable", n.attachable, json!(true));
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
    for (section, files) in [
        ("secrets", stack.services.values().flat_map(|s| &s.secrets).collect::<Vec<_>>()),
        ("configs", stack.services.values().flat_map(|s| &s.configs).collect::<Vec<_>>()),
    ] {
        if files.is_empty() {
            continue;
        }
        let declared: Map<String, Value> = files
            .into_iter()
            .map(|f| {
                let source = match &f.source {
                    FileSource::File(path) => json!({"file": path}),
                    FileSource::Environment { variable, .. } => json!({"environment": variable}),
                    FileSource::Content(text) => json!({"content": text}),
                    FileSource::External { name } => json!({"name": name, "external": true}),
                };
                (f.name.clone(), source)
            })
            .collect();
        doc.insert(section.into(), Value::Object(declared));
    }
    let mut doc = Value::Object(doc);
    escape_dollars(&mut doc);
    doc
}

/// Writes every literal `$` in a value as `$$`, as `docker compose config`
/// does: values are interpolated when a file loads (keys are not), so
/// without this the printed file would load back with `$HOME` replaced.
fn escape_dollars(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('$') => *text = text.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        Value::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
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

/// The container's kernel settings: init, read-only root, capabilities,
/// devices, DNS, sysctls, ulimits, `/dev/shm`, security options, namespaces.
fn kernel(m: &mut Map<String, Value>, s: &Service) {
    if let Some(init) = s.init {
        m.insert("init".into(), json!(init));
    }
    put_if(m, "read_only", s.read_only, json!(true));
    for (key, list) in [
        ("cap_add", &s.cap_add),
        ("cap_drop", &s.cap_drop),
        ("dns", &s.dns),
        ("dns_search", &s.dns_search),
        ("dns_opt", &s.dns_opt),
        ("security_opt", &s.security_opt),
    ] {
        put_if(m, key, !list.is_empty(), json!(list));
    }
    let devices: Vec<String> =
        s.devices.iter().map(|d| format!("{}:{}:{}", d.source, d.target, d.permissions)).collect();
    put_if(m, "devices", !devices.is_empty(), json!(devices));
    put_if(m, "sysctls", !s.sysctls.is_empty(), json!(s.sysctls));
    let ulimits: Map<String, Value> =
        s.ulimits.iter().map(|(k, l)| (k.clone(), json!({"soft": l.soft, "hard": l.hard}))).collect();
    put_if(m, "ulimits", !ulimits.is_empty(), Value::Object(ulimits));
    if let Some(size) = s.shm_size {
        m.insert("shm_size".into(), json!(size));
    }
    for (key, mode) in [("pid", &s.pid), ("ipc", &s.ipc)] {
        if let Some(mode) = mode {
            m.insert(key.into(), json!(mode));
        }
    }
}

/// One device request as Compose prints it (`count: -1` for `all`).
fn device_request(d: &DeviceRequest) -> Value {
    let mut r = Map::new();
    put_if(&mut r, "capabilities", !d.capabilities.is_empty(), json!(d.capabilities));
    put_if(&mut r, "driver", d.driver.is_some(), json!(d.driver));
    put_if(&mut r, "count", d.count.is_some(), json!(d.count));
    put_if(&mut r, "device_ids", !d.device_ids.is_empty(), json!(d.device_ids));
    put_if(&mut r, "options", !d.options.is_empty(), json!(d.options));
    Value::Object(r)
}

fn hook(h: &Hook) -> Value {
    let mut r = Map::new();
    r.insert("command".into(), json!(h.command));
    put_if(&mut r, "user", h.user.is_some(), json!(h.user));
    put_if(&mut r, "privileged", h.privileged, json!(true));
    put_if(&mut r, "working_dir", h.working_dir.is_some(), json!(h.working_dir));
    put_if(&mut r, "environment", !h.environment.is_empty(), json!(h.environment));
    Value::Object(r)
}

/// The keys Compose passes to the engine beyond the common ones: CPU and
/// memory tuning, cgroups, block I/O, devices, namespaces, identity,
/// `expose`, links outside the stack, annotations, hooks.
fn host(m: &mut Map<String, Value>, s: &Service) {
    for (key, value) in [
        ("cpu_shares", s.cpu_shares),
        ("cpu_quota", s.cpu_quota),
        ("cpu_period", s.cpu_period),
        ("cpu_rt_period", s.cpu_rt_period),
        ("cpu_rt_runtime", s.cpu_rt_runtime),
        ("mem_swappiness", s.mem_swappiness),
        ("oom_score_adj", s.oom_score_adj),
    ] {
        put_if(m, key, value.is_some(), json!(value));
    }
    // Sizes as Compose prints them: bytes, as text.
    put_if(m, "memswap_limit", s.memswap_limit.is_some(), json!(s.memswap_limit.map(|n| n.to_string())));
    for (key, value) in [
        ("cpuset", &s.cpuset),
        ("cgroup_parent", &s.cgroup_parent),
        ("cgroup", &s.cgroup),
        ("mac_address", &s.mac_address),
        ("platform", &s.platform),
        ("userns_mode", &s.userns_mode),
        ("uts", &s.uts),
        ("domainname", &s.domainname),
        ("runtime", &s.runtime),
        ("volume_driver", &s.volume_driver),
    ] {
        put_if(m, key, value.is_some(), json!(value));
    }
    for (key, list) in [
        ("device_cgroup_rules", &s.device_cgroup_rules),
        ("group_add", &s.group_add),
        ("external_links", &s.external_links),
        ("expose", &s.expose),
    ] {
        put_if(m, key, !list.is_empty(), json!(list));
    }
    put_if(m, "storage_opt", !s.storage_opt.is_empty(), json!(s.storage_opt));
    put_if(m, "annotations", !s.annotations.is_empty(), json!(s.annotations));
    if let Some(b) = &s.blkio_config {
        let mut blkio = Map::new();
        put_if(&mut blkio, "weight", b.weight.is_some(), json!(b.weight));
        let weights: Vec<Value> = b.weight_device.iter().map(|w| json!({"path": w.path, "weight": w.weight})).collect();
        put_if(&mut blkio, "weight_device", !weights.is_empty(), json!(weights));
        for (key, list) in [
            ("device_read_bps", &b.device_read_bps),
            ("device_read_iops", &b.device_read_iops),
            ("device_write_bps", &b.device_write_bps),
            ("device_write_iops", &b.device_write_iops),
        ] {
            let items: Vec<Value> = list.iter().map(|t| json!({"path": t.path, "rate": t.rate})).collect();
            put_if(&mut blkio, key, !items.is_empty(), json!(items));
        }
        m.insert("blkio_config".into(), Value::Object(blkio));
    }
    let gpus: Vec<Value> = s.gpus.iter().map(device_request).collect();
    put_if(m, "gpus", !gpus.is_empty(), json!(gpus));
    for (key, hooks) in [("post_start", &s.post_start), ("pre_stop", &s.pre_stop)] {
        let list: Vec<Value> = hooks.iter().map(hook).collect();
        put_if(m, key, !list.is_empty(), json!(list));
    }
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
            "name: shop\nservices:\n  db:\n    image: db:1\n    healthcheck: {test: [\"CMD\", \"true\"], interval: 1m30s, retries: 3}\n    volumes: [\"data:/var/lib/db:nocopy\", \"./conf:/conf:z,ro\"]\n    tmpfs: [\"/run:size=64m,mode=1777,noexec\"]\n    init: true\n    read_only: true\n    cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    devices: [\"/dev/fuse\"]\n    dns: [1.1.1.1]\n    dns_search: [example.com]\n    dns_opt: [\"ndots:2\"]\n    sysctls: {net.core.somaxconn: 1024}\n    ulimits: {nofile: {soft: 1, hard: 2}, nproc: 3}\n    shm_size: 64m\n    security_opt: [\"no-new-privileges:true\"]\n    pid: host\n    ipc: shareable\n    cpu_shares: 512\n    cpuset: \"0-1\"\n    cpu_quota: 50000\n    cpu_period: 100000\n    cpu_rt_runtime: 950ms\n    memswap_limit: 1g\n    mem_swappiness: 10\n    oom_score_adj: 100\n    storage_opt: {size: 20G}\n    blkio_config: {weight: 300, weight_device: [{path: /dev/sda, weight: 400}], device_read_bps: [{path: /dev/sda, rate: 12mb}]}\n    device_cgroup_rules: [\"c 1:3 mr\"]\n    cgroup_parent: m-executor\n    cgroup: private\n    mac_address: \"02:42:ac:11:00:02\"\n    platform: linux/amd64\n    gpus: all\n    group_add: [mail]\n    userns_mode: host\n    uts: host\n    domainname: example.com\n    runtime: runc\n    external_links: [\"redis_1:cache\"]\n    annotations: {com.example.a: b}\n    expose: [\"3000\", \"8000-8010/udp\"]\n    post_start: [{command: echo hi, user: root, environment: {A: \"1\"}}]\n    pre_stop: [{command: [./drain], working_dir: /app}]\n    build: {context: ., cache_from: [\"db:cache\"]}\n    secrets: [cert, {source: token, target: tok, uid: \"7\", mode: 0400}, ext]\n    configs: [motd]\n  web:\n    image: web:1\n    ports: [\"127.0.0.1:8080:80\"]\n    environment: {MODE: prod, PRICE: \"$$5 ${TOKEN}\"}\n    command: [echo, \"$$HOME\"]\n    labels: {cost: \"$$$$\"}\n    depends_on: {db: {condition: service_healthy}}\n    volumes_from: [\"db:ro\"]\n    deploy: {mode: replicated, resources: {limits: {cpus: \"0.5\", memory: 64m}, reservations: {devices: [{capabilities: [gpu], driver: nvidia, count: all}]}}, replicas: 3, labels: {team: a}, update_config: {order: start-first, failure_action: rollback, delay: 2s, parallelism: 2, monitor: 1m30s, max_failure_ratio: 0.5}, rollback_config: {parallelism: 0}, placement: {constraints: ['node.role == worker'], preferences: [{spread: node.labels.zone}], max_replicas_per_node: 2}, restart_policy: {condition: on-failure, max_attempts: 2, window: 10s, delay: 500ms}}\nvolumes:\n  data: {}\nnetworks:\n  front:\n    enable_ipv6: true\n    ipam: {config: [{subnet: 10.9.0.0/24, gateway: 10.9.0.1, aux_addresses: {a: 10.9.0.5}}]}\nsecrets:\n  cert: {file: ./cert.pem}\n  token: {environment: TOKEN}\n  ext: {external: true, name: prod-ext}\nconfigs:\n  motd: {content: hello}\n",
        )
        .unwrap();
        let load = |path: &std::path::Path| {
            let d =
                crate::descriptor::Descriptor::read(crate::descriptor::DescriptorRef::File(path.into()), None, path)
                    .unwrap();
            let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
            crate::descriptor::compose::load_with_env(&d, "x", &env).unwrap()
        };
        let stack = load(&first);
        let second = dir.path().join("a/rendered.yaml");
        std::fs::write(&second, serde_yaml::to_string(&compose_document(&stack)).unwrap()).unwrap();
        let again = load(&second);
        assert_eq!(again.services, stack.services);
        // The rendered file names networks explicitly, with the same names.
        let unnamed = |s: &Stack| -> Vec<(String, crate::stack::Network)> {
            s.networks
                .iter()
                .map(|(k, n)| (s.network_name(k), crate::stack::Network { name: None, ..n.clone() }))
                .collect()
        };
        assert_eq!(unnamed(&again), unnamed(&stack));
        assert_eq!(stack.services["db"].secrets.len(), 3, "the example exercises what it means to");
        let db = &stack.services["db"];
        assert!(db.blkio_config.is_some() && !db.gpus.is_empty() && !db.post_start.is_empty(), "new keys exercised");
        assert_eq!(db.build.as_ref().map(|b| b.cache_from.len()), Some(1));
        assert_eq!(stack.services["web"].device_requests[0].count, Some(-1));
        let web = &stack.services["web"];
        assert_eq!(web.environment["PRICE"].as_deref(), Some("$5 s3cret"), "the example has literal dollars");
        assert_eq!(
            (web.command.as_deref(), web.labels["cost"].as_str()),
            (Some(&["echo".to_string(), "$HOME".to_string()][..]), "$$")
        );
        let swarm = web.swarm.as_ref().expect("web has Swarm settings");
        assert_eq!((swarm.replicas, swarm.placement.spread.len()), (Some(3), 1), "the example exercises them");
    }
}

//! The normalised model written back as a Compose file, in the long syntax
//! `docker compose config` prints: what `dockmaster config` shows, so a
//! person can see exactly what will be deployed (a v1 file included).
//!
//! This file holds the document's frame: the top-level sections (networks,
//! volumes, secrets, configs), the `$` escaping, and the small helpers every
//! part uses. A service's keys are many, so they live apart:
//! `services` maps one service, `host` its engine-level tuning keys.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::stack::{FileSource, Stack};

mod host;
mod services;

use services::service;

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

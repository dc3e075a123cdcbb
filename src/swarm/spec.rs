//! A stack's services as Swarm service specs, the way `docker stack
//! deploy` writes them: `<stack>_<service>` names, the stack namespace
//! labels that `docker stack ps` and `docker stack services` look for,
//! overlay networks with the service name as alias.
//!
//! Secrets and configs become Swarm objects (see [`super::files`]). What
//! Swarm cannot do for a service (privileged containers, devices,
//! `network_mode`, `volumes_from`, links, shared namespaces) is refused
//! with every such field named at once: deploying without it would not be
//! the descriptor the team wrote.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    EndpointPortConfig, EndpointSpec, Limit, Mount, MountBindOptions, MountTmpfsOptions, MountType, MountVolumeOptions,
    NetworkAttachmentConfig, Platform, ResourceObject, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecContainerSpecDnsConfig, TaskSpecLogDriver, TaskSpecPlacement,
    TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources, TaskSpecRestartPolicy,
};
use sha2::{Digest, Sha256};

use crate::engine::spec::{
    health_config, nanos, non_empty, service_networks, ulimits, LABEL_FIELDS, LABEL_HASH, LABEL_SERVICE, LABEL_TARGET,
};
use crate::plan::ConfigHash;
use crate::stack::{MountKind, Service, Stack, UpdateConfig};

/// The label `docker stack` uses to find a stack's services, networks,
/// volumes and tasks.
pub const LABEL_NAMESPACE: &str = "com.docker.stack.namespace";
/// The label `docker stack deploy` puts the image reference in.
pub const LABEL_IMAGE: &str = "com.docker.stack.image";

/// The Swarm service name of a stack's service, as `docker stack deploy`
/// names it.
pub fn service_name(stack: &Stack, service: &str) -> String {
    format!("{}_{service}", stack.name)
}

/// Fields of a service that Swarm cannot honour, by name; empty when it
/// deploys as written.
pub fn unsupported(svc: &Service) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut flag = |on: bool, name| {
        if on {
            fields.push(name);
        }
    };
    flag(svc.privileged, "privileged");
    flag(!svc.devices.is_empty(), "devices");
    flag(svc.network_mode.is_some(), "network_mode");
    flag(!svc.volumes_from.is_empty(), "volumes_from");
    flag(!svc.links.is_empty(), "links");
    flag(svc.pid.is_some(), "pid");
    flag(svc.ipc.is_some(), "ipc");
    flag(!svc.security_opt.is_empty(), "security_opt");
    flag(svc.shm_size.is_some(), "shm_size");
    // What a task's container spec has no field for: Swarm would run the
    // task without it.
    flag(svc.cpu_shares.is_some(), "cpu_shares");
    flag(svc.cpuset.is_some(), "cpuset");
    flag(svc.cpu_quota.is_some() || svc.cpu_period.is_some(), "cpu_quota/cpu_period");
    flag(svc.cpu_rt_period.is_some() || svc.cpu_rt_runtime.is_some(), "cpu_rt_period/cpu_rt_runtime");
    flag(svc.memswap_limit.is_some(), "memswap_limit");
    flag(svc.mem_swappiness.is_some(), "mem_swappiness");
    flag(!svc.storage_opt.is_empty(), "storage_opt");
    flag(svc.blkio_config.is_some(), "blkio_config");
    flag(!svc.device_cgroup_rules.is_empty(), "device_cgroup_rules");
    flag(svc.cgroup_parent.is_some(), "cgroup_parent");
    flag(svc.cgroup.is_some(), "cgroup");
    flag(svc.mac_address.is_some(), "mac_address");
    flag(!svc.gpus.is_empty(), "gpus");
    flag(!svc.device_requests.is_empty(), "deploy.resources.reservations.devices");
    flag(svc.userns_mode.is_some(), "userns_mode");
    flag(svc.uts.is_some(), "uts");
    flag(svc.domainname.is_some(), "domainname");
    flag(svc.runtime.is_some(), "runtime");
    flag(!svc.external_links.is_empty(), "external_links");
    flag(!svc.annotations.is_empty(), "annotations");
    flag(svc.volume_driver.is_some(), "volume_driver");
    flag(!svc.post_start.is_empty(), "post_start");
    flag(!svc.pre_stop.is_empty(), "pre_stop");
    fields
}

/// The configuration hash of a Swarm service: the container's fields and
/// the Swarm settings, so a replica or rollout change is a change too.
pub fn config_hash(stack: &Stack, service: &str, svc: &Service) -> ConfigHash {
    let mut hash = crate::plan::config_hash(stack, service, svc);
    // Secrets and configs by the Swarm objects behind them: new content in
    // a host file is a new object, and so a change.
    let objects = super::files::names_for_hash(stack, service, svc);
    if !objects.is_empty() {
        let text = objects.join("|");
        hash.fields.insert("swarm_files".into(), hex::encode(&Sha256::digest(text.as_bytes())[..6]));
        hash.whole = hex::encode(Sha256::digest(format!("{}|{text}", hash.whole).as_bytes()));
    }
    if let Some(swarm) = &svc.swarm {
        let text = serde_json::to_string(swarm).unwrap_or_default();
        hash.fields.insert("swarm".into(), hex::encode(&Sha256::digest(text.as_bytes())[..6]));
        hash.whole = hex::encode(Sha256::digest(format!("{}|{text}", hash.whole).as_bytes()));
    }
    hash
}

/// The spec of one service. `labels` are put on the service (the
/// descriptor's reference, version and digest; the operator's labels).
pub fn service_spec(
    stack: &Stack,
    service: &str,
    svc: &Service,
    hash: &ConfigHash,
    labels: &BTreeMap<String, String>,
    files: &super::files::Objects,
) -> ServiceSpec {
    let (secrets, configs) = super::files::references(svc, files);
    let swarm = svc.swarm.clone().unwrap_or_default();
    let mut service_labels: HashMap<String, String> = swarm.labels.clone().into_iter().collect();
    service_labels.extend(labels.clone());
    service_labels.insert(LABEL_NAMESPACE.into(), stack.name.clone());
    service_labels.insert(LABEL_IMAGE.into(), svc.image.clone());
    service_labels.insert(LABEL_TARGET.into(), stack.name.clone());
    service_labels.insert(LABEL_SERVICE.into(), service.into());
    service_labels.insert(LABEL_HASH.into(), hash.whole.clone());
    service_labels.insert(LABEL_FIELDS.into(), serde_json::to_string(&hash.fields).unwrap_or_default());
    let top_level = crate::policy::top_level_hashes(stack);
    service_labels
        .insert(crate::engine::spec::LABEL_TOP_LEVEL.into(), serde_json::to_string(&top_level).unwrap_or_default());

    let mut container_labels: HashMap<String, String> = svc.labels.clone().into_iter().collect();
    container_labels.insert(LABEL_NAMESPACE.into(), stack.name.clone());

    let env: Vec<String> = svc.environment.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
    // Swarm writes /etc/hosts entries as "IP HOST"; Compose as "HOST:IP".
    let hosts: Vec<String> = svc
        .extra_hosts
        .iter()
        .filter_map(|h| h.split_once([':', '=']).map(|(host, ip)| format!("{ip} {host}")))
        .collect();
    let container_spec = TaskSpecContainerSpec {
        image: Some(svc.image.clone()),
        labels: Some(container_labels),
        command: svc.entrypoint.clone(),
        args: svc.command.clone(),
        hostname: svc.hostname.clone(),
        env: non_empty(env),
        dir: svc.working_dir.clone(),
        user: svc.user.clone(),
        tty: svc.tty.then_some(true),
        open_stdin: svc.stdin_open.then_some(true),
        read_only: svc.read_only.then_some(true),
        mounts: non_empty(mounts(stack, svc)),
        stop_signal: svc.stop_signal.clone(),
        stop_grace_period: svc.stop_grace_period.map(nanos),
        health_check: svc.healthcheck.as_ref().map(health_config),
        hosts: non_empty(hosts),
        dns_config: (!svc.dns.is_empty() || !svc.dns_search.is_empty() || !svc.dns_opt.is_empty()).then(|| {
            TaskSpecContainerSpecDnsConfig {
                nameservers: non_empty(svc.dns.clone()),
                search: non_empty(svc.dns_search.clone()),
                options: non_empty(svc.dns_opt.clone()),
            }
        }),
        init: svc.init,
        sysctls: (!svc.sysctls.is_empty()).then(|| svc.sysctls.clone().into_iter().collect()),
        capability_add: non_empty(svc.cap_add.clone()),
        capability_drop: non_empty(svc.cap_drop.clone()),
        groups: non_empty(svc.group_add.clone()),
        oom_score_adj: svc.oom_score_adj,
        ulimits: ulimits(svc),
        secrets: non_empty(secrets),
        configs: non_empty(configs),
        ..Default::default()
    };

    let r = &svc.resources;
    let resources = (!r.is_empty()).then(|| TaskSpecResources {
        limits: Some(Limit { nano_cpus: r.cpus.map(|c| (c * 1e9) as i64), memory_bytes: r.memory, pids: r.pids_limit }),
        reservations: r.memory_reservation.map(|m| ResourceObject { memory_bytes: Some(m), ..Default::default() }),
        ..Default::default()
    });

    let restart_policy = swarm.restart_policy.as_ref().map(|p| TaskSpecRestartPolicy {
        condition: enum_value(&p.condition),
        delay: p.delay.map(nanos),
        max_attempts: p.max_attempts.map(|n| n as i64),
        window: p.window.map(nanos),
    });
    // `platform: os/arch[/variant]` keeps tasks on nodes of that platform.
    let platforms = svc.platform.as_deref().map(|p| {
        let mut parts = p.split('/');
        vec![Platform { os: parts.next().map(str::to_string), architecture: parts.next().map(str::to_string) }]
    });
    let placement = (!swarm.placement.is_empty() || platforms.is_some()).then(|| TaskSpecPlacement {
        platforms,
        constraints: non_empty(swarm.placement.constraints.clone()),
        preferences: non_empty(
            swarm
                .placement
                .spread
                .iter()
                .map(|s| TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread { spread_descriptor: Some(s.clone()) }),
                })
                .collect(),
        ),
        max_replicas: swarm.placement.max_replicas_per_node.map(|n| n as i64),
    });
    let networks: Vec<NetworkAttachmentConfig> = service_networks(svc)
        .iter()
        .map(|key| {
            let mut aliases = vec![service.to_string()];
            if let Some(extra) = svc.networks.get(key) {
                aliases.extend(extra.aliases.iter().cloned());
            }
            NetworkAttachmentConfig {
                target: Some(stack.network_name(key)),
                aliases: Some(aliases),
                ..Default::default()
            }
        })
        .collect();
    let ports: Vec<EndpointPortConfig> = svc
        .ports
        .iter()
        .map(|p| EndpointPortConfig {
            protocol: enum_value(&p.protocol),
            target_port: Some(i64::from(p.target)),
            published_port: p.published.map(i64::from),
            publish_mode: enum_value("ingress"),
            ..Default::default()
        })
        .collect();

    ServiceSpec {
        name: Some(service_name(stack, service)),
        labels: Some(service_labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container_spec),
            resources,
            restart_policy,
            placement,
            networks: non_empty(networks),
            log_driver: svc.logging.as_ref().and_then(|l| {
                l.driver.as_ref().map(|d| TaskSpecLogDriver {
                    name: Some(d.clone()),
                    options: (!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()),
                })
            }),
            ..Default::default()
        }),
        mode: Some(match swarm.mode.as_deref() {
            Some("global") => ServiceSpecMode { global: Some(HashMap::new()), ..Default::default() },
            _ => ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(swarm.replicas.unwrap_or(1) as i64) }),
                ..Default::default()
            },
        }),
        update_config: swarm.update_config.as_ref().map(|u| ServiceSpecUpdateConfig {
            parallelism: u.parallelism.map(|n| n as i64),
            delay: u.delay.map(nanos),
            failure_action: u.failure_action.as_deref().and_then(enum_value),
            monitor: u.monitor.map(nanos),
            max_failure_ratio: u.max_failure_ratio,
            order: u.order.as_deref().and_then(enum_value),
        }),
        rollback_config: swarm.rollback_config.as_ref().map(rollback_config),
        endpoint_spec: (!ports.is_empty()).then(|| EndpointSpec { ports: Some(ports), ..Default::default() }),
        ..Default::default()
    }
}

/// The spec for a deploy run with `--no-rollback`: an update whose
/// `failure_action` is `rollback` pauses instead, as Swarm's default does,
/// so a failed update leaves the new spec in place for dockmaster to report
/// and for a person to look at. `continue` and `pause` are kept as written.
pub fn without_rollback(mut spec: ServiceSpec) -> ServiceSpec {
    if let Some(update) = spec.update_config.as_mut() {
        if update.failure_action == Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK) {
            update.failure_action = Some(ServiceSpecUpdateConfigFailureActionEnum::PAUSE);
        }
    }
    spec
}

fn rollback_config(u: &UpdateConfig) -> ServiceSpecRollbackConfig {
    ServiceSpecRollbackConfig {
        parallelism: u.parallelism.map(|n| n as i64),
        delay: u.delay.map(nanos),
        failure_action: u.failure_action.as_deref().and_then(enum_value),
        monitor: u.monitor.map(nanos),
        max_failure_ratio: u.max_failure_ratio,
        order: u.order.as_deref().and_then(enum_value),
    }
}

/// Volumes, host paths and tmpfs as Swarm mounts. Named volumes carry the
/// stack namespace so the volume each node creates is the stack's.
fn mounts(stack: &Stack, svc: &Service) -> Vec<Mount> {
    let mut out = Vec::new();
    for m in &svc.volumes {
        let mount = match m.kind {
            MountKind::Volume => Mount {
                target: Some(m.target.clone()),
                source: m.source.as_ref().map(|key| stack.volume_name(key)),
                typ: Some(MountType::VOLUME),
                read_only: Some(m.read_only),
                volume_options: Some(MountVolumeOptions {
                    no_copy: m.nocopy.then_some(true),
                    subpath: m.subpath.clone(),
                    labels: Some([(LABEL_NAMESPACE.to_string(), stack.name.clone())].into_iter().collect()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            MountKind::Bind => Mount {
                target: Some(m.target.clone()),
                source: m.source.clone(),
                typ: Some(MountType::BIND),
                read_only: Some(m.read_only),
                bind_options: m
                    .propagation
                    .as_deref()
                    .and_then(enum_value)
                    .map(|p| MountBindOptions { propagation: Some(p), ..Default::default() }),
                ..Default::default()
            },
            MountKind::Tmpfs => Mount {
                target: Some(m.target.clone()),
                typ: Some(MountType::TMPFS),
                read_only: Some(m.read_only),
                tmpfs_options: Some(MountTmpfsOptions {
                    size_bytes: m.tmpfs_size,
                    mode: m.tmpfs_mode.map(i64::from),
                    ..Default::default()
                }),
                ..Default::default()
            },
        };
        out.push(mount);
    }
    // Secrets and configs are Swarm objects, not mounts (see `files`).
    out
}

/// One of bollard's string enums from the text Docker uses for it
/// (`start-first`, `on-failure`, `tcp`); `None` for text it does not know.
fn enum_value<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(text: &str) -> Stack {
        crate::descriptor::compose::test_stack(text, "shop")
    }

    const WEB: &str = "services:\n  web:\n    image: app:1\n    command: [serve]\n    entrypoint: [/bin/app]\n    ports: ['8080:80']\n    extra_hosts: ['db.local:10.0.0.5']\n    deploy:\n      replicas: 3\n      labels: {team: a}\n      update_config: {order: start-first, failure_action: rollback, delay: 2s}\n      placement: {constraints: ['node.role == worker'], preferences: [{spread: node.labels.zone}]}\n      restart_policy: {condition: on-failure, max_attempts: 2, window: 10s}\n";

    #[test]
    fn a_service_becomes_the_spec_docker_stack_deploy_would_write() {
        let s = stack(WEB);
        let svc = &s.services["web"];
        let spec = service_spec(&s, "web", svc, &config_hash(&s, "web", svc), &BTreeMap::new(), &Default::default());
        assert_eq!(spec.name.as_deref(), Some("shop_web"));
        let labels = spec.labels.unwrap();
        assert_eq!(labels[LABEL_NAMESPACE], "shop");
        assert_eq!(labels["team"], "a");
        assert_eq!(labels[LABEL_SERVICE], "web");
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(3));
        let update = spec.update_config.unwrap();
        assert_eq!(update.order, Some(bollard::models::ServiceSpecUpdateConfigOrderEnum::START_FIRST));
        assert_eq!(update.failure_action, Some(bollard::models::ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK));
        assert_eq!(update.delay, Some(2_000_000_000));
        let task = spec.task_template.unwrap();
        let container = task.container_spec.unwrap();
        assert_eq!(container.command, Some(vec!["/bin/app".to_string()]), "entrypoint is Swarm's command");
        assert_eq!(container.args, Some(vec!["serve".to_string()]), "command is Swarm's args");
        assert_eq!(container.hosts, Some(vec!["10.0.0.5 db.local".to_string()]));
        assert_eq!(container.labels.unwrap()[LABEL_NAMESPACE], "shop");
        let placement = task.placement.unwrap();
        assert_eq!(placement.constraints, Some(vec!["node.role == worker".to_string()]));
        assert_eq!(task.restart_policy.unwrap().max_attempts, Some(2));
        assert_eq!(task.networks.unwrap()[0].target.as_deref(), Some("shop_default"));
        let port = &spec.endpoint_spec.unwrap().ports.unwrap()[0];
        assert_eq!((port.target_port, port.published_port), (Some(80), Some(8080)));
    }

    #[test]
    fn without_rollback_a_failed_update_pauses_instead_of_rolling_back() {
        use ServiceSpecUpdateConfigFailureActionEnum as Action;
        let s = stack(WEB);
        let svc = &s.services["web"];
        let spec = service_spec(&s, "web", svc, &config_hash(&s, "web", svc), &BTreeMap::new(), &Default::default());
        let kept = without_rollback(spec.clone());
        let update = kept.update_config.unwrap();
        assert_eq!(update.failure_action, Some(Action::PAUSE));
        assert_eq!(update.order, spec.update_config.as_ref().unwrap().order, "the rest of the rollout is as written");
        assert_eq!(kept.task_template, spec.task_template);
        for other in ["continue", "pause"] {
            let s = stack(&WEB.replace("failure_action: rollback", &format!("failure_action: {other}")));
            let svc = &s.services["web"];
            let spec =
                service_spec(&s, "web", svc, &config_hash(&s, "web", svc), &BTreeMap::new(), &Default::default());
            let action = spec.update_config.as_ref().unwrap().failure_action;
            assert_eq!(without_rollback(spec).update_config.unwrap().failure_action, action, "{other} is kept");
        }
        let bare = stack("services:\n  web:\n    image: app:1\n");
        let svc = &bare.services["web"];
        let spec =
            service_spec(&bare, "web", svc, &config_hash(&bare, "web", svc), &BTreeMap::new(), &Default::default());
        assert!(without_rollback(spec).update_config.is_none(), "no update_config stays none (Swarm pauses)");
    }

    #[test]
    fn swarm_settings_are_part_of_the_hash_and_unsupported_fields_are_named() {
        let s = stack(WEB);
        let more = stack(&WEB.replace("replicas: 3", "replicas: 4"));
        let (a, b) = (config_hash(&s, "web", &s.services["web"]), config_hash(&more, "web", &more.services["web"]));
        assert_ne!(a.whole, b.whole);
        assert_ne!(a.fields["swarm"], b.fields["swarm"]);
        assert_eq!(a.fields["image"], b.fields["image"]);
        let odd = stack("services:\n  x:\n    image: a\n    privileged: true\n    network_mode: host\n    pid: host\n");
        assert_eq!(unsupported(&odd.services["x"]), vec!["privileged", "network_mode", "pid"]);
        assert!(unsupported(&s.services["web"]).is_empty());
        let host = stack(
            "services:\n  x:\n    image: a\n    cpu_shares: 512\n    runtime: runsc\n    gpus: all\n    \
             post_start: [{command: 'true'}]\n",
        );
        assert_eq!(unsupported(&host.services["x"]), vec!["cpu_shares", "gpus", "runtime", "post_start"]);
    }

    #[test]
    fn global_mode_platform_groups_and_oom_score_reach_the_spec() {
        let s = stack(
            "services:\n  agent:\n    image: a\n    platform: linux/arm64\n    group_add: [docker]\n    \
             oom_score_adj: 200\n    deploy: {mode: global}\n",
        );
        let svc = &s.services["agent"];
        assert!(unsupported(svc).is_empty(), "{:?}", unsupported(svc));
        let spec =
            service_spec(&s, "agent", svc, &config_hash(&s, "agent", svc), &BTreeMap::new(), &Default::default());
        let mode = spec.mode.unwrap();
        assert!(mode.global.is_some() && mode.replicated.is_none());
        let task = spec.task_template.unwrap();
        let platform = &task.placement.unwrap().platforms.unwrap()[0];
        assert_eq!((platform.os.as_deref(), platform.architecture.as_deref()), (Some("linux"), Some("arm64")));
        let container = task.container_spec.unwrap();
        assert_eq!((container.groups, container.oom_score_adj), (Some(vec!["docker".to_string()]), Some(200)));
    }
}

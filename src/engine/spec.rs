//! Translating the normalised model into the engine's create requests.
//!
//! Pure functions, so what reaches the engine for each descriptor field is
//! checked by unit tests. Every field the model holds is translated here;
//! a field that is not would be silently dropped, which the descriptor
//! contract forbids.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig, HostConfigLogConfig, Ipam,
    IpamConfig, Mount as EngineMount, MountType, NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};

use crate::plan::ConfigHash;
use crate::stack::{MountKind, Network, Service, Stack, VolumesFromSource, DEFAULT_NETWORK};

/// Label naming the target (project) a resource belongs to.
pub const LABEL_TARGET: &str = "dockmaster.target";
/// Label naming the service a container runs.
pub const LABEL_SERVICE: &str = "dockmaster.service";
/// Label with the service's whole configuration hash.
pub const LABEL_HASH: &str = "dockmaster.config-hash";
/// Label with the per-field hashes, as compact JSON.
pub const LABEL_FIELDS: &str = "dockmaster.field-hashes";

/// The labels every container of a service carries: the descriptor's own,
/// the operator's extra labels, dockmaster's bookkeeping, and Compose's
/// project labels so that `docker compose -p <target> ps` keeps working.
pub fn container_labels(
    stack: &Stack,
    service: &str,
    svc: &Service,
    hash: &ConfigHash,
    extra: &BTreeMap<String, String>,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = svc.labels.clone().into_iter().collect();
    labels.extend(extra.clone());
    labels.insert(LABEL_TARGET.into(), stack.name.clone());
    labels.insert(LABEL_SERVICE.into(), service.into());
    labels.insert(LABEL_HASH.into(), hash.whole.clone());
    labels.insert(LABEL_FIELDS.into(), serde_json::to_string(&hash.fields).unwrap_or_default());
    labels.insert("com.docker.compose.project".into(), stack.name.clone());
    labels.insert("com.docker.compose.service".into(), service.into());
    labels.insert("com.docker.compose.container-number".into(), "1".into());
    labels.insert("com.docker.compose.oneoff".into(), "False".into());
    labels
}

/// The labels on networks and volumes the stack creates.
pub fn resource_labels(
    stack: &Stack,
    own: &BTreeMap<String, String>,
    extra: &BTreeMap<String, String>,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = own.clone().into_iter().collect();
    labels.extend(extra.clone());
    labels.insert(LABEL_TARGET.into(), stack.name.clone());
    labels.insert("com.docker.compose.project".into(), stack.name.clone());
    labels
}

/// The networks a service joins, by key, in a stable order: its own list,
/// or the project default when it names none and has no `network_mode`.
pub fn service_networks(svc: &Service) -> Vec<String> {
    if svc.network_mode.is_some() {
        return vec![];
    }
    if svc.networks.is_empty() {
        return vec![DEFAULT_NETWORK.to_string()];
    }
    svc.networks.keys().cloned().collect()
}

/// The endpoint settings for a service on one network: aliases (the service
/// name is always one, as in Compose) and static addresses.
pub fn endpoint(service: &str, svc: &Service, network_key: &str) -> EndpointSettings {
    let attachment = svc.networks.get(network_key).cloned().unwrap_or_default();
    let mut aliases = vec![service.to_string()];
    aliases.extend(attachment.aliases.iter().cloned());
    let ipam = if attachment.ipv4_address.is_some() || attachment.ipv6_address.is_some() {
        Some(EndpointIpamConfig {
            ipv4_address: attachment.ipv4_address.clone(),
            ipv6_address: attachment.ipv6_address.clone(),
            ..Default::default()
        })
    } else {
        None
    };
    EndpointSettings { aliases: Some(aliases), ipam_config: ipam, ..Default::default() }
}

/// Builds the create request for a service's container. The first network
/// is attached at create time (API 1.41 takes one); the engine layer
/// connects the others before the container starts.
pub fn container_body(
    stack: &Stack,
    service: &str,
    svc: &Service,
    labels: HashMap<String, String>,
) -> ContainerCreateBody {
    let env: Vec<String> = svc.environment.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();

    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &svc.ports {
        let key = format!("{}/{}", port.target, port.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        let binding = PortBinding {
            host_ip: port.host_ip.clone(),
            host_port: Some(port.published.map(|p| p.to_string()).unwrap_or_default()),
        };
        bindings.entry(key).or_insert_with(|| Some(vec![])).get_or_insert_with(Vec::new).push(binding);
    }

    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for mount in &svc.volumes {
        match mount.kind {
            // Binds go through the legacy field so a missing host folder is
            // created, as Compose's short syntax does.
            MountKind::Bind => {
                let source = mount.source.clone().unwrap_or_default();
                let mode = if mount.read_only { ":ro" } else { "" };
                binds.push(format!("{source}:{}{mode}", mount.target));
            }
            MountKind::Volume => mounts.push(EngineMount {
                target: Some(mount.target.clone()),
                source: mount.source.as_ref().map(|key| stack.volume_name(key)),
                typ: Some(MountType::VOLUME),
                read_only: Some(mount.read_only),
                ..Default::default()
            }),
            MountKind::Tmpfs => mounts.push(EngineMount {
                target: Some(mount.target.clone()),
                typ: Some(MountType::TMPFS),
                read_only: Some(mount.read_only),
                ..Default::default()
            }),
        }
    }

    let volumes_from: Vec<String> = svc
        .volumes_from
        .iter()
        .map(|v| {
            let name = match &v.source {
                VolumesFromSource::Service(s) => stack.container_name(s),
                VolumesFromSource::Container(c) => c.clone(),
            };
            format!("{name}:{}", if v.read_only { "ro" } else { "rw" })
        })
        .collect();

    let links: Vec<String> = svc
        .links
        .iter()
        .map(|link| {
            let (target, alias) = link.split_once(':').unwrap_or((link.as_str(), link.as_str()));
            let container =
                if stack.services.contains_key(target) { stack.container_name(target) } else { target.to_string() };
            format!("{container}:{alias}")
        })
        .collect();

    let networks = service_networks(svc);
    let network_mode = match svc.network_mode.as_deref() {
        Some(mode) => Some(match mode.strip_prefix("service:") {
            Some(other) => format!("container:{}", stack.container_name(other)),
            None => mode.to_string(),
        }),
        None => networks.first().map(|key| stack.network_name(key)),
    };
    let networking_config = networks.first().map(|key| NetworkingConfig {
        endpoints_config: Some([(stack.network_name(key), endpoint(service, svc, key))].into_iter().collect()),
    });

    let host_config = HostConfig {
        binds: non_empty(binds),
        mounts: non_empty(mounts),
        port_bindings: if bindings.is_empty() { None } else { Some(bindings) },
        volumes_from: non_empty(volumes_from),
        links: non_empty(links),
        network_mode,
        restart_policy: svc.restart.as_deref().map(restart_policy),
        privileged: svc.privileged.then_some(true),
        extra_hosts: non_empty(svc.extra_hosts.clone()),
        nano_cpus: svc.resources.cpus.map(|c| (c * 1e9) as i64),
        memory: svc.resources.memory,
        memory_reservation: svc.resources.memory_reservation,
        pids_limit: svc.resources.pids_limit,
        log_config: svc.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: l.driver.clone(),
            config: if l.options.is_empty() { None } else { Some(l.options.clone().into_iter().collect()) },
        }),
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(svc.image.clone()),
        cmd: svc.command.clone(),
        entrypoint: svc.entrypoint.clone(),
        env: non_empty(env),
        exposed_ports: non_empty(exposed),
        labels: Some(labels),
        healthcheck: svc.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(if h.disable { vec!["NONE".to_string()] } else { h.test.clone() }),
            interval: h.interval.map(nanos),
            timeout: h.timeout.map(nanos),
            retries: h.retries.map(i64::from),
            start_period: h.start_period.map(nanos),
            start_interval: h.start_interval.map(nanos),
        }),
        hostname: svc.hostname.clone(),
        user: svc.user.clone(),
        working_dir: svc.working_dir.clone(),
        tty: svc.tty.then_some(true),
        open_stdin: svc.stdin_open.then_some(true),
        stop_signal: svc.stop_signal.clone(),
        stop_timeout: svc.stop_grace_period.map(|d| d.as_secs() as i64),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// The create request for a network the stack owns.
pub fn network_body(stack: &Stack, key: &str, extra: &BTreeMap<String, String>) -> NetworkCreateRequest {
    let declared = stack.networks.get(key).cloned().unwrap_or_else(Network::default);
    NetworkCreateRequest {
        name: stack.network_name(key),
        driver: Some(declared.driver.clone().unwrap_or_else(|| "bridge".into())),
        internal: declared.internal.then_some(true),
        options: if declared.driver_opts.is_empty() { None } else { Some(declared.driver_opts.into_iter().collect()) },
        ipam: if declared.subnets.is_empty() {
            None
        } else {
            Some(Ipam {
                config: Some(
                    declared
                        .subnets
                        .iter()
                        .map(|s| IpamConfig { subnet: Some(s.clone()), ..Default::default() })
                        .collect(),
                ),
                ..Default::default()
            })
        },
        labels: Some({
            let mut labels = resource_labels(stack, &declared.labels, extra);
            labels.insert("com.docker.compose.network".into(), key.into());
            labels
        }),
        ..Default::default()
    }
}

fn restart_policy(text: &str) -> RestartPolicy {
    let (name, count) = text.split_once(':').unwrap_or((text, ""));
    let name = match name {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::NO,
    };
    RestartPolicy { name: Some(name), maximum_retry_count: count.parse().ok() }
}

fn nanos(d: std::time::Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{Format, Healthcheck, Mount, Port, ServiceNetwork, VolumesFrom};
    use std::time::Duration;

    fn stack_with(svc: Service) -> Stack {
        Stack {
            name: "shop".into(),
            format: Format::Spec,
            services: [
                ("web".to_string(), svc),
                ("db".to_string(), Service { image: "db".into(), ..Default::default() }),
            ]
            .into_iter()
            .collect(),
            networks: BTreeMap::new(),
            volumes: BTreeMap::new(),
            warnings: vec![],
        }
    }

    #[test]
    fn every_field_reaches_the_create_request() {
        let mut svc = Service { image: "app:1".into(), ..Default::default() };
        svc.command = Some(vec!["run".into()]);
        svc.environment.insert("A".into(), Some("1".into()));
        svc.environment.insert("UNSET".into(), None);
        svc.ports.push(Port {
            target: 80,
            published: Some(8080),
            host_ip: Some("127.0.0.1".into()),
            protocol: "tcp".into(),
        });
        svc.volumes.push(Mount {
            kind: MountKind::Volume,
            source: Some("data".into()),
            target: "/data".into(),
            read_only: true,
        });
        svc.volumes.push(Mount {
            kind: MountKind::Bind,
            source: Some("/srv/x".into()),
            target: "/x".into(),
            read_only: false,
        });
        svc.volumes_from.push(VolumesFrom { source: VolumesFromSource::Service("db".into()), read_only: false });
        svc.links.push("db:database".into());
        svc.restart = Some("on-failure:3".into());
        svc.healthcheck = Some(Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: Some(Duration::from_secs(1)),
            timeout: None,
            retries: Some(3),
            start_period: None,
            start_interval: None,
            disable: false,
        });
        svc.resources.cpus = Some(0.5);
        svc.resources.memory = Some(64 << 20);
        let stack = stack_with(svc.clone());
        let body = container_body(&stack, "web", &svc, HashMap::new());
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));
        let host = body.host_config.unwrap();
        let binding = &host.port_bindings.unwrap()["80/tcp"];
        assert_eq!(binding.as_ref().unwrap()[0].host_port.as_deref(), Some("8080"));
        assert_eq!(host.binds, Some(vec!["/srv/x:/x".to_string()]));
        assert_eq!(host.mounts.unwrap()[0].source.as_deref(), Some("shop_data"));
        assert_eq!(host.volumes_from, Some(vec!["shop-db-1:rw".to_string()]));
        assert_eq!(host.links, Some(vec!["shop-db-1:database".to_string()]));
        assert_eq!(host.network_mode.as_deref(), Some("shop_default"));
        assert_eq!(host.restart_policy.unwrap().maximum_retry_count, Some(3));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(body.healthcheck.unwrap().interval, Some(1_000_000_000));
    }

    #[test]
    fn service_network_mode_points_at_the_other_container() {
        let svc = Service { image: "x".into(), network_mode: Some("service:db".into()), ..Default::default() };
        let stack = stack_with(svc.clone());
        let body = container_body(&stack, "web", &svc, HashMap::new());
        assert_eq!(body.host_config.unwrap().network_mode.as_deref(), Some("container:shop-db-1"));
        assert!(body.networking_config.is_none());
    }

    #[test]
    fn the_service_name_and_aliases_resolve_on_each_network() {
        let mut svc = Service { image: "x".into(), ..Default::default() };
        svc.networks.insert("back".into(), ServiceNetwork { aliases: vec!["api".into()], ..Default::default() });
        let e = endpoint("web", &svc, "back");
        assert_eq!(e.aliases, Some(vec!["web".to_string(), "api".into()]));
    }
}

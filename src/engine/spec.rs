//! Translating the normalised model into the engine's create requests.
//!
//! Pure functions, so what reaches the engine for each descriptor field is
//! checked by unit tests. Every field the model holds is translated here;
//! a field that is not would be silently dropped, which the descriptor
//! contract forbids.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest as EngineDeviceRequest, EndpointIpamConfig, EndpointSettings,
    HealthConfig, HostConfig, HostConfigCgroupnsModeEnum, HostConfigLogConfig, Ipam, IpamConfig, Mount as EngineMount,
    MountType, MountVolumeOptions, NetworkCreateRequest, NetworkingConfig, PortBinding, ResourcesBlkioWeightDevice,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum, ThrottleDevice,
};

use crate::plan::ConfigHash;
use crate::stack::{
    DeviceRequest, FileMount, FileSource, MountKind, Network, Service, Stack, VolumesFromSource, DEFAULT_NETWORK,
};

/// Label naming the target (project) a resource belongs to.
pub const LABEL_TARGET: &str = "dockmaster.target";
/// Label naming the service a container runs.
pub const LABEL_SERVICE: &str = "dockmaster.service";
/// Label with the service's whole configuration hash.
pub const LABEL_HASH: &str = "dockmaster.config-hash";
/// Label with the per-field hashes, as compact JSON.
pub const LABEL_FIELDS: &str = "dockmaster.field-hashes";
/// Label with the hashes of the stack's top-level declarations
/// ([`crate::policy::top_level_hashes`]), as compact JSON: what the change
/// classification compares them with on the next deploy.
pub const LABEL_TOP_LEVEL: &str = "dockmaster.top-level";
/// Label with the profiles that enabled the service (comma-separated), so
/// `docker inspect` shows why it runs.
pub const LABEL_PROFILES: &str = "dockmaster.profiles";

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
    let top_level = crate::policy::top_level_hashes(stack);
    labels.insert(LABEL_TOP_LEVEL.into(), serde_json::to_string(&top_level).unwrap_or_default());
    labels.insert("com.docker.compose.project".into(), stack.name.clone());
    labels.insert("com.docker.compose.service".into(), service.into());
    labels.insert("com.docker.compose.container-number".into(), "1".into());
    labels.insert("com.docker.compose.oneoff".into(), "False".into());
    if !svc.profiles.is_empty() {
        labels.insert(LABEL_PROFILES.into(), svc.profiles.join(","));
    }
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
/// name is always one, as in Compose), static addresses, and, on the first
/// network, the service's `mac_address` (API 1.44 and later take it there).
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
    let first = service_networks(svc).first().is_some_and(|k| k == network_key);
    EndpointSettings {
        aliases: Some(aliases),
        ipam_config: ipam,
        mac_address: svc.mac_address.clone().filter(|_| first),
        ..Default::default()
    }
}

/// The legacy links of a service as Compose v2 writes them (`getLinks`):
/// for `SERVICE[:ALIAS]`, the service's container under the alias, under
/// `SERVICE-1` and under `<project>-SERVICE-1`; then `external_links`,
/// `CONTAINER[:ALIAS]`, as written.
pub fn links(stack: &Stack, svc: &Service) -> Vec<String> {
    let mut out = Vec::new();
    for link in &svc.links {
        let (target, alias) = link.split_once(':').unwrap_or((link.as_str(), link.as_str()));
        if !stack.services.contains_key(target) {
            // Not a service of the stack (the loader refuses that for a
            // descriptor; kept as a container name for a hand-made model).
            out.push(format!("{target}:{alias}"));
            continue;
        }
        let container = stack.container_name(target);
        for name in [alias.to_string(), format!("{target}-1"), format!("{}-{target}-1", stack.name)] {
            let entry = format!("{container}:{name}");
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
    }
    for link in &svc.external_links {
        let (container, alias) = link.split_once(':').unwrap_or((link.as_str(), link.as_str()));
        out.push(format!("{container}:{alias}"));
    }
    out
}

/// The ports a container exposes: its published ports' targets, then
/// `expose` (ranges spelled out), each once, as `PORT/PROTOCOL`.
fn exposed_ports(svc: &Service) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |key: String| {
        if !out.contains(&key) {
            out.push(key);
        }
    };
    for port in &svc.ports {
        add(format!("{}/{}", port.target, port.protocol));
    }
    for entry in &svc.expose {
        let (range, protocol) = entry.split_once('/').unwrap_or((entry.as_str(), "tcp"));
        let (start, end) = range.split_once('-').unwrap_or((range, range));
        let (Ok(start), Ok(end)) = (start.parse::<u16>(), end.parse::<u16>()) else { continue };
        for port in start..=end {
            add(format!("{port}/{protocol}"));
        }
    }
    out
}

/// A device request as the engine takes it (`count: all` is -1).
fn device_request(d: &DeviceRequest) -> EngineDeviceRequest {
    EngineDeviceRequest {
        driver: d.driver.clone(),
        count: d.count,
        device_ids: non_empty(d.device_ids.clone()),
        capabilities: Some(vec![d.capabilities.clone()]),
        options: if d.options.is_empty() { None } else { Some(d.options.clone().into_iter().collect()) },
    }
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

    let exposed = exposed_ports(svc);
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &svc.ports {
        let key = format!("{}/{}", port.target, port.protocol);
        let binding = PortBinding {
            host_ip: port.host_ip.clone(),
            host_port: Some(port.published.map(|p| p.to_string()).unwrap_or_default()),
        };
        bindings.entry(key).or_insert_with(|| Some(vec![])).get_or_insert_with(Vec::new).push(binding);
    }

    let (binds, mounts, tmpfs) = mounts(stack, svc);
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

    let links = links(stack, svc);

    let networks = service_networks(svc);
    let network_mode = match svc.network_mode.as_deref() {
        Some(mode) => Some(namespace(stack, mode)),
        None => networks.first().map(|key| stack.network_name(key)),
    };
    let networking_config = networks.first().map(|key| {
        let mut settings = endpoint(service, svc, key);
        // As Compose does: the links on the endpoint too, which is where a
        // user-defined network takes them.
        settings.links = non_empty(links.clone());
        NetworkingConfig { endpoints_config: Some([(stack.network_name(key), settings)].into_iter().collect()) }
    });
    let blkio = svc.blkio_config.clone().unwrap_or_default();
    let throttles = |list: &[crate::stack::ThrottleDevice]| {
        non_empty(
            list.iter()
                .map(|t| ThrottleDevice {
                    path: Some(t.path.clone()),
                    rate: Some(i64::try_from(t.rate).unwrap_or(i64::MAX)),
                })
                .collect(),
        )
    };
    let device_requests: Vec<EngineDeviceRequest> =
        svc.gpus.iter().chain(&svc.device_requests).map(device_request).collect();

    let host_config = HostConfig {
        binds: non_empty(binds),
        mounts: non_empty(mounts),
        tmpfs: if tmpfs.is_empty() { None } else { Some(tmpfs) },
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
        init: svc.init,
        readonly_rootfs: svc.read_only.then_some(true),
        cap_add: non_empty(svc.cap_add.clone()),
        cap_drop: non_empty(svc.cap_drop.clone()),
        devices: non_empty(
            svc.devices
                .iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.source.clone()),
                    path_in_container: Some(d.target.clone()),
                    cgroup_permissions: Some(d.permissions.clone()),
                })
                .collect(),
        ),
        dns: non_empty(svc.dns.clone()),
        dns_search: non_empty(svc.dns_search.clone()),
        dns_options: non_empty(svc.dns_opt.clone()),
        sysctls: if svc.sysctls.is_empty() { None } else { Some(svc.sysctls.clone().into_iter().collect()) },
        ulimits: ulimits(svc),
        shm_size: svc.shm_size,
        security_opt: non_empty(svc.security_opt.clone()),
        pid_mode: svc.pid.as_deref().map(|m| namespace(stack, m)),
        ipc_mode: svc.ipc.as_deref().map(|m| namespace(stack, m)),
        cpu_shares: svc.cpu_shares,
        cpuset_cpus: svc.cpuset.clone(),
        cpu_quota: svc.cpu_quota,
        cpu_period: svc.cpu_period,
        cpu_realtime_period: svc.cpu_rt_period,
        cpu_realtime_runtime: svc.cpu_rt_runtime,
        memory_swap: svc.memswap_limit,
        memory_swappiness: svc.mem_swappiness,
        oom_score_adj: svc.oom_score_adj,
        storage_opt: if svc.storage_opt.is_empty() {
            None
        } else {
            Some(svc.storage_opt.clone().into_iter().collect())
        },
        blkio_weight: blkio.weight,
        blkio_weight_device: non_empty(
            blkio
                .weight_device
                .iter()
                .map(|w| ResourcesBlkioWeightDevice { path: Some(w.path.clone()), weight: Some(usize::from(w.weight)) })
                .collect(),
        ),
        blkio_device_read_bps: throttles(&blkio.device_read_bps),
        blkio_device_read_iops: throttles(&blkio.device_read_iops),
        blkio_device_write_bps: throttles(&blkio.device_write_bps),
        blkio_device_write_iops: throttles(&blkio.device_write_iops),
        device_cgroup_rules: non_empty(svc.device_cgroup_rules.clone()),
        device_requests: non_empty(device_requests),
        cgroup_parent: svc.cgroup_parent.clone(),
        cgroupns_mode: svc.cgroup.as_deref().map(|c| match c {
            "host" => HostConfigCgroupnsModeEnum::HOST,
            _ => HostConfigCgroupnsModeEnum::PRIVATE,
        }),
        group_add: non_empty(svc.group_add.clone()),
        userns_mode: svc.userns_mode.clone(),
        uts_mode: svc.uts.clone(),
        runtime: svc.runtime.clone(),
        annotations: if svc.annotations.is_empty() {
            None
        } else {
            Some(svc.annotations.clone().into_iter().collect())
        },
        volume_driver: svc.volume_driver.clone(),
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(svc.image.clone()),
        cmd: svc.command.clone(),
        entrypoint: svc.entrypoint.clone(),
        env: non_empty(env),
        exposed_ports: non_empty(exposed),
        labels: Some(labels),
        healthcheck: svc.healthcheck.as_ref().map(health_config),
        hostname: svc.hostname.clone(),
        domainname: svc.domainname.clone(),
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

/// `service:NAME` (another service's container) in the engine's terms,
/// `container:<its container name>`; any other mode as written.
fn namespace(stack: &Stack, mode: &str) -> String {
    match mode.strip_prefix("service:") {
        Some(other) => format!("container:{}", stack.container_name(other)),
        None => mode.to_string(),
    }
}

/// A service's mounts in the engine's three forms: `Binds` strings for
/// host paths (so a missing host folder is created, as Compose's short
/// syntax does, and SELinux relabelling works), `Mounts` for volumes and
/// for secret and config files (a missing file is an error, never an empty
/// folder), and `Tmpfs` for tmpfs (every mount option on every API version).
/// Hands a replaced container's anonymous volumes (path, volume name) to
/// its successor: at each path the new service mounts anonymously (or not
/// at all, an image `VOLUME`), the old volume is mounted instead. A path
/// the descriptor now gives a bind, a named volume or a tmpfs keeps what
/// the descriptor says.
pub fn inherit_anonymous_volumes(body: &mut ContainerCreateBody, svc: &Service, inherit: &[(String, String)]) {
    let host = body.host_config.get_or_insert_with(Default::default);
    let mounts = host.mounts.get_or_insert_with(Vec::new);
    for (target, name) in inherit {
        let chosen =
            svc.volumes.iter().any(|m| &m.target == target && (m.kind != MountKind::Volume || m.source.is_some()))
                || svc.secrets.iter().chain(&svc.configs).any(|f| &f.target == target);
        if chosen {
            continue;
        }
        mounts.retain(|m| m.target.as_deref() != Some(target.as_str()));
        mounts.push(EngineMount {
            target: Some(target.clone()),
            source: Some(name.clone()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        });
    }
}

fn mounts(stack: &Stack, svc: &Service) -> (Vec<String>, Vec<EngineMount>, HashMap<String, String>) {
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    let mut tmpfs = HashMap::new();
    for mount in &svc.volumes {
        match mount.kind {
            MountKind::Bind => {
                let source = mount.source.clone().unwrap_or_default();
                let mut options: Vec<&str> = Vec::new();
                if mount.read_only {
                    options.push("ro");
                }
                options.extend(mount.selinux.as_deref());
                options.extend(mount.propagation.as_deref());
                let options = if options.is_empty() { String::new() } else { format!(":{}", options.join(",")) };
                binds.push(format!("{source}:{}{options}", mount.target));
            }
            // A named volume without volume options goes as a bind string
            // (`name:/path:rw[,z]`), as Compose's toBindString sends it, so
            // the engine mounts and labels it as Compose's would; `nocopy`
            // or a sub-path needs the Mount API, as in Compose.
            MountKind::Volume if mount.source.is_some() && mount.subpath.is_none() && !mount.nocopy => {
                let name = mount.source.as_ref().map(|key| stack.volume_name(key)).unwrap_or_default();
                let mut options = vec![if mount.read_only { "ro" } else { "rw" }];
                options.extend(mount.selinux.as_deref());
                binds.push(format!("{name}:{}:{}", mount.target, options.join(",")));
            }
            MountKind::Volume => mounts.push(EngineMount {
                target: Some(mount.target.clone()),
                source: mount.source.as_ref().map(|key| stack.volume_name(key)),
                typ: Some(MountType::VOLUME),
                read_only: Some(mount.read_only),
                volume_options: (mount.nocopy || mount.subpath.is_some()).then(|| MountVolumeOptions {
                    no_copy: mount.nocopy.then_some(true),
                    subpath: mount.subpath.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            MountKind::Tmpfs => {
                let mut options: Vec<String> = Vec::new();
                if mount.read_only {
                    options.push("ro".into());
                }
                if let Some(size) = mount.tmpfs_size {
                    options.push(format!("size={size}"));
                }
                if let Some(mode) = mount.tmpfs_mode {
                    options.push(format!("mode={mode:o}"));
                }
                options.extend(mount.tmpfs_flags.iter().cloned());
                tmpfs.insert(mount.target.clone(), options.join(","));
            }
        }
    }
    for file in svc.secrets.iter().chain(&svc.configs) {
        if let FileSource::File(path) = &file.source {
            mounts.push(EngineMount {
                target: Some(file.target.clone()),
                source: Some(path.clone()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            });
        }
    }
    (binds, mounts, tmpfs)
}

/// The secrets and configs whose content is not a host file (a variable's
/// value, or inline `content:`), as a tar archive to extract at `/` in the
/// container after it is created and before it starts (what Compose does
/// for them). `None` when the service has none. Each file keeps its
/// `uid`, `gid` (numeric; default 0) and `mode` (default 0444).
pub fn inline_files_archive(svc: &Service) -> Option<Vec<u8>> {
    let files: Vec<&FileMount> =
        svc.secrets.iter().chain(&svc.configs).filter(|f| f.source.inline_text().is_some()).collect();
    if files.is_empty() {
        return None;
    }
    let mut archive = tar::Builder::new(Vec::new());
    for file in files {
        let text = file.source.inline_text().unwrap_or_default();
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(file.mode.unwrap_or(0o444));
        header.set_uid(file.uid.as_deref().and_then(|u| u.parse().ok()).unwrap_or(0));
        header.set_gid(file.gid.as_deref().and_then(|g| g.parse().ok()).unwrap_or(0));
        header.set_entry_type(tar::EntryType::Regular);
        let path = file.target.trim_start_matches('/');
        // Writing into a Vec cannot fail for I/O reasons; a path the tar
        // format cannot hold is skipped rather than aborting the deploy.
        let _ = archive.append_data(&mut header, path, text.as_bytes());
    }
    archive.into_inner().ok()
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
                        .map(|s| IpamConfig {
                            subnet: Some(s.subnet.clone()),
                            gateway: s.gateway.clone(),
                            ip_range: s.ip_range.clone(),
                            auxiliary_addresses: if s.aux_addresses.is_empty() {
                                None
                            } else {
                                Some(s.aux_addresses.clone().into_iter().collect())
                            },
                        })
                        .collect(),
                ),
                ..Default::default()
            })
        },
        enable_ipv6: declared.enable_ipv6.then_some(true),
        attachable: declared.attachable.then_some(true),
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

/// A healthcheck as the engine API takes it, for containers and Swarm tasks
/// alike (`disable: true` is the `NONE` test).
pub(crate) fn health_config(h: &crate::stack::Healthcheck) -> HealthConfig {
    HealthConfig {
        test: Some(if h.disable { vec!["NONE".to_string()] } else { h.test.clone() }),
        interval: h.interval.map(nanos),
        timeout: h.timeout.map(nanos),
        retries: h.retries.map(i64::from),
        start_period: h.start_period.map(nanos),
        start_interval: h.start_interval.map(nanos),
    }
}

/// A service's ulimits as the engine API takes them.
pub(crate) fn ulimits(svc: &Service) -> Option<Vec<ResourcesUlimits>> {
    non_empty(
        svc.ulimits
            .iter()
            .map(|(name, l)| ResourcesUlimits { name: Some(name.clone()), soft: Some(l.soft), hard: Some(l.hard) })
            .collect(),
    )
}

/// A duration as the engine API's nanoseconds (saturating).
pub(crate) fn nanos(d: std::time::Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// `None` for an empty list: the engine API's "not set".
pub(crate) fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

#[cfg(test)]
mod tests;

//! One service: its mapping in the descriptor → [`Service`].
//!
//! Every key Compose defines falls in one of four groups, and none is
//! dropped silently: keys the model holds are read; keys that ask only for
//! what dockmaster does anyway (`oom_kill_disable: false`, `scale: 1`) are
//! accepted; keys with no runtime meaning for a deploy (`develop`) are
//! accepted with a warning; the few keys no engine dockmaster drives can
//! run ([`refusal`]) are refused with the reason, unless they are empty,
//! and every one of them in the descriptor (and its included files) is
//! listed in one error. Keys Compose does not know are errors with a "did
//! you mean" hint.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

use super::build;
use super::dotenv;
use super::fault::{Fault, Parsed, Place};
use super::files::{self, Kind};
use super::host;
use super::inputs::ReadError;
use super::interpolate::Lookup;
use super::kernel;
use super::mounts::{self, host_path, PathContext};
use super::ports;
use super::runtime::{self, ResourceKeys};
use super::source::Source;
use super::units::{duration, shell_words};
use super::value::{
    boolean, integer, is_empty, list, list_or_dict, mapping, opt_string, string, string_list, type_name, unknown_key,
    unsupported_key,
};
use crate::stack::{Condition, Dependency, PullPolicy, Service, ServiceNetwork};

/// The label that marks a service as one-shot: `dockmaster.one-shot: "true"`
/// means the service has done its job when it exits 0 (a migration, a
/// content copy), so the health watch waits for its exit instead of calling
/// the exit a crash. See [`crate::stack::Stack::is_one_shot`].
pub const ONE_SHOT_LABEL: &str = "dockmaster.one-shot";

/// Every key of a service in the Compose Specification (for hints).
#[rustfmt::skip]
const SERVICE_KEYS: &[&str] = &[
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup", "cgroup_parent", "command",
    "configs", "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period",
    "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "credential_spec", "depends_on", "deploy", "develop",
    "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "env_file",
    "environment", "expose", "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck", "hostname",
    "image", "init", "ipc", "isolation", "label_file", "labels", "links", "logging", "mac_address", "mem_limit",
    "mem_reservation", "mem_swappiness", "memswap_limit", "models", "network_mode", "networks", "oom_kill_disable",
    "oom_score_adj", "pid", "pids_limit", "platform", "ports", "post_start", "pre_stop", "privileged", "profiles",
    "provider", "pull_policy", "pull_refresh_after", "read_only", "restart", "runtime", "scale", "secrets",
    "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs",
    "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts", "volume_driver", "volumes", "volumes_from",
    "working_dir",
];

/// Compose keys dockmaster refuses, each with the reason: what no engine
/// it drives (a Linux Docker engine, or a Swarm of them) can run as
/// written, or what it will not do on a team's behalf.
pub(crate) fn refusal(key: &str) -> Option<&'static str> {
    Some(match key {
        "cpu_count" | "cpu_percent" => {
            "the engine honours it only for Windows containers (a Linux engine rejects the container); use `cpus`"
        }
        "credential_spec" | "isolation" => {
            "it applies to Windows containers only, and dockmaster deploys to Linux engines"
        }
        "models" => "it needs Docker Model Runner, which is not part of the engine API dockmaster drives",
        "provider" => "a provider service is run by a Compose plugin on the client, not by the engine",
        "use_api_socket" => {
            "it mounts the engine's own API socket and the caller's registry credentials into the container, which \
             hands the container control of the engine; mount a socket proxy instead if a service needs the API"
        }
        "pull_refresh_after" => "the periodic pull policies are not supported yet by dockmaster; use `pull_policy`",
        _ => return None,
    })
}

/// The fault for a refused key, with its reason.
pub(crate) fn refused_key(place: &Place, key: &str) -> Fault {
    let why = refusal(key).unwrap_or("dockmaster cannot run it");
    place.fault_at_key(key, format!("key {key:?} is refused: {why}; remove it"))
}

#[rustfmt::skip]
const NETWORK_KEYS: &[&str] = &[
    "aliases", "ipv4_address", "ipv6_address", "interface_name", "link_local_ips", "mac_address", "driver_opts",
    "priority", "gw_priority",
];

/// What parsing a service needs from the rest of the loader.
pub(crate) struct Context<'a> {
    /// The project name, for the default image of built services.
    pub(crate) project: &'a str,
    /// The descriptor's folder, absolute: relative paths resolve against it.
    pub(crate) dir: &'a Path,
    /// Variables: the process environment, then `.env`.
    pub(crate) lookup: &'a Lookup<'a>,
    /// Where the load may read files from (`env_file`, `label_file`, and a
    /// build context handed to the engine), and its record of them.
    pub(crate) source: &'a Source,
    /// The top-level `secrets:`, by name.
    pub(crate) secrets: &'a BTreeMap<String, files::Declared>,
    /// The top-level `configs:`, by name.
    pub(crate) configs: &'a BTreeMap<String, files::Declared>,
    /// Warnings for the stack.
    pub(crate) warnings: Vec<String>,
    /// Services with `scale: 0` or `deploy.replicas: 0`: read and checked,
    /// then left out of the stack, as Compose creates no container for them.
    pub(crate) scaled_to_zero: Vec<String>,
    /// Keys refused by name (every one found, so one error lists them all).
    pub(crate) refused: Vec<Fault>,
}

/// One `env_file` entry.
struct EnvFile {
    path: String,
    required: bool,
    place: Place,
}

/// Parses the service `name` at `place`.
pub(crate) fn service(cx: &mut Context<'_>, name: &str, value: &Value, place: &Place) -> Parsed<Service> {
    match value {
        Value::Mapping(_) => {}
        Value::Null => return Err(place.fault("the service is empty: give it an `image` (or a `build`)")),
        other => return Err(place.fault(format!("expected a mapping of service settings, found {}", type_name(other)))),
    }
    let home = (cx.lookup)("HOME");
    let paths = PathContext { dir: cx.dir, home: home.as_deref() };
    let mut svc = Service::default();
    let mut image = None;
    let mut env_files = Vec::new();
    let mut environment = Vec::new();
    let mut tmpfs = Vec::new();
    let mut resources = ResourceKeys::default();
    let mut deploy_restart = None;
    let mut label_files = Vec::new();
    let mut reserved_devices = Vec::new();
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "image" => image = opt_string(v, &at)?,
            "build" => {
                let mut refused = Vec::new();
                svc.build = build::build(cx, v, &at, &mut refused)?;
                cx.refused.extend(refused);
            }
            "command" => svc.command = command(v, &at)?,
            "entrypoint" => svc.entrypoint = command(v, &at)?,
            "environment" => environment = list_or_dict(v, &at)?,
            "env_file" => env_files = env_file_entries(v, &at)?,
            "ports" => svc.ports = ports::ports(list(v, &at)?, &at)?,
            "volumes" => svc.volumes = mounts::volumes(list(v, &at)?, &at, &paths)?,
            "tmpfs" => tmpfs = mounts::tmpfs(v, &at)?,
            "volumes_from" => svc.volumes_from = mounts::volumes_from(v, &at)?,
            "networks" => svc.networks = networks(v, &at)?,
            "network_mode" => svc.network_mode = opt_string(v, &at)?,
            "links" => svc.links = string_list(v, &at)?,
            "depends_on" => svc.depends_on = depends_on(v, &at)?,
            "healthcheck" => svc.healthcheck = runtime::healthcheck(v, &at)?,
            "restart" => svc.restart = runtime::restart(v, &at)?,
            "labels" => svc.labels = labels(v, &at)?,
            "container_name" => svc.container_name = container_name(v, &at)?,
            "hostname" => svc.hostname = opt_string(v, &at)?,
            "user" => svc.user = opt_string(v, &at)?,
            "working_dir" => svc.working_dir = opt_string(v, &at)?,
            "stop_signal" => svc.stop_signal = opt_string(v, &at)?,
            "privileged" => svc.privileged = flag(v, &at)?,
            "tty" => svc.tty = flag(v, &at)?,
            "stdin_open" => svc.stdin_open = flag(v, &at)?,
            "stop_grace_period" => {
                svc.stop_grace_period = match opt_string(v, &at)? {
                    None => None,
                    Some(text) => Some(duration(&text).map_err(|why| at.fault(why))?),
                }
            }
            "extra_hosts" => svc.extra_hosts = runtime::extra_hosts(v, &at)?,
            "logging" => svc.logging = runtime::logging(v, &at)?,
            "mem_limit" | "mem_reservation" | "cpus" | "pids_limit" => resources.read(&key, v, &at)?,
            "deploy" => {
                let deploy = runtime::deploy(v, &at, &mut resources, &mut cx.warnings)?;
                deploy_restart = deploy.restart;
                svc.swarm = deploy.swarm;
                reserved_devices = deploy.devices;
                if deploy.replicas == Some(0) {
                    cx.scaled_to_zero.push(name.to_string());
                }
            }
            "secrets" => svc.secrets = files::references(Kind::Secret, v, &at, cx.secrets, &mut cx.warnings)?,
            "configs" => svc.configs = files::references(Kind::Config, v, &at, cx.configs, &mut cx.warnings)?,
            "profiles" => svc.profiles = profiles(v, &at)?,
            k if kernel::KEYS.contains(&k) => kernel::read(&mut svc, k, v, &at)?,
            k if host::KEYS.contains(&k) => host::read(&mut svc, k, v, &at)?,
            "label_file" => label_files = env_file_entries(v, &at)?,
            // Accepted when they ask for what a container gets anyway.
            "oom_kill_disable" => default_only(place, &key, v, |v, at| Ok(!flag(v, at)?))?,
            "attach" => default_only(place, &key, v, flag)?,
            "scale" => match if v.is_null() { 1 } else { integer(v, &at)? } {
                0 => cx.scaled_to_zero.push(name.to_string()),
                1 => {}
                _ => {
                    return Err(place.fault_at_key(
                        &key,
                        "more than one replica is not supported yet by dockmaster (it runs one container per \
                         service); set `scale` to 1, or 0 to leave the service out",
                    ))
                }
            },
            "pull_policy" => {
                svc.pull_policy = match opt_string(v, &at)?.as_deref() {
                    None => None,
                    Some("missing" | "if_not_present") => Some(PullPolicy::Missing),
                    Some("always") => Some(PullPolicy::Always),
                    Some("never") => Some(PullPolicy::Never),
                    Some("build") => Some(PullPolicy::Build),
                    Some(other) => {
                        return Err(at.fault(format!(
                            "pull_policy {other:?} is not supported: use always, missing, never or build \
                             (the periodic forms daily/weekly/every_* are not supported yet)"
                        )))
                    }
                }
            }
            "develop" => {
                if !is_empty(v) {
                    cx.warnings.push(format!(
                        "{}: key {key:?} is ignored: it has no effect on what dockmaster deploys",
                        place.describe(),
                    ));
                }
            }
            // `extends` is resolved before services are read (see `extends.rs`).
            "extends" => {
                return Err(
                    place.fault_at_key(&key, "`extends` must name a service (`extends: NAME` or `{service: NAME}`)")
                )
            }
            k if k.starts_with("x-") => {}
            k if refusal(k).is_some() => {
                if !is_empty(v) {
                    cx.refused.push(refused_key(place, k));
                }
            }
            k => return Err(unknown_key(place, k, SERVICE_KEYS)),
        }
    }
    for mount in tmpfs {
        if svc.volumes.iter().any(|m| m.target == mount.target) {
            return Err(place.key("tmpfs").fault(format!("{:?} is also mounted under `volumes`", mount.target)));
        }
        svc.volumes.push(mount);
    }
    // As in Compose, `deploy.restart_policy` wins over `restart`.
    if let Some(policy) = deploy_restart {
        if svc.restart.as_ref().is_some_and(|r| *r != policy) {
            cx.warnings.push(format!(
                "{}: `deploy.restart_policy` ({policy}) overrides `restart`, as in Compose",
                place.describe()
            ));
        }
        svc.restart = Some(policy);
    }
    svc.device_requests = reserved_devices;
    if !label_files.is_empty() {
        // Labels written in the descriptor win over the files', as in Compose.
        let mut labels = read_variable_files(cx, label_files, "label_file")?;
        labels.extend(std::mem::take(&mut svc.labels).into_iter().map(|(k, v)| (k, Some(v))));
        svc.labels = labels.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
    }
    svc.environment = merge_environment(cx, env_files, environment, &place.key("environment"))?;
    svc.resources = resources.finish(place)?;
    svc.one_shot = match svc.labels.get(ONE_SHOT_LABEL).map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(v) => {
            return Err(place
                .key("labels")
                .fault(format!("label {ONE_SHOT_LABEL} must be \"true\" or \"false\", found {v:?}")))
        }
    };
    svc.image = match (image, &svc.build) {
        (Some(image), _) if !image.trim().is_empty() => image,
        (Some(_), _) => return Err(place.key("image").fault("the image is empty; write NAME[:TAG]")),
        // Compose v2 names a built image after the project and the service.
        (None, Some(_)) => format!("{}-{}", cx.project, name).to_ascii_lowercase(),
        (None, None) => {
            return Err(place.fault(
                "the service has neither `image` nor `build`: add `image: NAME[:TAG]` (or `build:` with a context)",
            ))
        }
    };
    Ok(svc)
}

/// `profiles:`: the names of the profiles that enable the service.
fn profiles(value: &Value, place: &Place) -> Parsed<Vec<String>> {
    let names = string_list(value, place)?;
    for (i, name) in names.iter().enumerate() {
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(place.index(i).fault(format!(
                "invalid profile name {name:?}: use letters, digits, \"_\", \".\" and \"-\", starting with a letter or digit"
            )));
        }
    }
    Ok(names)
}

/// `container_name:`, checked against what the engine accepts so a typo
/// fails before anything is deployed.
fn container_name(value: &Value, place: &Place) -> Parsed<Option<String>> {
    let Some(name) = opt_string(value, place)? else {
        return Ok(None);
    };
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(place.fault(format!(
            "invalid container name {name:?}: use letters, digits, \"_\", \".\" and \"-\", starting with a letter or digit"
        )));
    }
    Ok(Some(name))
}

/// A boolean where null means false.
fn flag(value: &Value, place: &Place) -> Parsed<bool> {
    if value.is_null() {
        return Ok(false);
    }
    boolean(value, place)
}

/// Accepts `key` when `is_default` says its value is what dockmaster does
/// anyway; otherwise it is not supported yet.
fn default_only(
    place: &Place,
    key: &str,
    value: &Value,
    is_default: impl Fn(&Value, &Place) -> Parsed<bool>,
) -> Parsed<()> {
    if is_default(value, &place.key(key))? {
        Ok(())
    } else {
        Err(unsupported_key(place, key))
    }
}

/// `command:` / `entrypoint:`: a string is split like a shell line, a list
/// is kept. Null leaves the image's.
fn command(value: &Value, place: &Place) -> Parsed<Option<Vec<String>>> {
    match value {
        Value::Null => Ok(None),
        Value::Sequence(_) => string_list(value, place).map(Some),
        Value::Mapping(_) | Value::Tagged(_) => {
            Err(place.fault(format!("expected a string or a list of strings, found {}", type_name(value))))
        }
        _ => {
            let text = string(value, place)?;
            shell_words(&text).map(Some).map_err(|why| place.fault(why))
        }
    }
}

/// `env_file:` entries: a path, a list of paths, or `{path, required}`.
fn env_file_entries(value: &Value, place: &Place) -> Parsed<Vec<EnvFile>> {
    let items: Vec<(Place, &Value)> = match value {
        Value::Sequence(items) => items.iter().enumerate().map(|(i, v)| (place.index(i), v)).collect(),
        Value::Null => Vec::new(),
        other => vec![(place.clone(), other)],
    };
    let mut out = Vec::new();
    for (at, item) in items {
        if !item.is_mapping() {
            out.push(EnvFile { path: string(item, &at)?, required: true, place: at });
            continue;
        }
        let mut file = EnvFile { path: String::new(), required: true, place: at.clone() };
        for (key, v) in mapping(item, &at)? {
            let key_at = at.key(&key);
            match key.as_str() {
                "path" => file.path = string(v, &key_at)?,
                "required" => file.required = boolean(v, &key_at)?,
                "format" => {
                    if !v.is_null() {
                        return Err(unsupported_key(&at, &key));
                    }
                }
                k => return Err(unknown_key(&at, k, &["path", "required", "format"])),
            }
        }
        if file.path.is_empty() {
            return Err(at.fault("an env_file entry needs `path`"));
        }
        out.push(file);
    }
    Ok(out)
}

/// The container environment: `env_file` entries in order, then
/// `environment:`, which wins. A bare `KEY` takes the variable's value, or
/// is unset (`None`) when the environment has none.
fn merge_environment(
    cx: &Context<'_>,
    env_files: Vec<EnvFile>,
    environment: Vec<(String, Option<String>)>,
    environment_place: &Place,
) -> Parsed<BTreeMap<String, Option<String>>> {
    let mut out = read_variable_files(cx, env_files, "env_file")?;
    for (key, value) in environment {
        if key.is_empty() {
            return Err(environment_place.fault("a variable without a name (`=value`); write KEY=value"));
        }
        let value = value.or_else(|| (cx.lookup)(&key));
        if value.is_none() && out.contains_key(&key) {
            continue;
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// The variables of `env_file` (or `label_file`) entries, in order, the
/// later file winning; a missing optional file is skipped.
fn read_variable_files(cx: &Context<'_>, files: Vec<EnvFile>, what: &str) -> Parsed<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for file in files {
        let home = (cx.lookup)("HOME");
        let path = host_path(&file.path, cx.dir, home.as_deref()).map_err(|why| file.place.fault(why))?;
        let text = match cx.source.read(&path) {
            Ok(text) => text,
            Err(ReadError::Denied(denied)) => return Err(file.place.fault(denied.explain(what, &file.path))),
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && !file.required => continue,
            Err(ReadError::Io(e)) => {
                let noun = if what == "env_file" { "env file" } else { "label file" };
                return Err(file.place.fault(format!(
                    "cannot read {noun} {}: {e} (relative paths start at the descriptor's folder; \
                     use `{{path: ..., required: false}}` for an optional file)",
                    path.display()
                )));
            }
        };
        let vars = dotenv::parse(&text, cx.lookup)
            .map_err(|e| file.place.fault(format!("{}:{}: {}", path.display(), e.line, e.message)))?;
        for (key, value) in vars {
            out.insert(key, Some(value));
        }
    }
    Ok(out)
}

/// `labels:` as a map; a label without a value is empty.
fn labels(value: &Value, place: &Place) -> Parsed<BTreeMap<String, String>> {
    Ok(list_or_dict(value, place)?.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
}

/// A service's `networks:`: a list of names, or a map of name → null or
/// `{aliases, ipv4_address, ipv6_address}`.
fn networks(value: &Value, place: &Place) -> Parsed<BTreeMap<String, ServiceNetwork>> {
    let mut out = BTreeMap::new();
    if let Value::Sequence(_) = value {
        for name in string_list(value, place)? {
            out.insert(name, ServiceNetwork::default());
        }
        return Ok(out);
    }
    for (name, v) in mapping(value, place)? {
        let at = place.key(&name);
        let mut net = ServiceNetwork::default();
        for (key, setting) in mapping(v, &at)? {
            let key_at = at.key(&key);
            match key.as_str() {
                "aliases" => net.aliases = string_list(setting, &key_at)?,
                "ipv4_address" => net.ipv4_address = opt_string(setting, &key_at)?,
                "ipv6_address" => net.ipv6_address = opt_string(setting, &key_at)?,
                k if k.starts_with("x-") => {}
                k if NETWORK_KEYS.contains(&k) => {
                    if !is_empty(setting) {
                        return Err(unsupported_key(&at, k));
                    }
                }
                k => return Err(unknown_key(&at, k, NETWORK_KEYS)),
            }
        }
        out.insert(name, net);
    }
    Ok(out)
}

/// `depends_on:`: a list of services (each waits for the start), or a map
/// of service → `{condition, required, restart}`.
fn depends_on(value: &Value, place: &Place) -> Parsed<BTreeMap<String, Dependency>> {
    let started = Dependency { condition: Condition::ServiceStarted, required: true, restart: false };
    let mut out = BTreeMap::new();
    if let Value::Sequence(_) = value {
        for name in string_list(value, place)? {
            out.insert(name, started.clone());
        }
        return Ok(out);
    }
    for (name, v) in mapping(value, place)? {
        let at = place.key(&name);
        let mut dep = started.clone();
        for (key, setting) in mapping(v, &at)? {
            let key_at = at.key(&key);
            match key.as_str() {
                "condition" => {
                    dep.condition = match string(setting, &key_at)?.as_str() {
                        "service_started" => Condition::ServiceStarted,
                        "service_healthy" => Condition::ServiceHealthy,
                        "service_completed_successfully" => Condition::ServiceCompletedSuccessfully,
                        other => {
                            return Err(key_at.fault(format!(
                                "unknown condition {other:?}; use service_started, service_healthy or \
                                 service_completed_successfully"
                            )))
                        }
                    }
                }
                "required" => dep.required = boolean(setting, &key_at)?,
                "restart" => dep.restart = boolean(setting, &key_at)?,
                k if k.starts_with("x-") => {}
                k => return Err(unknown_key(&at, k, &["condition", "required", "restart"])),
            }
        }
        out.insert(name, dep);
    }
    Ok(out)
}

//! The checks behind each policy rule, over the loaded stack.

use std::path::{Component, Path, PathBuf};

use super::{PolicyConfig, PolicyRule, Violation};
use crate::access::glob;
use crate::stack::{FileSource, MountKind, Service, Stack, Volume, VolumesFromSource};

/// The rule name of the checks that hold for every target whatever the
/// policy says ([`foreign_namespaces`], [`foreign_container_names`]).
pub const NAMESPACE_RULE: &str = "namespace";

/// Every violation of every rule that applies to `descriptor`
/// (`APPLICATION/RELEASE`, or a file path) in `environment`. Empty means
/// the descriptor may be deployed as far as the policy is concerned.
pub fn check(config: &PolicyConfig, stack: &Stack, descriptor: &str, environment: &str) -> Vec<Violation> {
    let mut found = Vec::new();
    for rule in &config.rules {
        let applies = rule.descriptors.iter().any(|p| glob(p, descriptor))
            && rule.environments.iter().any(|e| glob(e, environment));
        if !applies {
            continue;
        }
        for (name, svc) in &stack.services {
            let mut v = |key: &str, message: String| {
                found.push(Violation { service: name.clone(), key: key.into(), rule: rule.name.clone(), message })
            };
            volumes(rule, stack, svc, &mut v);
            privileges(rule, stack, svc, &mut v);
            limits(rule, svc, &mut v);
            images(rule, svc, &mut v);
            swarm(rule, svc, &mut v);
            for label in svc.labels.keys() {
                if let Some(prefix) = rule.reserved_labels.iter().find(|p| label.starts_with(p.as_str())) {
                    v("labels", format!("label `{label}` uses the reserved prefix `{prefix}`"));
                }
            }
        }
        unmounted_bind_volumes(rule, stack, &mut found);
    }
    found
}

/// Services that join the network, PID or IPC namespace of something that
/// is not part of this stack (`network_mode`, `pid` or `ipc` of
/// `container:NAME` or `service:NAME`): a way into another team's
/// containers. A container of the stack is a service's `container_name` or
/// `<stack>-<service>-<n>` of a service without one. The violations carry
/// the rule name [`NAMESPACE_RULE`]; the `privileges` rule finds the same
/// under its own name.
pub fn foreign_namespaces(stack: &Stack) -> Vec<Violation> {
    let mut found = Vec::new();
    for (name, svc) in &stack.services {
        for (key, mode) in namespace_modes(svc) {
            if let Some(message) = foreign_join(stack, key, mode) {
                found.push(Violation { service: name.clone(), key: key.into(), rule: NAMESPACE_RULE.into(), message });
            }
        }
    }
    found
}

/// Services whose `container_name` is outside the target's namespace: it
/// must start with `<stack name>-`, so one target cannot take (or squat) a
/// name another target's containers use. Rule name [`NAMESPACE_RULE`].
pub fn foreign_container_names(stack: &Stack) -> Vec<Violation> {
    let prefix = format!("{}-", stack.name);
    let mut found = Vec::new();
    for (name, svc) in &stack.services {
        let Some(container) = svc.container_name.as_deref() else { continue };
        if !container.starts_with(&prefix) {
            found.push(Violation {
                service: name.clone(),
                key: "container_name".into(),
                rule: NAMESPACE_RULE.into(),
                message: format!(
                    "container name `{container}` is outside this target's namespace (names must start with \
                     `{prefix}`); rename it to `{prefix}{container}`, or drop `container_name` to get \
                     `{prefix}{name}-1`"
                ),
            });
        }
    }
    found
}

fn namespace_modes(svc: &Service) -> [(&'static str, Option<&str>); 3] {
    [("network_mode", svc.network_mode.as_deref()), ("pid", svc.pid.as_deref()), ("ipc", svc.ipc.as_deref())]
}

/// What is wrong with `key: mode` when it joins a namespace outside the stack.
fn foreign_join(stack: &Stack, key: &str, mode: Option<&str>) -> Option<String> {
    let mode = mode?;
    if let Some(container) = mode.strip_prefix("container:") {
        if !is_stack_container(stack, container) {
            return Some(format!(
                "`{key}: {mode}` joins container `{container}`, which is not a container of this stack; only \
                 this stack's containers may be joined (`service:NAME`, or a `container_name` of this descriptor)"
            ));
        }
    } else if let Some(service) = mode.strip_prefix("service:") {
        if !stack.services.contains_key(service) {
            return Some(format!("`{key}: {mode}` names `{service}`, which is not a service of this stack"));
        }
    }
    None
}

/// Whether `container` is the name of a container of this stack: a
/// service's `container_name`, or `<stack>-<service>-<n>` (n ≥ 1) of a
/// service without one.
fn is_stack_container(stack: &Stack, container: &str) -> bool {
    stack.services.iter().any(|(name, svc)| match &svc.container_name {
        Some(fixed) => fixed == container,
        None => container
            .strip_prefix(&format!("{}-{name}-", stack.name))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0')),
    })
}

fn volumes(rule: &PolicyRule, stack: &Stack, svc: &Service, v: &mut dyn FnMut(&str, String)) {
    for mount in &svc.volumes {
        match (mount.kind, &mount.source) {
            (MountKind::Volume, Some(key)) => {
                let name = stack.volume_name(key);
                if let Some(prefix) = rule.volume_prefix.as_deref().filter(|p| !name.starts_with(p)) {
                    v("volumes", format!("named volume `{name}` does not start with the team's prefix `{prefix}`"));
                }
                if let (Some(roots), Some(device)) = (&rule.bind_roots, stack.volumes.get(key).and_then(bind_device)) {
                    if let Some(outside) = outside_roots(device, roots) {
                        v(
                            "volumes",
                            format!(
                                "named volume `{key}` is a bind mount (`driver_opts.device`) of {outside}, \
                                 outside the allowed host folders ({})",
                                allowed(roots)
                            ),
                        );
                    }
                }
            }
            (MountKind::Bind, Some(source)) => {
                if let Some(roots) = &rule.bind_roots {
                    if let Some(outside) = outside_roots(source, roots) {
                        v(
                            "volumes",
                            format!("bind mount of {outside} is outside the allowed host folders ({})", allowed(roots)),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(roots) = &rule.bind_roots {
        for (kind, file) in svc.files() {
            let FileSource::File(path) = &file.source else { continue };
            if let Some(outside) = outside_roots(path, roots) {
                v(
                    kind.section(),
                    format!(
                        "{} `{}` reads the host file {outside}, outside the allowed host folders ({})",
                        kind.what(),
                        file.name,
                        allowed(roots)
                    ),
                );
            }
        }
    }
    for from in &svc.volumes_from {
        if let (VolumesFromSource::Container(container), Some(prefix)) = (&from.source, &rule.volume_prefix) {
            if !container.starts_with(prefix.as_str()) {
                v("volumes_from", format!("container `{container}` does not start with the team's prefix `{prefix}`"));
            }
        }
    }
}

/// Top-level volumes that bind a host folder but no service mounts (the
/// engine creates them all the same, and another descriptor could use
/// them as `external`): reported for the service `volumes`.
fn unmounted_bind_volumes(rule: &PolicyRule, stack: &Stack, found: &mut Vec<Violation>) {
    let Some(roots) = &rule.bind_roots else { return };
    for (key, volume) in &stack.volumes {
        let Some(device) = bind_device(volume) else { continue };
        let mounted = stack
            .services
            .values()
            .flat_map(|s| &s.volumes)
            .any(|m| m.kind == MountKind::Volume && m.source.as_deref() == Some(key.as_str()));
        if mounted {
            continue;
        }
        if let Some(outside) = outside_roots(device, roots) {
            found.push(Violation {
                service: "volumes".into(),
                key: format!("volumes.{key}.driver_opts.device"),
                rule: rule.name.clone(),
                message: format!(
                    "named volume `{key}` is a bind mount of {outside}, outside the allowed host folders ({})",
                    allowed(roots)
                ),
            });
        }
    }
}

/// The host path a volume binds, when its `driver_opts` make it a bind
/// mount (`type: none` or `bind`, or `o:` with `bind`/`rbind`) with a
/// `device:`. External volumes are made elsewhere and have none here.
fn bind_device(volume: &Volume) -> Option<&str> {
    if volume.external {
        return None;
    }
    let opts = &volume.driver_opts;
    let device = opts.get("device")?;
    let kind = opts.get("type").map(|t| t.trim().to_ascii_lowercase());
    let binds = matches!(kind.as_deref(), Some("none" | "bind" | "rbind"))
        || opts.get("o").is_some_and(|o| o.split(',').any(|p| matches!(p.trim(), "bind" | "rbind")));
    binds.then_some(device.as_str())
}

fn allowed(roots: &[PathBuf]) -> String {
    if roots.is_empty() {
        "no host folder may be mounted here".to_string()
    } else {
        let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        format!("allowed roots: {}", list.join(", "))
    }
}

/// `None` when `path` resolves to one of `roots` or below one; else how to
/// name it in a message (`` `/srv/app/x` (which resolves to `/etc`) ``).
fn outside_roots(path: &str, roots: &[PathBuf]) -> Option<String> {
    if under_any(Path::new(path), roots) {
        return None;
    }
    Some(match resolve(Path::new(path)) {
        Some(real) if real != Path::new(path) => format!("`{path}` (which resolves to `{}`)", real.display()),
        Some(_) => format!("`{path}`"),
        None => format!("`{path}` (which cannot be resolved on this host)"),
    })
}

/// Whether `path` is one of `roots` or below one once both are resolved
/// ([`resolve`]): neither `..` nor a symbolic link is a way out.
fn under_any(path: &Path, roots: &[PathBuf]) -> bool {
    let Some(path) = resolve(path) else { return false };
    roots.iter().filter_map(|root| resolve(root)).any(|root| path.starts_with(root))
}

/// The real path of `path` on this host, symbolic links resolved: the
/// path itself canonicalised when it exists, else its longest existing
/// ancestor canonicalised and the rest appended (so a link in an existing
/// parent is still seen). `None`, which no root contains, for a relative
/// path, one with `..`, and one whose existing part cannot be resolved (a
/// dangling link, no permission).
fn resolve(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return None;
    }
    for ancestor in path.ancestors() {
        match std::fs::canonicalize(ancestor) {
            Ok(real) => {
                let rest = path.strip_prefix(ancestor).ok()?;
                return Some(if rest.as_os_str().is_empty() { real } else { real.join(rest) });
            }
            // Missing: try the parent. Anything else (a dangling link, a
            // folder we may not read) is not known to be inside a root.
            Err(_) => match std::fs::symlink_metadata(ancestor) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                _ => return None,
            },
        }
    }
    None
}

fn privileges(rule: &PolicyRule, stack: &Stack, svc: &Service, v: &mut dyn FnMut(&str, String)) {
    let Some(allowed) = &rule.privileges else { return };
    let ok = |what: &str| allowed.iter().any(|a| a == what);
    let hint = "ask the platform team to allow it in the rule's `privileges`";
    if svc.privileged && !ok("privileged") {
        v("privileged", format!("privileged containers are not allowed; {hint}"));
    }
    if svc.pid.as_deref() == Some("host") && !ok("pid_host") {
        v("pid", format!("`pid: host` is not allowed; {hint}"));
    }
    if svc.ipc.as_deref() == Some("host") && !ok("ipc_host") {
        v("ipc", format!("`ipc: host` is not allowed; {hint}"));
    }
    if svc.network_mode.as_deref() == Some("host") && !ok("network_host") {
        v("network_mode", format!("host networking is not allowed; {hint}"));
    }
    for (key, mode) in namespace_modes(svc) {
        if let Some(message) = foreign_join(stack, key, mode) {
            v(key, message);
        }
    }
    if !svc.devices.is_empty() && !ok("devices") {
        v("devices", format!("host devices are not allowed; {hint}"));
    }
    for opt in &svc.security_opt {
        if let Some(name) = security_privilege(opt).filter(|name| !ok(name)) {
            v("security_opt", format!("security option `{opt}` is not allowed (privilege `{name}`); {hint}"));
        }
    }
    let hooks = svc.post_start.iter().map(|h| ("post_start", h)).chain(svc.pre_stop.iter().map(|h| ("pre_stop", h)));
    for (key, hook) in hooks {
        if hook.privileged && !ok("privileged") {
            v(key, format!("a privileged hook (`{}`) is not allowed; {hint}", hook.command.join(" ")));
        }
    }
    for (key, mode, name) in [
        ("userns_mode", &svc.userns_mode, "userns_host"),
        ("uts", &svc.uts, "uts_host"),
        ("cgroup", &svc.cgroup, "cgroup_host"),
    ] {
        if mode.as_deref() == Some("host") && !ok(name) {
            v(key, format!("`{key}: host` is not allowed (privilege `{name}`); {hint}"));
        }
    }
    if let Some(parent) = svc.cgroup_parent.as_deref().filter(|_| !ok("cgroup_parent")) {
        v(
            "cgroup_parent",
            format!("`cgroup_parent: {parent}` places the container outside its own cgroup (privilege `cgroup_parent`); {hint}"),
        );
    }
    if !svc.device_cgroup_rules.is_empty() && !ok("device_cgroup_rules") {
        v(
            "device_cgroup_rules",
            format!(
                "device cgroup rules ({}) open host devices to the container (privilege `device_cgroup_rules`); {hint}",
                svc.device_cgroup_rules.join(", ")
            ),
        );
    }
    if let Some(runtime) = svc.runtime.as_deref() {
        let named = allowed.iter().any(|a| a.strip_prefix("runtime:") == Some(runtime));
        if !ok("runtime") && !named {
            v("runtime", format!("runtime `{runtime}` is not allowed (privilege `runtime:{runtime}`); {hint}"));
        }
    }
    for (key, requests) in [("gpus", &svc.gpus), ("deploy.resources.reservations.devices", &svc.device_requests)] {
        if !requests.is_empty() && !ok("gpus") {
            v(key, format!("GPU and device requests are not allowed (privilege `gpus`); {hint}"));
        }
    }
    if let Some(score) = svc.oom_score_adj.filter(|n| *n < 0 && !ok("oom_score_adj")) {
        v(
            "oom_score_adj",
            format!(
                "`oom_score_adj: {score}` makes the kernel kill other containers first when memory runs out \
                 (privilege `oom_score_adj`); {hint}"
            ),
        );
    }
    for link in &svc.external_links {
        let container = link.split(':').next().unwrap_or(link);
        if !is_stack_container(stack, container) && !ok("external_links") {
            v(
                "external_links",
                format!(
                    "`{link}` links container `{container}`, which is not a container of this stack, and reads its \
                     environment (privilege `external_links`); {hint}"
                ),
            );
        }
    }
    for cap in &svc.cap_add {
        let bare = cap.trim_start_matches("CAP_");
        let named = allowed.iter().any(|a| {
            a.strip_prefix("cap_add:").is_some_and(|c| c.trim_start_matches("CAP_").eq_ignore_ascii_case(bare))
        });
        if !ok("cap_add") && !named {
            v("cap_add", format!("capability `{cap}` is not allowed; {hint}"));
        }
    }
}

/// The `privileges` name of a `security_opt` entry that weakens the
/// container's confinement (`seccomp=unconfined`, `apparmor:unconfined`,
/// `label=disable`, `systempaths=unconfined`, `no-new-privileges=false`;
/// `=` or `:`, any case); `None` for the others.
fn security_privilege(opt: &str) -> Option<&'static str> {
    let lower = opt.trim().to_ascii_lowercase();
    let (key, value) = lower.split_once(['=', ':'])?;
    Some(match (key.trim(), value.trim()) {
        ("seccomp", "unconfined") => "seccomp_unconfined",
        ("apparmor", "unconfined") => "apparmor_unconfined",
        ("label", "disable") => "label_disable",
        ("systempaths", "unconfined") => "systempaths_unconfined",
        ("no-new-privileges", "false") => "no_new_privileges_false",
        _ => return None,
    })
}

fn limits(rule: &PolicyRule, svc: &Service, v: &mut dyn FnMut(&str, String)) {
    let Some(limits) = &rule.limits else { return };
    let resources = &svc.resources;
    if limits.required {
        match resources.cpus {
            None => v("cpus", "a CPU limit is required (`cpus:` or `deploy.resources.limits.cpus`)".into()),
            Some(cpus) if cpus.is_nan() || cpus <= 0.0 => v(
                "cpus",
                format!("`cpus: {cpus}` is not a limit (0 or less means unlimited); a positive CPU limit is required"),
            ),
            Some(_) => {}
        }
        match resources.memory {
            None => {
                v("mem_limit", "a memory limit is required (`mem_limit:` or `deploy.resources.limits.memory`)".into())
            }
            Some(memory) if memory <= 0 => v(
                "mem_limit",
                format!(
                    "a memory limit of {memory} bytes is not a limit (0 or less means unlimited); a positive memory \
                     limit is required"
                ),
            ),
            Some(_) => {}
        }
    }
    if let (Some(cpus), Some(max)) = (resources.cpus, limits.max_cpus) {
        if cpus > max {
            v("cpus", format!("asks for {cpus} CPUs; at most {max} are allowed"));
        }
    }
    let max_memory = limits.max_memory.as_deref().and_then(|m| crate::descriptor::compose::byte_size(m).ok());
    if let (Some(memory), Some(max)) = (resources.memory, max_memory) {
        if memory > max {
            v(
                "mem_limit",
                format!(
                    "asks for {} of memory; at most {} is allowed",
                    mib(memory),
                    limits.max_memory.as_deref().unwrap_or_default()
                ),
            );
        }
    }
}

/// The Swarm rules: a replica cap and required placement constraints
/// (compared without spaces, so `a==b` and `a == b` are one constraint).
fn swarm(rule: &PolicyRule, svc: &Service, v: &mut dyn FnMut(&str, String)) {
    let deploy = svc.swarm.clone().unwrap_or_default();
    let replicas = deploy.replicas.unwrap_or(1);
    if let Some(max) = rule.max_replicas.filter(|max| replicas > *max) {
        v("deploy.replicas", format!("{replicas} replicas; at most {max} are allowed"));
    }
    if let (Some(max), Some("global")) = (rule.max_replicas, deploy.mode.as_deref()) {
        v(
            "deploy.mode",
            format!("`mode: global` runs a task on every node, however many; at most {max} replicas are allowed"),
        );
    }
    let squash = |c: &str| c.split_whitespace().collect::<String>();
    let present: Vec<String> = deploy.placement.constraints.iter().map(|c| squash(c)).collect();
    for required in &rule.placement_constraints {
        if !present.contains(&squash(required)) {
            v("deploy.placement.constraints", format!("the constraint `{required}` is required"));
        }
    }
}

fn mib(bytes: i64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

fn images(rule: &PolicyRule, svc: &Service, v: &mut dyn FnMut(&str, String)) {
    if rule.require_digest && !svc.image.contains("@sha256:") {
        v("image", format!("image `{}` must be pinned by digest here (`name@sha256:…`)", svc.image));
    }
    let Some(registries) = &rule.registries else { return };
    let built = svc.build.is_some();
    let full = full_name(&svc.image);
    let allowed = registries.iter().any(|r| {
        if r == "local" {
            return built;
        }
        let r = r.trim_end_matches('/');
        full == r || full.starts_with(&format!("{r}/"))
    });
    if !allowed {
        v(
            "image",
            format!("image `{}` ({full}) is not from an allowed registry ({})", svc.image, registries.join(", ")),
        );
    }
}

/// `registry/path/name` of an image reference as the engine reads it, tag
/// and digest stripped: `mysql` is `docker.io/library/mysql`.
pub fn full_name(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    // A tag is a `:` after the last `/` (a `:` before it is a port).
    let name = match without_digest.rfind(':') {
        Some(i) if !without_digest[i..].contains('/') => &without_digest[..i],
        _ => without_digest,
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry = name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

#[cfg(test)]
mod tests;

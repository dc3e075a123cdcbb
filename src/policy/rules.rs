//! The checks behind each policy rule, over the loaded stack.

use std::path::{Component, Path};

use super::{PolicyConfig, PolicyRule, Violation};
use crate::access::glob;
use crate::stack::{MountKind, Service, Stack, VolumesFromSource};

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
            privileges(rule, svc, &mut v);
            limits(rule, svc, &mut v);
            images(rule, svc, &mut v);
            swarm(rule, svc, &mut v);
            for label in svc.labels.keys() {
                if let Some(prefix) = rule.reserved_labels.iter().find(|p| label.starts_with(p.as_str())) {
                    v("labels", format!("label `{label}` uses the reserved prefix `{prefix}`"));
                }
            }
        }
    }
    found
}

fn volumes(rule: &PolicyRule, stack: &Stack, svc: &Service, v: &mut dyn FnMut(&str, String)) {
    for mount in &svc.volumes {
        match (mount.kind, &mount.source) {
            (MountKind::Volume, Some(key)) => {
                let name = stack.volume_name(key);
                if let Some(prefix) = rule.volume_prefix.as_deref().filter(|p| !name.starts_with(p)) {
                    v("volumes", format!("named volume `{name}` does not start with the team's prefix `{prefix}`"));
                }
            }
            (MountKind::Bind, Some(source)) => {
                if let Some(roots) = &rule.bind_roots {
                    if !under_any(Path::new(source), roots) {
                        let allowed = if roots.is_empty() {
                            "bind mounts are not allowed here".to_string()
                        } else {
                            let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                            format!("allowed roots: {}", list.join(", "))
                        };
                        v(
                            "volumes",
                            format!("bind mount of `{source}` is outside the allowed host folders ({allowed})"),
                        );
                    }
                }
            }
            _ => {}
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

/// Whether `path` is one of `roots` or below one, without `..` tricks.
fn under_any(path: &Path, roots: &[std::path::PathBuf]) -> bool {
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return false;
    }
    roots.iter().any(|root| path.starts_with(root))
}

fn privileges(rule: &PolicyRule, svc: &Service, v: &mut dyn FnMut(&str, String)) {
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
    if !svc.devices.is_empty() && !ok("devices") {
        v("devices", format!("host devices are not allowed; {hint}"));
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

fn limits(rule: &PolicyRule, svc: &Service, v: &mut dyn FnMut(&str, String)) {
    let Some(limits) = &rule.limits else { return };
    let resources = &svc.resources;
    if limits.required {
        if resources.cpus.is_none() {
            v("cpus", "a CPU limit is required (`cpus:` or `deploy.resources.limits.cpus`)".into());
        }
        if resources.memory.is_none() {
            v("mem_limit", "a memory limit is required (`mem_limit:` or `deploy.resources.limits.memory`)".into());
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
mod tests {
    use super::*;

    #[test]
    fn image_names_normalise_as_the_engine_reads_them() {
        assert_eq!(full_name("mysql"), "docker.io/library/mysql");
        assert_eq!(full_name("mysql:8"), "docker.io/library/mysql");
        assert_eq!(full_name("team/app:1@sha256:ab"), "docker.io/team/app");
        assert_eq!(full_name("registry.example.com:5000/team/app:1"), "registry.example.com:5000/team/app");
        assert_eq!(full_name("localhost/app"), "localhost/app");
    }

    #[test]
    fn bind_roots_see_through_dot_dot() {
        let roots = vec![std::path::PathBuf::from("/srv/tlo")];
        assert!(under_any(Path::new("/srv/tlo/data"), &roots));
        assert!(under_any(Path::new("/srv/tlo"), &roots));
        assert!(!under_any(Path::new("/srv/tlo-other/data"), &roots));
        assert!(!under_any(Path::new("/srv/tlo/../other"), &roots));
        assert!(!under_any(Path::new("relative"), &roots));
    }

    #[test]
    fn swarm_rules_cap_replicas_and_require_placement() {
        let config: PolicyConfig = serde_yaml::from_str(
            "rules: [{name: cluster, max_replicas: 3, placement_constraints: ['node.labels.team == shop']}]",
        )
        .unwrap();
        let stack = |deploy: &str| {
            crate::descriptor::compose::test_stack(
                &format!("services:\n  web:\n    image: app:1\n    deploy: {deploy}\n"),
                "p",
            )
        };
        let keys = |deploy: &str| -> Vec<String> {
            check(&config, &stack(deploy), "x", "default")
                .into_iter()
                .map(|v| format!("{}: {}", v.key, v.message))
                .collect()
        };
        assert!(keys("{replicas: 3, placement: {constraints: ['node.labels.team==shop']}}").is_empty());
        let found = keys("{replicas: 5}");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("5 replicas; at most 3"), "{found:?}");
        assert!(found[1].contains("`node.labels.team == shop` is required"), "{found:?}");
    }
}

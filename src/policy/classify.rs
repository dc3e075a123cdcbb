//! Change classification: is a new descriptor only a new image, or a
//! structural change that needs an approver?
//!
//! Both sides are compared field by field through the per-field hashes the
//! planner already computes (and stores on every container), so a deploy
//! compares against what really runs, and `dockmaster review` against
//! another descriptor, with one rule: a change confined to the `image`
//! field of existing services is self-service; anything else (a new or
//! removed service, volumes, ports, resources, networks, labels,
//! capabilities, environment…) is structural.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::{config_hash, ObservedContainer};
use crate::stack::Stack;

/// The kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeClass {
    /// Nothing differs.
    None,
    /// Only images (tags or digests) differ: self-service.
    ImageOnly,
    /// Anything else differs: needs an approver.
    Structural,
}

impl ChangeClass {
    /// The name used in reports and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeClass::None => "none",
            ChangeClass::ImageOnly => "image-only",
            ChangeClass::Structural => "structural",
        }
    }
}

/// The classification of one change, with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// The kind.
    pub class: ChangeClass,
    /// Which images change, with the new (and, against a descriptor, the
    /// old) reference: image references are not secret.
    pub images: Vec<String>,
    /// The structural differences, one line each, naming fields, never
    /// values.
    pub differences: Vec<String>,
}

type Fields = BTreeMap<String, String>;

/// Compares `stack` with the containers of its target that run now.
pub fn classify(stack: &Stack, observed: &[ObservedContainer]) -> Classification {
    classify_with(stack, observed, config_hash)
}

/// [`classify`] with another engine's configuration hash (Swarm services
/// hash their replica and rollout settings too).
pub fn classify_with(
    stack: &Stack,
    observed: &[ObservedContainer],
    hash: impl Fn(&Stack, &str, &crate::stack::Service) -> crate::plan::ConfigHash,
) -> Classification {
    let mut old: BTreeMap<String, Option<Fields>> = BTreeMap::new();
    for c in observed {
        let fields = (!c.field_hashes.is_empty()).then(|| c.field_hashes.clone());
        old.insert(c.service.clone(), fields);
    }
    let new = stack.services.iter().map(|(name, svc)| (name.clone(), hash(stack, name, svc).fields)).collect();
    let mut c = compare(&new, &old, Vec::new());
    c.images = c.images.iter().map(|s| format!("service `{s}`: image now `{}`", stack.services[s].image)).collect();
    c
}

/// Compares `new` with `old` (e.g. the descriptor deployed now), top-level
/// networks and volumes included.
pub fn classify_against(new: &Stack, old: &Stack) -> Classification {
    let old_fields = fields_of(old).into_iter().map(|(k, v)| (k, Some(v))).collect();
    let mut extra = Vec::new();
    for (kind, new_map, old_map) in
        [("network", keyed(&new.networks), keyed(&old.networks)), ("volume", keyed(&new.volumes), keyed(&old.volumes))]
    {
        for (key, value) in &new_map {
            match old_map.get(key) {
                None => extra.push(format!("{kind} `{key}`: new")),
                Some(old) if old != value => extra.push(format!("{kind} `{key}`: changed")),
                _ => {}
            }
        }
        for key in old_map.keys().filter(|k| !new_map.contains_key(*k)) {
            extra.push(format!("{kind} `{key}`: removed"));
        }
    }
    let mut c = compare(&fields_of(new), &old_fields, extra);
    c.images = c
        .images
        .iter()
        .map(|s| format!("service `{s}`: `{}` → `{}`", old.services[s].image, new.services[s].image))
        .collect();
    c
}

/// Each declaration as JSON text, for comparing two descriptors' top-level
/// networks or volumes.
fn keyed<T: serde::Serialize>(map: &BTreeMap<String, T>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap_or_default())).collect()
}

fn fields_of(stack: &Stack) -> BTreeMap<String, Fields> {
    stack.services.iter().map(|(name, svc)| (name.clone(), config_hash(stack, name, svc).fields)).collect()
}

fn compare(
    new: &BTreeMap<String, Fields>,
    old: &BTreeMap<String, Option<Fields>>,
    extra: Vec<String>,
) -> Classification {
    let mut differences = extra;
    let mut images = Vec::new();
    for (service, fields) in new {
        match old.get(service) {
            None => differences.push(format!("service `{service}`: new service")),
            Some(None) => differences.push(format!(
                "service `{service}`: its container was created without per-field hashes, so any field may change"
            )),
            Some(Some(before)) => {
                let keys: std::collections::BTreeSet<&String> = fields.keys().chain(before.keys()).collect();
                for key in keys {
                    if fields.get(key) == before.get(key) {
                        continue;
                    }
                    if key == "image" {
                        images.push(service.clone());
                    } else {
                        differences.push(format!("service `{service}`: `{key}` changed"));
                    }
                }
            }
        }
    }
    for service in old.keys().filter(|s| !new.contains_key(*s)) {
        differences.push(format!("service `{service}`: removed"));
    }
    let class = if !differences.is_empty() {
        ChangeClass::Structural
    } else if !images.is_empty() {
        ChangeClass::ImageOnly
    } else {
        ChangeClass::None
    };
    Classification { class, images, differences }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(text: &str) -> Stack {
        crate::descriptor::compose::test_stack(text, "p")
    }

    const BASE: &str = "services:\n  web:\n    image: app:1\n    ports: ['8080:80']\n  db:\n    image: db:1\n";

    #[test]
    fn an_image_bump_is_self_service_and_anything_else_is_structural() {
        let base = stack(BASE);
        assert_eq!(classify_against(&base, &base).class, ChangeClass::None);
        let bumped = stack(&BASE.replace("app:1", "app:2").replace("db:1", "db@sha256:abc"));
        let c = classify_against(&bumped, &base);
        assert_eq!(c.class, ChangeClass::ImageOnly, "{c:?}");
        assert_eq!(c.images.len(), 2);
        let ported = stack(&BASE.replace("8080:80", "9090:80"));
        let c = classify_against(&ported, &base);
        assert_eq!(c.class, ChangeClass::Structural);
        assert_eq!(c.differences, ["service `web`: `ports` changed"]);
        let grown = stack(&format!("{BASE}  cache:\n    image: redis\nvolumes:\n  data: {{}}\n"));
        let c = classify_against(&grown, &base);
        assert!(c.differences.contains(&"service `cache`: new service".to_string()), "{c:?}");
        assert!(c.differences.contains(&"volume `data`: new".to_string()), "{c:?}");
        let shrunk = stack("services:\n  web:\n    image: app:1\n    ports: ['8080:80']\n");
        assert_eq!(classify_against(&shrunk, &base).differences, ["service `db`: removed"]);
    }

    #[test]
    fn environment_values_never_appear_in_differences() {
        let base = stack("services:\n  db:\n    image: db:1\n    environment: {PASSWORD: hunter2}\n");
        let changed = stack("services:\n  db:\n    image: db:1\n    environment: {PASSWORD: swordfish}\n");
        let c = classify_against(&changed, &base);
        assert_eq!(c.class, ChangeClass::Structural);
        assert!(!format!("{c:?}").contains("swordfish") && !format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn against_running_containers_a_first_deploy_is_structural() {
        let base = stack(BASE);
        let c = classify(&base, &[]);
        assert_eq!(c.class, ChangeClass::Structural);
        assert_eq!(c.differences.len(), 2);
    }
}

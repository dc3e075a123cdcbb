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
use sha2::{Digest, Sha256};

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
    // The top-level declarations the running containers were deployed
    // with, as they recorded them; a target deployed by an earlier version
    // recorded none, and is compared as if every declaration were new.
    // Containers a deploy did not recreate keep older records: any one
    // matching means the declarations are the ones deployed last.
    let new_top = top_level_hashes(stack);
    let recorded: Vec<&BTreeMap<String, String>> = observed.iter().filter_map(|c| c.top_level.as_ref()).collect();
    let extra = match recorded.first() {
        _ if recorded.contains(&&new_top) => Vec::new(),
        Some(old_top) => top_level_differences(&new_top, old_top),
        None if observed.is_empty() => Vec::new(),
        None => top_level_differences(&new_top, &BTreeMap::new()),
    };
    let mut c = compare(&new, &old, extra);
    c.images = c.images.iter().map(|s| format!("service `{s}`: image now `{}`", stack.services[s].image)).collect();
    c
}

/// Compares `new` with `old` (e.g. the descriptor deployed now), the
/// top-level networks, volumes, secrets and configs included: adding,
/// removing or changing one is structural, named in `differences`
/// (`network `front`: new`), never with its values.
pub fn classify_against(new: &Stack, old: &Stack) -> Classification {
    let old_fields = fields_of(old).into_iter().map(|(k, v)| (k, Some(v))).collect();
    let extra = top_level_differences(&top_level_hashes(new), &top_level_hashes(old));
    let mut c = compare(&fields_of(new), &old_fields, extra);
    c.images = c
        .images
        .iter()
        .map(|s| format!("service `{s}`: `{}` → `{}`", old.services[s].image, new.services[s].image))
        .collect();
    c
}

/// The top-level declarations added, changed or removed between two sets
/// of [`top_level_hashes`], one line each, naming no value.
fn top_level_differences(new_top: &BTreeMap<String, String>, old_top: &BTreeMap<String, String>) -> Vec<String> {
    let mut extra = Vec::new();
    for (key, value) in new_top {
        match old_top.get(key) {
            None => extra.push(format!("{}: new", describe(key))),
            Some(old) if old != value => extra.push(format!("{}: changed", describe(key))),
            _ => {}
        }
    }
    for key in old_top.keys().filter(|k| !new_top.contains_key(*k)) {
        extra.push(format!("{}: removed", describe(key)));
    }
    extra
}

/// A short hash of each top-level declaration of `stack`, keyed
/// `KIND:KEY` (`network:front`, `volume:data`, `secret:token`,
/// `config:site`), for telling whether two stacks declare the same
/// objects without keeping any value. Secrets and configs are the ones
/// the services use (the model keeps no unused ones), with their source:
/// a host file's path, a variable (its value hashed), inline content, or
/// an external name.
pub fn top_level_hashes(stack: &Stack) -> BTreeMap<String, String> {
    fn hash(kind: &str, key: &str, value: &impl Serialize) -> (String, String) {
        let text = serde_json::to_string(value).unwrap_or_default();
        (format!("{kind}:{key}"), hex::encode(&Sha256::digest(text.as_bytes())[..6]))
    }
    let mut out: BTreeMap<String, String> = stack.networks.iter().map(|(k, n)| hash("network", k, n)).collect();
    out.extend(stack.volumes.iter().map(|(k, v)| hash("volume", k, v)));
    for svc in stack.services.values() {
        for (kind, file) in svc.files() {
            let (key, value) = hash(kind.what(), &file.name, &file.source);
            out.entry(key).or_insert(value);
        }
    }
    out
}

/// `network:front` as `network `front``.
fn describe(key: &str) -> String {
    match key.split_once(':') {
        Some((kind, name)) => format!("{kind} `{name}`"),
        None => format!("`{key}`"),
    }
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

    #[test]
    fn top_level_declarations_are_structural() {
        let base = stack(&format!("{BASE}networks:\n  back: {{}}\n"));
        let bumped =
            stack(&format!("{}networks:\n  back: {{}}\n  front: {{internal: true}}\n", BASE.replace("app:1", "app:2")));
        let c = classify_against(&bumped, &base);
        assert_eq!(c.class, ChangeClass::Structural, "{c:?}");
        assert_eq!(c.images, ["service `web`: `app:1` → `app:2`"]);
        assert_eq!(c.differences, ["network `front`: new"]);
        // Changed and removed declarations, volumes too.
        let changed = stack(&format!("{BASE}networks:\n  back: {{internal: true}}\nvolumes:\n  data: {{}}\n"));
        let c = classify_against(&changed, &base);
        assert_eq!(c.differences, ["network `back`: changed", "volume `data`: new"], "{c:?}");
        let c = classify_against(&stack(BASE), &changed);
        assert_eq!(c.differences, ["network `back`: removed", "volume `data`: removed"], "{c:?}");
    }

    #[test]
    fn secrets_and_configs_are_structural_without_their_values() {
        let with = |content: &str| {
            stack(&format!(
                "services:\n  web:\n    image: app:1\n    configs: [site]\nconfigs:\n  site: {{content: '{content}'}}\n"
            ))
        };
        let (before, after) = (with("listen 80"), with("listen 8080"));
        let c = classify_against(&after, &before);
        assert_eq!(c.class, ChangeClass::Structural);
        assert!(c.differences.contains(&"config `site`: changed".to_string()), "{c:?}");
        assert!(!format!("{c:?}").contains("8080"), "{c:?}");
        let c = classify_against(&after, &stack("services:\n  web:\n    image: app:1\n"));
        assert!(c.differences.contains(&"config `site`: new".to_string()), "{c:?}");
        assert_eq!(top_level_hashes(&after).keys().collect::<Vec<_>>(), ["config:site"]);
    }
}

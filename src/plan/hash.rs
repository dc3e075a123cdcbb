//! The configuration hash a container (or Swarm service) is labelled
//! with: what decides whether it must be replaced, and the per-field
//! hashes that say which part changed without ever storing a value.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::ObservedContainer;
use crate::stack::{Service, Stack};

/// The configuration hash of a service: what decides whether its container
/// must be recreated, and the per-field hashes that explain why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigHash {
    /// `sha256` hex of the whole normalised service plus the stack context
    /// that shapes its container.
    pub whole: String,
    /// Short hashes by top-level field of the service.
    pub fields: BTreeMap<String, String>,
}

/// Hashes a service's normalised configuration.
///
/// `one_shot` is part of the hash because it changes how the container is
/// watched; `stack_name` because it shapes network and volume names.
pub fn config_hash(stack: &Stack, service: &str, svc: &Service) -> ConfigHash {
    let mut value = serde_json::to_value(svc).unwrap_or(serde_json::Value::Null);
    // How the image is obtained is not part of the container (Compose
    // leaves it out of its hash too); the image ID decides instead.
    if let serde_json::Value::Object(map) = &mut value {
        map.remove("pull_policy");
        // Swarm-only settings change nothing in a container.
        map.remove("swarm");
    }
    let mut fields = BTreeMap::new();
    if let serde_json::Value::Object(map) = &value {
        for (key, field) in map {
            let digest = Sha256::digest(field.to_string().as_bytes());
            fields.insert(key.clone(), hex::encode(&digest[..6]));
        }
    }
    let context = format!("{}|{}|{}", stack.name, stack.is_one_shot(service), value);
    ConfigHash { whole: hex::encode(Sha256::digest(context.as_bytes())), fields }
}

pub(super) fn changed_fields(hash: &ConfigHash, container: &ObservedContainer) -> Vec<String> {
    if hash.whole == container.config_hash {
        return vec![];
    }
    if container.field_hashes.is_empty() {
        return vec!["configuration changed".to_string()];
    }
    let mut keys: Vec<&String> = hash.fields.keys().chain(container.field_hashes.keys()).collect();
    keys.sort();
    keys.dedup();
    let changed: Vec<String> = keys
        .into_iter()
        .filter(|k| hash.fields.get(*k) != container.field_hashes.get(*k))
        .map(|k| format!("`{k}` changed"))
        .collect();
    if changed.is_empty() {
        // Same fields, different whole hash: the stack context changed.
        vec!["how the service is watched changed (one-shot or project)".to_string()]
    } else {
        changed
    }
}

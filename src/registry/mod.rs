//! The compose fragment registry: build servers publish the fragment of
//! the container they just built; dockmaster assembles, per application
//! and release, version N+1 = version N with the fragment's services added
//! or replaced, and serves it by application / release / version.
//!
//! `dockmaster serve` hosts it when `registry.serve` is on; any dockmaster
//! with `registry.url` resolves named descriptors from it
//! ([`client`]).

pub mod client;
pub mod server;
pub mod store;

use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The `registry` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `dockmaster serve` hosts the registry (`PUT /fragment`,
    /// `GET /descriptor/application/...`).
    #[serde(default)]
    pub serve: bool,
    /// The registry's SQLite database; default `<state_dir>/registry.db`.
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// Who may publish: each token may be limited to some applications.
    #[serde(default)]
    pub tokens: Vec<Token>,
    /// Resolve named descriptors (`APPLICATION/RELEASE[/VERSION]`) from the
    /// registry at this URL instead of the descriptor folder.
    #[serde(default)]
    pub url: Option<String>,
    /// Where fetched descriptors are cached (by ETag); default
    /// `<state_dir>/registry-cache`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// How long a registry request may take (`10s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A publishing token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// A name for logs (never the token).
    pub name: String,
    /// The variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Or a file holding it.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Application patterns it may publish to (`TLO *`); empty: all.
    #[serde(default)]
    pub applications: Vec<String>,
}

/// `sha256:<hex>` of a descriptor's bytes: its identity and its ETag.
pub fn digest(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// The services a fragment defines, and whether it is in the Compose
/// Specification format (`services:` at the top) rather than v1.
pub fn fragment_services(fragment: &Value) -> Result<(Mapping, bool)> {
    let Value::Mapping(top) = fragment else {
        return Err(Error::Descriptor("the fragment is not a YAML mapping of services".into()));
    };
    if let Some(services) = top.get("services") {
        let Value::Mapping(services) = services else {
            return Err(Error::Descriptor("`services` in the fragment is not a mapping".into()));
        };
        return Ok((services.clone(), true));
    }
    let services: Mapping =
        top.iter().filter(|(k, _)| k.as_str() != Some("version")).map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok((services, false))
}

/// Version N+1 from version N (`previous`) and a fragment: the fragment's
/// services added, or replacing same-named ones in place; for the
/// Specification format, its top-level `volumes`, `networks`, `secrets`
/// and `configs` merged by key. The first fragment decides the format of
/// the release's descriptors. The output is deterministic YAML.
pub fn assemble(previous: Option<&str>, fragment: &Value) -> Result<String> {
    let (services, spec) = fragment_services(fragment)?;
    let mut doc: Mapping = match previous {
        Some(text) => {
            serde_yaml::from_str(text).map_err(|e| Error::Engine(format!("a stored descriptor does not parse: {e}")))?
        }
        None if spec => {
            let mut m = Mapping::new();
            m.insert("services".into(), Value::Mapping(Mapping::new()));
            m
        }
        None => Mapping::new(),
    };
    let doc_is_spec = doc.contains_key("services");
    let target = if doc_is_spec {
        match doc.get_mut("services") {
            Some(Value::Mapping(m)) => m,
            _ => return Err(Error::Engine("a stored descriptor has no services mapping".into())),
        }
    } else {
        &mut doc
    };
    for (name, service) in services {
        target.insert(name, service);
    }
    if doc_is_spec {
        if let Value::Mapping(top) = fragment {
            for key in ["volumes", "networks", "secrets", "configs"] {
                if let Some(Value::Mapping(entries)) = top.get(key) {
                    let slot = doc.entry(key.into()).or_insert_with(|| Value::Mapping(Mapping::new()));
                    if let Value::Mapping(existing) = slot {
                        for (k, v) in entries {
                            existing.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
    }
    serde_yaml::to_string(&Value::Mapping(doc)).map_err(|e| Error::Engine(format!("rendering a descriptor: {e}")))
}

/// Checks a descriptor text with the loader, as a deploy would read it
/// (variables left to their defaults), and refuses what no engine runs:
/// the error names the key and line.
pub fn validate(text: &str, what: &str) -> Result<()> {
    let dir = tempfile_dir()?;
    let path = dir.join("descriptor.yml");
    std::fs::write(&path, text).map_err(|e| Error::Engine(format!("cannot write a temporary file: {e}")))?;
    let reference = crate::descriptor::DescriptorRef::File(path.clone());
    let result = crate::descriptor::Descriptor::read(reference, None, &path)
        .and_then(|d| crate::descriptor::compose::load_with_env(&d, "registry", &|_| None))
        .and_then(|stack| crate::pipeline::refuse_unrunnable(&stack));
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| {
        let message = e.to_string().replace(&path.display().to_string(), what);
        Error::Descriptor(message)
    })
}

fn tempfile_dir() -> Result<PathBuf> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("dockmaster-registry-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Engine(format!("cannot make a temporary folder: {e}")))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn fragments_add_and_replace_services_in_place_and_the_output_is_stable() {
        let v1 = assemble(None, &yaml("a-data: {image: busybox}\na: {image: app:1}\n")).unwrap();
        let v2 = assemble(Some(&v1), &yaml("b: {image: b:1}\n")).unwrap();
        let v3 = assemble(Some(&v2), &yaml("a: {image: app:2}\n")).unwrap();
        let doc: Mapping = serde_yaml::from_str(&v3).unwrap();
        let names: Vec<&str> = doc.keys().filter_map(Value::as_str).collect();
        assert_eq!(names, ["a-data", "a", "b"], "a replaced in place");
        assert_eq!(doc["a"]["image"], yaml("app:2"));
        assert_eq!(v3, assemble(Some(&v2), &yaml("a: {image: app:2}\n")).unwrap(), "deterministic");
        let spec = assemble(None, &yaml("services: {w: {image: w}}\nvolumes: {data: {}}\n")).unwrap();
        let spec = assemble(Some(&spec), &yaml("services: {x: {image: x}}\nvolumes: {more: {}}\n")).unwrap();
        let doc: Mapping = serde_yaml::from_str(&spec).unwrap();
        assert_eq!(doc["services"].as_mapping().unwrap().len(), 2);
        assert_eq!(doc["volumes"].as_mapping().unwrap().len(), 2);
    }

    #[test]
    fn invalid_fragments_are_refused_with_the_loaders_words() {
        assert!(fragment_services(&yaml("- a\n- b\n")).is_err());
        let err = validate("web:\n  image: x\n  ports: [\"not-a-port\"]\n", "the fragment").unwrap_err();
        assert!(err.to_string().contains("the fragment"), "{err}");
        validate("web:\n  image: x\n  net: host\n", "the fragment").unwrap();
        // Compose reads it, but no engine runs it: not worth publishing.
        let err = validate("services:\n  web:\n    image: x\n    volumes: [db-data]\n", "the fragment").unwrap_err();
        assert!(err.to_string().contains("must be absolute, found \"db-data\""), "{err}");
    }
}

//! The compose fragment registry: build servers publish the fragment of
//! the container they just built; dockmaster assembles, per application
//! and release, version N+1 = version N with the fragment's services added
//! or replaced, and serves it by application / release / version.
//!
//! `dockmaster serve` hosts it when `registry.serve` is on; any dockmaster
//! with `registry.url` resolves named descriptors from it
//! ([`client`]).

pub mod client;
pub mod lint;
pub mod read;
pub mod server;
pub mod store;

use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub use crate::config::registry::{
    RegistryConfig, Token, DEFAULT_MAX_DESCRIPTOR_BYTES, DEFAULT_MAX_FRAGMENT_BYTES, DEFAULT_MAX_SERVICES,
};

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
        Some(text) => serde_yaml::from_str(text)
            .map_err(|e| Error::Internal(format!("a stored descriptor does not parse: {e}")))?,
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
            _ => return Err(Error::Internal("a stored descriptor has no services mapping".into())),
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
    serde_yaml::to_string(&Value::Mapping(doc)).map_err(|e| Error::Internal(format!("rendering a descriptor: {e}")))
}

/// Checks a descriptor text with the loader, as a deploy would read it
/// (variables left to their defaults), refuses what no engine runs (the
/// error names the key and line), and returns what it references but does
/// not define ([`lint::lint`]).
///
/// The text is one part of a whole (a fragment, or a version assembled
/// from the fragments published so far): a reference to a service, volume
/// or network it does not define is a warning here, not an error.
///
/// The text is loaded from memory and nothing is read from the server's
/// disk: a descriptor that would read a file here (`env_file`, `extends`
/// with `file`, `include`, `build`, a secret or config with `file`) is
/// refused, in the same words whether that file exists or not, and no
/// error quotes anything but the text itself.
pub fn validate(text: &str, what: &str) -> Result<Vec<lint::Warning>> {
    let result = crate::descriptor::compose::load_partial_in_memory(text, "registry")
        .and_then(|stack| crate::pipeline::refuse_unrunnable(&stack).map(|()| lint::lint(&stack)));
    result.map_err(|e| {
        let path = crate::descriptor::compose::IN_MEMORY_PATH;
        let folder = std::path::Path::new(path).parent().map(|p| p.display().to_string()).unwrap_or_default();
        let message = e.to_string().replace(path, what).replace(&folder, "<the descriptor's folder>");
        Error::Descriptor(message)
    })
}

/// The line (and column) a refusal names, from its message: the loader
/// writes `<what>:<line>: ...`, a YAML syntax error `... at line L column
/// C`. For the `422` body, beside the message.
pub fn location(message: &str, what: &str) -> (Option<u64>, Option<u64>) {
    if let Some(rest) = message.strip_prefix(what).and_then(|r| r.strip_prefix(':')) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(line) = digits.parse() {
            return (Some(line), None);
        }
    }
    let number = |after: &str| -> Option<u64> {
        let at = message.find(after)? + after.len();
        message[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
    };
    match number(" at line ") {
        Some(line) => (Some(line), number(&format!(" at line {line} column "))),
        None => (None, None),
    }
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

    #[test]
    fn fragments_that_would_read_server_files_are_refused_alike_whether_the_file_exists_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret.env");
        std::fs::write(&secret, "TOKEN=do-not-leak\n").unwrap();
        let missing = dir.path().join("missing.env");
        for shape in [
            "services:\n  web:\n    image: x\n    env_file: {}\n",
            "web:\n  image: x\n  env_file: [{}]\n",
            "services:\n  web:\n    image: x\n    extends: {{file: {}, service: a}}\n",
            "include: [{}]\nservices:\n  web: {{image: x}}\n",
            "services:\n  web: {{build: {}}}\n",
            "services:\n  web: {{image: x, secrets: [s]}}\nsecrets:\n  s: {{file: {}}}\n",
            "services:\n  web: {{image: x}}\nconfigs:\n  c: {{file: {}}}\n",
        ] {
            let errors: Vec<String> =
                ["/etc/shadow", "/nonexistent", &secret.display().to_string(), &missing.display().to_string()]
                    .iter()
                    .map(|path| {
                        let text = shape.replace("{}", path).replace("{{", "{").replace("}}", "}");
                        validate(&text, "the fragment").unwrap_err().to_string()
                    })
                    .collect();
            for err in &errors {
                assert_eq!(err, &errors[0], "the same words whatever the file: {shape}");
                assert!(err.starts_with("the fragment"), "{err}");
                assert!(err.contains("would read a file on the server"), "{err}");
                assert!(!err.contains("do-not-leak") && !err.contains("root:"), "nothing from any file: {err}");
                assert!(!err.contains("/etc/shadow") && !err.contains("missing.env"), "{err}");
            }
        }
    }

    #[test]
    fn a_refusal_names_the_line_of_a_v1_fragment_too() {
        let err = validate("plex:\n  image: x\n  imagee: y\n", "the fragment").unwrap_err().to_string();
        assert!(err.starts_with("the fragment:3: service \"plex\": unknown key \"imagee\""), "{err}");
        assert_eq!(location(&err, "the fragment"), (Some(3), None));
        let yaml =
            "the fragment is not YAML: did not find expected ',' at line 4 column 1, while parsing at line 3 column 9";
        assert_eq!(location(yaml, "the fragment"), (Some(4), Some(1)));
        assert_eq!(location("the fragment: service \"web\": bad", "the fragment"), (None, None));
    }

    #[test]
    fn a_fragment_may_reference_what_other_fragments_define() {
        let warnings =
            validate("web:\n  image: x\n  links: [db]\n  volumes_from: [db-data]\n", "the fragment").unwrap();
        let references: Vec<&str> = warnings.iter().map(|w| w.reference.as_str()).collect();
        assert_eq!(references, ["db", "db-data"]);
        let spec = "services:\n  web:\n    image: x\n    depends_on: [db]\n    volumes: [data:/d]\n";
        assert_eq!(validate(spec, "the fragment").unwrap().len(), 2);
    }

    #[test]
    fn plain_fragments_still_validate_from_memory() {
        validate("services:\n  web:\n    image: nginx:1\n    environment: [A=1]\n", "the fragment").unwrap();
        validate("web:\n  image: nginx:1\n  ports: [\"8080:80\"]\n", "the fragment").unwrap();
        // An `extends` of another service of the same text reads nothing.
        validate("services:\n  base: {image: x}\n  web: {extends: base}\n", "the fragment").unwrap();
        // No folder named in an error is a real one on the server.
        let err = validate("services:\n  web: {image: x, ports: [bad]}\n", "the fragment").unwrap_err().to_string();
        assert!(!err.contains(crate::descriptor::compose::IN_MEMORY_PATH), "{err}");
    }
}

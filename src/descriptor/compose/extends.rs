//! `extends`: a service built on another, from the same file or another.
//!
//! `extends: NAME` or `extends: {service: NAME, file: PATH}`. The base is
//! resolved first (it may extend another in turn), then the service's own
//! settings are merged over it with the rules of [`merge`](super::merge).
//! A file named by `extends` is read like any descriptor, with the same
//! variables, and its relative paths resolve against its own folder.
//!
//! As in docker-compose 1.x, a service that ties itself to other services
//! of its file (`links`, `volumes_from`, or `network_mode`/`pid`/`ipc` of
//! another service or container) cannot be a base: copied elsewhere, those
//! references would point at something else. A cycle is an error that
//! names it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::assemble::{canonical, folder_of, read_document, Document};
use super::fault::Place;
use super::inputs::{Denied, ReadError};
use super::interpolate::Lookup;
use super::merge::merge_service;
use super::paths;
use super::source::Source;
use super::value::{key_string, mapping, string, unknown_key};
use crate::error::{Error, Result};

/// How long a chain of `extends` may be (a cycle is caught before).
const MAX_CHAIN: usize = 32;

/// Resolves every `extends` among the services of `tree`, which was read
/// from `doc`, reading a file named by `extends.file` through `source`.
pub(crate) fn resolve(
    tree: &mut Value,
    doc: &Document,
    lookup: &Lookup<'_>,
    source: &Source,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let Some(Value::Mapping(services)) = tree.get("services") else { return Ok(()) };
    let wanted: Vec<String> =
        services.iter().filter(|(_, svc)| svc.get("extends").is_some()).map(|(name, _)| key_string(name)).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let services = services.clone();
    let mut current = doc.clone();
    current.tree = tree.clone();
    let mut resolver = Resolver { lookup, source, warnings, files: HashMap::new() };
    let mut resolved = Vec::new();
    for name in wanted {
        let mut chain = vec![(canonical(&doc.path), name.clone())];
        resolved.push((name.clone(), resolver.service(&current, &services, &name, &mut chain)?));
    }
    if let Some(Value::Mapping(services)) = tree.get_mut("services") {
        for (name, svc) in resolved {
            services.insert(Value::String(name), svc);
        }
    }
    Ok(())
}

struct Resolver<'a, 'w> {
    lookup: &'a Lookup<'a>,
    /// Where the load may read files from, and its record of them.
    source: &'a Source,
    warnings: &'w mut Vec<String>,
    /// Files read for `extends.file`, by path.
    files: HashMap<PathBuf, Document>,
}

impl Resolver<'_, '_> {
    /// The service `name` of `services` (read from `file`), with its
    /// `extends` resolved.
    fn service(
        &mut self,
        file: &Document,
        services: &Mapping,
        name: &str,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Result<Value> {
        let place = Place::root().key("services").key(name);
        let Some(svc) = services.get(name) else {
            return Err(Error::Descriptor(format!("{}: service {name:?} is not defined", file.path.display())));
        };
        let Some(extends) = svc.get("extends") else {
            return Ok(svc.clone());
        };
        let at = place.key("extends");
        let (base_name, base_file) = match extends {
            Value::Mapping(_) => {
                let (mut service, mut other) = (None, None);
                for (key, v) in mapping(extends, &at).map_err(|f| file.error(f))? {
                    match key.as_str() {
                        "service" => service = Some(string(v, &at.key(&key)).map_err(|f| file.error(f))?),
                        "file" => other = Some(string(v, &at.key(&key)).map_err(|f| file.error(f))?),
                        k if k.starts_with("x-") => {}
                        k => return Err(file.error(unknown_key(&at, k, &["service", "file"]))),
                    }
                }
                let Some(service) = service else {
                    return Err(file.error(at.fault("`extends` needs `service`, the name of the service to extend")));
                };
                (service, other)
            }
            other => (string(other, &at).map_err(|f| file.error(f))?, None),
        };
        let base_doc = match &base_file {
            None => file.clone(),
            Some(written) => {
                let path = super::mounts::clean(&folder_of(&file.path).join(written));
                match self.file(&path)? {
                    Ok(doc) => doc,
                    Err(Some(denied)) => {
                        return Err(file.error(at.key("file").fault(denied.explain("extends file", written))))
                    }
                    Err(None) => {
                        return Err(file.error(at.fault(format!(
                            "cannot read extends file {}: it does not exist or is not readable \
                             (a relative path starts at this file's folder)",
                            path.display()
                        ))))
                    }
                }
            }
        };
        let key = (canonical(&base_doc.path), base_name.clone());
        if chain.contains(&key) || chain.len() > MAX_CHAIN {
            let mut steps: Vec<String> = chain.iter().map(|(p, s)| format!("{s} ({})", p.display())).collect();
            steps.push(format!("{} ({})", key.1, key.0.display()));
            return Err(file.error(at.fault(format!(
                "services extend each other in a circle: {}; remove one of these `extends`",
                steps.join(" → ")
            ))));
        }
        let base_services = match base_doc.tree.get("services") {
            Some(Value::Mapping(s)) if s.contains_key(base_name.as_str()) => s.clone(),
            _ => {
                return Err(file.error(at.fault(format!(
                    "cannot extend service {base_name:?}: {} defines no such service",
                    base_doc.path.display()
                ))))
            }
        };
        chain.push(key);
        let base = self.service(&base_doc, &base_services, &base_name, chain)?;
        chain.pop();
        if let Some(why) = not_extendable(&base) {
            return Err(file.error(at.fault(format!(
                "cannot extend service {base_name:?} ({}): services with {why} cannot be extended, as in \
                 docker-compose 1.x; copy what you need instead",
                base_doc.path.display()
            ))));
        }
        let mut local = svc.clone();
        if let Value::Mapping(map) = &mut local {
            map.shift_remove("extends");
        }
        Ok(merge_service(base, local))
    }

    /// A file named by `extends.file`, read once; `Err(None)` when it
    /// cannot be read, `Err(Some(why))` when the load may not read it.
    fn file(&mut self, path: &Path) -> Result<std::result::Result<Document, Option<Denied>>> {
        if let Some(doc) = self.files.get(path) {
            return Ok(Ok(doc.clone()));
        }
        let text = match self.source.read(path) {
            Ok(text) => text,
            Err(ReadError::Denied(denied)) => return Ok(Err(Some(denied))),
            Err(ReadError::Io(_)) => return Ok(Err(None)),
        };
        let mut doc = read_document(path, &text, self.lookup, self.warnings)?;
        paths::rebase(&mut doc.tree, &folder_of(path));
        self.files.insert(path.to_path_buf(), doc.clone());
        Ok(Ok(doc))
    }
}

/// Why a (resolved) service cannot be a base, if it cannot.
fn not_extendable(svc: &Value) -> Option<&'static str> {
    let present = |key: &str| svc.get(key).is_some_and(|v| !super::value::is_empty(v));
    if present("links") {
        return Some("`links`");
    }
    if present("volumes_from") {
        return Some("`volumes_from`");
    }
    for key in ["network_mode", "pid", "ipc"] {
        let mode = svc.get(key).and_then(Value::as_str).unwrap_or_default();
        if mode.starts_with("service:") || mode.starts_with("container:") {
            return Some(match key {
                "network_mode" => "`network_mode` (or v1 `net`) of another service or container",
                "pid" => "`pid` of another service or container",
                _ => "`ipc` of another service or container",
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str, text: &str) -> Document {
        let mut warnings = Vec::new();
        read_document(Path::new(path), text, &|_| None, &mut warnings).unwrap()
    }

    fn resolved(text: &str) -> Result<Value> {
        let d = doc("/nonexistent/compose.yaml", text);
        let mut tree = d.tree.clone();
        resolve(&mut tree, &d, &|_| None, &Source::open(), &mut Vec::new())?;
        Ok(tree)
    }

    #[test]
    fn a_service_extends_another_of_the_same_file_in_a_chain() {
        let tree = resolved(
            "services:\n  base: {image: a, environment: [A=1]}\n  mid: {extends: base, environment: [B=2]}\n  top: {extends: {service: mid}, image: b}\n",
        )
        .unwrap();
        let top = &tree["services"]["top"];
        assert_eq!(top["image"], "b");
        assert_eq!(top["environment"]["A"], "1");
        assert_eq!(top["environment"]["B"], "2");
        assert!(top.get("extends").is_none());
    }

    #[test]
    fn cycles_missing_bases_and_tied_bases_are_refused() {
        for (text, needle) in [
            ("services:\n  a: {extends: b}\n  b: {extends: a}\n", "circle: a"),
            ("services:\n  a: {extends: a}\n", "circle"),
            ("services:\n  a: {extends: nope}\n", "no such service"),
            ("services:\n  a: {extends: b}\n  b: {image: x, links: [c]}\n  c: {image: x}\n", "`links`"),
            (
                "services:\n  a: {extends: b}\n  b: {image: x, network_mode: 'service:c'}\n  c: {image: x}\n",
                "network_mode",
            ),
            ("services:\n  a: {extends: {file: /nonexistent/other.yml, service: b}}\n", "cannot read extends file"),
            ("services:\n  a: {extends: {servce: b}}\n", "unknown key"),
        ] {
            let err = resolved(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}

//! The Compose loader: a descriptor's text → [`Stack`], the normalised model.
//!
//! The loader runs in steps, each in its own module, all working on one
//! `serde_yaml::Value` tree until the last:
//!
//! 1. `value`: parse the YAML (anchors resolved, merge keys `<<` applied).
//! 2. `detect_format`: the Compose Specification, or a `version: "2.x"` /
//!    `"3.x"` file (read the same way, with a warning that `version` is
//!    ignored). A v1 file (services at the top level) is refused for now.
//! 3. `interpolate`: `${VAR}` and friends in values, from the process
//!    environment, then the `.env` file next to the descriptor.
//! 4. `service`, `toplevel` (with `ports`, `mounts`, `runtime`):
//!    every key read into the model; none silently dropped.
//! 5. `checks`: references between services, networks and volumes, and
//!    dependency cycles.
//!
//! Later work fits between steps 3 and 4 as transformations of the tree:
//! v1 normalisation (`net:` → `network_mode`, services moved under
//! `services:`), `extends`, `include` and merging several files.
//!
//! Every error is [`Error::Descriptor`] and reads
//! `<file>[:<line>]: <place>: <what is wrong and what to do>`, e.g.
//! `app/3.yml:12: service "web", key "ports[1]": invalid port "80:abc": ...`;
//! YAML syntax errors carry `<line>:<column>`.

mod checks;
mod dotenv;
mod fault;
mod interpolate;
mod mounts;
mod ports;
mod runtime;
mod service;
mod toplevel;
mod units;
mod v1;
mod value;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::stack::{Format, Stack};
use fault::{Parsed, Place};
use value::{key_string, scalar_string, type_name};

pub use service::ONE_SHOT_LABEL;

/// The top-level keys of the Compose Specification.
#[rustfmt::skip]
const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "secrets", "configs", "include", "models",
];

/// Loads a descriptor into the normalised model, with variables from the
/// process environment (then the `.env` file next to the descriptor).
///
/// `default_project` names the project when the descriptor has no `name:`;
/// it must already be a valid project name (see
/// [`crate::descriptor::project_name`]).
///
/// The result may carry warnings ([`Stack::warnings`]) for what was accepted
/// but not acted on. A service labelled `dockmaster.one-shot: "true"`
/// ([`ONE_SHOT_LABEL`]) comes back with `one_shot` set. Anything the loader
/// cannot honour is an error rather than a silent difference between the
/// descriptor and what is deployed.
pub fn load(descriptor: &Descriptor, default_project: &str) -> Result<Stack> {
    load_with_env(descriptor, default_project, &|name| std::env::var(name).ok())
}

/// [`load`] with the environment given explicitly: `env` answers what the
/// process environment would. Tests use it, and so can a caller that must
/// not let the host's environment leak into a deploy.
pub fn load_with_env(
    descriptor: &Descriptor,
    default_project: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Stack> {
    let path = descriptor.path.as_path();
    let text = descriptor.text.as_str();
    let fail = |fault: fault::Fault| fault.into_error(path, text);
    let mut tree = match value::parse(text) {
        Ok(parsed) => parsed.map_err(fail)?,
        Err(e) => {
            let at = e.line_column.map(|(line, column)| format!(":{line}:{column}")).unwrap_or_default();
            let hint = syntax_hint(&e.message, text, e.line_column.map(|(line, _)| line));
            return Err(Error::Descriptor(format!("{}{at}: invalid YAML: {}{hint}", path.display(), e.message)));
        }
    };
    let (format, mut warnings) = detect_format(&tree).map_err(fail)?;
    let dir = descriptor_dir(path);
    let dotenv = read_dotenv(&dir, env, path)?;
    let lookup = |name: &str| env(name).or_else(|| dotenv.get(name).cloned());
    let mut unset = Vec::new();
    interpolate::interpolate_tree(&mut tree, &Place::root(), &lookup, &mut unset).map_err(fail)?;
    for (name, place) in unset {
        warnings.push(format!(
            "variable {name:?} is not set, so an empty string was used ({}); set it in the environment or in .env",
            place.describe()
        ));
    }
    if format == Format::V1 {
        v1::normalise(&mut tree, &mut warnings).map_err(fail)?;
    }
    let mut stack = read_stack(&tree, format, default_project, &dir, &lookup, warnings).map_err(fail)?;
    checks::check(&mut stack).map_err(fail)?;
    Ok(stack)
}

/// What to do about a YAML syntax error, for the usual causes.
fn syntax_hint(message: &str, text: &str, line: Option<usize>) -> &'static str {
    let tab_indented = line
        .and_then(|n| text.lines().nth(n.saturating_sub(1)))
        .is_some_and(|l| l.trim_start_matches(' ').starts_with('\t'));
    if tab_indented {
        " (indent with spaces: YAML does not allow tabs)"
    } else if message.contains("duplicate entry") {
        " (a key may appear only once in a mapping; remove one of them)"
    } else if message.contains("more than one document") {
        " (a descriptor is one YAML document: remove the `---` separators and what follows)"
    } else {
        " (check the indentation and the quoting around that place)"
    }
}

/// The descriptor's folder, absolute and without `.`/`..`: relative paths in
/// the descriptor start there, as Compose's project directory.
fn descriptor_dir(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = absolute.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    mounts::clean(&dir)
}

/// Reads `<dir>/.env` if there is one.
fn read_dotenv(
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    descriptor: &Path,
) -> Result<BTreeMap<String, String>> {
    let file = dir.join(".env");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(Error::Descriptor(format!("{}: cannot read {}: {e}", descriptor.display(), file.display())))
        }
    };
    let vars = dotenv::parse(&text, env).map_err(|e| {
        Error::Descriptor(format!("{}: {}:{}: {}", descriptor.display(), file.display(), e.line, e.message))
    })?;
    Ok(vars.into_iter().collect())
}

/// Which format the file is written in, and the warnings that go with it.
/// Only keys (and `version`) are looked at: interpolation comes later.
fn detect_format(tree: &Value) -> Parsed<(Format, Vec<String>)> {
    let root = Place::root();
    let map = match tree {
        Value::Mapping(map) => map,
        Value::Null => {
            return Err(root.fault("the descriptor is empty: it needs at least `services:` with one service"))
        }
        other => {
            return Err(root.fault(format!("expected a mapping at the top of the file, found {}", type_name(other))))
        }
    };
    let keys: Vec<String> = map.keys().map(key_string).collect();
    let foreign: Vec<&String> =
        keys.iter().filter(|k| !TOP_LEVEL_KEYS.contains(&k.as_str()) && !k.starts_with("x-")).collect();
    if let Some(first) = foreign.first() {
        // v1 files have services at the top level and no `version:`.
        let looks_v1 =
            !map.contains_key("services") && !map.contains_key("version") && map.values().all(|v| v.is_mapping());
        if looks_v1 {
            return Ok((Format::V1, Vec::new()));
        }
        return Err(value::unknown_key(&root, first, TOP_LEVEL_KEYS));
    }
    let mut warnings = Vec::new();
    let format = match map.get("version") {
        None | Some(Value::Null) => Format::Spec,
        Some(v) => {
            let version = scalar_string(v).unwrap_or_default();
            let major = version.trim().split('.').next().unwrap_or_default().to_string();
            warnings.push(format!(
                "key \"version\" ({version:?}) is obsolete and ignored: the file is read as the Compose Specification; \
                 remove it"
            ));
            match major.as_str() {
                "2" => Format::V2,
                "3" => Format::V3,
                _ => Format::Spec,
            }
        }
    };
    Ok((format, warnings))
}

/// Whether a project name is one Compose accepts.
fn valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Reads the interpolated tree into a stack (before the cross checks).
fn read_stack(
    tree: &Value,
    format: Format,
    default_project: &str,
    dir: &Path,
    lookup: &interpolate::Lookup<'_>,
    warnings: Vec<String>,
) -> Parsed<Stack> {
    let root = Place::root();
    let get = |key: &str| tree.get(key).filter(|v| !v.is_null());
    let name = match get("name") {
        None => default_project.to_string(),
        Some(v) => {
            let name = value::string(v, &root.key("name"))?;
            if !valid_project_name(&name) {
                return Err(root.key("name").fault(format!(
                    "invalid project name {name:?}: use lower-case letters, digits, \"-\" and \"_\", \
                     starting with a letter or digit"
                )));
            }
            name
        }
    };
    for key in ["secrets", "configs", "include", "models"] {
        if let Some(v) = get(key) {
            if !value::is_empty(v) {
                return Err(root.fault_at_key(
                    key,
                    format!("top-level key {key:?} is not supported yet by dockmaster; remove it"),
                ));
            }
        }
    }
    let mut stack = Stack {
        name,
        format,
        services: BTreeMap::new(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        warnings,
    };
    if let Some(v) = get("networks") {
        let at = root.key("networks");
        for (key, net) in toplevel::section(v, &at, "network")? {
            let network = toplevel::network(net, &at.key(&key), &mut stack.warnings)?;
            stack.networks.insert(key, network);
        }
    }
    if let Some(v) = get("volumes") {
        let at = root.key("volumes");
        for (key, vol) in toplevel::section(v, &at, "volume")? {
            let volume = toplevel::volume(vol, &at.key(&key), &mut stack.warnings)?;
            stack.volumes.insert(key, volume);
        }
    }
    let at = root.key("services");
    let services = match get("services") {
        Some(v) => toplevel::section(v, &at, "service")?,
        None => Vec::new(),
    };
    if services.is_empty() {
        return Err(root.fault("the descriptor defines no service: add at least one under `services:`"));
    }
    let mut cx = service::Context { project: &stack.name, dir, lookup, warnings: Vec::new() };
    let mut parsed = BTreeMap::new();
    for (key, svc) in services {
        let service = service::service(&mut cx, &key, svc, &at.key(&key))?;
        parsed.insert(key, service);
    }
    let service_warnings = cx.warnings;
    stack.services = parsed;
    stack.warnings.extend(service_warnings);
    Ok(stack)
}

//! Secrets and configs: the top-level declarations (`secrets:`, `configs:`)
//! and a service's references to them.
//!
//! Without Swarm, Compose gives a container a secret or config as a file:
//! a host file is bind-mounted read-only; a value from a variable
//! (`environment:`) or written inline (`content:`, configs only) is written
//! into the container before it starts. dockmaster does the same. Secrets
//! land in `/run/secrets/<name>` unless a target says otherwise, configs in
//! `/<name>`. `external` secrets and configs live in Swarm: the loader keeps
//! them (as `docker compose config` does) and a plain engine refuses them
//! before anything changes.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

use super::fault::{Parsed, Place};
use super::interpolate::Lookup;
use super::mounts::{file_mode, host_path};
use super::value::{boolean, is_empty, mapping, opt_string, string, type_name, unknown_key, unsupported_key};
pub(crate) use crate::stack::FileKind as Kind;
use crate::stack::{FileMount, FileSource};

/// What loading the declarations needs.
pub(crate) struct Sources<'a> {
    /// The descriptor's folder, absolute.
    pub(crate) dir: &'a Path,
    /// Variables, for `environment:` and `~`.
    pub(crate) lookup: &'a Lookup<'a>,
}

/// The key under which an included file's `environment:` secrets carry the
/// value from that file's own variables (see [`resolve_environment`]).
const RESOLVED: &str = "x-dockmaster-value";

/// Takes the values of `environment:` secrets and configs now, from
/// `lookup`: an included file has variables of its own (its `env_file`),
/// which the including project does not see.
pub(crate) fn resolve_environment(tree: &mut Value, lookup: &Lookup<'_>) {
    for section in ["secrets", "configs"] {
        let Some(Value::Mapping(entries)) = tree.get_mut(section) else { continue };
        for (_, entry) in entries.iter_mut() {
            let Value::Mapping(map) = entry else { continue };
            let value = map.get("environment").and_then(Value::as_str).and_then(lookup);
            if let Some(value) = value {
                map.insert(RESOLVED.into(), Value::String(value));
            }
        }
    }
}

/// A declared secret or config, as far as a service can use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Declared {
    /// Its content, ready to give to a container.
    Ready(FileSource),
    /// `external: true`: it lives in Swarm, under this name.
    External(String),
    /// `environment: VAR` with `VAR` not set.
    Unset(String),
}

/// Reads the top-level `secrets:` or `configs:` section. What cannot be
/// given to a container (an external one, an unset variable) is an error
/// only where a service uses it, as in Compose.
pub(crate) fn declarations(
    kind: Kind,
    value: &Value,
    place: &Place,
    cx: &Sources<'_>,
    warnings: &mut Vec<String>,
) -> Parsed<BTreeMap<String, Declared>> {
    let mut out = BTreeMap::new();
    for (name, v) in super::toplevel::section(value, place, kind.what())? {
        let at = place.key(&name);
        let mut source = None;
        let (mut engine_name, mut legacy_name, mut external) = (None, None, false);
        let mut set = |s: Declared, key: &str| -> Parsed<()> {
            if source.replace(s).is_some() {
                return Err(at.fault_at_key(
                    key,
                    match kind {
                        Kind::Secret => "a secret takes one of `file`, `environment` or `external`; keep one",
                        Kind::Config => {
                            "a config takes one of `file`, `environment`, `content` or `external`; keep one"
                        }
                    },
                ));
            }
            Ok(())
        };
        for (key, setting) in mapping(v, &at)? {
            let kat = at.key(&key);
            match key.as_str() {
                "file" => {
                    let home = (cx.lookup)("HOME");
                    let path = host_path(&string(setting, &kat)?, cx.dir, home.as_deref()).map_err(|w| kat.fault(w))?;
                    set(Declared::Ready(FileSource::File(path.to_string_lossy().into_owned())), &key)?;
                }
                "environment" => {
                    let variable = string(setting, &kat)?;
                    let resolved = v.get(RESOLVED).and_then(Value::as_str).map(str::to_string);
                    let declared = match resolved.or_else(|| (cx.lookup)(&variable)) {
                        Some(value) => Declared::Ready(FileSource::Environment { variable, value }),
                        None => Declared::Unset(variable),
                    };
                    set(declared, &key)?;
                }
                "content" if kind == Kind::Config => {
                    set(Declared::Ready(FileSource::Content(string(setting, &kat)?)), &key)?
                }
                "name" => {
                    engine_name = opt_string(setting, &kat)?;
                }
                "external" => {
                    // `external: {name: x}` is the legacy spelling of `external: true`
                    // with `name: x`.
                    if let Some(legacy) = setting.get("name") {
                        legacy_name = opt_string(legacy, &kat.key("name"))?;
                    }
                    if setting.is_mapping() || (!setting.is_null() && boolean(setting, &kat)?) {
                        external = true;
                        set(Declared::External(String::new()), &key)?;
                    }
                }
                "labels" => {
                    if !is_empty(setting) {
                        warnings.push(format!(
                            "{}: ignored: only Swarm keeps labels on {}s",
                            kat.describe(),
                            kind.what()
                        ));
                    }
                }
                "driver" | "driver_opts" | "template_driver" => {
                    if !is_empty(setting) {
                        return Err(unsupported_key(&at, &key));
                    }
                }
                k if k.starts_with("x-") => {}
                k => return Err(unknown_key(&at, k, &declaration_keys(kind))),
            }
        }
        if let (Some(a), Some(b)) = (&engine_name, &legacy_name) {
            if a != b {
                return Err(at.fault_at_key(
                    "external",
                    format!("`name: {a}` and `external.name: {b}` disagree; keep `name:` only"),
                ));
            }
        }
        if external {
            let engine_name = engine_name.or(legacy_name).filter(|n| !n.is_empty()).unwrap_or_else(|| name.clone());
            source = Some(Declared::External(engine_name));
        }
        let Some(source) = source else {
            return Err(at.fault(format!(
                "the {} needs `file:` (a host file){}",
                kind.what(),
                if kind == Kind::Config { ", `environment:` or `content:`" } else { " or `environment:` (a variable)" }
            )));
        };
        out.insert(name, source);
    }
    Ok(out)
}

fn declaration_keys(kind: Kind) -> Vec<&'static str> {
    let mut keys =
        vec!["file", "environment", "name", "external", "driver", "driver_opts", "template_driver", "labels"];
    if kind == Kind::Config {
        keys.push("content");
    }
    keys
}

/// Reads a service's `secrets:` or `configs:` list: names, or
/// `{source, target, uid, gid, mode}`. Ownership and mode apply to files
/// written into the container; a bind-mounted host file keeps its own, so
/// they are ignored there with a warning, as Compose does.
pub(crate) fn references(
    kind: Kind,
    value: &Value,
    place: &Place,
    declared: &BTreeMap<String, Declared>,
    warnings: &mut Vec<String>,
) -> Parsed<Vec<FileMount>> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Sequence(items) => items,
        other => return Err(place.fault(format!("expected a list of {}, found {}", kind.section(), type_name(other)))),
    };
    let mut out: Vec<FileMount> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = place.index(i);
        let mut mount = FileMount {
            name: String::new(),
            source: FileSource::Content(String::new()),
            target: String::new(),
            uid: None,
            gid: None,
            mode: None,
        };
        let mut target = None;
        match item {
            Value::Mapping(_) => {
                for (key, v) in mapping(item, &at)? {
                    let kat = at.key(&key);
                    match key.as_str() {
                        "source" => mount.name = string(v, &kat)?,
                        "target" => target = opt_string(v, &kat)?,
                        "uid" => mount.uid = numeric_id(v, &kat)?,
                        "gid" => mount.gid = numeric_id(v, &kat)?,
                        "mode" => mount.mode = if v.is_null() { None } else { Some(file_mode(v, &kat)?) },
                        k if k.starts_with("x-") => {}
                        k => return Err(unknown_key(&at, k, &["source", "target", "uid", "gid", "mode"])),
                    }
                }
            }
            other => mount.name = string(other, &at)?,
        }
        if mount.name.is_empty() {
            return Err(at.fault(format!("a {} reference needs `source`, the {} name", kind.what(), kind.what())));
        }
        mount.source = match declared.get(&mount.name) {
            Some(Declared::Ready(source)) => source.clone(),
            Some(Declared::External(name)) => FileSource::External { name: name.clone() },
            Some(Declared::Unset(variable)) => {
                return Err(at.fault(format!(
                    "{} {:?} takes its value from variable {variable:?}, which is not set; set it in the \
                     environment or in .env",
                    kind.what(),
                    mount.name
                )))
            }
            None => {
                return Err(at.fault(format!(
                    "{} {:?} is not declared; add it under the top-level `{}:`",
                    kind.what(),
                    mount.name,
                    kind.section()
                )))
            }
        };
        mount.target = kind.target(target.as_deref().filter(|t| !t.is_empty()).unwrap_or(&mount.name));
        if let FileSource::File(_) = mount.source {
            if mount.uid.is_some() || mount.gid.is_some() || mount.mode.is_some() {
                warnings.push(format!(
                    "{}: uid, gid and mode are ignored for a {} backed by a host file (it is bind-mounted \
                     with the file's own owner and mode), as in Compose",
                    at.describe(),
                    kind.what()
                ));
                (mount.uid, mount.gid, mount.mode) = (None, None, None);
            }
        }
        if out.iter().any(|m| m.target == mount.target) {
            return Err(at.fault(format!(
                "{:?} is the target of two {} of this service",
                mount.target,
                kind.section()
            )));
        }
        out.push(mount);
    }
    Ok(out)
}

/// A `uid` or `gid`: a number, written as text or not.
fn numeric_id(value: &Value, place: &Place) -> Parsed<Option<String>> {
    let Some(id) = opt_string(value, place)? else {
        return Ok(None);
    };
    if id.parse::<u32>().is_err() {
        return Err(place.fault(format!("{id:?} is not a numeric user or group ID; write the number, e.g. \"1000\"")));
    }
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    fn lookup(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    fn declared(kind: Kind, text: &str) -> Parsed<BTreeMap<String, Declared>> {
        let cx = Sources { dir: Path::new("/srv/app"), lookup: &lookup };
        declarations(kind, &yaml(text), &Place::root().key(kind.section()), &cx, &mut Vec::new())
    }

    #[test]
    fn declarations_in_every_form() {
        let secrets = declared(Kind::Secret, "{a: {file: ./a.txt}, b: {environment: TOKEN}}").unwrap();
        assert_eq!(secrets["a"], Declared::Ready(FileSource::File("/srv/app/a.txt".into())));
        assert_eq!(
            secrets["b"],
            Declared::Ready(FileSource::Environment { variable: "TOKEN".into(), value: "s3cret".into() })
        );
        let configs = declared(Kind::Config, "{c: {content: hello}}").unwrap();
        assert_eq!(configs["c"], Declared::Ready(FileSource::Content("hello".into())));
        let unusable = declared(
            Kind::Secret,
            "{a: {environment: MISSING}, b: {external: true}, c: {external: true, name: prod-c}, \
             d: {external: {name: legacy-d}}}",
        )
        .unwrap();
        assert_eq!(unusable["a"], Declared::Unset("MISSING".into()));
        assert_eq!(unusable["b"], Declared::External("b".into()));
        assert_eq!(unusable["c"], Declared::External("prod-c".into()));
        assert_eq!(unusable["d"], Declared::External("legacy-d".into()));
        for (kind, bad, needle) in [
            (Kind::Secret, "{a: {content: x}}", "unknown key"),
            (Kind::Secret, "{a: {}}", "needs `file:`"),
            (Kind::Config, "{a: {file: x, content: y}}", "keep one"),
            (Kind::Secret, "{a: {file: x, external: true}}", "keep one"),
            (Kind::Secret, "{a: {external: {name: x}, name: y}}", "disagree"),
        ] {
            let err = declared(kind, bad).unwrap_err();
            assert!(err.message.contains(needle), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn references_get_compose_targets() {
        let secrets = declared(Kind::Secret, "{a: {file: ./a}, b: {environment: TOKEN}}").unwrap();
        let at = Place::root().key("services").key("web").key("secrets");
        let mut warnings = Vec::new();
        let got = references(
            Kind::Secret,
            &yaml("[a, {source: b, target: tok, uid: '1005', mode: 0440}, {source: a, target: /etc/a, mode: 0400}]"),
            &at,
            &secrets,
            &mut warnings,
        )
        .unwrap();
        assert_eq!(got[0].target, "/run/secrets/a");
        assert_eq!(
            (got[1].target.as_str(), got[1].uid.as_deref(), got[1].mode),
            ("/run/secrets/tok", Some("1005"), Some(0o440))
        );
        assert_eq!((got[2].target.as_str(), got[2].mode), ("/etc/a", None));
        assert_eq!(warnings.len(), 1, "mode on a host file is ignored with a warning");
        let configs = declared(Kind::Config, "{c: {content: x}}").unwrap();
        let got = references(Kind::Config, &yaml("[c]"), &at, &configs, &mut warnings).unwrap();
        assert_eq!(got[0].target, "/c");
        let err = references(Kind::Secret, &yaml("[nope]"), &at, &secrets, &mut warnings).unwrap_err();
        assert!(err.message.contains("not declared"), "{}", err.message);
        let unusable = declared(Kind::Secret, "{a: {environment: MISSING}, b: {external: true}}").unwrap();
        let err = references(Kind::Secret, &yaml("[a]"), &at, &unusable, &mut warnings).unwrap_err();
        assert!(err.message.contains("\"MISSING\", which is not set"), "{}", err.message);
        let got = references(Kind::Secret, &yaml("[b]"), &at, &unusable, &mut warnings).unwrap();
        assert_eq!(
            (&got[0].source, got[0].target.as_str()),
            (&FileSource::External { name: "b".into() }, "/run/secrets/b"),
            "an external secret is kept for the engine to judge"
        );
        let err = references(Kind::Secret, &yaml("[{source: b, uid: app}]"), &at, &secrets, &mut warnings).unwrap_err();
        assert!(err.message.contains("not a numeric user"), "{}", err.message);
        let err = references(Kind::Secret, &yaml("[a, a]"), &at, &secrets, &mut warnings).unwrap_err();
        assert!(err.message.contains("two secrets"), "{}", err.message);
    }
}

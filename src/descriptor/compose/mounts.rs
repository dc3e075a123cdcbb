//! `volumes:`, `tmpfs:` and `volumes_from:` of a service, and the host-path
//! rules they share with `build` and `env_file`.
//!
//! Short volume syntax is `SOURCE:TARGET[:MODE]` or `TARGET` (an anonymous
//! volume). A source starting with `.`, `/` or `~` is a host path (a bind
//! mount, made absolute against the descriptor's folder); anything else
//! names a volume declared at the top level. Long syntax is
//! `{type, source, target, read_only, bind, volume, tmpfs, consistency}`.

use std::path::{Component, Path, PathBuf};

use serde_yaml::Value;

use super::fault::{Parsed, Place};
use super::value::{boolean, is_empty, mapping, string, string_or_list, type_name, unknown_key, unsupported_key};
use crate::stack::{Mount, MountKind, VolumesFrom, VolumesFromSource};

#[rustfmt::skip]
const LONG_KEYS: &[&str] = &[
    "type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency", "image",
];

/// Resolves a host path as Compose does: `~` and `~/...` against `home`,
/// relative paths against the descriptor's folder `dir` (absolute), then
/// `.` and `..` removed without touching the filesystem.
pub(crate) fn host_path(text: &str, dir: &Path, home: Option<&str>) -> Result<PathBuf, String> {
    let joined = if text == "~" || text.starts_with("~/") {
        let home = home
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{text:?} starts with `~` but HOME is not set; write the path out"))?;
        Path::new(home).join(text.trim_start_matches('~').trim_start_matches('/'))
    } else if text.starts_with('~') {
        return Err(format!("{text:?}: `~user` paths are not supported; write the path out"));
    } else {
        dir.join(text)
    };
    Ok(clean(&joined))
}

/// Removes `.` and resolves `..` lexically (`/a/./b/../c` → `/a/c`).
pub(crate) fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// What the mounts of one service need from the loader.
pub(crate) struct PathContext<'a> {
    /// The descriptor's folder, absolute.
    pub(crate) dir: &'a Path,
    /// `HOME`, for `~`.
    pub(crate) home: Option<&'a str>,
}

impl PathContext<'_> {
    fn bind_source(&self, text: &str, place: &Place) -> Parsed<String> {
        host_path(text, self.dir, self.home).map(|p| p.to_string_lossy().into_owned()).map_err(|why| place.fault(why))
    }
}

/// Whether a short-syntax source is a host path rather than a volume name.
fn is_host_path(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

fn check_target(target: &str, place: &Place, written: &str) -> Parsed<()> {
    if !target.starts_with('/') {
        return Err(place.fault(format!(
            "invalid volume {written:?}: the path inside the container must be absolute, found {target:?}"
        )));
    }
    Ok(())
}

/// Parses the `volumes:` list of a service.
pub(crate) fn volumes(items: &[Value], place: &Place, cx: &PathContext<'_>) -> Parsed<Vec<Mount>> {
    let mut out: Vec<Mount> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = place.index(i);
        let mount = match item {
            Value::String(text) => short(text, &at, cx)?,
            Value::Mapping(_) => long(item, &at, cx)?,
            other => {
                return Err(at.fault(format!(
                    "expected a volume (\"data:/data\") or a mapping (type, source, target), found {}",
                    type_name(other)
                )))
            }
        };
        if out.iter().any(|m| m.target == mount.target) {
            return Err(at.fault(format!("{:?} is mounted twice in this service", mount.target)));
        }
        out.push(mount);
    }
    Ok(out)
}

fn short(text: &str, place: &Place, cx: &PathContext<'_>) -> Parsed<Mount> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => {
            return Err(place
                .fault(format!("invalid volume {text:?}: write SOURCE:TARGET[:MODE], e.g. \"data:/var/lib/data:ro\"")))
        }
    };
    check_target(target, place, text)?;
    let mut read_only = false;
    for option in mode.into_iter().flat_map(|m| m.split(',')) {
        match option {
            "ro" => read_only = true,
            "rw" => read_only = false,
            // Docker Desktop consistency hints: no effect on Linux.
            "cached" | "delegated" | "consistent" => {}
            "z" | "Z" | "nocopy" | "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                return Err(place.fault(format!(
                    "invalid volume {text:?}: mount option {option:?} is not supported yet by dockmaster; remove it"
                )))
            }
            other => {
                return Err(
                    place.fault(format!("invalid volume {text:?}: unknown mount option {other:?}; use ro or rw"))
                )
            }
        }
    }
    let (kind, source) = match source {
        None => (MountKind::Volume, None),
        Some("") => return Err(place.fault(format!("invalid volume {text:?}: the source is empty"))),
        Some(s) if is_host_path(s) => (MountKind::Bind, Some(cx.bind_source(s, place)?)),
        Some(name) => (MountKind::Volume, Some(name.to_string())),
    };
    Ok(Mount { kind, source, target: target.to_string(), read_only })
}

fn long(value: &Value, place: &Place, cx: &PathContext<'_>) -> Parsed<Mount> {
    let entries = mapping(value, place)?;
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    let kind = match get("type") {
        None => return Err(place.fault("a volume in long syntax needs `type` (volume, bind or tmpfs)")),
        Some(v) => match string(v, &place.key("type"))?.as_str() {
            "volume" => MountKind::Volume,
            "bind" => MountKind::Bind,
            "tmpfs" => MountKind::Tmpfs,
            other @ ("npipe" | "cluster" | "image") => {
                return Err(place.key("type").fault(format!(
                    "volume type {other:?} is not supported yet by dockmaster; use volume, bind or tmpfs"
                )))
            }
            other => {
                return Err(place
                    .key("type")
                    .fault(format!("unknown volume type {other:?}; use volume, bind or tmpfs")))
            }
        },
    };
    let mut mount = Mount { kind, source: None, target: String::new(), read_only: false };
    for (key, v) in &entries {
        let at = place.key(key);
        match key.as_str() {
            "type" => {}
            "source" => {
                let source = string(v, &at)?;
                mount.source = match kind {
                    _ if source.is_empty() => None,
                    MountKind::Bind => Some(cx.bind_source(&source, &at)?),
                    MountKind::Volume => Some(source),
                    MountKind::Tmpfs => return Err(at.fault("a tmpfs mount has no source; remove `source`")),
                };
            }
            "target" => mount.target = string(v, &at)?,
            "read_only" => mount.read_only = boolean(v, &at)?,
            "consistency" => {
                string(v, &at)?;
            }
            "bind" => options(v, &at, kind, MountKind::Bind, &[("create_host_path", Some(true)), ("recursive", None)])?,
            "volume" => options(v, &at, kind, MountKind::Volume, &[("nocopy", Some(false))])?,
            "tmpfs" => options(v, &at, kind, MountKind::Tmpfs, &[])?,
            "image" => return Err(unsupported_key(place, key)),
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, LONG_KEYS)),
        }
    }
    if mount.target.is_empty() {
        return Err(place.fault("a volume in long syntax needs `target`, the path inside the container"));
    }
    check_target(&mount.target, &place.key("target"), &mount.target)?;
    if kind == MountKind::Bind && mount.source.is_none() {
        return Err(place.fault("a bind mount needs `source`, the path on the host"));
    }
    if let (MountKind::Volume, Some(source)) = (kind, &mount.source) {
        if is_host_path(source) {
            return Err(place.key("source").fault(format!(
                "{source:?} is a host path: use `type: bind` for host paths, `type: volume` for named volumes"
            )));
        }
    }
    Ok(mount)
}

/// The per-type options block (`bind:`, `volume:`, `tmpfs:`). Options are
/// accepted only when they ask for what dockmaster does anyway: `allowed`
/// lists each known option with the one value accepted (`None`: only
/// `recursive: enabled`, the default).
fn options(
    value: &Value,
    place: &Place,
    kind: MountKind,
    block: MountKind,
    allowed: &[(&str, Option<bool>)],
) -> Parsed<()> {
    if is_empty(value) {
        return Ok(());
    }
    if kind != block {
        return Err(place.fault(format!(
            "options for a {} mount on a {} mount; remove them",
            kind_name(block),
            kind_name(kind)
        )));
    }
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        let accepted = match allowed.iter().find(|(k, _)| *k == key) {
            Some((_, Some(default))) => boolean(v, &at)? == *default,
            Some((_, None)) => string(v, &at)? == "enabled",
            None => key.starts_with("x-"),
        };
        if !accepted {
            return Err(unsupported_key(place, &key));
        }
    }
    Ok(())
}

fn kind_name(kind: MountKind) -> &'static str {
    match kind {
        MountKind::Volume => "volume",
        MountKind::Bind => "bind",
        MountKind::Tmpfs => "tmpfs",
    }
}

/// Parses `tmpfs:` of a service: a path or a list of paths. Options after
/// the path (`/run:size=64m`) are not supported yet.
pub(crate) fn tmpfs(value: &Value, place: &Place) -> Parsed<Vec<Mount>> {
    let mut out = Vec::new();
    for (i, target) in string_or_list(value, place)?.into_iter().enumerate() {
        let at = if value.is_sequence() { place.index(i) } else { place.clone() };
        if target.contains(':') {
            return Err(at.fault(format!(
                "tmpfs options in {target:?} are not supported yet by dockmaster; write the path alone"
            )));
        }
        check_target(&target, &at, &target)?;
        out.push(Mount { kind: MountKind::Tmpfs, source: None, target, read_only: false });
    }
    Ok(out)
}

/// Parses `volumes_from:`: `NAME` or `service:NAME` (a service of this
/// stack), `container:NAME` (an existing container), each optionally
/// followed by `:ro` or `:rw`.
pub(crate) fn volumes_from(value: &Value, place: &Place) -> Parsed<Vec<VolumesFrom>> {
    let mut out = Vec::new();
    for (i, text) in super::value::string_list(value, place)?.into_iter().enumerate() {
        let at = place.index(i);
        let bad = || {
            at.fault(format!(
                "invalid volumes_from {text:?}: write SERVICE, service:SERVICE or container:NAME, optionally with :ro or :rw"
            ))
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (kind, name, mode) = match parts.as_slice() {
            [name] => ("service", *name, None),
            [name, mode @ ("ro" | "rw")] => ("service", *name, Some(*mode)),
            [kind @ ("service" | "container"), name] => (*kind, *name, None),
            [kind @ ("service" | "container"), name, mode] => (*kind, *name, Some(*mode)),
            _ => return Err(bad()),
        };
        if name.is_empty() {
            return Err(bad());
        }
        let read_only = match mode {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(_) => return Err(bad()),
        };
        let source = if kind == "container" {
            VolumesFromSource::Container(name.to_string())
        } else {
            VolumesFromSource::Service(name.to_string())
        };
        out.push(VolumesFrom { source, read_only });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> PathContext<'static> {
        PathContext { dir: Path::new("/srv/app"), home: Some("/home/op") }
    }

    fn mount(kind: MountKind, source: Option<&str>, target: &str, read_only: bool) -> Mount {
        Mount { kind, source: source.map(String::from), target: target.into(), read_only }
    }

    fn load(yaml: &str) -> Parsed<Vec<Mount>> {
        let items: Vec<Value> = serde_yaml::from_str(yaml).unwrap();
        volumes(&items, &Place::root().key("volumes"), &cx())
    }

    #[test]
    fn short_syntax_forms() {
        let got = load(
            "- data:/var/lib/data\n- data2:/x:ro\n- ./site:/site\n- ../shared/./conf:/conf:ro\n- /abs:/abs:rw\n\
             - ~/cache:/cache\n- /anonymous\n- .:/app:cached\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                mount(MountKind::Volume, Some("data"), "/var/lib/data", false),
                mount(MountKind::Volume, Some("data2"), "/x", true),
                mount(MountKind::Bind, Some("/srv/app/site"), "/site", false),
                mount(MountKind::Bind, Some("/srv/shared/conf"), "/conf", true),
                mount(MountKind::Bind, Some("/abs"), "/abs", false),
                mount(MountKind::Bind, Some("/home/op/cache"), "/cache", false),
                mount(MountKind::Volume, None, "/anonymous", false),
                mount(MountKind::Bind, Some("/srv/app"), "/app", false),
            ]
        );
    }

    #[test]
    fn long_syntax_forms() {
        let got = load(
            "- {type: volume, source: data, target: /data, read_only: true, volume: {nocopy: false}}\n\
             - {type: bind, source: ./conf, target: /etc/conf, bind: {create_host_path: true}}\n\
             - {type: tmpfs, target: /run}\n- {type: volume, target: /anon}\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                mount(MountKind::Volume, Some("data"), "/data", true),
                mount(MountKind::Bind, Some("/srv/app/conf"), "/etc/conf", false),
                mount(MountKind::Tmpfs, None, "/run", false),
                mount(MountKind::Volume, None, "/anon", false),
            ]
        );
    }

    #[test]
    fn bad_volumes_say_why() {
        for (yaml, needle) in [
            ("- data:relative", "must be absolute"),
            ("- a:/b:c:d", "SOURCE:TARGET"),
            ("- data:/x:z", "not supported yet"),
            ("- data:/x:bogus", "unknown mount option"),
            ("- :/x", "source is empty"),
            ("- ~other/x:/x", "~user"),
            ("- {type: bind, target: /x}", "needs `source`"),
            ("- {type: volume, source: data}", "needs `target`"),
            ("- {type: npipe, source: x, target: /x}", "not supported yet"),
            ("- {type: volume, source: ./x, target: /x}", "type: bind"),
            ("- {type: tmpfs, source: x, target: /x}", "no source"),
            ("- {type: volume, source: d, target: /x, volume: {subpath: a}}", "not supported yet"),
            ("- {type: bind, source: ., target: /x, bind: {selinux: z}}", "not supported yet"),
            ("- {type: volume, source: d, target: /x, targt: /y}", "did you mean \"target\""),
            ("- data:/x\n- other:/x", "mounted twice"),
            ("- [a]", "expected a volume"),
        ] {
            let err = load(yaml).unwrap_err();
            assert!(err.message.contains(needle), "{yaml}: {}", err.message);
        }
    }

    #[test]
    fn volumes_from_forms() {
        let v: Value =
            serde_yaml::from_str("[data, 'data:ro', 'service:cfg:rw', 'container:legacy', 'container:x:ro']").unwrap();
        let got = volumes_from(&v, &Place::root()).unwrap();
        let service = |n: &str| VolumesFromSource::Service(n.into());
        let container = |n: &str| VolumesFromSource::Container(n.into());
        assert_eq!(
            got,
            vec![
                VolumesFrom { source: service("data"), read_only: false },
                VolumesFrom { source: service("data"), read_only: true },
                VolumesFrom { source: service("cfg"), read_only: false },
                VolumesFrom { source: container("legacy"), read_only: false },
                VolumesFrom { source: container("x"), read_only: true },
            ]
        );
        for bad in ["['a:b:c:d']", "['data:xx']", "['container:']", "[{a: 1}]"] {
            let v: Value = serde_yaml::from_str(bad).unwrap();
            assert!(volumes_from(&v, &Place::root()).is_err(), "{bad}");
        }
    }

    #[test]
    fn tmpfs_paths() {
        let v: Value = serde_yaml::from_str("[/run, /tmp]").unwrap();
        assert_eq!(tmpfs(&v, &Place::root()).unwrap().len(), 2);
        assert!(tmpfs(&Value::from("/run:size=1m"), &Place::root()).is_err());
        assert!(tmpfs(&Value::from("run"), &Place::root()).is_err());
    }
}

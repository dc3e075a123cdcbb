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
use super::units::byte_size;
use super::value::{
    boolean, describe, integer, is_empty, mapping, string, string_or_list, type_name, unknown_key, unsupported_key,
};
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

/// The path inside the container, checked absolute and cleaned as Compose
/// cleans it (`/etc/` → `/etc`).
fn container_path(target: &str, place: &Place, written: &str) -> Parsed<String> {
    if target.is_empty() {
        return Err(place.fault(format!("invalid volume {written:?}: the path inside the container is empty")));
    }
    if !target.starts_with('/') {
        return Err(place.fault(format!(
            "invalid volume {written:?}: the path inside the container must be absolute, found {target:?}"
        )));
    }
    Ok(clean(Path::new(target)).to_string_lossy().into_owned())
}

/// The path inside the container of a volume or bind mount, cleaned. A
/// relative one is kept as written, as `docker compose config` keeps it
/// (`- db-data` is an anonymous volume at `db-data`): no engine can mount
/// it, so [`crate::stack::Stack::unrunnable`] stops plan and deploy on it,
/// but `dockmaster config` shows the file as Compose reads it.
fn volume_target(target: &str, place: &Place, written: &str) -> Parsed<String> {
    if target.starts_with('/') || target.is_empty() {
        return container_path(target, place, written);
    }
    Ok(clean(Path::new(target)).to_string_lossy().into_owned())
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

const PROPAGATIONS: &[&str] = &["private", "rprivate", "shared", "rshared", "slave", "rslave"];

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
    let target = volume_target(target, place, text)?;
    let (kind, source) = match source {
        None => (MountKind::Volume, None),
        Some("") => return Err(place.fault(format!("invalid volume {text:?}: the source is empty"))),
        Some(s) if is_host_path(s) => (MountKind::Bind, Some(cx.bind_source(s, place)?)),
        Some(name) => (MountKind::Volume, Some(name.to_string())),
    };
    let mut mount = Mount::new(kind, source, target, false);
    for option in mode.into_iter().flat_map(|m| m.split(',')) {
        let wrong_kind = |what: &str| {
            place.fault(format!("invalid volume {text:?}: mount option {option:?} applies to {what} only"))
        };
        match option {
            "ro" => mount.read_only = true,
            "rw" => mount.read_only = false,
            // Docker Desktop consistency hints: no effect on Linux.
            "cached" | "delegated" | "consistent" => {}
            // Compose reads it on a named volume too (its `config` prints it
            // as `bind.selinux`) and sends it in the volume's bind string;
            // the engine spec does the same.
            "z" | "Z" => mount.selinux = Some(option.to_string()),
            "nocopy" if kind == MountKind::Volume => mount.nocopy = true,
            "nocopy" => return Err(wrong_kind("volumes")),
            p if PROPAGATIONS.contains(&p) && kind == MountKind::Bind => mount.propagation = Some(p.to_string()),
            p if PROPAGATIONS.contains(&p) => return Err(wrong_kind("bind mounts (host paths)")),
            other => {
                return Err(place.fault(format!(
                    "invalid volume {text:?}: unknown mount option {other:?}; use ro, rw, z, Z, nocopy or a \
                     propagation (rprivate, shared, ...)"
                )))
            }
        }
    }
    Ok(mount)
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
    let mut mount = Mount::new(kind, None, String::new(), false);
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
            "bind" | "volume" | "tmpfs" => options(v, &at, &mut mount, key)?,
            "image" => return Err(unsupported_key(place, key)),
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, LONG_KEYS)),
        }
    }
    if mount.target.is_empty() {
        return Err(place.fault("a volume in long syntax needs `target`, the path inside the container"));
    }
    mount.target = volume_target(&mount.target, &place.key("target"), &mount.target)?;
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

/// The per-type options block (`bind:`, `volume:`, `tmpfs:`) of a long
/// syntax mount. `create_host_path: true` and `recursive: enabled` are what
/// dockmaster does anyway; other values are refused rather than ignored.
fn options(value: &Value, place: &Place, mount: &mut Mount, block: &str) -> Parsed<()> {
    if is_empty(value) {
        return Ok(());
    }
    // `bind: {selinux: Z}` on a volume is what Compose's `config` prints for
    // `data:/x:Z`; read it back the same way.
    let selinux_only = |v: &Value| {
        mapping(v, place).is_ok_and(|m| m.iter().all(|(k, x)| k == "selinux" || k == "create_host_path" || x.is_null()))
    };
    if block != kind_name(mount.kind) && !(block == "bind" && mount.kind == MountKind::Volume && selinux_only(value)) {
        return Err(
            place.fault(format!("options for a {block} mount on a {} mount; remove them", kind_name(mount.kind)))
        );
    }
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        if v.is_null() || key.starts_with("x-") {
            continue;
        }
        match (block, key.as_str()) {
            ("bind", "create_host_path") if boolean(v, &at)? => {}
            ("bind", "recursive") if string(v, &at)? == "enabled" => {}
            ("bind", "selinux") => match string(v, &at)?.as_str() {
                s @ ("z" | "Z") => mount.selinux = Some(s.to_string()),
                other => return Err(at.fault(format!("selinux must be \"z\" or \"Z\", found {other:?}"))),
            },
            ("bind", "propagation") => {
                let p = string(v, &at)?;
                if !PROPAGATIONS.contains(&p.as_str()) {
                    return Err(at.fault(format!("unknown propagation {p:?}; use one of {}", PROPAGATIONS.join(", "))));
                }
                mount.propagation = Some(p);
            }
            ("volume", "nocopy") => mount.nocopy = boolean(v, &at)?,
            ("volume", "subpath") => {
                let sub = string(v, &at)?;
                if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                    return Err(at.fault(format!("subpath {sub:?} must be a relative path inside the volume")));
                }
                mount.subpath = Some(sub).filter(|s| !s.is_empty());
            }
            ("tmpfs", "size") => mount.tmpfs_size = Some(tmpfs_size(v, &at)?),
            ("tmpfs", "mode") => mount.tmpfs_mode = Some(file_mode(v, &at)?),
            _ => return Err(unsupported_key(place, &key)),
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

/// A tmpfs size: bytes as a number, or a size with a unit (`64m`).
fn tmpfs_size(value: &Value, place: &Place) -> Parsed<i64> {
    let size = match value {
        Value::Number(_) => integer(value, place)?,
        other => byte_size(&string(other, place)?).map_err(|why| place.fault(why))?,
    };
    if size < 0 {
        return Err(place.fault(format!("a size cannot be negative, found {size}")));
    }
    Ok(size)
}

/// Permission bits, written in octal as people write them: `0440` and
/// `"1777"` (text to YAML 1.2) and `1777` (a number whose digits are all
/// octal) are read as octal; `0o440` is octal to YAML already; a number
/// with an 8 or a 9 (`288`) is taken as the decimal value of the bits.
pub(crate) fn file_mode(value: &Value, place: &Place) -> Parsed<u32> {
    let bad = || place.fault(format!("invalid mode {}: write octal permission bits, e.g. 0440", describe(value)));
    let mode = match value {
        Value::Number(n) => {
            let n = n.as_u64().ok_or_else(bad)?;
            let digits = n.to_string();
            let parsed = if digits.chars().all(|c| c <= '7') { u64::from_str_radix(&digits, 8).ok() } else { Some(n) };
            parsed.and_then(|m| u32::try_from(m).ok()).ok_or_else(bad)?
        }
        other => {
            let text = string(other, place)?;
            let digits = text.trim().trim_start_matches("0o");
            u32::from_str_radix(digits, 8).map_err(|_| bad())?
        }
    };
    if mode > 0o7777 {
        return Err(bad());
    }
    Ok(mode)
}

/// Parses `tmpfs:` of a service: a path or a list of paths, each with
/// optional mount options after a colon (`/run:size=64m,mode=1777,noexec`).
pub(crate) fn tmpfs(value: &Value, place: &Place) -> Parsed<Vec<Mount>> {
    let mut out = Vec::new();
    for (i, entry) in string_or_list(value, place)?.into_iter().enumerate() {
        let at = if value.is_sequence() { place.index(i) } else { place.clone() };
        let (target, options) = entry.split_once(':').unwrap_or((entry.as_str(), ""));
        let target = container_path(target, &at, &entry)?;
        let mut mount = Mount::new(MountKind::Tmpfs, None, target, false);
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let bad = |why: String| at.fault(format!("invalid tmpfs {entry:?}: {why}"));
            match option.split_once('=') {
                Some(("size", size)) => {
                    mount.tmpfs_size = Some(tmpfs_size(&Value::from(size), &at).map_err(|f| bad(f.message))?)
                }
                Some(("mode", mode)) => {
                    mount.tmpfs_mode = Some(file_mode(&Value::from(mode), &at).map_err(|f| bad(f.message))?)
                }
                None if option == "ro" => mount.read_only = true,
                None if option == "rw" => mount.read_only = false,
                None if TMPFS_FLAGS.contains(&option) => mount.tmpfs_flags.push(option.to_string()),
                _ => {
                    return Err(bad(format!(
                        "unknown option {option:?}; use size=, mode=, ro, rw or {}",
                        TMPFS_FLAGS.join(", ")
                    )))
                }
            }
        }
        out.push(mount);
    }
    Ok(out)
}

/// tmpfs mount flags the engine passes to the kernel.
const TMPFS_FLAGS: &[&str] = &["exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime"];

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
        Mount::new(kind, source.map(String::from), target, read_only)
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
    fn mount_options_reach_the_model() {
        let got = load(
            "- ./conf:/conf:z,ro\n- /srv:/srv:Z,rshared\n- data:/data:nocopy\n\
             - {type: bind, source: ., target: /b, bind: {selinux: z, propagation: rslave, create_host_path: true}}\n\
             - {type: volume, source: data, target: /v, volume: {nocopy: true, subpath: sub/dir}}\n\
             - {type: tmpfs, target: /t, tmpfs: {size: 64m, mode: 1777}}\n",
        )
        .unwrap();
        assert_eq!((got[0].selinux.as_deref(), got[0].read_only), (Some("z"), true));
        assert_eq!((got[1].selinux.as_deref(), got[1].propagation.as_deref()), (Some("Z"), Some("rshared")));
        assert!(got[2].nocopy);
        assert_eq!((got[3].selinux.as_deref(), got[3].propagation.as_deref()), (Some("z"), Some("rslave")));
        assert_eq!((got[4].nocopy, got[4].subpath.as_deref()), (true, Some("sub/dir")));
        assert_eq!((got[5].tmpfs_size, got[5].tmpfs_mode), (Some(64 << 20), Some(0o1777)));
    }

    #[test]
    fn relative_container_paths_are_kept_as_compose_keeps_them() {
        // `docker compose config` reads these; the engines refuse them
        // before anything changes (Stack::unrunnable).
        let got = load("- db-data\n- data:rel/./x/\n- {type: volume, source: d, target: t}\n").unwrap();
        let targets: Vec<(&str, Option<&str>)> = got.iter().map(|m| (m.target.as_str(), m.source.as_deref())).collect();
        assert_eq!(targets, [("db-data", None), ("rel/x", Some("data")), ("t", Some("d"))]);
    }

    #[test]
    fn bad_volumes_say_why() {
        for (yaml, needle) in [
            ("- {type: volume, target: ''}", "needs `target`"),
            ("- a:/b:c:d", "SOURCE:TARGET"),
            ("- data:/x:rshared", "bind mounts"),
            ("- ./x:/x:nocopy", "volumes only"),
            ("- data:/x:bogus", "unknown mount option"),
            ("- :/x", "source is empty"),
            ("- ~other/x:/x", "~user"),
            ("- {type: bind, target: /x}", "needs `source`"),
            ("- {type: volume, source: data}", "needs `target`"),
            ("- {type: npipe, source: x, target: /x}", "not supported yet"),
            ("- {type: volume, source: ./x, target: /x}", "type: bind"),
            ("- {type: tmpfs, source: x, target: /x}", "no source"),
            ("- {type: volume, source: d, target: /x, volume: {subpath: /abs}}", "relative path"),
            ("- {type: volume, source: d, target: /x, volume: {labels: {a: b}}}", "not supported yet"),
            ("- {type: bind, source: ., target: /x, bind: {selinux: q}}", "selinux"),
            ("- {type: bind, source: ., target: /x, bind: {create_host_path: false}}", "not supported yet"),
            ("- {type: bind, source: ., target: /x, volume: {nocopy: true}}", "options for a volume mount"),
            ("- {type: tmpfs, target: /x, tmpfs: {mode: 99999}}", "octal"),
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
    fn tmpfs_paths_and_options() {
        let v: Value = serde_yaml::from_str("[/run, '/tmp:size=64m,mode=1777,noexec,nosuid']").unwrap();
        let got = tmpfs(&v, &Place::root()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[1].tmpfs_size, got[1].tmpfs_mode), (Some(64 << 20), Some(0o1777)));
        assert_eq!(got[1].tmpfs_flags, vec!["noexec", "nosuid"]);
        assert!(tmpfs(&Value::from("/run:bogus"), &Place::root()).is_err());
        assert!(tmpfs(&Value::from("/run:size=lots"), &Place::root()).is_err());
        assert!(tmpfs(&Value::from("run"), &Place::root()).is_err());
    }
}

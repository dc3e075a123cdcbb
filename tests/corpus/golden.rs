//! The fields dockmaster's model supports (with `container.rs`), read two ways into one shape:
//! from a golden `config` output (Compose v2.40.3 or docker-compose
//! 1.29.2) and from a loaded [`Stack`]. Comparing the two shapes field by
//! field says which field differs.
//!
//! The golden outputs are read independently of the loader under test:
//! this file has its own small parsers for ports, volumes, durations, sizes
//! and command lines, written from the two tools' output formats.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

use dockmaster::stack::{MountKind, Service, Stack, VolumesFromSource};

/// One service's supported fields, each as comparable text (absent fields
/// are left out, so "not set" on both sides is equal).
pub type Facts = BTreeMap<&'static str, String>;

/// Where a golden file's relative paths start and what `~` means.
pub struct Paths<'a> {
    /// The folder of the corpus file (Compose v2 ran without path resolution).
    pub dir: &'a Path,
    /// The HOME the loader was given.
    pub home: &'a str,
}

pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Sequence(items)) => items.clone(),
        Some(other) if !other.is_null() => vec![other.clone()],
        _ => Vec::new(),
    }
}

pub fn show<T: std::fmt::Debug>(value: T) -> String {
    format!("{value:?}")
}

/// A command line split as a POSIX shell would (quotes and backslashes).
pub fn shell_split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => word.extend(chars.next()),
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                word.extend(chars.next());
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Go durations as both tools print them: `1m30s`, `1m0s`, `500ms`, `10s`.
pub fn duration_ms(text: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Some(total.round() as u64)
}

/// Byte sizes: a number of bytes, or `50M`, `1g`, `512k`, `1gb` (powers of 1024).
pub fn bytes(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (digits, factor) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1i64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = digits.trim().parse().ok()?;
    Some((n * factor as f64) as i64)
}

/// A host path from a golden file, made absolute as dockmaster makes it.
pub fn host_path(source: &str, paths: &Paths<'_>) -> String {
    let joined = if let Some(rest) = source.strip_prefix('~') {
        format!("{}{rest}", paths.home)
    } else if source.starts_with('/') {
        source.to_string()
    } else {
        paths.dir.join(source).display().to_string()
    };
    // Lexical clean-up of `.` and `..`.
    let mut out: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    format!("/{}", out.join("/"))
}

/// `(host_ip, published, target, protocol)` for one golden port entry;
/// ranges expand into one entry per port.
fn golden_ports(v: &Value) -> Vec<(String, String, String, String)> {
    if let Value::Mapping(_) = v {
        let field = |k: &str| v.get(k).and_then(text).unwrap_or_default();
        let protocol = Some(field("protocol")).filter(|p| !p.is_empty()).unwrap_or_else(|| "tcp".into());
        return vec![(field("host_ip"), field("published"), field("target"), protocol)];
    }
    let spec = text(v).unwrap_or_default();
    let (rest, protocol) = spec.rsplit_once('/').unwrap_or((&spec, "tcp"));
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let target = parts[0];
    let published = parts.get(1).copied().unwrap_or_default();
    let ip = parts.get(2).copied().unwrap_or_default();
    let range = |r: &str| -> Vec<String> {
        match r.split_once('-') {
            Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) if a <= b => (a..=b).map(|n| n.to_string()).collect(),
                _ => vec![r.to_string()],
            },
            None => vec![r.to_string()],
        }
    };
    let targets = range(target);
    let published = if published.is_empty() { vec![String::new(); targets.len()] } else { range(published) };
    targets
        .into_iter()
        .zip(published.into_iter().chain(std::iter::repeat(String::new())))
        .map(|(t, p)| (ip.to_string(), p, t, protocol.to_string()))
        .collect()
}

/// A mount's options as one comparable text: SELinux label, `nocopy`,
/// propagation, sub-path.
fn mount_options(selinux: &str, nocopy: bool, propagation: &str, subpath: &str) -> String {
    format!("{selinux}|{}|{propagation}|{subpath}", if nocopy { "nocopy" } else { "" })
}

/// `(kind, source, target, read_only, options)` for one golden mount.
fn golden_mount(v: &Value, paths: &Paths<'_>) -> (String, String, String, bool, String) {
    if let Value::Mapping(_) = v {
        let field = |k: &str| v.get(k).and_then(text).unwrap_or_default();
        let kind = field("type");
        let mut source = field("source");
        if kind == "bind" {
            source = host_path(&source, paths);
        }
        let read_only = v.get("read_only").and_then(Value::as_bool).unwrap_or(false);
        let option = |section: &str, k: &str| v.get(section).and_then(|b| b.get(k)).and_then(text).unwrap_or_default();
        let nocopy = v.get("volume").and_then(|b| b.get("nocopy")).and_then(Value::as_bool).unwrap_or(false);
        let options = mount_options(
            &option("bind", "selinux"),
            nocopy,
            &option("bind", "propagation"),
            &option("volume", "subpath"),
        );
        return (kind, source, field("target"), read_only, options);
    }
    let spec = text(v).unwrap_or_default();
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [target] => ("volume".into(), String::new(), target.to_string(), false, mount_options("", false, "", "")),
        [source, target, rest @ ..] => {
            let options: Vec<&str> = rest.first().map(|m| m.split(',').collect()).unwrap_or_default();
            let bind = source.starts_with(['/', '.', '~']);
            let pick =
                |set: &[&str]| options.iter().find(|o| set.contains(o)).map(|s| s.to_string()).unwrap_or_default();
            let propagations = ["private", "rprivate", "shared", "rshared", "slave", "rslave"];
            (
                if bind { "bind" } else { "volume" }.into(),
                if bind { host_path(source, paths) } else { source.to_string() },
                target.to_string(),
                options.contains(&"ro"),
                mount_options(&pick(&["z", "Z"]), options.contains(&"nocopy"), &pick(&propagations), ""),
            )
        }
        [] => Default::default(),
    }
}

/// `deploy.restart_policy` as the engine restart policy Compose applies.
fn restart_from_policy(policy: &Value) -> String {
    let condition = policy.get("condition").and_then(text).unwrap_or_else(|| "any".into());
    let attempts = policy.get("max_attempts").and_then(text).filter(|a| a != "0");
    match (condition.as_str(), attempts) {
        ("none" | "no", _) => "no".into(),
        ("on-failure", Some(n)) => format!("on-failure:{n}"),
        ("on-failure", None) => "on-failure".into(),
        ("unless-stopped", _) => "unless-stopped".into(),
        _ => "always".into(),
    }
}

fn healthcheck_facts(test: Vec<String>, durations: [Option<u64>; 4], retries: Option<u64>, disable: bool) -> String {
    if disable || test.first().is_some_and(|t| t == "NONE") {
        return "disabled".into();
    }
    show((test, durations, retries))
}

fn golden_healthcheck(h: &Value) -> String {
    let test = match h.get("test") {
        Some(Value::Sequence(items)) => items.iter().filter_map(text).collect(),
        Some(other) => match text(other) {
            Some(t) => vec!["CMD-SHELL".to_string(), t],
            None => vec![],
        },
        None => vec![],
    };
    let d = |k: &str| h.get(k).and_then(text).and_then(|t| duration_ms(&t));
    let retries = h.get("retries").and_then(text).and_then(|r| r.parse().ok());
    let disable = h.get("disable").and_then(Value::as_bool).unwrap_or(false);
    healthcheck_facts(test, [d("interval"), d("timeout"), d("start_period"), d("start_interval")], retries, disable)
}

fn kv(v: Option<&Value>, none_is_empty: bool) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    match v {
        Some(Value::Mapping(map)) => {
            for (k, value) in map {
                let value = text(value).or(if none_is_empty { Some(String::new()) } else { None });
                out.insert(text(k).unwrap_or_default(), value);
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items.iter().filter_map(text) {
                match item.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(item, if none_is_empty { Some(String::new()) } else { None }),
                };
            }
        }
        _ => {}
    }
    out
}

fn command(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Sequence(items) => Some(show(items.iter().filter_map(text).collect::<Vec<_>>())),
        Value::Null => None,
        other => Some(show(shell_split(&text(other)?))),
    }
}

/// The facts of a golden service.
pub fn golden_facts(svc: &Value, paths: &Paths<'_>) -> Facts {
    let mut f = Facts::new();
    let get = |k: &str| svc.get(k);
    if let Some(image) = get("image").and_then(text) {
        f.insert("image", image);
    }
    if let Some(c) = command(get("command")) {
        f.insert("command", c);
    }
    if let Some(c) = command(get("entrypoint")) {
        f.insert("entrypoint", c);
    }
    let env = kv(get("environment"), false);
    if !env.is_empty() {
        f.insert("environment", show(env));
    }
    let mut ports: Vec<_> = list(get("ports")).iter().flat_map(golden_ports).collect();
    ports.sort();
    if !ports.is_empty() {
        f.insert("ports", show(ports));
    }
    let mut mounts: Vec<_> = list(get("volumes")).iter().map(|v| golden_mount(v, paths)).collect();
    for t in list(get("tmpfs")).iter().filter_map(text) {
        let target = t.split(':').next().unwrap_or_default().to_string();
        mounts.push(("tmpfs".into(), String::new(), target, false, mount_options("", false, "", "")));
    }
    mounts.sort();
    if !mounts.is_empty() {
        f.insert("volumes", show(mounts));
    }
    let from: Vec<String> = list(get("volumes_from"))
        .iter()
        .filter_map(text)
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            match parts.as_slice() {
                [name] => format!("service:{name}:rw"),
                [name, mode @ ("ro" | "rw")] => format!("service:{name}:{mode}"),
                [kind, name] => format!("{kind}:{name}:rw"),
                _ => v.clone(),
            }
        })
        .collect();
    if !from.is_empty() {
        f.insert("volumes_from", show(from));
    }
    if let Some(mode) = get("network_mode").and_then(text) {
        f.insert("network_mode", mode);
    } else {
        let mut nets: BTreeMap<String, String> = BTreeMap::new();
        match get("networks") {
            Some(Value::Mapping(map)) => {
                for (k, v) in map {
                    nets.insert(text(k).unwrap_or_default(), network_facts(v));
                }
            }
            Some(Value::Sequence(items)) => {
                for name in items.iter().filter_map(text) {
                    nets.insert(name, network_facts(&Value::Null));
                }
            }
            _ => {}
        }
        if nets.is_empty() {
            nets.insert("default".into(), network_facts(&Value::Null));
        }
        f.insert("networks", show(nets));
    }
    let mut links: Vec<String> = list(get("links")).iter().filter_map(text).collect();
    links.sort();
    if !links.is_empty() {
        f.insert("links", show(links));
    }
    let deps: BTreeMap<String, (String, bool)> = match get("depends_on") {
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, v)| {
                let condition = v.get("condition").and_then(text).unwrap_or_else(|| "service_started".into());
                let required = v.get("required").and_then(Value::as_bool).unwrap_or(true);
                (text(k).unwrap_or_default(), (condition, required))
            })
            .collect(),
        other => list(other).iter().filter_map(text).map(|n| (n, ("service_started".into(), true))).collect(),
    };
    if !deps.is_empty() {
        f.insert("depends_on", show(deps));
    }
    if let Some(h) = get("healthcheck") {
        f.insert("healthcheck", golden_healthcheck(h));
    }
    let policy = svc.get("deploy").and_then(|d| d.get("restart_policy"));
    match (policy, get("restart").and_then(text)) {
        (Some(p), _) => {
            f.insert("restart", restart_from_policy(p));
        }
        (None, Some(r)) => {
            f.insert("restart", r);
        }
        _ => {}
    }
    let resources = svc.get("deploy").and_then(|d| d.get("resources"));
    let limit = |k: &str| resources.and_then(|r| r.get("limits")).and_then(|l| l.get(k)).and_then(text);
    let reservation = |k: &str| resources.and_then(|r| r.get("reservations")).and_then(|l| l.get(k)).and_then(text);
    let cpus = limit("cpus").or_else(|| get("cpus").and_then(text)).and_then(|c| c.parse::<f64>().ok());
    let memory = limit("memory").or_else(|| get("mem_limit").and_then(text)).and_then(|m| bytes(&m));
    let reserve = reservation("memory").or_else(|| get("mem_reservation").and_then(text)).and_then(|m| bytes(&m));
    let pids = limit("pids").or_else(|| get("pids_limit").and_then(text)).and_then(|p| p.parse::<i64>().ok());
    if cpus.is_some() || memory.is_some() || reserve.is_some() || pids.is_some() {
        f.insert("resources", show((cpus, memory, reserve, pids)));
    }
    let labels = kv(get("labels"), true);
    if !labels.is_empty() {
        f.insert("labels", show(labels.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect::<Vec<_>>()));
    }
    let mut files: Vec<(String, String)> = Vec::new();
    for (key, default_dir) in [("secrets", "/run/secrets/"), ("configs", "/")] {
        for item in list(get(key)) {
            let (source, target) = match &item {
                Value::Mapping(_) => {
                    (item.get("source").and_then(text).unwrap_or_default(), item.get("target").and_then(text))
                }
                other => (text(other).unwrap_or_default(), None),
            };
            let target = target.unwrap_or_else(|| source.clone());
            let target = if target.starts_with('/') { target } else { format!("{default_dir}{target}") };
            files.push((source, target));
        }
    }
    files.sort();
    if !files.is_empty() {
        f.insert("secrets_configs", show(files));
    }
    f
}

fn network_facts(v: &Value) -> String {
    let mut aliases: Vec<String> = list(v.get("aliases")).iter().filter_map(text).collect();
    aliases.sort();
    let ipv4 = v.get("ipv4_address").and_then(text);
    let ipv6 = v.get("ipv6_address").and_then(text);
    show((aliases, ipv4, ipv6))
}

/// The facts of a loaded service; `implied` adds the start order that
/// links, volumes_from and network_mode imply to `depends_on`.
pub fn model_facts(stack: &Stack, name: &str, svc: &Service, implied: bool) -> Facts {
    let mut f = Facts::new();
    f.insert("image", svc.image.clone());
    if let Some(c) = &svc.command {
        f.insert("command", show(c));
    }
    if let Some(c) = &svc.entrypoint {
        f.insert("entrypoint", show(c));
    }
    if !svc.environment.is_empty() {
        f.insert("environment", show(&svc.environment));
    }
    let mut ports: Vec<_> = svc
        .ports
        .iter()
        .map(|p| {
            (
                p.host_ip.clone().unwrap_or_default(),
                p.published.map(|n| n.to_string()).unwrap_or_default(),
                p.target.to_string(),
                p.protocol.clone(),
            )
        })
        .collect();
    ports.sort();
    if !ports.is_empty() {
        f.insert("ports", show(ports));
    }
    let mut mounts: Vec<_> = svc
        .volumes
        .iter()
        .map(|m| {
            let kind = match m.kind {
                MountKind::Volume => "volume",
                MountKind::Bind => "bind",
                MountKind::Tmpfs => "tmpfs",
            };
            (
                kind.to_string(),
                m.source.clone().unwrap_or_default(),
                m.target.clone(),
                m.read_only,
                mount_options(
                    m.selinux.as_deref().unwrap_or_default(),
                    m.nocopy,
                    m.propagation.as_deref().unwrap_or_default(),
                    m.subpath.as_deref().unwrap_or_default(),
                ),
            )
        })
        .collect();
    mounts.sort();
    if !mounts.is_empty() {
        f.insert("volumes", show(mounts));
    }
    let from: Vec<String> = svc
        .volumes_from
        .iter()
        .map(|v| {
            let mode = if v.read_only { "ro" } else { "rw" };
            match &v.source {
                VolumesFromSource::Service(s) => format!("service:{s}:{mode}"),
                VolumesFromSource::Container(c) => format!("container:{c}:{mode}"),
            }
        })
        .collect();
    if !from.is_empty() {
        f.insert("volumes_from", show(from));
    }
    if let Some(mode) = &svc.network_mode {
        f.insert("network_mode", mode.clone());
    } else {
        let mut nets: BTreeMap<String, String> = svc
            .networks
            .iter()
            .map(|(k, n)| {
                let mut aliases = n.aliases.clone();
                aliases.sort();
                (k.clone(), show((aliases, n.ipv4_address.clone(), n.ipv6_address.clone())))
            })
            .collect();
        if nets.is_empty() {
            nets.insert("default".into(), show((Vec::<String>::new(), None::<String>, None::<String>)));
        }
        f.insert("networks", show(nets));
    }
    let mut links = svc.links.clone();
    links.sort();
    if !links.is_empty() {
        f.insert("links", show(links));
    }
    let deps = if implied { stack.dependencies(name) } else { svc.depends_on.clone() };
    let deps: BTreeMap<String, (String, bool)> =
        deps.into_iter().map(|(k, d)| (k, (d.condition.as_str().to_string(), d.required))).collect();
    if !deps.is_empty() {
        f.insert("depends_on", show(deps));
    }
    if let Some(h) = &svc.healthcheck {
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as u64);
        f.insert(
            "healthcheck",
            healthcheck_facts(
                h.test.clone(),
                [ms(h.interval), ms(h.timeout), ms(h.start_period), ms(h.start_interval)],
                h.retries.map(u64::from),
                h.disable,
            ),
        );
    }
    if let Some(r) = &svc.restart {
        f.insert("restart", r.clone());
    }
    let r = &svc.resources;
    if !r.is_empty() {
        f.insert("resources", show((r.cpus, r.memory, r.memory_reservation, r.pids_limit)));
    }
    if !svc.labels.is_empty() {
        f.insert("labels", show(svc.labels.clone().into_iter().collect::<Vec<_>>()));
    }
    let mut files: Vec<(String, String)> =
        svc.secrets.iter().chain(&svc.configs).map(|m| (m.name.clone(), m.target.clone())).collect();
    files.sort();
    if !files.is_empty() {
        f.insert("secrets_configs", show(files));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_golden_parsers_read_what_the_tools_print() {
        assert_eq!(shell_split(r#"sh -c "echo 'a b'" x\ y"#), vec!["sh", "-c", "echo 'a b'", "x y"]);
        assert_eq!(duration_ms("1m30s"), Some(90_000));
        assert_eq!(duration_ms("1m0s"), Some(60_000));
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(bytes("50M"), Some(50 << 20));
        assert_eq!(bytes("52428800"), Some(52_428_800));
        assert_eq!(golden_ports(&Value::from("127.0.0.1:8000-8001:80-81/udp")).len(), 2);
    }
}

//! Merging Compose trees, with the rules of `docker compose -f a.yml -f b.yml`
//! (compose-go's `override` package), used for override files, `extends`
//! and `include`.
//!
//! A value from the later file wins, except where Compose merges:
//!
//! - mappings merge key by key; a null in the later file keeps the earlier
//!   value (use `!reset` to remove one);
//! - `environment`, `labels`, `build.args`, `sysctls`, `extra_hosts`,
//!   `deploy.labels` and network/volume `labels` merge by name, whichever
//!   form (list or mapping) each file uses;
//! - `depends_on` and a service's `networks` merge by name;
//! - `ports`, `volumes` (by target), `secrets`, `configs`, `devices` and
//!   `env_file` append, an entry for the same port or target replacing the
//!   earlier one; other lists append without duplicates;
//! - `command`, `entrypoint`, `healthcheck.test` and each `ulimits` entry are
//!   replaced whole; `logging` is replaced when the driver changes;
//! - `!reset` removes the earlier value, `!override` replaces it whole.
//!
//! Tags left after merging are removed by [`strip_tags`]: a `!reset` key is
//! dropped, an `!override` value unwrapped, any other tag refused.

use serde_yaml::{Mapping, Value};

use super::fault::{Parsed, Place};
use super::value::{key_string, scalar_string, MAX_DEPTH};

/// Merges the later file `over` into `base`, both whole documents.
pub(crate) fn merge_documents(base: Value, over: Value) -> Value {
    merge(base, over, &mut Vec::new()).unwrap_or(Value::Null)
}

/// Merges service settings `over` (the extending service) into `base` (the
/// extended one), as `extends` does.
pub(crate) fn merge_service(base: Value, over: Value) -> Value {
    let mut path = vec!["services".to_string(), "*".to_string()];
    merge(base, over, &mut path).unwrap_or_else(|| Value::Mapping(Mapping::new()))
}

/// How values at one place merge.
#[derive(Clone, Copy)]
enum Rule {
    /// The later value replaces the earlier whole.
    Replace,
    /// List or mapping of `KEY=value`: merged by key.
    Dict,
    /// `extra_hosts`: merged by host.
    Hosts,
    /// `depends_on`: merged by service.
    DependsOn,
    /// A service's `networks`: merged by network.
    Networks,
    /// `build`: a context string or a mapping.
    Build,
    /// `logging`: replaced when the driver changes.
    Logging,
    /// A list whose entries are identified by `key`.
    Keyed(fn(&Value) -> String),
    /// Mappings merge, lists append without duplicates, scalars replace.
    Default,
}

fn rule(path: &[String]) -> Rule {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["services", _, rest @ ..] => match rest {
            ["command"] | ["entrypoint"] | ["healthcheck", "test"] | ["ulimits", _] => Rule::Replace,
            ["environment"]
            | ["labels"]
            | ["annotations"]
            | ["sysctls"]
            | ["build", "args"]
            | ["build", "labels"]
            | ["deploy", "labels"] => Rule::Dict,
            ["extra_hosts"] => Rule::Hosts,
            ["depends_on"] => Rule::DependsOn,
            ["networks"] => Rule::Networks,
            ["build"] => Rule::Build,
            ["logging"] => Rule::Logging,
            ["ports"] => Rule::Keyed(port_key),
            ["volumes"] => Rule::Keyed(mount_key),
            ["secrets"] | ["configs"] => Rule::Keyed(file_key),
            ["devices"] => Rule::Keyed(mount_key),
            ["env_file"] => Rule::Keyed(env_file_key),
            _ => Rule::Default,
        },
        ["networks" | "volumes", _, "labels"] => Rule::Dict,
        ["name"] | ["version"] => Rule::Replace,
        _ => Rule::Default,
    }
}

fn tag_is(tagged: &serde_yaml::value::TaggedValue, name: &str) -> bool {
    tagged.tag.to_string().trim_start_matches('!') == name
}

/// The merged value, or `None` when the later file resets it.
fn merge(base: Value, over: Value, path: &mut Vec<String>) -> Option<Value> {
    let over = match over {
        Value::Tagged(t) if tag_is(&t, "reset") => return None,
        Value::Tagged(t) if tag_is(&t, "override") => return Some(t.value),
        other => other,
    };
    if over.is_null() {
        return Some(base);
    }
    if path.len() > MAX_DEPTH {
        return Some(over);
    }
    let collections = |v: &Value| v.is_sequence() || v.is_mapping();
    let both = collections(&base) && collections(&over);
    Some(match rule(path) {
        Rule::Replace => over,
        // Malformed values are left for the reader to refuse.
        Rule::Dict | Rule::Hosts | Rule::DependsOn | Rule::Networks if !both => over,
        Rule::Dict => merge_mappings(to_dict(base, '='), to_dict(over, '='), path),
        Rule::Hosts => merge_mappings(to_dict(base, ':'), to_dict(over, ':'), path),
        Rule::DependsOn => merge_mappings(depends_on_mapping(base), depends_on_mapping(over), path),
        Rule::Networks => merge_mappings(names_mapping(base), names_mapping(over), path),
        Rule::Build => merge_mappings(build_mapping(base), build_mapping(over), path),
        Rule::Logging => {
            let driver = |v: &Value| v.get("driver").and_then(scalar_string);
            match (driver(&base), driver(&over)) {
                (Some(a), Some(b)) if a != b => over,
                _ => default_merge(base, over, path),
            }
        }
        Rule::Keyed(key) => match (base, over) {
            (Value::Sequence(mut items), Value::Sequence(later)) => {
                for item in later {
                    let k = key(&item);
                    match items.iter().position(|i| key(i) == k) {
                        Some(at) => items[at] = item,
                        None => items.push(item),
                    }
                }
                Value::Sequence(items)
            }
            (_, over) => over,
        },
        Rule::Default => default_merge(base, over, path),
    })
}

fn default_merge(base: Value, over: Value, path: &mut Vec<String>) -> Value {
    match (base, over) {
        (Value::Mapping(a), Value::Mapping(b)) => merge_mappings(a, b, path),
        (Value::Sequence(mut items), Value::Sequence(later)) => {
            for item in later {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            Value::Sequence(items)
        }
        (_, over) => over,
    }
}

/// Merges two mappings key by key.
fn merge_mappings(mut out: Mapping, later: Mapping, path: &mut Vec<String>) -> Value {
    for (key, value) in later {
        path.push(key_string(&key));
        match out.shift_remove(&key) {
            Some(earlier) => {
                if let Some(merged) = merge(earlier, value, path) {
                    out.insert(key, merged);
                }
            }
            None => match value {
                Value::Tagged(t) if tag_is(&t, "reset") => {}
                Value::Tagged(t) if tag_is(&t, "override") => {
                    out.insert(key, t.value);
                }
                other => {
                    out.insert(key, other);
                }
            },
        }
        path.pop();
    }
    Value::Mapping(out)
}

/// A list of `KEY=value` (or `HOST:ip` with `sep` ':') as a mapping; a
/// mapping as it is; anything else (which the reader will refuse) as empty.
fn to_dict(value: Value, sep: char) -> Mapping {
    match value {
        Value::Sequence(items) => {
            let mut map = Mapping::new();
            for item in items {
                let Some(text) = scalar_string(&item) else {
                    // Not text: kept as a key so the reader refuses it.
                    map.insert(item, Value::Null);
                    continue;
                };
                let split = text.split_once('=').or_else(|| if sep == ':' { text.split_once(':') } else { None });
                match split {
                    Some((k, v)) => map.insert(Value::from(k), Value::from(v)),
                    None => map.insert(Value::from(text), Value::Null),
                };
            }
            map
        }
        Value::Mapping(map) => map,
        _ => Mapping::new(),
    }
}

/// `depends_on: [a]` as `{a: {condition: service_started}}`.
fn depends_on_mapping(value: Value) -> Mapping {
    match value {
        Value::Sequence(items) => {
            let mut map = Mapping::new();
            for item in items {
                let mut dep = Mapping::new();
                dep.insert("condition".into(), "service_started".into());
                map.insert(item, Value::Mapping(dep));
            }
            map
        }
        Value::Mapping(map) => map,
        _ => Mapping::new(),
    }
}

/// `networks: [a]` as `{a: null}`.
fn names_mapping(value: Value) -> Mapping {
    match value {
        Value::Sequence(items) => items.into_iter().map(|i| (i, Value::Null)).collect(),
        Value::Mapping(map) => map,
        _ => Mapping::new(),
    }
}

/// `build: ./dir` as `{context: ./dir}`.
fn build_mapping(value: Value) -> Mapping {
    match value {
        Value::Mapping(map) => map,
        Value::Null => Mapping::new(),
        other => {
            let mut map = Mapping::new();
            map.insert("context".into(), other);
            map
        }
    }
}

/// `[IP:][PUBLISHED:]TARGET[/PROTOCOL]` or the long form, normalised so
/// both forms of the same port meet.
fn port_key(value: &Value) -> String {
    let field = |k: &str| value.get(k).and_then(scalar_string).unwrap_or_default();
    if value.is_mapping() {
        let protocol = Some(field("protocol")).filter(|p| !p.is_empty()).unwrap_or_else(|| "tcp".into());
        return format!("{}:{}:{}/{protocol}", field("host_ip"), field("published"), field("target"));
    }
    let text = scalar_string(value).unwrap_or_default();
    let (rest, protocol) = text.rsplit_once('/').unwrap_or((&text, "tcp"));
    let mut parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    parts.resize(3, "");
    format!("{}:{}:{}/{protocol}", parts[2], parts[1], parts[0])
}

/// A mount or device by where it lands in the container.
fn mount_key(value: &Value) -> String {
    if let Some(target) = value.get("target").and_then(scalar_string) {
        return target;
    }
    if let Some(source) = value.get("source").and_then(scalar_string) {
        return source;
    }
    let text = scalar_string(value).unwrap_or_default();
    let parts: Vec<&str> = text.split(':').collect();
    parts.get(1).or(parts.first()).map(|s| s.to_string()).unwrap_or_default()
}

/// A secret or config reference by target (else source).
fn file_key(value: &Value) -> String {
    value
        .get("target")
        .and_then(scalar_string)
        .or_else(|| value.get("source").and_then(scalar_string))
        .or_else(|| scalar_string(value))
        .unwrap_or_default()
}

fn env_file_key(value: &Value) -> String {
    value.get("path").and_then(scalar_string).or_else(|| scalar_string(value)).unwrap_or_default()
}

/// Removes the tags merging left: a `!reset` entry is dropped (there was
/// nothing before it to reset), an `!override` value is unwrapped; any
/// other tag is refused.
pub(crate) fn strip_tags(value: &mut Value, place: &Place) -> Parsed<()> {
    strip(value, place, 0)
}

fn strip(value: &mut Value, place: &Place, depth: usize) -> Parsed<()> {
    if depth > MAX_DEPTH {
        return Err(place.fault(format!("values are nested more than {MAX_DEPTH} levels deep")));
    }
    match value {
        Value::Tagged(t) if tag_is(t, "override") => {
            *value = std::mem::take(&mut t.value);
            strip(value, place, depth + 1)
        }
        Value::Tagged(t) if tag_is(t, "reset") => {
            *value = Value::Null;
            Ok(())
        }
        Value::Tagged(t) => Err(place.fault(format!(
            "YAML tag `{}` is not supported: Compose knows `!reset` and `!override`; remove the tag",
            t.tag
        ))),
        Value::Mapping(map) => {
            map.retain(|_, v| !matches!(v, Value::Tagged(t) if tag_is(t, "reset")));
            for (key, child) in map.iter_mut() {
                strip(child, &place.key(&key_string(key)), depth + 1)?;
            }
            Ok(())
        }
        Value::Sequence(items) => {
            items.retain(|v| !matches!(v, Value::Tagged(t) if tag_is(t, "reset")));
            for (i, item) in items.iter_mut().enumerate() {
                strip(item, &place.index(i), depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    fn merged(base: &str, over: &str) -> Value {
        let mut v = merge_documents(yaml(base), yaml(over));
        strip_tags(&mut v, &Place::root()).unwrap();
        v
    }

    #[test]
    fn later_files_win_and_mappings_merge() {
        let v = merged(
            "services: {web: {image: a, tty: true, healthcheck: {test: [CMD, a], interval: 5s}}}",
            "services: {web: {image: b, healthcheck: {test: [CMD, b]}}, db: {image: c}}",
        );
        assert_eq!(v["services"]["web"]["image"], "b");
        assert_eq!(v["services"]["web"]["tty"], true);
        assert_eq!(v["services"]["web"]["healthcheck"]["test"], yaml("[CMD, b]"));
        assert_eq!(v["services"]["web"]["healthcheck"]["interval"], "5s");
        assert_eq!(v["services"]["db"]["image"], "c");
    }

    #[test]
    fn environment_and_labels_merge_by_name_in_either_form() {
        let v = merged(
            "services: {web: {environment: [A=1, B=2], labels: {x: '1'}, command: [a, b]}}",
            "services: {web: {environment: {B: '3', C: '4'}, labels: [y=2], command: [c]}}",
        );
        let web = &v["services"]["web"];
        assert_eq!(web["environment"], yaml("{A: '1', B: '3', C: '4'}"));
        assert_eq!(web["labels"], yaml("{x: '1', y: '2'}"));
        assert_eq!(web["command"], yaml("[c]"), "command is replaced, not appended");
    }

    #[test]
    fn lists_append_with_ports_and_mounts_replaced_by_identity() {
        let v = merged(
            "services: {web: {ports: ['8080:80', '443'], volumes: ['a:/data', './x:/x'], dns: [1.1.1.1], depends_on: [db]}}",
            "services: {web: {ports: [{target: 80, published: 8080}, '9090:90'], volumes: ['b:/data'], dns: [1.1.1.1, 8.8.8.8], depends_on: {cache: {condition: service_healthy}}}}",
        );
        let web = &v["services"]["web"];
        assert_eq!(web["ports"], yaml("[{target: 80, published: 8080}, '443', '9090:90']"));
        assert_eq!(web["volumes"], yaml("['b:/data', './x:/x']"));
        assert_eq!(web["dns"], yaml("[1.1.1.1, 8.8.8.8]"));
        assert_eq!(web["depends_on"]["db"]["condition"], "service_started");
        assert_eq!(web["depends_on"]["cache"]["condition"], "service_healthy");
    }

    #[test]
    fn reset_and_override_tags() {
        let v = merged(
            "services: {web: {image: a, command: [x], ports: ['80'], environment: {A: '1', B: '2'}}}",
            "services: {web: {command: !reset null, ports: !override ['81'], environment: {A: !reset null}, labels: !reset {}}}",
        );
        let web = &v["services"]["web"];
        assert!(web.get("command").is_none());
        assert_eq!(web["ports"], yaml("['81']"));
        assert_eq!(web["environment"], yaml("{B: '2'}"));
        assert!(web.get("labels").is_none());
    }

    #[test]
    fn logging_is_replaced_when_the_driver_changes() {
        let v = merged(
            "services: {a: {logging: {driver: syslog, options: {tag: x}}}, b: {logging: {driver: json-file, options: {max-size: 1m}}}}",
            "services: {a: {logging: {driver: json-file}}, b: {logging: {options: {max-file: '3'}}}}",
        );
        assert!(v["services"]["a"]["logging"].get("options").is_none());
        assert_eq!(v["services"]["b"]["logging"]["options"], yaml("{max-size: 1m, max-file: '3'}"));
    }

    #[test]
    fn unknown_tags_are_refused() {
        let mut v = yaml("services: {web: {image: !custom x}}");
        let err = strip_tags(&mut v, &Place::root()).unwrap_err();
        assert!(err.message.contains("!custom"), "{}", err.message);
    }

    #[test]
    fn extends_merges_a_service() {
        let v = merge_service(yaml("{image: a, environment: [A=1]}"), yaml("{environment: [B=2], build: .}"));
        assert_eq!(v["environment"], yaml("{A: '1', B: '2'}"));
        assert_eq!(v["build"], ".");
    }
}

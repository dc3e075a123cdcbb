//! The YAML layer: text → `serde_yaml::Value` with merge keys applied, and
//! the typed accessors every part of the loader reads values through.
//!
//! serde_yaml resolves anchors and aliases (and bounds both nesting depth and
//! alias expansion, so a "billion laughs" file fails instead of eating the
//! host), but leaves YAML merge keys (`<<: *base`) as ordinary keys; we apply
//! them here. The accessors accept what Compose accepts after interpolation:
//! `"true"` where a boolean is expected, `"5"` where a number is, any scalar
//! where a string is.

use serde_yaml::{Mapping, Value};

use super::fault::{Fault, Parsed, Place};

/// How deep the loader follows nested values. serde_yaml already stops at
/// 128 levels; this bound keeps our own recursion safe on its own terms.
pub(crate) const MAX_DEPTH: usize = 160;

/// A YAML syntax error: the message and, when known, line and column.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) message: String,
    pub(crate) line_column: Option<(usize, usize)>,
}

/// Parses the text and applies merge keys. Tags (`!reset`, `!override`)
/// are kept: they mean something when files are merged.
pub(crate) fn parse(text: &str) -> Result<Parsed<Value>, SyntaxError> {
    let mut value: Value = serde_yaml::from_str(text).map_err(|e| SyntaxError {
        message: e.to_string(),
        line_column: e.location().map(|l| (l.line(), l.column())),
    })?;
    Ok(apply_merge_keys(&mut value, &Place::root(), 0).map(|()| value))
}

/// Applies `<<: *a` and `<<: [*a, *b]` everywhere below `value`: keys
/// written in the mapping win over merged ones, and among merged mappings
/// the earlier wins. Merged mappings are resolved first, so chains of
/// merges work.
fn apply_merge_keys(value: &mut Value, place: &Place, depth: usize) -> Parsed<()> {
    if depth > MAX_DEPTH {
        return Err(place.fault(format!("values are nested more than {MAX_DEPTH} levels deep")));
    }
    match value {
        Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let child_place = place.key(&key_string(key));
                apply_merge_keys(child, &child_place, depth + 1)?;
            }
            if let Some(merged) = map.shift_remove("<<") {
                let at = place.key("<<");
                let sources = match merged {
                    Value::Mapping(source) => vec![source],
                    Value::Sequence(items) => {
                        let mut sources = Vec::new();
                        for (i, item) in items.into_iter().enumerate() {
                            match item {
                                Value::Mapping(source) => sources.push(source),
                                other => {
                                    return Err(at.index(i).fault(format!(
                                        "a merge key (`<<`) takes mappings, found {}",
                                        type_name(&other)
                                    )))
                                }
                            }
                        }
                        sources
                    }
                    other => {
                        return Err(at.fault(format!(
                            "a merge key (`<<`) takes a mapping or a list of mappings (`<<: *anchor`), found {}",
                            type_name(&other)
                        )))
                    }
                };
                merge_into(map, sources);
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                apply_merge_keys(item, &place.index(i), depth + 1)?;
            }
            Ok(())
        }
        // `!reset` / `!override` are applied when files are merged; any
        // other tag is refused then (see `merge::strip_tags`).
        Value::Tagged(tagged) => apply_merge_keys(&mut tagged.value, place, depth + 1),
        _ => Ok(()),
    }
}

fn merge_into(map: &mut Mapping, sources: Vec<Mapping>) {
    for source in sources {
        for (key, value) in source {
            if !map.contains_key(&key) {
                map.insert(key, value);
            }
        }
    }
}

/// A short description of a value's type for messages: "a list", "null".
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The text of a scalar (`5` → "5", `true` → "true"); `None` for null,
/// lists and mappings.
pub(crate) fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A mapping key as text. Compose keys are strings, but YAML allows `80:`
/// or `true:`; those read as their text, anything stranger as its type.
pub(crate) fn key_string(key: &Value) -> String {
    scalar_string(key).unwrap_or_else(|| format!("<{}>", type_name(key)))
}

/// Whether a value says nothing: null, an empty list or an empty mapping.
/// Keys dockmaster does not support yet are accepted when they say nothing.
pub(crate) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A string (any scalar is accepted as its text).
pub(crate) fn string(value: &Value, place: &Place) -> Parsed<String> {
    scalar_string(value).ok_or_else(|| place.fault(format!("expected a string, found {}", type_name(value))))
}

/// A string, or `None` for null.
pub(crate) fn opt_string(value: &Value, place: &Place) -> Parsed<Option<String>> {
    match value {
        Value::Null => Ok(None),
        other => string(other, place).map(Some),
    }
}

/// A boolean: `true`/`false`, also as text after interpolation
/// (`privileged: ${PRIVILEGED:-false}`).
pub(crate) fn boolean(value: &Value, place: &Place) -> Parsed<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => Ok(true),
            "false" | "no" | "off" | "n" => Ok(false),
            _ => Err(place.fault(format!("expected true or false, found {s:?}"))),
        },
        other => Err(place.fault(format!("expected true or false, found {}", type_name(other)))),
    }
}

/// An integer, also as text.
pub(crate) fn integer(value: &Value, place: &Place) -> Parsed<i64> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| place.fault(format!("expected a whole number, found {}", describe(value))))
}

/// A non-negative integer that fits `T`, also as text.
pub(crate) fn unsigned<T: TryFrom<i64>>(value: &Value, place: &Place) -> Parsed<T> {
    let n = integer(value, place)?;
    T::try_from(n).map_err(|_| place.fault(format!("{n} is out of range")))
}

/// A number with a fraction, also as text (`cpus: "0.5"`).
pub(crate) fn float(value: &Value, place: &Place) -> Parsed<f64> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(f) if f.is_finite() => Ok(f),
        _ => Err(place.fault(format!("expected a number, found {}", describe(value)))),
    }
}

/// A value for messages: the scalar quoted, or its type.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(_) | Value::Bool(_) => scalar_string(value).unwrap_or_default(),
        other => type_name(other).to_string(),
    }
}

/// The entries of a mapping, keys as text, in file order. Null reads as an
/// empty mapping, as Compose reads `volumes:` with nothing under it.
pub(crate) fn mapping<'a>(value: &'a Value, place: &Place) -> Parsed<Vec<(String, &'a Value)>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Mapping(map) => Ok(map.iter().map(|(k, v)| (key_string(k), v)).collect()),
        other => Err(place.fault(format!("expected a mapping, found {}", type_name(other)))),
    }
}

/// The items of a list. Null reads as an empty list.
pub(crate) fn list<'a>(value: &'a Value, place: &Place) -> Parsed<&'a [Value]> {
    match value {
        Value::Null => Ok(&[]),
        Value::Sequence(items) => Ok(items.as_slice()),
        other => Err(place.fault(format!("expected a list, found {}", type_name(other)))),
    }
}

/// A string or a list of strings (`dns`, `env_file`, `tmpfs`).
pub(crate) fn string_or_list(value: &Value, place: &Place) -> Parsed<Vec<String>> {
    match value {
        Value::Sequence(items) => items.iter().enumerate().map(|(i, item)| string(item, &place.index(i))).collect(),
        Value::Null => Ok(Vec::new()),
        other => string(other, place).map(|s| vec![s]),
    }
}

/// A list of strings.
pub(crate) fn string_list(value: &Value, place: &Place) -> Parsed<Vec<String>> {
    list(value, place)?.iter().enumerate().map(|(i, item)| string(item, &place.index(i))).collect()
}

/// Compose's "list or dict": `{KEY: value}` or `["KEY=value", "KEY"]`, in
/// file order. A missing value (`KEY` in the list, `KEY:` with null in the
/// mapping) is `None`; the caller decides what that means.
pub(crate) fn list_or_dict(value: &Value, place: &Place) -> Parsed<Vec<(String, Option<String>)>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Mapping(_) => mapping(value, place)?
            .into_iter()
            .map(|(k, v)| {
                let at = place.key(&k);
                match v {
                    Value::Null => Ok((k, None)),
                    Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
                        Err(at.fault(format!("expected a string or a number, found {}", type_name(v))))
                    }
                    _ => Ok((k, scalar_string(v))),
                }
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let text = string(item, &place.index(i))?;
                Ok(match text.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (text, None),
                })
            })
            .collect(),
        other => {
            Err(place
                .fault(format!("expected a mapping (KEY: value) or a list (- KEY=value), found {}", type_name(other))))
        }
    }
}

/// A fault for a key that is not part of the format, with the closest known
/// key as a hint when one is close.
pub(crate) fn unknown_key(place: &Place, key: &str, known: &[&str]) -> Fault {
    let hint = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!("; did you mean {k:?}?"))
        .unwrap_or_default();
    place.fault_at_key(key, format!("unknown key {key:?}{hint}"))
}

/// A fault for a Compose key dockmaster does not honour yet.
pub(crate) fn unsupported_key(place: &Place, key: &str) -> Fault {
    place.fault_at_key(
        key,
        format!(
            "key {key:?} is not supported yet by dockmaster; remove it (dockmaster will not deploy a \
             descriptor whose meaning it would silently change)"
        ),
    )
}

/// Levenshtein distance, for "did you mean" hints on short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous.get(j).copied().unwrap_or(usize::MAX).saturating_add(usize::from(ca != *cb));
            let delete = previous.get(j + 1).copied().unwrap_or(usize::MAX).saturating_add(1);
            let insert = current.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Value {
        parse(text).expect("valid YAML").expect("merge keys apply")
    }

    #[test]
    fn merge_keys_let_written_keys_win_and_earlier_sources_win() {
        let v = parsed("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 0\nd:\n  <<: *b\n  z: 3\n");
        assert_eq!(v["c"]["x"], Value::from(0));
        assert_eq!(v["c"]["y"], Value::from(1), "the earlier source wins");
        assert_eq!(v["c"]["z"], Value::from(2));
        assert_eq!(v["d"]["z"], Value::from(3));
        assert!(v["c"].get("<<").is_none());
    }

    #[test]
    fn chained_merges_resolve() {
        let v = parsed("base: &base {image: x}\nmid: &mid\n  <<: *base\n  tty: true\nweb:\n  <<: *mid\n");
        assert_eq!(v["web"]["image"], Value::from("x"));
        assert_eq!(v["web"]["tty"], Value::from(true));
        assert!(v["web"].get("<<").is_none());
    }

    #[test]
    fn bad_merges_and_tags_are_faults() {
        let fault = parse("a:\n  <<: 5\n").unwrap().unwrap_err();
        assert!(fault.message.contains("merge key"), "{}", fault.message);
        let fault = parse("a:\n  <<: [5]\n").unwrap().unwrap_err();
        assert!(fault.message.contains("takes mappings"), "{}", fault.message);
        let tagged = parse("a: !reset []\n").unwrap().unwrap();
        assert!(matches!(tagged["a"], Value::Tagged(_)), "tags are kept for merging");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line_column.is_some(), "{err:?}");
    }

    #[test]
    fn scalars_convert_as_compose_reads_them() {
        let at = Place::root();
        assert!(boolean(&Value::from("True"), &at).unwrap());
        assert!(boolean(&Value::from("maybe"), &at).is_err());
        assert_eq!(unsigned::<u16>(&Value::from("80"), &at).unwrap(), 80);
        assert!(unsigned::<u16>(&Value::from(70000), &at).is_err());
        assert!(unsigned::<u32>(&Value::from(-1), &at).is_err());
        assert_eq!(float(&Value::from("0.5"), &at).unwrap(), 0.5);
        assert_eq!(string(&Value::from(5), &at).unwrap(), "5");
        assert!(string(&Value::Sequence(vec![]), &at).is_err());
    }

    #[test]
    fn list_or_dict_reads_both_forms() {
        let at = Place::root();
        let list = parsed("[A=1, B, C==x]");
        assert_eq!(
            list_or_dict(&list, &at).unwrap(),
            vec![("A".into(), Some("1".into())), ("B".into(), None), ("C".into(), Some("=x".into()))]
        );
        let map = parsed("{A: 1, B: , C: true}");
        assert_eq!(
            list_or_dict(&map, &at).unwrap(),
            vec![("A".into(), Some("1".into())), ("B".into(), None), ("C".into(), Some("true".into()))]
        );
        assert!(list_or_dict(&parsed("{A: [1]}"), &at).is_err());
    }

    #[test]
    fn unknown_keys_get_a_hint() {
        let f = unknown_key(&Place::root(), "imagee", &["image", "build"]);
        assert!(f.message.contains("did you mean \"image\""), "{}", f.message);
        let f = unknown_key(&Place::root(), "zzz", &["image"]);
        assert!(!f.message.contains("did you mean"), "{}", f.message);
    }
}

//! Variable interpolation, as the Compose Specification defines it.
//!
//! `$VAR` and `${VAR}` take a variable's value (empty, with a warning, when it
//! is unset); `${VAR:-default}` / `${VAR-default}` fall back when the
//! variable is unset or empty / unset; `${VAR:?err}` / `${VAR?err}` fail;
//! `${VAR:+alt}` / `${VAR+alt}` substitute `alt` when it is set and not
//! empty / set. Defaults, alternatives and error texts are interpolated
//! themselves (`${A:-${B:-x}}`), and only when used. `$$` is a literal `$`;
//! any other `$` is an error, as in Compose (`$1` must be written `$$1`).
//!
//! Interpolation applies to values only, never to keys. The lookup is a
//! parameter so the rules are tested without touching the process
//! environment, and so a caller decides what the environment is.

use serde_yaml::Value;

use super::fault::{Parsed, Place};
use super::value::{key_string, MAX_DEPTH};

/// How deeply `${A:-${B:-...}}` may nest: far beyond any real descriptor,
/// low enough that hostile input cannot exhaust the stack.
const MAX_NESTING: usize = 32;

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// The text is not a valid template; says why.
    Invalid(String),
    /// `${VAR:?message}` / `${VAR?message}` with the variable missing.
    Required {
        /// The variable.
        name: String,
        /// The message written in the template (may be empty).
        message: String,
    },
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Invalid(why) => write!(f, "invalid interpolation: {why}"),
            TemplateError::Required { name, message } if message.is_empty() => {
                write!(f, "required variable {name:?} is missing a value")
            }
            TemplateError::Required { name, message } => {
                write!(f, "required variable {name:?} is missing a value: {message}")
            }
        }
    }
}

/// A variable lookup: the value of a variable, or `None` when it is unset.
pub(crate) type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Interpolates one string. Variables that are unset and have no default
/// are substituted with an empty string and their names pushed to `unset`
/// (Compose warns about them).
pub(crate) fn interpolate(
    template: &str,
    lookup: &Lookup<'_>,
    unset: &mut Vec<String>,
) -> Result<String, TemplateError> {
    expand(template, lookup, unset, 0)
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_name_char(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// The end (exclusive) of the variable name starting at `start`.
fn name_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while bytes.get(end).is_some_and(|b| is_name_char(*b)) {
        end += 1;
    }
    end
}

fn expand(text: &str, lookup: &Lookup<'_>, unset: &mut Vec<String>, depth: usize) -> Result<String, TemplateError> {
    if depth > MAX_NESTING {
        return Err(TemplateError::Invalid(format!("substitutions are nested more than {MAX_NESTING} levels deep")));
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut literal = 0;
    let mut i = 0;
    // `$`, `{` and `}` are ASCII, so every index we slice at is a char boundary.
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&text[literal..i]);
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let close = closing_brace(bytes, i)
                    .ok_or_else(|| TemplateError::Invalid(format!("`${{` without its closing `}}` in {text:?}")))?;
                out.push_str(&braced(&text[i + 2..close], lookup, unset, depth)?);
                i = close + 1;
            }
            Some(b) if is_name_start(*b) => {
                let end = name_end(bytes, i + 1);
                out.push_str(&plain(&text[i + 1..end], lookup, unset));
                i = end;
            }
            _ => {
                return Err(TemplateError::Invalid(format!(
                    "a `$` must start a variable (`$VAR`, `${{VAR}}`) in {text:?}; write `$$` for a literal `$`"
                )))
            }
        }
        literal = i;
    }
    out.push_str(&text[literal..]);
    Ok(out)
}

/// The index of the `}` closing the `${` at `start`, counting nested `${`
/// (and skipping `$$`, a literal dollar).
fn closing_brace(bytes: &[u8], start: usize) -> Option<usize> {
    let mut open = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'$', Some(b'{')) => {
                open += 1;
                i += 2;
            }
            (b'$', Some(b'$')) => i += 2,
            (b'}', _) => {
                open = open.saturating_sub(1);
                if open == 0 {
                    return Some(i);
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// A variable's value, or empty (and noted) when unset.
fn plain(name: &str, lookup: &Lookup<'_>, unset: &mut Vec<String>) -> String {
    match lookup(name) {
        Some(value) => value,
        None => {
            if !unset.iter().any(|n| n == name) {
                unset.push(name.to_string());
            }
            String::new()
        }
    }
}

/// The inside of `${...}`: a name and an optional operator with its argument.
fn braced(inner: &str, lookup: &Lookup<'_>, unset: &mut Vec<String>, depth: usize) -> Result<String, TemplateError> {
    let bytes = inner.as_bytes();
    if !bytes.first().is_some_and(|b| is_name_start(*b)) {
        return Err(TemplateError::Invalid(format!(
            "`${{{inner}}}` must start with a variable name (letters, digits and `_`, not starting with a digit)"
        )));
    }
    let end = name_end(bytes, 0);
    let name = &inner[..end];
    let rest = &inner[end..];
    if rest.is_empty() {
        return Ok(plain(name, lookup, unset));
    }
    let (colon, op_and_arg) = match rest.strip_prefix(':') {
        Some(after) => (true, after),
        None => (false, rest),
    };
    let mut chars = op_and_arg.chars();
    let op = chars.next();
    let arg = chars.as_str();
    let value = lookup(name);
    // "Missing" is unset, or (with the colon) also empty.
    let missing = match &value {
        None => true,
        Some(v) => colon && v.is_empty(),
    };
    match op {
        Some('-') => match value {
            Some(v) if !missing => Ok(v),
            _ => expand(arg, lookup, unset, depth + 1),
        },
        Some('?') => match value {
            Some(v) if !missing => Ok(v),
            _ => {
                Err(TemplateError::Required { name: name.to_string(), message: expand(arg, lookup, unset, depth + 1)? })
            }
        },
        Some('+') => {
            if missing {
                Ok(String::new())
            } else {
                expand(arg, lookup, unset, depth + 1)
            }
        }
        _ => Err(TemplateError::Invalid(format!(
            "unexpected {rest:?} after the variable name in `${{{inner}}}`; \
             use `:-`, `-`, `:?`, `?`, `:+` or `+`"
        ))),
    }
}

/// Interpolates every string value below `value` in place (never keys).
/// At the top level, extension keys (`x-*`) are skipped: they are not part
/// of the stack, and Compose's anchors have already been copied out of them.
/// Unset variables are collected with the first place they were used.
pub(crate) fn interpolate_tree(
    value: &mut Value,
    place: &Place,
    lookup: &Lookup<'_>,
    unset: &mut Vec<(String, Place)>,
) -> Parsed<()> {
    walk(value, place, lookup, unset, 0)
}

fn walk(
    value: &mut Value,
    place: &Place,
    lookup: &Lookup<'_>,
    unset: &mut Vec<(String, Place)>,
    depth: usize,
) -> Parsed<()> {
    if depth > MAX_DEPTH {
        return Err(place.fault(format!("values are nested more than {MAX_DEPTH} levels deep")));
    }
    match value {
        Value::String(text) => {
            if !text.contains('$') {
                return Ok(());
            }
            let mut names = Vec::new();
            let result = interpolate(text, lookup, &mut names).map_err(|e| {
                let hint = match e {
                    TemplateError::Required { .. } => {
                        " (set it in the environment, or in the .env file next to the descriptor)"
                    }
                    TemplateError::Invalid(_) => "",
                };
                place.fault(format!("{e}{hint}"))
            })?;
            for name in names {
                if !unset.iter().any(|(n, _)| *n == name) {
                    unset.push((name, place.clone()));
                }
            }
            *text = result;
            Ok(())
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &place.index(i), lookup, unset, depth + 1)?;
            }
            Ok(())
        }
        Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let key = key_string(key);
                if place.segs().is_empty() && key.starts_with("x-") {
                    continue;
                }
                walk(child, &place.key(&key), lookup, unset, depth + 1)?;
            }
            Ok(())
        }
        Value::Tagged(tagged) => walk(&mut tagged.value, place, lookup, unset, depth + 1),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "lower_case" => Some("lc".into()),
            "B" => Some("b".into()),
            _ => None,
        }
    }

    fn run(template: &str) -> Result<String, TemplateError> {
        interpolate(template, &env, &mut Vec::new())
    }

    #[test]
    fn the_compose_forms_expand_as_specified() {
        let table: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("$SET", "value"),
            ("${SET}", "value"),
            ("a${SET}b", "avalueb"),
            ("$SET-suffix", "value-suffix"),
            ("$lower_case", "lc"),
            ("$UNSET", ""),
            ("${UNSET}", ""),
            ("${UNSET:-default}", "default"),
            ("${EMPTY:-default}", "default"),
            ("${SET:-default}", "value"),
            ("${UNSET-default}", "default"),
            ("${EMPTY-default}", ""),
            ("${SET-default}", "value"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${UNSET:+alt}", ""),
            ("${SET+alt}", "alt"),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${SET:?boom}", "value"),
            ("${EMPTY?boom}", ""),
            ("${UNSET:-${B:-x}}", "b"),
            ("${UNSET:-${NOPE:-x}}", "x"),
            ("${UNSET:-a${B}c}", "abc"),
            ("${UNSET:-}", ""),
            ("${UNSET:-with spaces and : colons}", "with spaces and : colons"),
            ("${UNSET:-x}${SET}", "xvalue"),
            ("$$", "$"),
            ("$$SET", "$SET"),
            ("$${SET}", "${SET}"),
            ("echo $$(date)", "echo $(date)"),
            ("${UNSET:-$$}", "$"),
            ("naïve ${SET} ✓", "naïve value ✓"),
        ];
        for (template, expected) in table {
            assert_eq!(run(template).as_deref(), Ok(*expected), "{template}");
        }
    }

    #[test]
    fn missing_required_variables_fail_with_their_message() {
        assert_eq!(
            run("${UNSET:?set it in .env}"),
            Err(TemplateError::Required { name: "UNSET".into(), message: "set it in .env".into() })
        );
        assert_eq!(run("${EMPTY:?x}"), Err(TemplateError::Required { name: "EMPTY".into(), message: "x".into() }));
        assert_eq!(run("${UNSET?}"), Err(TemplateError::Required { name: "UNSET".into(), message: String::new() }));
        assert_eq!(
            run("${UNSET?need $B}"),
            Err(TemplateError::Required { name: "UNSET".into(), message: "need b".into() })
        );
        // Unused defaults are not evaluated.
        assert_eq!(run("${SET:-${UNSET?never}}").as_deref(), Ok("value"));
    }

    #[test]
    fn invalid_templates_are_errors() {
        for bad in ["$", "cost: 5$", "$1", "${", "${SET", "${}", "${1A}", "${SET!x}", "${A.B}", "$ {SET}", "$-"] {
            assert!(matches!(run(bad), Err(TemplateError::Invalid(_))), "{bad:?} must be refused");
        }
    }

    #[test]
    fn unset_variables_are_reported_once() {
        let mut unset = Vec::new();
        interpolate("$A ${A} ${B} ${C:-x} ${D-}", &env, &mut unset).unwrap();
        assert_eq!(unset, vec!["A".to_string()]);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}x{}", "${U:-".repeat(10_000), "}".repeat(10_000));
        assert!(matches!(run(&deep), Err(TemplateError::Invalid(_))));
        let unbalanced = "${".repeat(10_000);
        assert!(run(&unbalanced).is_err());
    }

    #[test]
    fn trees_interpolate_values_not_keys_and_skip_extensions() {
        let mut v: Value = serde_yaml::from_str(
            "x-base: {a: \"${NOPE:?ignored}\"}\nservices:\n  $SET:\n    image: img:${SET}\n    ports: [\"${P:-80}\"]\n",
        )
        .unwrap();
        let mut unset = Vec::new();
        interpolate_tree(&mut v, &Place::root(), &env, &mut unset).unwrap();
        assert_eq!(v["services"]["$SET"]["image"], Value::from("img:value"));
        assert_eq!(v["services"]["$SET"]["ports"][0], Value::from("80"));
        assert!(unset.is_empty());
        let mut v: Value = serde_yaml::from_str("services:\n  web:\n    image: ${TAG:?give a tag}\n").unwrap();
        let fault = interpolate_tree(&mut v, &Place::root(), &env, &mut unset).unwrap_err();
        assert_eq!(fault.place.describe(), r#"service "web", key "image""#);
        assert!(fault.message.contains("required variable \"TAG\""), "{}", fault.message);
    }
}

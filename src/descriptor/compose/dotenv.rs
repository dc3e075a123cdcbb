//! Environment files: the `.env` next to a descriptor (variables for
//! interpolation) and a service's `env_file` (variables for its container).
//!
//! The syntax is Compose's: `KEY=VALUE` lines, an optional `export ` prefix,
//! `#` comments (whole lines, or after whitespace in an unquoted value),
//! blank lines. `'single quotes'` are literal; `"double quotes"` know `\n`,
//! `\r`, `\t`, `\"` and `\\`, and may span lines. Unquoted and double-quoted
//! values are interpolated, with earlier lines of the same file visible. A
//! line with a bare `KEY` takes the variable from the lookup, or is skipped.

use super::interpolate::{interpolate, Lookup};

/// A problem in an environment file, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DotenvError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Parses `text`; `lookup` resolves variables the file refers to (it wins
/// over earlier lines of the file, as in Compose). Returns the variables in
/// file order; a later line for the same key replaces an earlier one.
pub(crate) fn parse(text: &str, lookup: &Lookup<'_>) -> Result<Vec<(String, String)>, DotenvError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut unset = Vec::new();
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut line = 1;
    while !rest.is_empty() {
        // One statement: up to the end of its line, or of its quoted value.
        let start_line = line;
        let (statement, consumed) = next_statement(rest, line)?;
        line += rest.get(..consumed).unwrap_or(rest).matches('\n').count();
        rest = rest.get(consumed..).unwrap_or("");
        let Some((key, value)) = statement else {
            continue;
        };
        let entry = match value {
            None => lookup(&key).map(|v| (key, v)),
            Some(raw) => {
                let value = if raw.expand {
                    let earlier = |name: &str| {
                        lookup(name).or_else(|| vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
                    };
                    interpolate(&raw.text, &earlier, &mut unset)
                        .map_err(|e| DotenvError { line: start_line, message: e.to_string() })?
                } else {
                    raw.text
                };
                Some((key, value))
            }
        };
        if let Some((key, value)) = entry {
            vars.retain(|(k, _)| *k != key);
            vars.push((key, value));
        }
    }
    Ok(vars)
}

/// A value as written: its text (quotes removed, escapes applied), and
/// whether it is to be interpolated.
struct RawValue {
    text: String,
    expand: bool,
}

/// Reads one statement from the start of `src`: `(key, value)` or nothing
/// for blank and comment lines, and how many bytes were consumed.
#[allow(clippy::type_complexity)]
fn next_statement(src: &str, line: usize) -> Result<(Option<(String, Option<RawValue>)>, usize), DotenvError> {
    let line_end = src.find('\n').map_or(src.len(), |i| i + 1);
    let first = &src[..line_end];
    let trimmed = first.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok((None, line_end));
    }
    let err = |message: String| DotenvError { line, message };
    let body = first.trim_start();
    let body = body.strip_prefix("export ").map(str::trim_start).unwrap_or(body);
    // `body` is a suffix of the first line: where it starts in `src`.
    let offset = first.len() - body.len();
    let Some(eq) = body.find('=') else {
        let key = body.trim();
        check_key(key).map_err(err)?;
        return Ok((Some((key.to_string(), None)), line_end));
    };
    let key = body[..eq].trim();
    check_key(key).map_err(err)?;
    let after_eq = offset + eq + 1;
    let value_src = &src[after_eq..];
    let value_src_trimmed = value_src.trim_start_matches([' ', '\t']);
    let value_start = after_eq + (value_src.len() - value_src_trimmed.len());
    match value_src_trimmed.chars().next() {
        Some(quote @ ('\'' | '"')) => {
            let (text, len) = quoted(&value_src_trimmed[1..], quote)
                .ok_or_else(|| err(format!("the value of {key} opens a {quote} quote that is never closed")))?;
            let end = value_start + 1 + len;
            // After the closing quote only a comment may follow on the line.
            let tail_end = src[end..].find('\n').map_or(src.len(), |i| end + i + 1);
            let tail = src[end..tail_end].trim();
            if !tail.is_empty() && !tail.starts_with('#') {
                return Err(err(format!("unexpected {tail:?} after the quoted value of {key}")));
            }
            Ok((Some((key.to_string(), Some(RawValue { text, expand: quote == '"' }))), tail_end))
        }
        _ => {
            let raw = &src[value_start..line_end];
            let raw = raw.strip_suffix('\n').unwrap_or(raw);
            // An inline comment starts with whitespace and `#` (ASCII, so
            // the cut is on a char boundary).
            let bytes = raw.as_bytes();
            let cut = (1..bytes.len())
                .find(|&i| bytes[i] == b'#' && matches!(bytes[i - 1], b' ' | b'\t'))
                .unwrap_or(bytes.len());
            let text = raw.get(..cut).unwrap_or(raw).trim_end().to_string();
            Ok((Some((key.to_string(), Some(RawValue { text, expand: true }))), line_end))
        }
    }
}

/// The content of a quoted value starting after its opening quote, and the
/// bytes consumed including the closing quote.
fn quoted(src: &str, quote: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = src.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Some((out, i + 1));
        }
        if c == '\\' && quote == '"' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            }
            continue;
        }
        out.push(c);
    }
    None
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a line starts with `=`: write KEY=VALUE".into());
    }
    if let Some(bad) = key.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("{key:?} is not a variable name (unexpected {bad:?}); write KEY=VALUE"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOST_VAR").then(|| "from-host".to_string())
    }

    fn vars(text: &str) -> Vec<(String, String)> {
        parse(text, &env).unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_usual_forms() {
        let text = "\
# a comment
A=1

export B = two words  # comment
C='literal $HOST_VAR # not a comment'
D=\"line\\nbreak $HOST_VAR\"
E=x#y
F=
HOST_VAR
MISSING
G=${A}-${HOST_VAR}
A=again
";
        assert_eq!(
            vars(text),
            pairs(&[
                ("B", "two words"),
                ("C", "literal $HOST_VAR # not a comment"),
                ("D", "line\nbreak from-host"),
                ("E", "x#y"),
                ("F", ""),
                ("HOST_VAR", "from-host"),
                ("G", "1-from-host"),
                ("A", "again"),
            ])
        );
    }

    #[test]
    fn quoted_values_may_span_lines_and_lines_are_counted() {
        let text = "A=\"one\ntwo\"\nB='x'\nC=\"unterminated\n";
        let err = parse(text, &env).unwrap_err();
        assert_eq!(err.line, 4, "{err:?}");
        assert_eq!(vars("A=\"one\ntwo\"\nB='x'\n"), pairs(&[("A", "one\ntwo"), ("B", "x")]));
    }

    #[test]
    fn bad_lines_are_errors_with_their_line() {
        assert_eq!(parse("A=1\nBAD KEY=2\n", &env).unwrap_err().line, 2);
        assert_eq!(parse("=x\n", &env).unwrap_err().line, 1);
        assert_eq!(parse("A=\"x\" trailing\n", &env).unwrap_err().line, 1);
        assert_eq!(parse("A=1\nB=${NOPE:?needed}\n", &env).unwrap_err().line, 2);
    }

    #[test]
    fn crlf_and_odd_bytes_do_not_panic() {
        assert_eq!(vars("A=1\r\nB=2\r\n"), pairs(&[("A", "1"), ("B", "2")]));
        for text in ["\"", "A=\"\\", "A='", "export", "export ", "A=é #ü", "\u{feff}A=1", "#\n\n=", "A=\"x\"\u{0}"] {
            let _ = parse(text, &env);
        }
    }
}

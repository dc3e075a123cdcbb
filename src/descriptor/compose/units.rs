//! The small value languages inside Compose values: durations (`1m30s`),
//! byte sizes (`512m`) and shell-style command lines (`sh -c "a b"`).
//!
//! Each parser returns a plain message on failure; the caller adds the
//! place. Messages say what a valid value looks like.

use std::time::Duration;

/// Parses a duration the way Compose does (Go's `time.ParseDuration`): a
/// sequence of decimal numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`,
/// `h`, such as `1m30s`, `1.5s`, `500ms`. A bare `0` is zero; any other bare
/// number is refused because its unit would be a guess. Negative durations
/// mean nothing for a timeout and are refused.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let help =
        || format!("invalid duration {text:?}: write a number with a unit, like \"10s\", \"1m30s\" or \"500ms\"");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(help());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut rest = s;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(help());
        }
        let value: f64 = number.parse().map_err(|_| help())?;
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("{}: the number {number} has no unit", help())),
            other => return Err(format!("{}: unknown unit {other:?}", help())),
        };
        total_nanos += value * nanos_per_unit;
        rest = next;
    }
    // Go's limit is about 290 years; anything near it is a typo.
    if !total_nanos.is_finite() || total_nanos > 9.2e18 {
        return Err(format!("invalid duration {text:?}: too long"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Parses a byte size as Compose does (go-units `RAMInBytes`): a number,
/// optionally with a fraction, then an optional unit `b`, `k`, `m`, `g`,
/// `t`, `p` (any case, optionally followed by `b` or `ib`); units are powers
/// of 1024. `512m`, `1g`, `1.5GB`, `100` (bytes).
pub(crate) fn byte_size(text: &str) -> Result<i64, String> {
    let s = text.trim();
    let help =
        || format!("invalid size {text:?}: write a number of bytes or a number with a unit, like \"512m\" or \"1.5g\"");
    let number_len = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(number_len);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(help());
    }
    let value: f64 = number.parse().map_err(|_| help())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let power = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 1,
        "m" | "mb" | "mib" => 2,
        "g" | "gb" | "gib" => 3,
        "t" | "tb" | "tib" => 4,
        "p" | "pb" | "pib" => 5,
        _ => return Err(format!("{}: unknown unit {unit:?}", help())),
    };
    let bytes = value * 1024f64.powi(power);
    if !bytes.is_finite() || bytes >= 9.2e18 {
        return Err(format!("invalid size {text:?}: too large"));
    }
    Ok(bytes as i64)
}

/// Splits a command line into words like a POSIX shell would, without any
/// expansion: whitespace separates words, `'...'` is literal, `"..."` keeps
/// spaces and knows backslash escapes of `"`, `\`, `$` and `` ` ``, and a
/// backslash outside quotes escapes the next character. This is what
/// Compose does with `command: echo "a b"`; no shell runs unless the
/// command names one.
pub(crate) fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        let table: &[(&str, u64)] = &[
            ("10s", 10_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1h", 3_600_000),
            ("1.5s", 1_500),
            ("2h45m", 9_900_000),
            ("0", 0),
            ("0s", 0),
            (" 5s ", 5_000),
            ("1500us", 1),
        ];
        for (text, millis) in table {
            assert_eq!(duration(text).map(|d| d.as_millis() as u64), Ok(*millis), "{text}");
        }
        assert_eq!(duration("250ns"), Ok(Duration::from_nanos(250)));
        for bad in ["", "10", "s", "1x", "-1s", "1.2.3s", "ms", ".s", "1m 30s", "99999999999999h"] {
            assert!(duration(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(duration("10").unwrap_err().contains("no unit"));
    }

    #[test]
    fn sizes_use_powers_of_1024() {
        let table: &[(&str, i64)] = &[
            ("100", 100),
            ("100b", 100),
            ("1k", 1024),
            ("1KB", 1024),
            ("512m", 512 * 1024 * 1024),
            ("512MiB", 512 * 1024 * 1024),
            ("1g", 1 << 30),
            ("1.5GB", 3 << 29),
            ("2 g", 2 << 30),
            ("1t", 1 << 40),
        ];
        for (text, bytes) in table {
            assert_eq!(byte_size(text), Ok(*bytes), "{text}");
        }
        for bad in ["", "m", "-1m", "1x", "1.m", ".5m", "1e3", "99999999999p"] {
            assert!(byte_size(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn command_lines_split_like_a_shell() {
        let table: &[(&str, &[&str])] = &[
            ("echo hello", &["echo", "hello"]),
            ("  spaced   out  ", &["spaced", "out"]),
            (r#"sh -c "echo 'a b' && ls""#, &["sh", "-c", "echo 'a b' && ls"]),
            ("printf '%s\\n' x", &["printf", "%s\\n", "x"]),
            (r#"a\ b "c\"d" 'e\f'"#, &["a b", "c\"d", "e\\f"]),
            (r#"x"y"'z'"#, &["xyz"]),
            (r#""" ''"#, &["", ""]),
            (
                "--default-authentication-plugin=mysql_native_password",
                &["--default-authentication-plugin=mysql_native_password"],
            ),
            ("", &[]),
        ];
        for (text, words) in table {
            let expected: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            assert_eq!(shell_words(text), Ok(expected), "{text}");
        }
        assert!(shell_words("echo 'open").is_err());
        assert!(shell_words("echo \"open").is_err());
    }
}

//! Where in a descriptor something went wrong, and how to say it.
//!
//! Every parsing function of the loader works on a [`Place`] (the path of
//! keys and list indexes from the document root) and fails with a [`Fault`]
//! that carries it. Only [`Fault::into_error`] knows the file: it adds the
//! path, finds the line by scanning the text, and names the place the way a
//! person reads it (`service "web", key "ports[1]"`). Keeping the file out of
//! the parsers keeps them small and lets later stages (v1 normalisation,
//! `extends`, several files) reuse them unchanged.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Error;

/// One step of a [`Place`]: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A key of a mapping.
    Key(String),
    /// An index into a list (0-based).
    Index(usize),
}

/// The path from the document root to a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Place(Vec<Seg>);

impl Place {
    /// The document root.
    pub(crate) fn root() -> Place {
        Place(Vec::new())
    }

    /// The value under `key` of the mapping here.
    pub(crate) fn key(&self, key: &str) -> Place {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        Place(segs)
    }

    /// The `index`th item of the list here.
    pub(crate) fn index(&self, index: usize) -> Place {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Place(segs)
    }

    /// The steps, root first.
    pub(crate) fn segs(&self) -> &[Seg] {
        &self.0
    }

    /// A fault at this place.
    pub(crate) fn fault(&self, message: impl Into<String>) -> Fault {
        Fault { place: self.clone(), line_of: self.clone(), message: message.into() }
    }

    /// A fault about the key `key` of the mapping here, named from here
    /// (`service "web": unknown key "imagee"`) but located on the key's line.
    pub(crate) fn fault_at_key(&self, key: &str, message: impl Into<String>) -> Fault {
        Fault { place: self.clone(), line_of: self.key(key), message: message.into() }
    }

    /// How a person reads this place: `service "web", key "ports[1]"`,
    /// `network "front", key "driver"`, `key "name"`; empty at the root.
    pub(crate) fn describe(&self) -> String {
        let (prefix, rest) = match self.0.as_slice() {
            [Seg::Key(top), Seg::Key(name), rest @ ..] if top == "services" => (format!("service {name:?}"), rest),
            [Seg::Key(top), Seg::Key(name), rest @ ..] if top == "networks" => (format!("network {name:?}"), rest),
            [Seg::Key(top), Seg::Key(name), rest @ ..] if top == "volumes" => (format!("volume {name:?}"), rest),
            rest => (String::new(), rest),
        };
        if rest.is_empty() {
            return prefix;
        }
        let key = key_path(rest);
        if prefix.is_empty() {
            format!("key {key:?}")
        } else {
            format!("{prefix}, key {key:?}")
        }
    }
}

/// `deploy.resources.limits.memory`, `ports[1]`, `environment.FOO`.
fn key_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// A problem found at a place in the descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    /// Where, as named in the message.
    pub(crate) place: Place,
    /// Where, for finding the line (may be one step deeper than `place`).
    pub(crate) line_of: Place,
    /// What is wrong and, where it helps, what to do.
    pub(crate) message: String,
}

/// What the loader's parsing functions return.
pub(crate) type Parsed<T> = std::result::Result<T, Fault>;

impl Fault {
    /// The user-facing error: `<file>:<line>: <place>: <message>`. The line
    /// is left out when it cannot be found (flow style, values pulled in
    /// through an anchor).
    pub(crate) fn into_error(self, path: &Path, text: &str) -> Error {
        let mut msg = path.display().to_string();
        let segs = self.line_of.segs();
        // A v1 file has its services at the top, where the place (from the
        // tree rewritten into the Specification's shape) says `services`.
        let line = line_of(text, segs).or_else(|| match segs {
            [Seg::Key(top), Seg::Key(_), ..] if top == "services" => line_of(text, &segs[1..]),
            _ => None,
        });
        if let Some(line) = line {
            let _ = write!(msg, ":{line}");
        }
        msg.push_str(": ");
        let place = self.place.describe();
        if !place.is_empty() {
            msg.push_str(&place);
            msg.push_str(": ");
        }
        msg.push_str(&self.message);
        Error::Descriptor(msg)
    }
}

/// One significant piece of a line: a `- ` sequence dash, or the text after
/// the indentation (and after a dash).
#[derive(Debug)]
struct Entry<'a> {
    line: usize,
    indent: usize,
    dash: bool,
    text: &'a str,
}

/// Splits the text into entries; `- key: v` gives a dash entry and a text
/// entry indented as its content is, so mappings inside lists are found the
/// same way as any other mapping.
fn entries(text: &str) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let mut indent = raw.len() - raw.trim_start_matches(' ').len();
        let mut rest = &raw[indent..];
        loop {
            if rest.is_empty() || rest.starts_with('#') {
                break;
            }
            if rest == "-" || rest.starts_with("- ") {
                out.push(Entry { line: n + 1, indent, dash: true, text: "-" });
                let after = &rest[1..];
                let spaces = after.len() - after.trim_start_matches(' ').len();
                indent += 1 + spaces;
                rest = &after[spaces..];
                continue;
            }
            out.push(Entry { line: n + 1, indent, dash: false, text: rest });
            break;
        }
    }
    out
}

/// Whether `text` is the line of mapping key `key` (`key:`, `"key":`, `'key':`).
fn is_key_line(text: &str, key: &str) -> bool {
    let after = if let Some(rest) = text.strip_prefix(key) {
        rest
    } else if let Some(rest) =
        text.strip_prefix('"').and_then(|t| t.strip_prefix(key)).and_then(|t| t.strip_prefix('"'))
    {
        rest
    } else if let Some(rest) =
        text.strip_prefix('\'').and_then(|t| t.strip_prefix(key)).and_then(|t| t.strip_prefix('\''))
    {
        rest
    } else {
        return false;
    };
    let after = after.trim_start_matches(' ');
    after == ":" || after.starts_with(": ") || after.starts_with(":\t")
}

/// The 1-based line of the value at `segs`, found by following block-style
/// indentation. Returns the deepest step it could find (the service's line
/// when the key itself is written in flow style), or `None` when not even
/// the first step is found; the root is the first line with content. A
/// guide for people, not a YAML parser.
pub(crate) fn line_of(text: &str, segs: &[Seg]) -> Option<usize> {
    let entries = entries(text);
    if segs.is_empty() {
        // The document as a whole: where its content starts.
        return entries.first().map(|e| e.line);
    }
    let mut lo = 0;
    let mut hi = entries.len();
    let mut parent: Option<usize> = None;
    let mut best = None;
    for seg in segs {
        let window = entries.get(lo..hi)?;
        let found = match seg {
            Seg::Key(key) => {
                let children =
                    window.iter().enumerate().filter(|(_, e)| !e.dash && parent.is_none_or(|p| e.indent > p));
                let child_indent = children.clone().map(|(_, e)| e.indent).min();
                children
                    .filter(|(_, e)| Some(e.indent) == child_indent && is_key_line(e.text, key))
                    .map(|(i, _)| i)
                    .next()
            }
            Seg::Index(index) => {
                let dashes = window.iter().enumerate().filter(|(_, e)| e.dash && parent.is_none_or(|p| e.indent >= p));
                let dash_indent = dashes.clone().map(|(_, e)| e.indent).min();
                dashes.filter(|(_, e)| Some(e.indent) == dash_indent).map(|(i, _)| i).nth(*index)
            }
        };
        let Some(offset) = found else {
            return best;
        };
        let at = lo + offset;
        let Some(entry) = entries.get(at) else {
            return best;
        };
        best = Some(entry.line);
        // The value of this step runs until the next entry that is not more
        // indented (for a key, a list may sit at the key's own indentation).
        let end = entries
            .iter()
            .enumerate()
            .skip(at + 1)
            .find(|(_, e)| {
                if entry.dash {
                    e.indent <= entry.indent
                } else {
                    e.indent < entry.indent || (e.indent == entry.indent && !e.dash)
                }
            })
            .map_or(entries.len(), |(i, _)| i);
        lo = at + 1;
        hi = end.min(hi);
        parent = Some(entry.indent);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(path: &[&str]) -> Place {
        let mut p = Place::root();
        for s in path {
            p = match s.parse::<usize>() {
                Ok(i) => p.index(i),
                Err(_) => p.key(s),
            };
        }
        p
    }

    #[test]
    fn places_read_like_the_descriptor() {
        assert_eq!(place(&["services", "web", "ports", "1"]).describe(), r#"service "web", key "ports[1]""#);
        assert_eq!(place(&["services", "web"]).describe(), r#"service "web""#);
        assert_eq!(place(&["networks", "front", "ipam", "config", "0", "subnet"]).describe(), {
            r#"network "front", key "ipam.config[0].subnet""#
        });
        assert_eq!(place(&["name"]).describe(), r#"key "name""#);
        assert_eq!(Place::root().describe(), "");
    }

    const TEXT: &str = "\
name: demo
services:
  # the web server
  web:
    image: nginx
    ports:
    - \"80:80\"
    - target: 443
      published: 8443
  \"db\":
    image: postgres
    environment: {A: 1}
networks:
  front:
    driver: bridge
";

    fn line(path: &[&str]) -> Option<usize> {
        line_of(TEXT, place(path).segs())
    }

    #[test]
    fn lines_are_found_by_indentation() {
        assert_eq!(line(&["name"]), Some(1));
        assert_eq!(line(&["services", "web"]), Some(4));
        assert_eq!(line(&["services", "web", "ports"]), Some(6));
        assert_eq!(line(&["services", "web", "ports", "0"]), Some(7));
        assert_eq!(line(&["services", "web", "ports", "1"]), Some(8));
        assert_eq!(line(&["services", "web", "ports", "1", "published"]), Some(9));
        assert_eq!(line(&["services", "db", "image"]), Some(11));
        assert_eq!(line(&["networks", "front", "driver"]), Some(15));
    }

    #[test]
    fn the_deepest_known_line_stands_in_for_flow_style() {
        assert_eq!(line(&["services", "db", "environment", "A"]), Some(12));
        assert_eq!(line(&["services", "web", "imagee"]), Some(4));
        assert_eq!(line(&["services", "web", "ports", "7"]), Some(6));
        assert_eq!(line(&["nothing"]), None);
        assert_eq!(line_of("", place(&["a", "0"]).segs()), None);
    }

    #[test]
    fn a_key_of_a_sibling_is_not_taken() {
        // `image` of db must not be found under web.
        let text = "services:\n  web:\n    build: .\n  db:\n    image: x\n";
        assert_eq!(line_of(text, place(&["services", "web", "image"]).segs()), Some(2));
    }
}

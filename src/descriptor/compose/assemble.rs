//! From files to one tree: each file read into the Specification's shape,
//! `include`s pulled in, override files merged in order, `extends`
//! resolved, and the `!reset`/`!override` tags applied.
//!
//! Every file goes through the same first steps ([`read_document`]): YAML
//! parsed (anchors resolved, merge keys applied, tags kept), format
//! detected, values interpolated, and a v1 file rewritten. Errors in a file
//! name that file; the final tree remembers which services came from an
//! included file, so later errors about them point there too. Every file
//! besides the descriptor is read through the load's [`Source`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::fault::{Fault, Parsed, Place};
use super::interpolate::{self, Lookup};
use super::merge::{merge_documents, strip_tags};
use super::source::Source;
use super::value::{self, key_string, scalar_string, type_name};
use super::{dotenv, extends, paths, v1};
use crate::error::{Error, Result};
use crate::stack::Format;

/// The top-level keys of the Compose Specification.
#[rustfmt::skip]
const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "secrets", "configs", "include", "models",
];

/// How many files deep `include` may nest (a cycle is caught before).
const MAX_INCLUDE_DEPTH: usize = 16;

/// One compose file, read: its tree in the Specification's shape.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// Where it was read from.
    pub(crate) path: PathBuf,
    /// Its text, for finding the line of a fault.
    pub(crate) text: String,
    /// The interpolated tree (tags kept).
    pub(crate) tree: Value,
    /// The format it is written in.
    pub(crate) format: Format,
}

impl Document {
    /// The user-facing error for a fault in this file.
    pub(crate) fn error(&self, fault: Fault) -> Error {
        fault.into_error(&self.path, &self.text)
    }
}

/// Every file merged into one tree, ready to be read into the model.
#[derive(Debug)]
pub(crate) struct Assembly {
    /// The main descriptor.
    pub(crate) main: Document,
    /// The merged tree.
    pub(crate) tree: Value,
    /// Warnings from every file.
    pub(crate) warnings: Vec<String>,
    /// Services that came whole from an included file: that file.
    origins: BTreeMap<String, (PathBuf, String)>,
}

impl Assembly {
    /// The user-facing error for a fault found in the merged tree: in the
    /// file the service came from when it was included, else the main one.
    pub(crate) fn error(&self, fault: Fault) -> Error {
        if let [super::fault::Seg::Key(top), super::fault::Seg::Key(name), ..] = fault.place.segs() {
            if let (true, Some((path, text))) = (top == "services", self.origins.get(name)) {
                return fault.into_error(path, text);
            }
        }
        self.main.error(fault)
    }
}

/// Reads a file from disk for `include`, `extends` or an override.
/// A file outside the folders the load may read from is refused before it
/// is touched (see [`Source::read`]).
pub(crate) fn read_file(source: &Source, path: &Path, why: &str, from: &Path) -> Result<String> {
    source.read(path).map_err(|e| match e {
        super::inputs::ReadError::Io(e) => {
            Error::Descriptor(format!("{}: cannot read {why} {}: {e}", from.display(), path.display()))
        }
        super::inputs::ReadError::Denied(denied) => {
            Error::Descriptor(format!("{}: {}", from.display(), denied.explain(why, &path.display().to_string())))
        }
    })
}

/// Assembles the descriptor at `path` (text `text`) with the override
/// files `overrides`, interpolating with `lookup` and reading every other
/// file through `source`.
pub(crate) fn assemble(
    source: &Source,
    path: &Path,
    text: &str,
    overrides: &[PathBuf],
    lookup: &Lookup<'_>,
) -> Result<Assembly> {
    let mut cx = Assembler { source, warnings: Vec::new(), origins: BTreeMap::new() };
    let mut main = read_document(path, text, lookup, &mut cx.warnings)?;
    let chain = vec![canonical(path)];
    include(&mut cx, &mut main, lookup, &chain)?;
    let mut tree = main.tree.clone();
    for file in overrides {
        let text = read_file(source, file, "override file", path)?;
        let mut over = read_document(file, &text, lookup, &mut cx.warnings)?;
        include(&mut cx, &mut over, lookup, &[canonical(file)])?;
        tree = merge_documents(tree, over.tree);
    }
    extends::resolve(&mut tree, &main, lookup, source, &mut cx.warnings)?;
    strip_tags(&mut tree, &Place::root()).map_err(|f| main.error(f))?;
    if main.format == Format::V1 {
        v1::finish(&mut tree);
    }
    let Assembler { warnings, origins, .. } = cx;
    Ok(Assembly { main, tree, warnings, origins })
}

/// What assembling carries from file to file: the load's [`Source`], and
/// what the files add up to besides the tree.
struct Assembler<'s> {
    /// Every file besides the descriptor is read through it.
    source: &'s Source,
    /// Warnings from every file.
    warnings: Vec<String>,
    /// Services that came whole from an included file: that file.
    origins: BTreeMap<String, (PathBuf, String)>,
}

/// Reads one file: parse, detect the format, interpolate, rewrite v1.
pub(crate) fn read_document(
    path: &Path,
    text: &str,
    lookup: &Lookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<Document> {
    let fail = |fault: Fault| fault.into_error(path, text);
    let mut tree = match value::parse(text) {
        Ok(parsed) => parsed.map_err(fail)?,
        Err(e) => {
            let at = e.line_column.map(|(line, column)| format!(":{line}:{column}")).unwrap_or_default();
            let hint = syntax_hint(&e.message, text, e.line_column.map(|(line, _)| line));
            return Err(Error::Descriptor(format!("{}{at}: invalid YAML: {}{hint}", path.display(), e.message)));
        }
    };
    let (format, notes) = detect_format(&tree).map_err(fail)?;
    warnings.extend(notes);
    let mut unset = Vec::new();
    interpolate::interpolate_tree(&mut tree, &Place::root(), lookup, &mut unset).map_err(fail)?;
    for (name, place) in unset {
        warnings.push(format!(
            "variable {name:?} is not set, so an empty string was used ({}); set it in the environment or in .env",
            place.describe()
        ));
    }
    if format == Format::V1 {
        v1::rewrite(&mut tree, warnings).map_err(fail)?;
    }
    Ok(Document { path: path.to_path_buf(), text: text.to_string(), tree, format })
}

/// What to do about a YAML syntax error, for the usual causes.
fn syntax_hint(message: &str, text: &str, line: Option<usize>) -> &'static str {
    let tab_indented = line
        .and_then(|n| text.lines().nth(n.saturating_sub(1)))
        .is_some_and(|l| l.trim_start_matches(' ').starts_with('\t'));
    if tab_indented {
        " (indent with spaces: YAML does not allow tabs)"
    } else if message.contains("duplicate entry") {
        " (a key may appear only once in a mapping; remove one of them)"
    } else if message.contains("more than one document") {
        " (a descriptor is one YAML document: remove the `---` separators and what follows)"
    } else {
        " (check the indentation and the quoting around that place)"
    }
}

/// Which format the file is written in, and the warnings that go with it.
/// Only keys (and `version`) are looked at: interpolation comes later.
fn detect_format(tree: &Value) -> Parsed<(Format, Vec<String>)> {
    let root = Place::root();
    let map = match tree {
        Value::Mapping(map) => map,
        Value::Null => {
            return Err(root.fault("the descriptor is empty: it needs at least `services:` with one service"))
        }
        other => {
            return Err(root.fault(format!("expected a mapping at the top of the file, found {}", type_name(other))))
        }
    };
    let keys: Vec<String> = map.keys().map(key_string).collect();
    let foreign: Vec<&String> =
        keys.iter().filter(|k| !TOP_LEVEL_KEYS.contains(&k.as_str()) && !k.starts_with("x-")).collect();
    if let Some(first) = foreign.first() {
        // v1 files have services at the top level and no `version:`.
        let looks_v1 = !map.contains_key("services")
            && !map.contains_key("version")
            && map.iter().all(|(k, v)| k.is_string() && v.is_mapping());
        if looks_v1 {
            return Ok((Format::V1, Vec::new()));
        }
        if let Some((key, _)) = map.iter().find(|(k, _)| !k.is_string()) {
            return Err(root.fault(format!(
                "top-level key {} is not text: quote it, and put services under `services:`",
                key_string(key)
            )));
        }
        return Err(value::unknown_key(&root, first, TOP_LEVEL_KEYS));
    }
    let mut warnings = Vec::new();
    let format = match map.get("version") {
        None | Some(Value::Null) => Format::Spec,
        Some(v) => {
            let version = scalar_string(v).unwrap_or_default();
            let major = version.trim().split('.').next().unwrap_or_default().to_string();
            warnings.push(format!(
                "key \"version\" ({version:?}) is obsolete and ignored: the file is read as the Compose Specification; \
                 remove it"
            ));
            match major.as_str() {
                "2" => Format::V2,
                "3" => Format::V3,
                _ => Format::Spec,
            }
        }
    };
    Ok((format, warnings))
}

/// The folder of a file, absolute and clean: where its relative paths start.
pub(crate) fn folder_of(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    super::mounts::clean(absolute.parent().unwrap_or(Path::new("/")))
}

/// A path as it is on disk, for telling files apart in cycles.
pub(crate) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// One `include` entry, read.
struct IncludeEntry {
    paths: Vec<PathBuf>,
    env_files: Vec<PathBuf>,
    project_dir: Option<PathBuf>,
    /// Every path of the entry: key (`include[0].path`), place, as written,
    /// resolved; for checking them against the folders the load may read.
    written: Vec<(String, Place, String, PathBuf)>,
}

fn include_entry(item: &Value, place: &Place, dir: &Path) -> Parsed<IncludeEntry> {
    let resolve = |text: &str| super::mounts::clean(&dir.join(text));
    let mut written = Vec::new();
    let mut paths_of = |v: &Value, at: &Place, key: &str| -> Parsed<Vec<PathBuf>> {
        let mut out = Vec::new();
        for text in value::string_or_list(v, at)? {
            let path = resolve(&text);
            written.push((key.to_string(), at.clone(), text, path.clone()));
            out.push(path);
        }
        Ok(out)
    };
    let mut entry = IncludeEntry { paths: Vec::new(), env_files: Vec::new(), project_dir: None, written: Vec::new() };
    match item {
        Value::Mapping(_) => {
            for (key, v) in value::mapping(item, place)? {
                let at = place.key(&key);
                match key.as_str() {
                    "path" => entry.paths = paths_of(v, &at, "include path")?,
                    "env_file" => entry.env_files = paths_of(v, &at, "include env_file")?,
                    "project_directory" => {
                        if let Some(text) = value::opt_string(v, &at)? {
                            entry.project_dir = paths_of(&Value::String(text), &at, "include project_directory")?.pop();
                        }
                    }
                    k if k.starts_with("x-") => {}
                    k => return Err(value::unknown_key(place, k, &["path", "env_file", "project_directory"])),
                }
            }
            if entry.paths.is_empty() {
                return Err(place.fault("an include entry needs `path`"));
            }
        }
        other => entry.paths = paths_of(other, place, "include path")?,
    }
    entry.written = written;
    Ok(entry)
}

/// Pulls the files named by `include:` into `doc`: each is loaded as a
/// project of its own (its folder, its variables, its own `include` and
/// `extends`), then its services, networks, volumes, secrets and configs
/// are added. A name defined twice is an error, as in Compose.
fn include(cx: &mut Assembler<'_>, doc: &mut Document, lookup: &Lookup<'_>, chain: &[PathBuf]) -> Result<()> {
    let Value::Mapping(top) = &mut doc.tree else { return Ok(()) };
    let Some(entries) = top.shift_remove("include") else { return Ok(()) };
    let place = Place::root().key("include");
    let items = value::list(&entries, &place).map_err(|f| doc.error(f))?.to_vec();
    let dir = folder_of(&doc.path);
    for (i, item) in items.iter().enumerate() {
        let at = place.index(i);
        let entry = include_entry(item, &at, &dir).map_err(|f| doc.error(f))?;
        for (key, place, text, path) in &entry.written {
            if let Err(denied) = cx.source.check(path) {
                return Err(doc.error(place.fault(denied.explain(key, text))));
            }
        }
        let Some(first) = entry.paths.first() else { continue };
        let key = canonical(first);
        if chain.contains(&key) || chain.len() > MAX_INCLUDE_DEPTH {
            let mut names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
            names.push(key.display().to_string());
            return Err(
                doc.error(at.fault(format!("include cycle: {}; remove one of these includes", names.join(" → "))))
            );
        }
        let project_dir = entry.project_dir.clone().unwrap_or_else(|| folder_of(first));
        let env_files = if entry.env_files.is_empty() {
            // Optional: read only when it is there, and then only when the
            // load may read it (a symlink out of the folder is refused).
            let default = project_dir.join(".env");
            match std::fs::symlink_metadata(&default) {
                Ok(_) => {
                    if let Err(denied) = cx.source.check(&default) {
                        return Err(doc.error(at.fault(denied.explain("include .env", &default.display().to_string()))));
                    }
                    if default.is_file() {
                        vec![default]
                    } else {
                        vec![]
                    }
                }
                _ => vec![],
            }
        } else {
            entry.env_files.clone()
        };
        let mut own = BTreeMap::new();
        for file in &env_files {
            let text = read_file(cx.source, file, "include env_file", &doc.path)?;
            let vars = dotenv::parse(&text, lookup).map_err(|e| {
                Error::Descriptor(format!("{}: {}:{}: {}", doc.path.display(), file.display(), e.line, e.message))
            })?;
            own.extend(vars);
        }
        let sub_lookup = |name: &str| lookup(name).or_else(|| own.get(name).cloned());
        let mut chain = chain.to_vec();
        chain.push(key);
        let included = assemble_included(cx, &entry, &project_dir, &sub_lookup, &chain, &doc.path)?;
        add_included(doc, included, &at, &mut cx.origins)?;
    }
    Ok(())
}

/// Loads the files of one `include` entry into one tree.
fn assemble_included(
    cx: &mut Assembler<'_>,
    entry: &IncludeEntry,
    project_dir: &Path,
    lookup: &Lookup<'_>,
    chain: &[PathBuf],
    from: &Path,
) -> Result<Document> {
    let mut merged: Option<Document> = None;
    for file in &entry.paths {
        let text = read_file(cx.source, file, "included file", from)?;
        let mut doc = read_document(file, &text, lookup, &mut cx.warnings)?;
        include(cx, &mut doc, lookup, chain)?;
        paths::rebase(&mut doc.tree, project_dir);
        merged = Some(match merged {
            None => doc,
            Some(mut base) => {
                base.tree = merge_documents(base.tree, doc.tree);
                base
            }
        });
    }
    let Some(mut doc) = merged else {
        return Err(Error::Descriptor(format!("{}: an include entry names no file", from.display())));
    };
    let snapshot = doc.clone();
    extends::resolve(&mut doc.tree, &snapshot, lookup, cx.source, &mut cx.warnings)?;
    strip_tags(&mut doc.tree, &Place::root()).map_err(|f| snapshot.error(f))?;
    super::files::resolve_environment(&mut doc.tree, lookup);
    Ok(doc)
}

/// Adds an included project's resources to `doc`.
fn add_included(
    doc: &mut Document,
    included: Document,
    at: &Place,
    origins: &mut BTreeMap<String, (PathBuf, String)>,
) -> Result<()> {
    let Value::Mapping(theirs) = included.tree else { return Ok(()) };
    let Value::Mapping(ours) = &mut doc.tree else { return Ok(()) };
    for section in ["services", "networks", "volumes", "secrets", "configs"] {
        let Some(Value::Mapping(entries)) = theirs.get(section) else { continue };
        let target = ours.entry(section.into()).or_insert_with(|| Value::Mapping(Mapping::new()));
        if target.is_null() {
            *target = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(target) = target else {
            return Err(Error::Descriptor(format!(
                "{}: top-level `{section}` must be a mapping to take the included file's {section}",
                doc.path.display()
            )));
        };
        for (key, value) in entries {
            let name = key_string(key);
            match target.get(key) {
                Some(existing) if section == "services" || *existing != *value => {
                    let what = &section[..section.len() - 1];
                    return Err(doc.error(at.fault(format!(
                        "{what} {name:?} is defined both here and in the included file {}; rename one",
                        included.path.display()
                    ))));
                }
                Some(_) => {}
                None => {
                    target.insert(key.clone(), value.clone());
                    if section == "services" {
                        origins.insert(name, (included.path.clone(), included.text.clone()));
                    }
                }
            }
        }
    }
    Ok(())
}

//! Relative paths in files that come from another folder.
//!
//! A file pulled in by `extends: {file: ...}` or `include` resolves its
//! relative paths against its own folder, not the main descriptor's. Before
//! such a file's tree is merged into the main one, its relative paths are
//! made absolute here; the reader then leaves absolute paths alone. Override
//! files are not rebased: as in Compose, their paths are relative to the
//! project folder, the main descriptor's.

use std::path::Path;

use serde_yaml::Value;

use super::mounts::clean;
use super::value::scalar_string;

/// `text` made absolute against `dir` when it is a relative path; absolute
/// paths, `~` paths and URLs are left as written.
fn absolute(dir: &Path, text: &str) -> String {
    if text.is_empty()
        || text.starts_with('/')
        || text.starts_with('~')
        || text.contains("://")
        || text.starts_with("git@")
    {
        return text.to_string();
    }
    clean(&dir.join(text)).to_string_lossy().into_owned()
}

fn rebase_scalar(value: &mut Value, dir: &Path) {
    if let Some(text) = scalar_string(value) {
        *value = Value::String(absolute(dir, &text));
    }
}

/// Rebases a whole document (in the Specification's shape) onto `dir`.
pub(crate) fn rebase(tree: &mut Value, dir: &Path) {
    if let Some(Value::Mapping(services)) = tree.get_mut("services") {
        for (_, svc) in services.iter_mut() {
            rebase_service(svc, dir);
        }
    }
    for section in ["secrets", "configs"] {
        if let Some(Value::Mapping(entries)) = tree.get_mut(section) {
            for (_, entry) in entries.iter_mut() {
                if let Some(file) = entry.get_mut("file") {
                    rebase_scalar(file, dir);
                }
            }
        }
    }
    if let Some(Value::Sequence(items)) = tree.get_mut("include") {
        for item in items.iter_mut() {
            rebase_include(item, dir);
        }
    }
}

/// One `include` entry: a path, or `{path, env_file, project_directory}`.
pub(crate) fn rebase_include(item: &mut Value, dir: &Path) {
    match item {
        Value::Mapping(map) => {
            for key in ["path", "env_file", "project_directory"] {
                match map.get_mut(key) {
                    Some(Value::Sequence(list)) => list.iter_mut().for_each(|v| rebase_scalar(v, dir)),
                    Some(v) => rebase_scalar(v, dir),
                    None => {}
                }
            }
        }
        other => rebase_scalar(other, dir),
    }
}

/// The paths of one service: build context, bind mounts, env files and
/// the file of an `extends`.
pub(crate) fn rebase_service(svc: &mut Value, dir: &Path) {
    let Value::Mapping(map) = svc else { return };
    match map.get_mut("build") {
        Some(Value::Mapping(build)) => {
            if let Some(context) = build.get_mut("context") {
                rebase_scalar(context, dir);
            }
        }
        Some(context @ Value::String(_)) => rebase_scalar(context, dir),
        _ => {}
    }
    if let Some(Value::Sequence(volumes)) = map.get_mut("volumes") {
        for volume in volumes.iter_mut() {
            rebase_volume(volume, dir);
        }
    }
    match map.get_mut("env_file") {
        Some(Value::Sequence(files)) => {
            for file in files.iter_mut() {
                match file {
                    Value::Mapping(entry) => {
                        if let Some(path) = entry.get_mut("path") {
                            rebase_scalar(path, dir);
                        }
                    }
                    other => rebase_scalar(other, dir),
                }
            }
        }
        Some(file @ Value::String(_)) => rebase_scalar(file, dir),
        _ => {}
    }
    if let Some(Value::Mapping(extends)) = map.get_mut("extends") {
        if let Some(file) = extends.get_mut("file") {
            rebase_scalar(file, dir);
        }
    }
}

fn rebase_volume(volume: &mut Value, dir: &Path) {
    match volume {
        Value::String(text) => {
            // SOURCE:TARGET[:MODE]; only a source written as a path is one.
            if let Some((source, rest)) = text.split_once(':') {
                if source.starts_with('.') {
                    *text = format!("{}:{rest}", absolute(dir, source));
                }
            }
        }
        Value::Mapping(map) => {
            let is_bind = map.get("type").and_then(Value::as_str) == Some("bind");
            if let (true, Some(source)) = (is_bind, map.get_mut("source")) {
                rebase_scalar(source, dir);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_become_absolute_and_the_rest_stays() {
        let mut tree: Value = serde_yaml::from_str(
            "services:\n  web:\n    build: ./app\n    env_file: [a.env, {path: ../b.env}]\n    extends: {file: base.yml, service: x}\n    volumes: ['./data:/data:ro', 'named:/n', '/abs:/abs', '~/h:/h', {type: bind, source: conf, target: /c}]\n  api:\n    build: {context: ., dockerfile: D}\n    env_file: c.env\nsecrets:\n  s: {file: ./s.txt}\ninclude: [sub/compose.yaml, {path: [x.yml], env_file: e.env}]\n",
        )
        .unwrap();
        rebase(&mut tree, Path::new("/p/q"));
        let web = &tree["services"]["web"];
        assert_eq!(web["build"], "/p/q/app");
        assert_eq!(web["env_file"][0], "/p/q/a.env");
        assert_eq!(web["env_file"][1]["path"], "/p/b.env");
        assert_eq!(web["extends"]["file"], "/p/q/base.yml");
        assert_eq!(web["volumes"][0], "/p/q/data:/data:ro");
        assert_eq!(web["volumes"][1], "named:/n");
        assert_eq!(web["volumes"][2], "/abs:/abs");
        assert_eq!(web["volumes"][3], "~/h:/h");
        assert_eq!(web["volumes"][4]["source"], "/p/q/conf");
        assert_eq!(tree["services"]["api"]["build"]["context"], "/p/q");
        assert_eq!(tree["services"]["api"]["env_file"], "/p/q/c.env");
        assert_eq!(tree["secrets"]["s"]["file"], "/p/q/s.txt");
        assert_eq!(tree["include"][0], "/p/q/sub/compose.yaml");
        assert_eq!(tree["include"][1]["path"][0], "/p/q/x.yml");
        assert_eq!(tree["include"][1]["env_file"], "/p/q/e.env");
    }
}

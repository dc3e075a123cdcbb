//! A service's `build:`: where the engine finds the context and the
//! Dockerfile, and with which arguments. The context is handed to the
//! engine whole, so it must lie where the load may read files (see
//! [`super::source::Source::check`]).

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::fault::{Fault, Parsed, Place};
use super::mounts::{self, host_path};
use super::service::Context;
use super::value::{is_empty, list_or_dict, mapping, opt_string, string, string_list, unknown_key, unsupported_key};
use crate::stack::Build;

/// Every key of `build:` in the Compose Specification.
#[rustfmt::skip]
const BUILD_KEYS: &[&str] = &[
    "context", "dockerfile", "args", "target", "dockerfile_inline", "entitlements", "ssh", "labels", "cache_from",
    "cache_to", "no_cache", "additional_contexts", "network", "provenance", "sbom", "pull", "shm_size", "extra_hosts",
    "isolation", "privileged", "secrets", "tags", "ulimits", "platforms",
];

/// `build:`: a context path, or `{context, dockerfile, args, target}`.
/// Build options not supported yet are added to `refused`.
pub(crate) fn build(cx: &Context<'_>, value: &Value, place: &Place, refused: &mut Vec<Fault>) -> Parsed<Option<Build>> {
    let mut build = Build {
        context: cx.dir.to_path_buf(),
        dockerfile: "Dockerfile".into(),
        args: BTreeMap::new(),
        target: None,
        cache_from: Vec::new(),
    };
    let context = |text: &str, at: &Place| -> Parsed<std::path::PathBuf> {
        if text.contains("://") || text.starts_with("git@") || text.starts_with("github.com/") {
            return Err(at.fault(format!(
                "remote build context {text:?} is not supported yet by dockmaster; use a folder next to the descriptor"
            )));
        }
        let home = (cx.lookup)("HOME");
        let path = host_path(text, cx.dir, home.as_deref()).map_err(|why| at.fault(why))?;
        // The engine reads the whole context: it must lie where the load
        // may read files.
        cx.source.check(&path).map_err(|denied| at.fault(denied.explain("build context", text)))?;
        Ok(path)
    };
    match value {
        Value::Null => return Ok(None),
        Value::Mapping(_) => {}
        _ => {
            build.context = context(&string(value, place)?, place)?;
            return Ok(Some(build));
        }
    }
    let mut dockerfile_at = None;
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "context" => build.context = context(&string(v, &at)?, &at)?,
            "dockerfile" => {
                build.dockerfile = string(v, &at)?;
                dockerfile_at = Some(at.clone());
            }
            "target" => build.target = opt_string(v, &at)?,
            "cache_from" => build.cache_from = string_list(v, &at)?,
            "args" => {
                for (name, arg) in list_or_dict(v, &at)? {
                    // A bare argument takes its value from the environment,
                    // and is left out when the environment has none.
                    if let Some(arg) = arg.or_else(|| (cx.lookup)(&name)) {
                        build.args.insert(name, arg);
                    }
                }
            }
            k if k.starts_with("x-") => {}
            k if BUILD_KEYS.contains(&k) => {
                if !is_empty(v) {
                    refused.push(unsupported_key(place, k));
                }
            }
            k => return Err(unknown_key(place, k, BUILD_KEYS)),
        }
    }
    // The default context, the descriptor's folder.
    cx.source
        .check(&build.context)
        .map_err(|denied| place.fault(denied.explain("build context", &build.context.display().to_string())))?;
    if let Some(at) = dockerfile_at {
        // Relative to the context (checked above); an absolute one or one
        // with `..` may lead elsewhere.
        let path = mounts::clean(&build.context.join(&build.dockerfile));
        cx.source.check(&path).map_err(|denied| at.fault(denied.explain("build dockerfile", &build.dockerfile)))?;
    }
    Ok(Some(build))
}

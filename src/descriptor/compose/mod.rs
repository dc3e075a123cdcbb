//! The Compose loader: a descriptor's text → [`Stack`], the normalised model.
//!
//! The loader runs in steps, each in its own module, all working on
//! `serde_yaml::Value` trees until the last:
//!
//! 1. `assemble`: every file (the descriptor, its `include`s, the files
//!    named by `extends`, override files) is parsed (`value`: anchors
//!    resolved, merge keys applied), its format detected (the Compose
//!    Specification, `version: "2.x"`/`"3.x"` read the same way with a
//!    note, or v1 with services at the top level, rewritten by `v1`) and
//!    interpolated (`interpolate`: the process environment, then the `.env`
//!    next to the descriptor or `--env-file`). Then the files are merged
//!    (`merge`, with Compose's rules and the `!reset`/`!override` tags) and
//!    `extends` resolved (`extends`).
//! 2. `service`, `toplevel`, `files` (with `ports`, `mounts`, `runtime`,
//!    `kernel`, `host`): every key read into the model; none silently
//!    dropped. Keys refused by name are collected across every service and
//!    included file and reported in one error.
//! 3. `select`: services of inactive profiles, or scaled to 0, left out.
//! 4. `checks`: references between services, networks and volumes, and
//!    dependency cycles.
//!
//! Which files besides the descriptor a load may read is up to
//! [`LoadOptions::confine`] (and [`load_in_memory`] reads none); every read
//! goes through the load's own `source::Source`, handed down every step,
//! which checks it before touching the file and records it for the digest.
//!
//! Every error is [`Error::Descriptor`] and reads
//! `<file>[:<line>]: <place>: <what is wrong and what to do>`, e.g.
//! `app/3.yml:12: service "web", key "ports[1]": invalid port "80:abc": ...`;
//! YAML syntax errors carry `<line>:<column>`.

mod assemble;
mod build;
mod checks;
mod dotenv;
mod extends;
mod fault;
mod files;
mod host;
mod inputs;
mod interpolate;
mod kernel;
mod merge;
mod mounts;
mod paths;
mod ports;
mod runtime;
mod select;
mod service;
mod source;
mod swarm;
mod toplevel;
pub(crate) mod units;
mod v1;
mod value;

/// Loads descriptor text (written to a temporary file, no environment) as
/// project `project`, for other modules' tests; panics when it does not load.
#[cfg(test)]
pub(crate) fn test_stack(text: &str, project: &str) -> Stack {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("compose.yaml");
    std::fs::write(&path, text).expect("write the descriptor");
    let reference = crate::descriptor::DescriptorRef::File(path.clone());
    let descriptor = Descriptor::read(reference, None, &path).expect("read the descriptor");
    load_with_env(&descriptor, project, &|_| None).unwrap_or_else(|e| panic!("descriptor must load: {e}\n{text}"))
}

#[cfg(test)]
mod composition_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::stack::{Format, Stack};
use fault::{Parsed, Place};
use source::Source;

pub use service::ONE_SHOT_LABEL;
pub(crate) use units::byte_size;

/// How to load a descriptor, beyond the descriptor itself: what
/// `docker compose --profile P --env-file F -f a.yml -f b.yml` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Profiles to activate (`--profile`). When empty, `COMPOSE_PROFILES`
    /// (from the environment, then `.env`) says which, comma-separated.
    pub profiles: Vec<String>,
    /// A file of variables used instead of the `.env` next to the
    /// descriptor (`--env-file`). It must exist.
    pub env_file: Option<PathBuf>,
    /// Files merged over the descriptor, in order, with Compose's merge
    /// rules (`-f a.yml -f b.yml`): per-host ports, log drivers, mounts.
    /// Their relative paths resolve against the descriptor's folder.
    pub overrides: Vec<PathBuf>,
    /// The folders the load may read files from besides the main
    /// descriptor, or `None` (the default) for no limit.
    ///
    /// With `Some(roots)`, every other file the loader reads or hands to
    /// the engine (`env_file:`, `extends: {file:}`, `include:` with its
    /// `env_file` and `project_directory`, the override files, `.env` or
    /// `--env-file`, and a local `build` context and `dockerfile`) must lie
    /// under one of `roots` once symlinks are resolved (a file that does not
    /// exist: its nearest existing folder resolved); `..` and symlinks do
    /// not get out. Anything else fails the load with [`Error::Descriptor`]
    /// naming the key, where it was written, the path as written and the
    /// allowed roots, before the file is touched: an outside file that
    /// exists and one that does not are refused alike. Secret and config
    /// `file:`s and bind mounts are mounted, not read, and are not limited
    /// here. An empty list allows nothing.
    pub confine: Option<Vec<PathBuf>>,
    /// The descriptor is one part of a whole (a registry fragment, or a
    /// version assembled from fragments that may still lack some): a
    /// reference to a service, volume or network it does not define is
    /// kept in the stack, for the caller to report, instead of refused.
    pub partial: bool,
}

/// Where a descriptor loaded by [`load_in_memory`] pretends to be: errors
/// name this path (a caller may replace it with its own words). It cannot
/// exist (`/dev/null` is not a folder), and no file is read anyway.
pub const IN_MEMORY_PATH: &str = "/dev/null/in-memory/compose.yaml";

/// Loads a descriptor into the normalised model, with variables from the
/// process environment (then the `.env` file next to the descriptor).
///
/// `default_project` names the project when the descriptor has no `name:`;
/// it must already be a valid project name (see
/// [`crate::descriptor::project_name`]).
///
/// The result may carry warnings ([`Stack::warnings`]) for what was accepted
/// but not acted on. A service labelled `dockmaster.one-shot: "true"`
/// ([`ONE_SHOT_LABEL`]) comes back with `one_shot` set. Anything the loader
/// cannot honour is an error rather than a silent difference between the
/// descriptor and what is deployed.
pub fn load(descriptor: &Descriptor, default_project: &str) -> Result<Stack> {
    load_with_options(descriptor, default_project, &LoadOptions::default(), &|name| std::env::var(name).ok())
}

/// [`load`] with the environment given explicitly: `env` answers what the
/// process environment would. Tests use it, and so can a caller that must
/// not let the host's environment leak into a deploy.
pub fn load_with_env(
    descriptor: &Descriptor,
    default_project: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Stack> {
    load_with_options(descriptor, default_project, &LoadOptions::default(), env)
}

/// [`load_with_env`] with [`LoadOptions`]: active profiles, an env file
/// instead of `.env`, and override files merged over the descriptor.
pub fn load_with_options(
    descriptor: &Descriptor,
    default_project: &str,
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Stack> {
    let source = match &options.confine {
        Some(roots) => Source::confined(roots),
        None => Source::open(),
    };
    let mut stack = load_from(&source, descriptor, default_project, options, env)?;
    stack.inputs = source.into_reads();
    Ok(stack)
}

/// Loads descriptor text that came from elsewhere (the registry's
/// fragments) from memory, reading no file at all: no `.env`, and a
/// descriptor with a key that would read a file on this host (`env_file`,
/// `extends` with `file`, `include`, `build`, a secret or config with
/// `file`, `label_file`) is refused before anything else, with the same
/// words whether that file exists or not and nothing from any file.
///
/// No variable is set (defaults apply); relative paths start at the
/// folder of [`IN_MEMORY_PATH`], which errors name as the file.
pub fn load_in_memory(text: &str, default_project: &str) -> Result<Stack> {
    in_memory(text, default_project, &LoadOptions::default())
}

/// [`load_in_memory`] for one part of a whole (a registry fragment, or a
/// version assembled from fragments): see [`LoadOptions::partial`].
pub fn load_partial_in_memory(text: &str, default_project: &str) -> Result<Stack> {
    in_memory(text, default_project, &LoadOptions { partial: true, ..Default::default() })
}

fn in_memory(text: &str, default_project: &str, options: &LoadOptions) -> Result<Stack> {
    let path = PathBuf::from(IN_MEMORY_PATH);
    let none = |_: &str| None;
    let document = assemble::read_document(&path, text, &none, &mut Vec::new())?;
    inputs::refuse_file_keys(&document.tree).map_err(|fault| document.error(fault))?;
    let descriptor = Descriptor {
        reference: crate::descriptor::DescriptorRef::File(path.clone()),
        version: None,
        path,
        text: text.to_string(),
        digest: format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))),
    };
    load_from(&Source::in_memory(), &descriptor, default_project, options, &none)
}

/// `${PWD}` is the working folder when the environment does not say, as
/// Compose resolves it: under cron or Rundeck `PWD` is often unset, and an
/// empty `${PWD}` would turn `${PWD}/data` into `/data`.
fn working_folder(name: &str) -> Option<String> {
    (name == "PWD").then(|| std::env::current_dir().ok().map(|d| d.display().to_string())).flatten()
}

/// [`load_with_options`], reading every file besides the descriptor through
/// `source` (which the caller asks for what was read).
fn load_from(
    source: &Source,
    descriptor: &Descriptor,
    default_project: &str,
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Stack> {
    let path = descriptor.path.as_path();
    let dir = descriptor_dir(path);
    let variables = match &options.env_file {
        Some(file) => read_env_file(source, file, env, path, true)?,
        None => {
            // The `.env` next to the descriptor is optional: one that is not
            // there is not read, so it is not checked against `confine`.
            let default = dir.join(".env");
            match std::fs::symlink_metadata(&default) {
                Ok(_) if source.check(&default) != Err(inputs::Denied::NoFiles) => {
                    read_env_file(source, &default, env, path, false)?
                }
                _ => BTreeMap::new(),
            }
        }
    };
    let lookup = |name: &str| env(name).or_else(|| variables.get(name).cloned()).or_else(|| working_folder(name));
    let overrides: Vec<PathBuf> = options.overrides.iter().map(|f| mounts::clean(&dir.join(f))).collect();
    let assembly = assemble::assemble(source, path, &descriptor.text, &overrides, &lookup)?;
    let active = select::active_profiles(&options.profiles, lookup("COMPOSE_PROFILES"));
    let mut warnings = Vec::new();
    for warning in &assembly.warnings {
        if !warnings.contains(warning) {
            warnings.push(warning.clone());
        }
    }
    let fail = |fault: fault::Fault| assembly.error(fault);
    let (mut stack, scaled_to_zero, refused) =
        read_stack(source, &assembly.tree, assembly.main.format, default_project, &dir, &lookup, warnings)
            .map_err(fail)?;
    // Every refused key at once, each naming its file (an included one too),
    // line, service and key: one error, fixed in one go. One alone reads as
    // any other load error, starting with its file.
    let mut refused: Vec<String> = refused.into_iter().map(|fault| fail(fault).to_string()).collect();
    if refused.len() == 1 {
        return Err(Error::Descriptor(refused.remove(0)));
    }
    crate::pipeline::refuse_problems(refused, "dockmaster does not run keys this descriptor uses")?;
    select::select(&mut stack, &active, &scaled_to_zero).map_err(fail)?;
    checks::check(&mut stack, options.partial).map_err(fail)?;
    for problem in stack.unrunnable() {
        stack
            .warnings
            .push(format!("{problem} (Compose reads this file too, but no engine runs it: plan and deploy stop here)"));
    }
    Ok(stack)
}

/// The descriptor's folder, absolute and without `.`/`..`: relative paths in
/// the descriptor start there, as Compose's project directory.
fn descriptor_dir(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = absolute.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    mounts::clean(&dir)
}

/// Reads a file of variables (`.env`, or the `--env-file`); a missing one
/// is an error only when `required`.
fn read_env_file(
    source: &Source,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    descriptor: &Path,
    required: bool,
) -> Result<BTreeMap<String, String>> {
    let text = match source.read(file) {
        Ok(text) => text,
        Err(inputs::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(BTreeMap::new())
        }
        Err(inputs::ReadError::Io(e)) => {
            return Err(Error::Descriptor(format!("{}: cannot read {}: {e}", descriptor.display(), file.display())))
        }
        Err(inputs::ReadError::Denied(denied)) => {
            let key = if required { "--env-file" } else { ".env" };
            return Err(Error::Descriptor(format!(
                "{}: {}",
                descriptor.display(),
                denied.explain(key, &file.display().to_string())
            )));
        }
    };
    let vars = dotenv::parse(&text, env).map_err(|e| {
        Error::Descriptor(format!("{}: {}:{}: {}", descriptor.display(), file.display(), e.line, e.message))
    })?;
    Ok(vars.into_iter().collect())
}

/// Whether a project name is one Compose accepts.
fn valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Reads the assembled tree into a stack (before selection and the cross
/// checks); also returns the services scaled to 0 and every key refused by
/// name.
fn read_stack(
    source: &Source,
    tree: &Value,
    format: Format,
    default_project: &str,
    dir: &Path,
    lookup: &interpolate::Lookup<'_>,
    warnings: Vec<String>,
) -> Parsed<(Stack, Vec<String>, Vec<fault::Fault>)> {
    let root = Place::root();
    let get = |key: &str| tree.get(key).filter(|v| !v.is_null());
    let name = match get("name") {
        None => default_project.to_string(),
        Some(v) => {
            let name = value::string(v, &root.key("name"))?;
            if !valid_project_name(&name) {
                return Err(root.key("name").fault(format!(
                    "invalid project name {name:?}: use lower-case letters, digits, \"-\" and \"_\", \
                     starting with a letter or digit"
                )));
            }
            name
        }
    };
    if get("models").is_some_and(|v| !value::is_empty(v)) {
        return Err(
            root.fault_at_key("models", "top-level key \"models\" is not supported yet by dockmaster; remove it")
        );
    }
    let sources = files::Sources { dir, lookup };
    let mut declared = BTreeMap::new();
    let mut file_warnings = Vec::new();
    for (kind, key) in [(files::Kind::Secret, "secrets"), (files::Kind::Config, "configs")] {
        let found = match get(key) {
            Some(v) => files::declarations(kind, v, &root.key(key), &sources, &mut file_warnings)?,
            None => BTreeMap::new(),
        };
        declared.insert(key, found);
    }
    let mut stack = Stack {
        name,
        format,
        services: BTreeMap::new(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        warnings,
        inputs: BTreeMap::new(),
    };
    if let Some(v) = get("networks") {
        let at = root.key("networks");
        for (key, net) in toplevel::section(v, &at, "network")? {
            let network = toplevel::network(net, &at.key(&key), &mut stack.warnings)?;
            stack.networks.insert(key, network);
        }
    }
    if let Some(v) = get("volumes") {
        let at = root.key("volumes");
        for (key, vol) in toplevel::section(v, &at, "volume")? {
            let volume = toplevel::volume(vol, &at.key(&key), &mut stack.warnings)?;
            stack.volumes.insert(key, volume);
        }
    }
    let at = root.key("services");
    let services = match get("services") {
        Some(v) => toplevel::section(v, &at, "service")?,
        None => Vec::new(),
    };
    if services.is_empty() {
        return Err(root.fault("the descriptor defines no service: add at least one under `services:`"));
    }
    let no_files = BTreeMap::new();
    let mut cx = service::Context {
        project: &stack.name,
        dir,
        lookup,
        source,
        secrets: declared.get("secrets").unwrap_or(&no_files),
        configs: declared.get("configs").unwrap_or(&no_files),
        warnings: Vec::new(),
        scaled_to_zero: Vec::new(),
        refused: Vec::new(),
    };
    let mut parsed = BTreeMap::new();
    for (key, svc) in services {
        let service = service::service(&mut cx, &key, svc, &at.key(&key))?;
        parsed.insert(key, service);
    }
    let (service_warnings, scaled_to_zero, refused) = (cx.warnings, cx.scaled_to_zero, cx.refused);
    stack.services = parsed;
    stack.warnings.extend(file_warnings);
    stack.warnings.extend(service_warnings);
    Ok((stack, scaled_to_zero, refused))
}

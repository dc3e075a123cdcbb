//! The configuration file: one YAML file, one place that reads it.
//!
//! With no file at all dockmaster works against the local engine and the
//! local descriptor folder, so a first try needs nothing but the binary.
//! Unknown keys are errors: a misspelt key silently ignored is a setting
//! somebody believes is in force and is not. `docs/configuration.md` lists
//! every key; keep the two together.
//!
//! The configuration is plain data: each section is defined in a child
//! module here ([`serve`], [`ldap`], [`access`], ...), and the module that
//! acts on a section re-exports its types (`crate::chat::ChatConfig` is
//! [`chat::ChatConfig`]), with the behaviour that needs more than the
//! configuration (`Config::deploy_options` is in `request.rs`, beside
//! `DeployOptions`). Nothing here imports the modules that use it, and
//! nothing here holds a connection: long-lived clients (the directory) are
//! built beside the configuration by whoever needs them
//! (`identity::Directory::shared`).

pub mod access;
pub mod audit;
pub mod chat;
pub mod engine;
pub mod ldap;
pub mod notify;
pub mod policy;
pub mod registry;
pub mod schedule;
pub mod serve;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Root of the local descriptor folder
    /// (`<root>/<application>/<release>/<version>.yml`). Default
    /// `./descriptors`. Relative paths are relative to the config file.
    #[serde(default)]
    pub descriptors: Option<PathBuf>,
    /// Labels put on every container, network and volume dockmaster
    /// creates, e.g. a cost centre, or a test run's id for clean-up.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Folder for dockmaster's own state (the deploy history). Every
    /// process that deploys the same targets should share it. Default
    /// `$XDG_STATE_HOME/dockmaster`, else `~/.local/state/dockmaster`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Folder of `docker save` archives (`*.tar`, `*.tar.gz`) to load
    /// images from when the engine lacks them: for air-gapped engines.
    #[serde(default)]
    pub image_archives: Option<PathBuf>,
    /// Folder of the per-target lock files. Every process that deploys to
    /// the same engine must use the same folder. Default
    /// `/tmp/dockmaster-locks`.
    #[serde(default)]
    pub lock_dir: Option<PathBuf>,
    /// Where shared state lives: SQLite in `state_dir` (the default) or
    /// one PostgreSQL database for a fleet of dockmaster processes.
    #[serde(default)]
    pub state: state::StateConfig,
    /// Deploy defaults; command-line flags override them.
    #[serde(default)]
    pub deploy: DeployDefaults,
    /// `dockmaster serve` settings.
    #[serde(default)]
    pub serve: serve::ServeConfig,
    /// The directory (LDAP) people are looked up in. Without it, there is
    /// no identity check and dockmaster says so.
    #[serde(default)]
    pub ldap: Option<ldap::LdapConfig>,
    /// Who may do what (needs `ldap`). Without it, there is no access
    /// control and dockmaster says so.
    #[serde(default)]
    pub access: Option<access::AccessConfig>,
    /// The descriptor policy: what descriptors may ask for, and where
    /// structural changes need an approver. Without it, any descriptor
    /// the loader accepts may be deployed.
    #[serde(default)]
    pub policy: policy::PolicyConfig,
    /// Environments by name (`default` may be configured too). Each may
    /// name its own engine (`engine`); a target in environment `E` is
    /// named `<project>-E` wherever it runs, so environments sharing an
    /// engine never touch each other. Access rules, policy rules and
    /// approvals are per environment.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentConfig>,
    /// Scheduled redeploys, run by `serve`.
    #[serde(default)]
    pub schedules: Vec<schedule::Job>,
    /// Deploys fired by build pipelines and git hosts at
    /// `POST /hooks/{name}` of `serve`.
    #[serde(default)]
    pub hooks: Vec<schedule::Job>,
    /// The compose fragment registry: serving it, and resolving named
    /// descriptors from one.
    #[serde(default)]
    pub registry: registry::RegistryConfig,
    /// Chat ways in (Slack, Mattermost, Discord), served by `serve`.
    #[serde(default)]
    pub chat: chat::ChatConfig,
    /// The audit trail.
    #[serde(default)]
    pub audit: audit::AuditConfig,
    /// Where reports are posted besides the caller's own output.
    #[serde(default)]
    pub notify: NotifyConfig,
}

/// Report delivery settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Incoming webhooks every deploy, rollback and down reports to.
    #[serde(default)]
    pub webhooks: Vec<notify::Webhook>,
}

/// One environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// What the environment is for, shown in help texts.
    #[serde(default)]
    pub description: Option<String>,
    /// Compose files merged over every descriptor deployed here, in order
    /// (per-host ports, log drivers, mounts), with the merge rules of
    /// `docker compose -f`. Relative to the configuration file.
    #[serde(default)]
    pub overrides: Vec<PathBuf>,
    /// The engine this environment deploys to, and how (`docker` or
    /// `swarm`). Default: the local engine (`DOCKER_HOST`).
    #[serde(default)]
    pub engine: engine::EngineConfig,
}

/// Defaults for how deploys behave.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployDefaults {
    /// How long the watch waits for every service to settle (`120s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// How long a service without a healthcheck must run without
    /// restarting to count as running (`3s`).
    #[serde(default)]
    pub stability_window: Option<String>,
    /// How many log lines a failing service's report carries (20).
    #[serde(default)]
    pub log_lines: Option<usize>,
    /// How many services are created and started at once (8).
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// Whether missing images may be pulled from a registry: `missing`
    /// (the default) or `never`, for air-gapped engines where a pull can
    /// only fail (and should not even try).
    #[serde(default)]
    pub pull: Option<PullPolicy>,
    /// How long a deploy waits for another deploy of the same target to
    /// finish before giving up with exit 6 (`60s`).
    #[serde(default)]
    pub lock_wait: Option<String>,
}

/// When dockmaster may pull an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Pull images the engine does not have (and cannot build or load).
    Missing,
    /// Never contact a registry.
    Never,
}

impl Config {
    /// Reads the configuration file, or the defaults when `path` is `None`;
    /// then applies `DOCKMASTER__<key>__<key>=value` variables over it
    /// ([`env_overrides`]), for containers.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let overrides = env_overrides(std::env::vars());
        if path.is_none() && overrides.is_empty() {
            return Ok(Config::default());
        }
        let text = match path {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("{}: cannot read configuration file: {e}", path.display())))?,
            None => String::new(),
        };
        let source = match path {
            Some(path) => path.display().to_string(),
            None => "the configuration".to_string(),
        };
        let located = |e: serde_yaml::Error| {
            let place = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
            Error::Usage(format!(
                "{source}{place}: invalid configuration: {e} (see docs/configuration.md for the keys)"
            ))
        };
        let mut config: Config = if overrides.is_empty() {
            if text.trim().is_empty() {
                Config::default()
            } else {
                serde_yaml::from_str(&text).map_err(located)?
            }
        } else {
            let mut value: serde_yaml::Value = if text.trim().is_empty() {
                serde_yaml::Value::Mapping(Default::default())
            } else {
                serde_yaml::from_str(&text).map_err(located)?
            };
            let names: Vec<String> = overrides.iter().map(|(k, _)| format!("DOCKMASTER__{}", k.join("__"))).collect();
            for (keys, raw) in &overrides {
                apply_override(&mut value, keys, raw)?;
            }
            serde_yaml::from_value(value).map_err(|e| {
                Error::Usage(format!(
                    "{source} with {}: invalid configuration: {e} (see docs/configuration.md for the keys)",
                    names.join(", ")
                ))
            })?
        };
        let path = path.unwrap_or(Path::new("./dockmaster.yaml"));
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let dirs = [
            &mut config.descriptors,
            &mut config.lock_dir,
            &mut config.state_dir,
            &mut config.image_archives,
            &mut config.audit.database,
            &mut config.registry.database,
            &mut config.registry.cache_dir,
        ];
        for dir in dirs.into_iter().flatten() {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        if let Some(access) = &config.access {
            access.validate().map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            if config.ldap.is_none() {
                return Err(Error::Usage(format!(
                    "{}: `access` rules need an `ldap` section to know people's groups",
                    path.display()
                )));
            }
        }
        for (name, environment) in config.environments.iter_mut() {
            for file in &mut environment.overrides {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
            }
            environment.engine.resolve_paths(&base);
            environment
                .engine
                .validate()
                .map_err(|e| Error::Usage(format!("{}: `environments.{name}.engine`: {e}", path.display())))?;
        }
        schedule::validate(&config.schedules, &config.hooks)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        for job in config.schedules.iter().chain(&config.hooks) {
            config
                .check_environment(&job.environment)
                .map_err(|e| Error::Usage(format!("{}: `{}`: {e}", path.display(), job.name)))?;
        }
        config.policy.validate().map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        config.chat.users.validate().map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        if let Some(ldap) = &mut config.ldap {
            ldap.resolve_paths(&base);
        }
        if let Some(ca) = config.state.ca_file.as_mut().filter(|ca| ca.is_relative()) {
            *ca = base.join(&*ca);
        }
        // Check the durations now, so a typo fails before any deploy starts.
        for (key, value) in [
            ("deploy.timeout", &config.deploy.timeout),
            ("deploy.stability_window", &config.deploy.stability_window),
            ("deploy.lock_wait", &config.deploy.lock_wait),
            ("state.connect_timeout", &config.state.connect_timeout),
        ] {
            if let Some(v) = value {
                parse_duration(v).map_err(|e| Error::Usage(format!("{}: `{key}`: {e}", path.display())))?;
            }
        }
        Ok(config)
    }

    /// Checks that `name` is `default` or a configured environment, so a
    /// typo (`prdo`) is an error instead of a new, empty target.
    pub fn check_environment(&self, name: &str) -> Result<()> {
        if name == "default" || self.environments.contains_key(name) {
            return Ok(());
        }
        let mut known = vec!["default".to_string()];
        known.extend(self.environments.keys().cloned());
        Err(Error::Usage(format!(
            "environment `{name}` is not configured; known environments: {} (add it under `environments` in the \
             configuration)",
            known.join(", ")
        )))
    }

    /// The engine an environment deploys to (`environments.<name>.engine`;
    /// the local engine when it names none).
    pub fn engine(&self, environment: &str) -> engine::EngineConfig {
        self.environments.get(environment).map(|e| e.engine.clone()).unwrap_or_default()
    }

    /// The state folder in force.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        match (std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME")) {
            (Some(state), _) if !state.is_empty() => PathBuf::from(state).join("dockmaster"),
            (_, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".local/state/dockmaster"),
            _ => PathBuf::from(".dockmaster-state"),
        }
    }

    /// The lock folder in force.
    pub fn lock_dir(&self) -> PathBuf {
        self.lock_dir.clone().unwrap_or_else(|| PathBuf::from("/tmp/dockmaster-locks"))
    }

    /// The descriptor folder in force.
    pub fn descriptor_root(&self) -> PathBuf {
        self.descriptors.clone().unwrap_or_else(|| PathBuf::from("descriptors"))
    }
}

/// The `DOCKMASTER__a__b=value` variables: the key path (`["deploy",
/// "timeout"]`) and the raw value, in name order. Keys are written as in
/// the file (`DOCKMASTER__ldap__providerUrl`); an all-upper-case segment is
/// lower-cased (`DOCKMASTER__DEPLOY__TIMEOUT`).
pub fn env_overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<(Vec<String>, String)> {
    let mut found: Vec<(Vec<String>, String)> = vars
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix("DOCKMASTER__")?;
            let keys: Vec<String> = rest
                .split("__")
                .map(|k| if k.chars().any(|c| c.is_ascii_lowercase()) { k.to_string() } else { k.to_ascii_lowercase() })
                .collect();
            (!keys.iter().any(String::is_empty)).then_some((keys, value))
        })
        .collect();
    found.sort();
    found
}

/// Sets `keys` in `value` to `raw` read as YAML (`90s`, `true`, `[a, b]`,
/// `{k: v}`), creating maps on the way.
fn apply_override(value: &mut serde_yaml::Value, keys: &[String], raw: &str) -> Result<()> {
    let name = format!("DOCKMASTER__{}", keys.join("__"));
    let parsed: serde_yaml::Value =
        serde_yaml::from_str(raw).map_err(|e| Error::Usage(format!("{name}: the value is not YAML: {e}")))?;
    let mut at = value;
    for (i, key) in keys.iter().enumerate() {
        let serde_yaml::Value::Mapping(map) = at else {
            return Err(Error::Usage(format!("{name}: `{}` is not a map in the configuration", keys[..i].join("."))));
        };
        let key = serde_yaml::Value::String(key.clone());
        if i + 1 == keys.len() {
            map.insert(key, parsed);
            return Ok(());
        }
        at = map.entry(key).or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    }
    Ok(())
}

/// Parses a duration the way Compose writes them: `90s`, `1m30s`, `500ms`,
/// `2h`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return seconds(secs, text);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration `{text}`: expected a number before `{rest}` (examples: 90s, 1m30s, 500ms)"
            ));
        }
        let number: f64 = rest[..digits].parse().map_err(|_| format!("invalid duration `{text}`"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("invalid duration `{text}`: a unit is missing (ms, s, m, h)")),
            unit => return Err(format!("invalid duration `{text}`: unknown unit `{unit}` (use ms, s, m or h)")),
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    seconds(total, text)
}

fn seconds(secs: f64, text: &str) -> std::result::Result<Duration, String> {
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("invalid duration `{text}`: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_override_any_key_and_values_are_yaml() {
        let vars = [
            ("DOCKMASTER__DEPLOY__TIMEOUT", "90s"),
            ("DOCKMASTER__ldap__providerUrl", "ldaps://dir:636"),
            ("DOCKMASTER__labels", "{team: blue}"),
            ("DOCKMASTER_CONFIG", "/not/an/override"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let overrides = env_overrides(vars.into_iter());
        let keys: Vec<String> = overrides.iter().map(|(k, _)| k.join(".")).collect();
        assert_eq!(keys, ["deploy.timeout", "labels", "ldap.providerUrl"]);
        let mut value: serde_yaml::Value = serde_yaml::from_str("deploy: {parallelism: 2}\n").unwrap();
        for (keys, raw) in &overrides {
            apply_override(&mut value, keys, raw).unwrap();
        }
        assert_eq!(value["deploy"]["timeout"], serde_yaml::Value::from("90s"));
        assert_eq!(value["deploy"]["parallelism"], serde_yaml::Value::from(2));
        assert_eq!(value["labels"]["team"], serde_yaml::Value::from("blue"));
        let mut scalar: serde_yaml::Value = serde_yaml::from_str("deploy: 3\n").unwrap();
        let err = apply_override(&mut scalar, &["deploy".into(), "timeout".into()], "1s").unwrap_err();
        assert!(err.to_string().contains("`deploy` is not a map"), "{err}");
    }

    #[test]
    fn durations_as_compose_writes_them() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        for bad in ["", "s", "10x", "-5", "1e400", "m5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_file_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yml");
        std::fs::write(&path, "descriptors: d\nlabel: {a: b}\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("c.yml:2") && err.contains("label"), "{err}");
    }

    #[test]
    fn relative_descriptor_folders_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yml");
        std::fs::write(&path, "descriptors: d\ndeploy: {timeout: 2m}\nlabels: {team: a}\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.descriptor_root(), dir.path().join("d"));
        assert_eq!(config.labels["team"], "a");
        std::fs::write(&path, "deploy: {timeout: soon}\n").unwrap();
        assert!(Config::load(Some(&path)).unwrap_err().to_string().contains("deploy.timeout"));
    }
}

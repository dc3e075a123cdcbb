//! Rundeck as a way in: `dockmaster rundeck` runs as a script step.
//!
//! Rundeck passes everything through the environment (`RD_CONFIG_*` from the
//! plugin's configuration, `RD_OPTION_*` from job options, `RD_JOB_*` about
//! the execution), logs stdout at NORMAL and stderr at ERROR, fails the step
//! on any exit code but 0, and captures `RUNDECK:DATA:key=value` lines from
//! stdout for later steps. So this way in reads the request from the
//! environment, prints progress and the plain-text report on stdout (no
//! colours: Rundeck's log view has no terminal), errors on stderr, then the
//! data lines, and exits with the contract's code. `docs/rundeck.md` lists
//! every variable.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{parse_duration, Config};
use crate::descriptor::DescriptorRef;
use crate::error::{Error, Result};
use crate::pipeline::{self, Progress};
use crate::report;
use crate::request::{Action, Origin, Outcome, Request};
use crate::shutdown::Shutdown;

/// Progress lines on stdout, where Rundeck logs them at NORMAL level.
struct RundeckLog;

impl Progress for RundeckLog {
    fn step(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[dockmaster] {line}");
        let _ = out.flush();
    }
}

/// Reads a step setting: the plugin configuration (`RD_CONFIG_<NAME>`) wins
/// over a job option of the same name (`RD_OPTION_<NAME>`); empty counts as
/// unset, since Rundeck passes unset options as empty strings.
fn setting(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    [format!("RD_CONFIG_{name}"), format!("RD_OPTION_{name}")]
        .iter()
        .filter_map(|key| env(key))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

/// Reads a setting only the job's author may make: the plugin
/// configuration (`RD_CONFIG_<NAME>`). A job option of the same name is
/// ignored, so whoever runs the job cannot choose the configuration file
/// or move the target.
fn plugin_setting(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(&format!("RD_CONFIG_{name}")).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// What a Rundeck step asks for, read from its environment.
#[derive(Debug)]
pub struct StepRequest {
    /// The request for the pipeline.
    pub request: Request,
    /// The configuration (from the file the step names, if any).
    pub config: Config,
}

/// Builds the request from Rundeck's environment. `env` is the variable
/// lookup (the process environment in production, a map in tests).
/// `config_fallback` is the configuration file given to the binary itself
/// (`--config`, `DOCKMASTER_CONFIG`), used when the step names none.
pub fn step_request(env: &dyn Fn(&str) -> Option<String>, config_fallback: Option<&Path>) -> Result<StepRequest> {
    let descriptor = match setting(env, "DESCRIPTOR") {
        Some(d) => d,
        None => match (setting(env, "APPLICATION"), setting(env, "RELEASE")) {
            (Some(app), Some(rel)) => match setting(env, "VERSION") {
                Some(v) => format!("{app}/{rel}/{v}"),
                None => format!("{app}/{rel}"),
            },
            _ => {
                return Err(Error::Usage(
                    "no descriptor: set the step's `descriptor` (RD_CONFIG_DESCRIPTOR), or job options \
                     `descriptor`, or `application` and `release` (and optionally `version`)"
                        .into(),
                ))
            }
        },
    };
    let action: Action = setting(env, "ACTION")
        .as_deref()
        .unwrap_or("deploy")
        .parse()
        .map_err(|e: Error| Error::Usage(format!("step action (RD_CONFIG_ACTION): {e}")))?;
    if action == Action::Approve {
        return Err(Error::Usage(
            "step action (RD_CONFIG_ACTION): `approve` is not a step action; one of deploy, plan, status, rollback, down"
                .into(),
        ));
    }
    let config_path =
        plugin_setting(env, "CONFIG").map(PathBuf::from).or_else(|| config_fallback.map(Path::to_path_buf));
    let config = Config::load(config_path.as_deref())?;
    let mut options = config.deploy_options()?;
    if let Some(t) = setting(env, "TIMEOUT") {
        options.timeout = parse_duration(&t).map_err(|e| Error::Usage(format!("step timeout: {e}")))?;
    }
    if let Some(r) = setting(env, "ROLLBACK") {
        options.rollback = match r.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => true,
            "false" | "no" | "off" | "0" => false,
            other => return Err(Error::Usage(format!("step rollback: `{other}` is not true or false"))),
        };
    }
    let environment = setting(env, "ENVIRONMENT").unwrap_or_else(|| "default".into());
    let user =
        env("RD_JOB_USERNAME").or_else(|| env("RD_JOB_USER_NAME")).filter(|u| !u.is_empty()).ok_or_else(|| {
            Error::Denied("RD_JOB_USERNAME is not set: this step runs only inside a Rundeck job execution".into())
        })?;
    let origin = Origin::Rundeck {
        user: user.clone(),
        execution: env("RD_JOB_EXECID").unwrap_or_default(),
        url: env("RD_JOB_URL"),
        project: env("RD_JOB_PROJECT").unwrap_or_default(),
        job: env("RD_JOB_NAME").unwrap_or_default(),
    };
    let variables = secret_variables(env)?;
    let load = crate::descriptor::compose::LoadOptions {
        profiles: setting(env, "PROFILES")
            .map(|p| p.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default(),
        ..Default::default()
    };
    let mut descriptor_ref = DescriptorRef::parse(&descriptor)?;
    if action == Action::Rollback {
        if let (Some(to), DescriptorRef::Named { version, .. }) = (setting(env, "ROLLBACK_TO"), &mut descriptor_ref) {
            *version = Some(to);
        }
    }
    Ok(StepRequest {
        request: Request {
            action,
            descriptor: descriptor_ref,
            user: Some(user),
            password: None,
            project: plugin_setting(env, "PROJECT"),
            environment,
            origin,
            options,
            load,
            variables,
            adopt: false,
        },
        config,
    })
}

/// The secret the step hands to the descriptor: the variable named by the
/// `secret_variable` property (`RD_CONFIG_SECRET_VARIABLE`) gets the value
/// Rundeck put in `secret_key` (a Key Storage path read by
/// `STORAGE_PATH_AUTOMATIC_READ`) or `secret_option` (`option.NAME` turned
/// into a secure option's value by `PRIVATE_DATA_CONTEXT`). The value is
/// only ever interpolated, never printed, and masked in the audit trail.
fn secret_variables(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<std::collections::BTreeMap<String, crate::request::Secret>> {
    let mut variables = std::collections::BTreeMap::new();
    if let Some(name) = env("RD_CONFIG_SECRET_VARIABLE").map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::Usage(format!(
                "secret_variable `{name}` is not a variable name (letters, digits and `_`)"
            )));
        }
        let value = ["RD_CONFIG_SECRET_KEY", "RD_CONFIG_SECRET_OPTION"]
            .iter()
            .filter_map(|k| env(k))
            .find(|v| !v.is_empty() && !v.starts_with("option.") && !v.starts_with("keys/"))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "secret_variable `{name}` is set but neither secret_key nor secret_option gave a value: check                      that the Key Storage path exists and the job may read it, or that the secure option is set"
                ))
            })?;
        variables.insert(name, crate::request::Secret(value));
    }
    Ok(variables)
}

/// The `RUNDECK:DATA` lines later steps read as `${data.KEY}`.
pub fn data_lines(outcome: &Outcome) -> Vec<String> {
    let mut data = vec![
        ("target", outcome.target.clone()),
        ("action", outcome.action.as_str().to_string()),
        ("version", outcome.descriptor.version.clone().unwrap_or_default()),
        ("digest", outcome.descriptor.digest.clone()),
    ];
    if let Some(report) = &outcome.report {
        let verdict = if report.verdict.is_healthy() && outcome.error.is_none() { "healthy" } else { "failed" };
        data.push(("verdict", verdict.to_string()));
        data.push(("services_healthy", report.healthy_count().to_string()));
        data.push(("services_total", report.services.len().to_string()));
        let failing: Vec<&str> =
            report.services.iter().filter(|s| s.status.is_failed()).map(|s| s.name.as_str()).collect();
        data.push(("services_failing", failing.join(",")));
    }
    if outcome.action == Action::Deploy || outcome.action == Action::Rollback {
        data.push(("rolled_back", outcome.rollback.is_some().to_string()));
    }
    // The key-value filter takes everything after `=` to the end of the
    // line: keep values on one line.
    data.into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("RUNDECK:DATA:{k}={}", v.replace(['\n', '\r'], " ")))
        .collect()
}

/// Runs a Rundeck step and returns the exit code.
///
/// `descriptors` is the command line's `--descriptors`: it overrides the
/// configuration the step reads, as it does for every other command.
pub async fn run(config_fallback: Option<PathBuf>, descriptors: Option<PathBuf>) -> i32 {
    let env = |key: &str| std::env::var(key).ok();
    let step = match step_request(&env, config_fallback.as_deref()) {
        Ok(mut step) => {
            if let Some(dir) = descriptors {
                step.config.descriptors = Some(dir);
            }
            step
        }
        Err(e) => {
            record_refused_step(&env, config_fallback.as_deref(), &e);
            print_error_data(None, &e);
            let _ = writeln!(std::io::stderr(), "dockmaster: error: {e}");
            return e.exit_code();
        }
    };
    let config = &step.config;
    let progress = RundeckLog;
    progress.step(&format!(
        "{} {} requested by {} (execution {})",
        step.request.action.as_str(),
        step.request.descriptor,
        step.request.origin.who(),
        match &step.request.origin {
            Origin::Rundeck { execution, .. } => execution.as_str(),
            _ => "",
        }
    ));

    let (trigger, shutdown) = Shutdown::new();
    crate::shutdown::listen_for_signals(trigger);
    match pipeline::run(&step.request, config, &progress, &shutdown).await {
        Ok(outcome) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(report::text::render(&outcome).as_bytes());
            for line in data_lines(&outcome) {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
            if let Some(e) = &outcome.error {
                let _ = writeln!(std::io::stderr(), "dockmaster: error: {}", e.message);
            } else if outcome.exit_code() != 0 {
                let _ =
                    writeln!(std::io::stderr(), "dockmaster: {} is not healthy (see the report above)", outcome.target);
            }
            outcome.exit_code()
        }
        Err(e) => {
            print_error_data(Some(&step.request), &e);
            let _ = writeln!(std::io::stderr(), "dockmaster: error: {e}");
            e.exit_code()
        }
    }
}

/// `RUNDECK:DATA` lines for a step that ended without an outcome, so a
/// later step can tell a refusal (`verdict=denied`) from an unreachable
/// engine (`verdict=unavailable`) without parsing messages.
fn print_error_data(request: Option<&Request>, error: &Error) {
    let verdict = error.verdict();
    let mut out = std::io::stdout().lock();
    if let Some(request) = request {
        let target = crate::target::of(&request.descriptor, &request.environment, request.project.as_deref(), None)
            .unwrap_or_default();
        let _ = writeln!(out, "RUNDECK:DATA:target={target}");
        let _ = writeln!(out, "RUNDECK:DATA:action={}", request.action.as_str());
    }
    let _ = writeln!(out, "RUNDECK:DATA:verdict={verdict}");
    let _ = writeln!(out, "RUNDECK:DATA:exit_code={}", error.exit_code());
}

/// Records a step refused before it became a request (no
/// `RD_JOB_USERNAME`, a bad reference or action), so the trail holds every
/// request. Without a readable configuration there is no trail to write.
fn record_refused_step(env: &dyn Fn(&str) -> Option<String>, config_fallback: Option<&Path>, error: &Error) {
    let path = plugin_setting(env, "CONFIG").map(PathBuf::from).or_else(|| config_fallback.map(Path::to_path_buf));
    let Ok(config) = Config::load(path.as_deref()) else { return };
    let user = env("RD_JOB_USERNAME").or_else(|| env("RD_JOB_USER_NAME")).filter(|u| !u.is_empty());
    let origin = Origin::Rundeck {
        user: user.unwrap_or_else(|| "(no RD_JOB_USERNAME)".into()),
        execution: env("RD_JOB_EXECID").unwrap_or_default(),
        url: env("RD_JOB_URL"),
        project: env("RD_JOB_PROJECT").unwrap_or_default(),
        job: env("RD_JOB_NAME").unwrap_or_default(),
    };
    let reference = setting(env, "DESCRIPTOR").unwrap_or_default();
    let action = setting(env, "ACTION").unwrap_or_else(|| "deploy".into());
    let environment = setting(env, "ENVIRONMENT").unwrap_or_else(|| "default".into());
    pipeline::record_refusal(&config, origin, &action, &reference, &environment, error);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn the_plugin_config_wins_over_job_options_and_cascading_options_build_a_reference() {
        let e = env(&[
            ("RD_JOB_USERNAME", "alice"),
            ("RD_JOB_EXECID", "42"),
            ("RD_OPTION_APPLICATION", "TLO GE"),
            ("RD_OPTION_RELEASE", "Milestone"),
            ("RD_OPTION_VERSION", "3"),
            ("RD_CONFIG_TIMEOUT", "90s"),
            ("RD_CONFIG_ROLLBACK", "false"),
            ("RD_OPTION_TIMEOUT", "5s"),
        ]);
        let step = step_request(&e, None).unwrap();
        assert_eq!(step.request.descriptor.to_string(), "TLO GE/Milestone/3");
        assert_eq!(step.request.options.timeout, std::time::Duration::from_secs(90));
        assert!(!step.request.options.rollback);
        assert_eq!(step.request.origin.who(), "alice (rundeck)");
    }

    #[test]
    fn missing_user_or_descriptor_or_bad_action_are_clear_errors() {
        let no_user = env(&[("RD_CONFIG_DESCRIPTOR", "a/b")]);
        assert!(matches!(step_request(&no_user, None), Err(Error::Denied(_))));
        let no_descriptor = env(&[("RD_JOB_USERNAME", "alice"), ("RD_OPTION_DESCRIPTOR", "")]);
        assert!(step_request(&no_descriptor, None).unwrap_err().to_string().contains("no descriptor"));
        let bad = env(&[("RD_JOB_USERNAME", "alice"), ("RD_CONFIG_DESCRIPTOR", "a/b"), ("RD_CONFIG_ACTION", "nuke")]);
        assert!(step_request(&bad, None).unwrap_err().to_string().contains("`nuke`"));
    }
}

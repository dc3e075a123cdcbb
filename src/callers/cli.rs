//! The command line as a way in: flags → `Request`, `Outcome` → stdout and
//! an exit code from the documented contract.

use std::io::{IsTerminal, Write};

use crate::cli::{Cli, Command, ConfigFormat, DeployArgs, OutputFormat, TargetArgs};
use crate::config::{parse_duration, Config};
use crate::descriptor::compose::{load_with_options, LoadOptions};
use crate::descriptor::DescriptorRef;
use crate::error::{Error, Result};
use crate::pipeline::{self, Progress};
use crate::report;
use crate::request::{Action, DeployOptions, Origin, Outcome, Request};
use crate::shutdown::Shutdown;

/// Progress lines on stderr, so stdout carries only the report (and JSON
/// stays parseable).
struct Stderr;

impl Progress for Stderr {
    fn step(&self, line: &str) {
        let _ = writeln!(std::io::stderr(), "dockmaster: {line}");
    }
}

/// Runs one command line and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match try_run(cli).await {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "dockmaster: error: {e}");
            e.exit_code()
        }
    }
}

async fn try_run(cli: Cli) -> Result<i32> {
    // Generated from the clap definitions alone: no configuration is read,
    // so a broken or unreadable one cannot break a shell's startup file.
    match &cli.command {
        Command::Completions { shell } => return super::generate::completions(*shell),
        Command::Man => return super::generate::man(),
        // The step reads its own configuration (the plugin's `config`
        // setting first, then --config), with DOCKMASTER__ overrides over
        // it: overrides over a file it does not read would be a different
        // configuration, or none.
        Command::Rundeck => return Ok(super::rundeck::run(cli.config.clone(), cli.descriptors.clone()).await),
        _ => {}
    }
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = &cli.descriptors {
        config.descriptors = Some(dir.clone());
    }
    let (action, target, options) = match &cli.command {
        Command::Options { what, env } => return print_options(&config, what, env).await,
        Command::Config { reference, format, project, profiles, env_file, overrides } => {
            let options = LoadOptions {
                profiles: profiles.clone(),
                env_file: env_file.clone(),
                overrides: overrides.iter().map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone())).collect(),
                ..Default::default()
            };
            return print_config(&config, reference, *format, project.as_deref(), &options).await;
        }
        Command::Serve { listen } => return crate::serve::run(config, listen.clone()).await.map(|()| 0),
        Command::Deploy(args) => (Action::Deploy, &args.target, deploy_options(&config, args)?),
        Command::Rollback(args) => (Action::Rollback, &args.deploy.target, deploy_options(&config, &args.deploy)?),
        Command::Plan(target) => (Action::Plan, target, config.deploy_options()?),
        Command::Status(target) => (Action::Status, target, config.deploy_options()?),
        Command::Review(args) => return super::review::run(&config, args).await,
        Command::Healthcheck { address } => return healthcheck(&config, address.clone()).await,
        Command::Publish { file, applications, releases, registry, strict } => {
            return publish(&config, file, applications, releases, registry.clone(), *strict).await
        }
        Command::Schedules { next, output } => return super::schedules::run(&config, *next, *output),
        Command::State { command } => return super::state::run(&config, command).await,
        Command::History(args) => return super::history::run(&config, cli.user.as_deref(), args).await,
        Command::Approve(args) => (Action::Approve, &args.target, config.deploy_options()?),
        Command::Completions { .. } | Command::Man | Command::Rundeck => unreachable!("dispatched above"),
        Command::Down(args) => {
            let mut options = config.deploy_options()?;
            options.remove_volumes = args.volumes;
            (Action::Down, &args.target, options)
        }
    };
    let mut request = match request(action, target, options) {
        Ok(request) => request,
        Err(e) => {
            // A request refused before the pipeline (a reference that is
            // neither a file nor APPLICATION/RELEASE) is recorded too.
            let origin = Origin::cli();
            pipeline::record_refusal(&config, origin, action.as_str(), &target.reference, &target.env, &e);
            return Err(e);
        }
    };
    if let Some(user) = &cli.user {
        // The password only ever comes from the environment (or a secret
        // store that sets it), never from the command line, where `ps` sees it.
        let password = std::env::var("DOCKMASTER_PASSWORD")
            .map_err(|_| Error::Usage(format!("--user {user}: set DOCKMASTER_PASSWORD to the directory password")))?;
        request.user = Some(user.clone());
        request.password = Some(crate::request::Secret(password));
    }
    if let (Command::Rollback(args), DescriptorRef::Named { version, .. }) = (&cli.command, &mut request.descriptor) {
        if args.to.is_some() {
            version.clone_from(&args.to);
        }
    }
    if let Command::Approve(args) = &cli.command {
        match (&args.version, &mut request.descriptor) {
            (Some(v), DescriptorRef::Named { version, .. }) => *version = Some(v.clone()),
            (Some(_), DescriptorRef::File(path)) => {
                return Err(Error::Usage(format!(
                    "approve {}: a file has no versions; approve the file alone (its digest is recorded)",
                    path.display()
                )))
            }
            _ => {}
        }
    }
    let progress: Box<dyn Progress> = if cli.quiet { Box::new(pipeline::Silent) } else { Box::new(Stderr) };
    let (trigger, shutdown) = Shutdown::new();
    crate::shutdown::listen_for_signals(trigger);
    let outcome = pipeline::run(&request, &config, progress.as_ref(), &shutdown).await?;
    // Quiet (cron): silence is success; a failure prints its report.
    if !cli.quiet || outcome.exit_code() != 0 {
        print_outcome(&outcome, target.output);
    }
    Ok(outcome.exit_code())
}

/// `dockmaster publish`: prints the new versions, one per line, and on
/// stderr what they reference but no fragment defines, one line each
/// (`--strict`: refused, exit 3).
async fn publish(
    config: &Config,
    file: &std::path::Path,
    applications: &[String],
    releases: &[String],
    registry: Option<String>,
    strict: bool,
) -> Result<i32> {
    let base = registry.or_else(|| config.registry.url.clone()).ok_or_else(|| {
        Error::Usage("no registry: give --registry URL, DOCKMASTER_REGISTRY, or registry.url in the config".into())
    })?;
    let token = std::env::var("DOCKMASTER_REGISTRY_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| Error::Usage("set DOCKMASTER_REGISTRY_TOKEN to a publishing token".into()))?;
    let (versions, warnings) =
        crate::registry::client::publish(config, &base, token.trim(), file, applications, releases, strict).await?;
    let mut out = std::io::stdout().lock();
    for v in versions {
        let _ = writeln!(out, "{}/{}/{} {}", v.application, v.release, v.version, v.digest);
    }
    let mut err = std::io::stderr().lock();
    for warning in &warnings {
        let _ = writeln!(err, "dockmaster: warning: {}", warning.line());
    }
    Ok(0)
}

/// GETs `/healthz` of a local `serve`; exit 0 on 200, 1 otherwise.
async fn healthcheck(config: &Config, address: Option<String>) -> Result<i32> {
    let address = address
        .or_else(|| std::env::var("DOCKMASTER_LISTEN").ok())
        .or_else(|| config.serve.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Usage(format!("cannot build an HTTP client: {e}")))?;
    match client.get(format!("http://{address}/healthz")).send().await {
        Ok(r) if r.status().is_success() => Ok(0),
        Ok(r) => {
            let _ = writeln!(std::io::stderr(), "dockmaster: {address}/healthz answered {}", r.status());
            Ok(1)
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "dockmaster: {address} does not answer: {}", e.without_url());
            Ok(1)
        }
    }
}

fn deploy_options(config: &Config, args: &DeployArgs) -> Result<DeployOptions> {
    let mut options = config.deploy_options()?;
    if let Some(t) = &args.timeout {
        options.timeout = duration_flag("--timeout", t)?;
    }
    if let Some(w) = &args.stability_window {
        options.stability_window = duration_flag("--stability-window", w)?;
    }
    options.build = args.build;
    options.rollback = !args.no_rollback;
    options.force_recreate = args.force_recreate;
    options.renew_anon_volumes = args.renew_anon_volumes;
    if let Some(n) = args.parallelism {
        options.parallelism = n.max(1);
    }
    if let Some(w) = &args.lock_wait {
        options.lock_wait = duration_flag("--lock-wait", w)?;
    }
    Ok(options)
}

/// `dockmaster config`: the normalised model, with the loader's warnings on
/// stderr. Environment values are printed: this is the user's own file.
async fn print_config(
    config: &Config,
    reference: &str,
    format: ConfigFormat,
    project: Option<&str>,
    options: &LoadOptions,
) -> Result<i32> {
    let reference = DescriptorRef::parse(reference)?;
    let descriptor = pipeline::resolve(config, &reference).await?;
    // `-p` is the project name the file interpolates as COMPOSE_PROJECT_NAME
    // too, whatever `.env` says, as in Compose.
    let pinned = project.map(crate::descriptor::project_name);
    let env = |name: &str| match (name, &pinned) {
        ("COMPOSE_PROJECT_NAME", Some(p)) => Some(p.clone()),
        _ => std::env::var(name).ok(),
    };
    let mut stack = load_with_options(&descriptor, &reference.default_project(), options, &env)?;
    if let Some(name) = &pinned {
        stack.retarget(name);
    }
    for warning in std::mem::take(&mut stack.warnings) {
        let _ = writeln!(std::io::stderr(), "dockmaster: warning: {warning}");
    }
    let document = crate::descriptor::render::compose_document(&stack);
    let text = match format {
        ConfigFormat::Yaml => {
            serde_yaml::to_string(&document).map_err(|e| Error::Internal(format!("rendering YAML: {e}")))?
        }
        ConfigFormat::Json => {
            let mut t =
                serde_json::to_string_pretty(&document).map_err(|e| Error::Internal(format!("rendering JSON: {e}")))?;
            t.push('\n');
            t
        }
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(0)
}

async fn print_options(config: &Config, what: &[String], env: &str) -> Result<i32> {
    use super::options;
    let words: Vec<&str> = what.iter().map(String::as_str).collect();
    let choices = match words.as_slice() {
        ["applications"] => options::applications(config).await?,
        ["releases", application] => options::releases(config, application).await?,
        ["versions", application, release] => options::versions(config, application, release, env).await?,
        _ => {
            return Err(Error::Usage(
                "options takes `applications`, `releases APPLICATION` or `versions APPLICATION RELEASE`".into(),
            ))
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(options::render(&choices).as_bytes());
    Ok(0)
}

fn duration_flag(name: &str, value: &str) -> Result<std::time::Duration> {
    parse_duration(value).map_err(|e| Error::Usage(format!("{name}: {e}")))
}

fn request(action: Action, target: &TargetArgs, options: DeployOptions) -> Result<Request> {
    Ok(Request {
        action,
        descriptor: DescriptorRef::parse(&target.reference)?,
        project: target.project.clone(),
        user: None,
        password: None,
        environment: target.env.clone(),
        origin: Origin::cli(),
        options,
        load: LoadOptions {
            profiles: target.profiles.clone(),
            env_file: target.env_file.clone(),
            overrides: target.overrides.iter().map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone())).collect(),
            ..Default::default()
        },
        variables: Default::default(),
        adopt: target.adopt,
    })
}

fn print_outcome(outcome: &Outcome, format: OutputFormat) {
    let text = match format {
        OutputFormat::Text => report::text::render(outcome),
        OutputFormat::Json => report::json::render(outcome),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`dockmaster status … | head`) is a normal way to end.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    let _ = std::io::stdout().is_terminal();
}

//! The pipeline: runs the stages in order. The only place that knows it.
//!
//! identify → authorize → resolve → load → policy guard → (lock →
//! classify → approval gate →) plan → apply → watch → report → audit.
//! Every way in calls [`run`], so every way in gets every stage, and every
//! request leaves exactly one audit record, whatever became of it.

mod access;
mod approval;
mod deploy;
mod docker;
mod record;
mod status;

pub use access::{authorize, channel_rule, identify, scope, versioned_scope};
use access::{authorize_adopt, authorize_version};
use approval::{approval_gate, approve, rollback_version};
pub(crate) use deploy::{Applied, Planned};
use record::record;
pub use record::{record_event, record_refusal};

use std::time::Duration;

use crate::audit::{self};
use crate::config::Config;
use crate::descriptor::{self, compose, Descriptor, DescriptorRef};
use crate::engine::connect::EngineKind;
use crate::engine::DockerEngine;
use crate::error::{Error, Result};
use crate::identity::Principal;
use crate::lock::{Holder, TargetLock};
use crate::plan;
use crate::policy::{self, Classification};
use crate::request::{Action, DescriptorSummary, Outcome, OutcomeError, Request};
use crate::shutdown::Shutdown;
use crate::stack::Stack;

/// Receives progress lines while the pipeline works, so a long deploy is
/// never silent. Each way in decides where they go (stderr on a terminal,
/// the Rundeck log, nowhere for chat).
pub trait Progress: Send + Sync {
    /// One line of progress.
    fn step(&self, line: &str);

    /// Where a deploy is, as structured news, beside the lines: ways in
    /// that show a progress bar (Slack's app mode) follow these rather than
    /// read the words of [`Progress::step`]; the others need nothing.
    fn phase(&self, _phase: Phase) {}
}

/// The phases of a deploy, in order, as [`Progress::phase`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Authorized and planned: this many services will be created,
    /// replaced, started or removed.
    Planned(usize),
    /// One of those changes was carried out.
    Applied,
    /// Every change is made; watching until every service settles.
    Watching,
    /// The deploy failed and is being rolled back.
    RollingBack,
}

/// What every engine stage needs besides the stack: the request (for its
/// options), the configuration, where progress goes, and the shutdown
/// signal a long watch gives way to.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub request: &'a Request,
    pub config: &'a Config,
    pub progress: &'a dyn Progress,
    pub shutdown: &'a Shutdown,
}

/// What the pipeline asks of an engine, whatever runs the containers:
/// one engine ([`DockerEngine`], containers replaced by dockmaster) or a
/// Swarm manager ([`crate::swarm::SwarmEngine`], services updated by
/// Swarm). The engine carries out steps; the order of the steps and every
/// decision between them (what to plan, whether the deploy failed,
/// whether to roll back) are the pipeline's ([`deploy::deploy`]), as are
/// identity, access, policy, locks, approvals and the audit trail, so
/// every engine gets the same guarantees.
pub(crate) trait Engine {
    /// What the engine records, step by step, to undo a deploy.
    type Undo;
    /// Where the engine is, for reports and the audit trail.
    fn describe(&self) -> String;
    /// How the one planner ([`plan::diff`]) compares this engine's state
    /// with a stack.
    fn rules(&self) -> plan::Rules;
    /// What runs for a target now, and nothing else (status, rollback).
    async fn observe(&self, target: &str) -> Result<Vec<plan::ObservedContainer>>;
    /// One look at everything a plan compares: the target's containers
    /// and the images, networks and volumes the stack needs.
    async fn observe_target(&self, stack: &Stack) -> Result<plan::Observed>;
    /// Image-only or structural, against what runs now.
    fn classify(&self, stack: &Stack, observed: &[plan::ObservedContainer]) -> Classification {
        policy::classify::classify_with(stack, observed, self.rules().hash)
    }
    /// Refuses, every problem at once, what this engine cannot run.
    fn check(&self, stack: &Stack) -> Result<()>;
    /// Makes what a deploy needs exist before anything is replaced
    /// (images built, loaded or pulled; external objects checked), and
    /// records the images in `observed`. Says where each image came from.
    async fn prepare(
        &self,
        cx: &Cx<'_>,
        stack: &Stack,
        observed: &mut plan::Observed,
    ) -> Result<Vec<crate::request::ImageUse>>;
    /// Carries out the plan and watches it until every service settles,
    /// one fails, or the deadline passes.
    async fn apply(
        &self,
        cx: &Cx<'_>,
        deploy: &deploy::Planned<'_>,
        summary: &DescriptorSummary,
    ) -> Result<deploy::Applied<Self::Undo>>;
    /// The deploy is healthy: what it replaced, and what is no longer in
    /// the descriptor, goes.
    async fn finish(&self, cx: &Cx<'_>, deploy: &deploy::Planned<'_>, undo: &[Self::Undo]) -> Result<()>;
    /// The deploy failed: puts back what ran before (and removes what the
    /// deploy created), then watches what is back.
    async fn undo(
        &self,
        cx: &Cx<'_>,
        deploy: &deploy::Planned<'_>,
        undo: &[Self::Undo],
        reason: String,
    ) -> Result<crate::apply::RollbackReport>;
    /// The health of what runs now.
    async fn status(&self, cx: &Cx<'_>, stack: &Stack, summary: DescriptorSummary) -> Result<Outcome>;
    /// Removes the target.
    async fn down(&self, cx: &Cx<'_>, stack: &Stack, summary: DescriptorSummary) -> Result<Outcome>;
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _line: &str) {}
}

/// What the stages learned on the way, for the audit record: filled in as
/// they go, so a request that fails halfway is recorded with everything
/// known up to the failure.
#[derive(Debug, Default)]
struct Trail {
    principal: Option<Principal>,
    decision: Option<String>,
    target: Option<String>,
    summary: Option<DescriptorSummary>,
    classification: Option<Classification>,
    violations: Vec<String>,
    descriptor: Option<String>,
    engine: Option<String>,
    /// Every secret value this request has met so far: whatever leaves
    /// goes through it.
    redactor: crate::redact::Redactor,
}

/// Runs one request through every stage, records it in the audit trail,
/// posts the report to the configured webhooks, and returns what happened.
///
/// The audit trail is opened first: when it cannot be written, nothing
/// happens at all. The record is durable before this returns, so before
/// any way in reports.
pub async fn run(request: &Request, config: &Config, progress: &dyn Progress, shutdown: &Shutdown) -> Result<Outcome> {
    let started = audit::now();
    let clock = std::time::Instant::now();
    let store = audit::open(config)?;
    let mut trail = Trail { redactor: crate::redact::Redactor::for_request(request), ..Trail::default() };
    trail.redactor.learn_config(config);
    // One redaction at the boundary: the outcome and the error, on every
    // path, before the record, the webhooks and the way in see them.
    let mut result = match stages(request, config, progress, shutdown, &store, &mut trail).await {
        Ok(mut outcome) => {
            trail.redactor.outcome(&mut outcome);
            Ok(outcome)
        }
        Err(e) => Err(trail.redactor.error(e)),
    };
    let record = record(request, &trail, &result, started);
    // Time to healthy is a deploy's (or rollback's) measure: a `status`
    // that finds a healthy target has not made it healthy.
    let healthy_after = match &result {
        Ok(Outcome { action: Action::Deploy | Action::Rollback, report: Some(report), error: None, .. })
            if report.verdict.is_healthy() =>
        {
            Some(report.elapsed_seconds)
        }
        _ => None,
    };
    crate::metrics::observe(&record, healthy_after, clock.elapsed().as_secs_f64());
    let writer = store.clone();
    let written = tokio::task::spawn_blocking(move || writer.append(&record))
        .await
        .unwrap_or_else(|e| Err(Error::Internal(format!("audit task failed: {e}"))));
    if let Err(e) = written {
        match &mut result {
            Ok(outcome) if outcome.error.is_none() => {
                outcome.error = Some(OutcomeError {
                    exit_code: crate::error::EXIT_INTERNAL,
                    message: format!("the request ran but its audit record was not written: {e}"),
                    items: vec![],
                })
            }
            _ => progress.step(&format!("warning: the audit record was not written: {e}")),
        }
    }
    if matches!(request.action, Action::Deploy | Action::Rollback | Action::Down) {
        match &result {
            Ok(outcome) if outcome.unchanged() => {}
            Ok(outcome) => crate::notify::send_all(&config.notify.webhooks, outcome, progress).await,
            Err(e) => {
                crate::notify::send_error(&config.notify.webhooks, request, trail.target.as_deref(), e, progress).await
            }
        }
    }
    result
}

async fn stages(
    request: &Request,
    config: &Config,
    progress: &dyn Progress,
    shutdown: &Shutdown,
    store: &audit::Store,
    trail: &mut Trail,
) -> Result<Outcome> {
    config.check_environment(&request.environment)?;
    channel_rule(config, &request.origin, &request.environment)?;
    let changes_things = matches!(request.action, Action::Deploy | Action::Down | Action::Rollback);
    trail.principal =
        identify(config, request.user.as_deref(), request.password.as_ref(), changes_things, progress).await?;
    trail.decision = authorize(request, config, trail.principal.as_ref(), request.action, progress)?;
    let mut descriptor = resolve(config, &request.descriptor).await?;
    trail.summary = Some(summarize(request, &descriptor));
    let mut stack = load(request, config, &descriptor)?;
    trail.redactor.learn(&config.audit, &stack);
    // The digest covers every file the load read, not the main one alone.
    descriptor.digest = descriptor.digest_with(&stack.inputs);
    trail.summary = Some(summarize(request, &descriptor));
    let declared = stack.name.clone();
    let target =
        crate::target::of(&request.descriptor, &request.environment, request.project.as_deref(), Some(&declared))?;
    stack.retarget(&target);
    if matches!(request.descriptor, DescriptorRef::Named { .. }) && declared != request.descriptor.default_project() {
        progress.step(&format!(
            "note: the descriptor's `name: {declared}` does not choose the target of a named descriptor; it deploys to `{}`",
            stack.name
        ));
    }
    trail.target = Some(stack.name.clone());
    // Rules that name a version see the version that was resolved.
    if descriptor.version.is_some() {
        trail.decision = authorize_version(request, config, trail.principal.as_ref(), descriptor.version.as_deref())?
            .or(trail.decision.take());
    }
    if matches!(request.action, Action::Deploy | Action::Rollback | Action::Plan | Action::Approve) {
        guard(request, config, &stack, trail)?;
    }
    if request.action == Action::Deploy {
        trail.descriptor = Some(trail.redactor.text(&masked_descriptor(request, config, &stack)));
    }
    if request.adopt {
        authorize_adopt(request, config, trail.principal.as_ref())?;
    }
    let engine_config = config.engine(&request.environment);
    let owner = crate::target::Owner::of(&request.descriptor, &request.environment);
    let mut labels = config.labels.clone();
    labels.extend(owner.labels());
    let docker = DockerEngine::connect_to(&engine_config, &request.environment, labels).await?;
    let cx = Cx { request, config, progress, shutdown };
    // One deploy, down or rollback of a target at a time, across
    // processes: taken before anything is observed, so what the stages
    // see stays true until they change it themselves.
    let _lock = match request.action {
        Action::Deploy | Action::Down | Action::Rollback => Some(lock(request, config, &stack.name, progress).await?),
        _ => None,
    };
    let mut outcome = match engine_config.kind {
        EngineKind::Docker => {
            // The stages share one look at the engine until they change it.
            let docker = docker.surveyed();
            trail.engine = Some(docker.describe());
            if request.action != Action::Approve {
                let files_share = config.access.is_none();
                let adopted = crate::ownership::check(&docker, &stack, &owner, files_share, request.adopt).await?;
                note_adopted(progress, trail, &adopted);
            }
            act(&docker, &cx, &stack, &descriptor, store, trail).await?
        }
        EngineKind::Swarm => {
            // A node that is no manager is refused first, in its own words.
            let swarm = crate::swarm::SwarmEngine::new(docker.clone(), &request.environment).await?;
            if request.action != Action::Approve {
                let files_share = config.access.is_none();
                let adopted =
                    crate::ownership::check_swarm(&docker, &stack, &owner, files_share, request.adopt).await?;
                note_adopted(progress, trail, &adopted);
            }
            trail.engine = Some(swarm.describe());
            act(&swarm, &cx, &stack, &descriptor, store, trail).await?
        }
    };
    outcome.engine = trail.engine.clone();
    Ok(outcome)
}

/// Says what `--adopt` took over, on the progress and in the record.
fn note_adopted(progress: &dyn Progress, trail: &mut Trail, adopted: &[String]) {
    if adopted.is_empty() {
        return;
    }
    progress.step(&format!("adopting (--adopt): {}", adopted.join("; ")));
    trail.decision = Some(format!("{}; adopted {}", trail.decision.clone().unwrap_or_default(), adopted.join("; ")));
}

/// The stages that touch the engine, the same for every kind of engine.
async fn act<E: Engine>(
    engine: &E,
    cx: &Cx<'_>,
    stack: &Stack,
    descriptor: &Descriptor,
    store: &audit::Store,
    trail: &mut Trail,
) -> Result<Outcome> {
    let Cx { request, config, progress, .. } = *cx;
    let summary = summarize(request, descriptor);
    match request.action {
        Action::Plan => {
            engine.check(stack)?;
            let observed = engine.observe_target(stack).await?;
            trail.classification = Some(engine.classify(stack, &observed.containers));
            let plan = plan::diff(stack, &observed, &engine.rules());
            Ok(Outcome {
                plan: Some(plan),
                classification: trail.classification.clone(),
                ..Outcome::new(stack.name.clone(), request.action, summary)
            })
        }
        Action::Deploy => {
            // The one look at the engine this deploy takes.
            let observed = engine.observe_target(stack).await?;
            let classification = engine.classify(stack, &observed.containers);
            trail.classification = Some(classification.clone());
            if request.options.only_if_changed {
                engine.check(stack)?;
                let plan = plan::diff(stack, &observed, &engine.rules());
                if plan.is_noop() {
                    progress.step(&format!("{}: nothing changed; nothing deployed", stack.name));
                    return Ok(Outcome {
                        plan: Some(plan),
                        classification: Some(classification),
                        ..Outcome::new(stack.name.clone(), request.action, summary)
                    });
                }
            }
            let bound = run_digest(request, config, stack);
            approval_gate(request, config, store, trail, &summary, &bound, &classification, progress)?;
            let mut outcome = deploy::deploy(engine, cx, stack, observed, summary).await?;
            outcome.classification = Some(classification);
            Ok(outcome)
        }
        Action::Approve => {
            let observed = engine.observe(&stack.name).await?;
            let classification = engine.classify(stack, &observed);
            trail.classification = Some(classification.clone());
            let bound = run_digest(request, config, stack);
            approve(request, store, trail, &summary, &bound, &classification, progress)?;
            Ok(Outcome {
                classification: Some(classification),
                ..Outcome::new(stack.name.clone(), request.action, summary)
            })
        }
        Action::Status => status::status(engine, cx, stack, descriptor).await,
        Action::Down => engine.down(cx, stack, summary).await,
        Action::Rollback => {
            let previous = rollback_version(request, store, stack)?;
            progress.step(&format!("rolling {} back to version {previous}", stack.name));
            let mut target = request.clone();
            if let DescriptorRef::Named { version, .. } = &mut target.descriptor {
                *version = Some(previous);
            }
            let mut descriptor = resolve(config, &target.descriptor).await?;
            let mut previous_stack = load(&target, config, &descriptor)?;
            descriptor.digest = descriptor.digest_with(&previous_stack.inputs);
            previous_stack.retarget(&stack.name);
            // The version gone back to must still meet today's policy.
            guard(&target, config, &previous_stack, trail)?;
            let summary = summarize(&target, &descriptor);
            trail.summary = Some(summary.clone());
            trail.redactor.learn(&config.audit, &previous_stack);
            trail.descriptor = Some(trail.redactor.text(&masked_descriptor(&target, config, &previous_stack)));
            let observed = engine.observe_target(&previous_stack).await?;
            let cx = Cx { request: &target, ..*cx };
            let mut outcome = deploy::deploy(engine, &cx, &previous_stack, observed, summary).await?;
            outcome.action = Action::Rollback;
            Ok(outcome)
        }
    }
}

/// Finds a descriptor: from the registry when `registry.url` is set and
/// the reference is named, else from the descriptor folder (or the file).
pub async fn resolve(config: &Config, reference: &DescriptorRef) -> Result<Descriptor> {
    match (&config.registry.url, reference) {
        (Some(url), DescriptorRef::Named { .. }) => crate::registry::client::resolve(config, url, reference).await,
        _ => descriptor::resolve(reference, &config.descriptor_root()),
    }
}

/// Loads the descriptor as the request and its environment say: the
/// environment's override files, then the request's own; the request's
/// variables ahead of the process environment.
fn load(request: &Request, config: &Config, descriptor: &Descriptor) -> Result<Stack> {
    let mut options = request.load.clone();
    if let Some(environment) = config.environments.get(&request.environment) {
        options.overrides.splice(0..0, environment.overrides.iter().cloned());
    }
    options.confine = confinement(request, config, descriptor, &options);
    let env = |name: &str| request.variables.get(name).map(|s| s.0.clone()).or_else(|| std::env::var(name).ok());
    compose::load_with_options(descriptor, &request.descriptor.default_project(), &options, &env)
}

/// The folders a descriptor's load may read files from: a named
/// descriptor's own application folder (never another team's), a compose
/// file's own folder when access rules make paths scopes, plus
/// `policy.file_roots` and the folders of the override and env files the
/// configuration or the caller named. `None` (no limit, as Compose) for a
/// compose file without access rules.
fn confinement(
    request: &Request,
    config: &Config,
    descriptor: &Descriptor,
    options: &compose::LoadOptions,
) -> Option<Vec<std::path::PathBuf>> {
    let own = match &request.descriptor {
        // <root>/<application>/<release>/<version>.yml, from the folder or
        // the registry's cache alike.
        DescriptorRef::Named { .. } => descriptor.path.parent().and_then(std::path::Path::parent),
        DescriptorRef::File(_) if config.access.is_some() => descriptor.path.parent(),
        DescriptorRef::File(_) => return None,
    };
    let mut roots: Vec<std::path::PathBuf> = own.map(std::path::Path::to_path_buf).into_iter().collect();
    roots.extend(config.policy.file_roots.iter().cloned());
    let named = options.overrides.iter().chain(options.env_file.iter());
    roots.extend(named.filter_map(|f| f.parent().map(std::path::Path::to_path_buf)));
    Some(roots)
}

/// Refuses a stack that no engine can run ([`Stack::unrunnable`]), before
/// anything changes, naming every place.
pub(crate) fn refuse_unrunnable(stack: &Stack) -> Result<()> {
    refuse_problems(stack.unrunnable(), "no engine can run the descriptor as written")
}

/// One descriptor error listing every problem under `what`, or `Ok` when
/// there is none: a person fixes them all in one go.
pub(crate) fn refuse_problems(problems: Vec<String>, what: &str) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Problems(crate::error::Findings { subject: what.to_string(), items: problems }))
}

/// The normalised descriptor with secret values masked, for the record.
fn masked_descriptor(request: &Request, config: &Config, stack: &Stack) -> String {
    let secrets: Vec<&str> = request.variables.values().map(|s| s.0.as_str()).collect();
    let masked = audit::masked(&config.audit, stack, &secrets);
    serde_yaml::to_string(&descriptor::render::compose_document(&masked)).unwrap_or_default()
}

/// What an approval is bound to: the SHA-256 of the resolved and
/// interpolated model that will run, not of the file, so the same file
/// with other `${VARIABLES}` is another descriptor to approve. Secret
/// values (the caller's secrets and secret-looking environment keys) are
/// masked first, so an approver need not know them.
fn run_digest(request: &Request, config: &Config, stack: &Stack) -> String {
    let secrets: Vec<&str> = request.variables.values().map(|s| s.0.as_str()).collect();
    let masked = audit::masked(&config.audit, stack, &secrets);
    let bytes = serde_json::to_vec(&masked).unwrap_or_default();
    format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)))
}

/// The policy guard: every violation at once, before the engine is touched.
fn guard(request: &Request, config: &Config, stack: &Stack, trail: &mut Trail) -> Result<()> {
    let scope = scope(&request.descriptor);
    let mut violations = policy::check(&config.policy, stack, &scope, &request.environment);
    // Under access rules a team stays inside its own target: no container
    // name outside it, no joining another target's namespaces.
    if config.access.is_some() {
        violations.extend(policy::foreign_container_names(stack));
        let privileges_rule_found = |v: &policy::Violation| violations.iter().any(|w| w.message == v.message);
        let namespaces: Vec<_> = policy::foreign_namespaces(stack).into_iter().collect();
        let namespaces: Vec<_> = namespaces.into_iter().filter(|v| !privileges_rule_found(v)).collect();
        violations.extend(namespaces);
    }
    if violations.is_empty() {
        return Ok(());
    }
    trail.violations = violations.iter().map(ToString::to_string).collect();
    Err(policy::violations_error(&request.descriptor.to_string(), &request.environment, &violations))
}

/// Takes the target's lock, waiting for another deploy if there is one.
async fn lock(request: &Request, config: &Config, target: &str, progress: &dyn Progress) -> Result<TargetLock> {
    let holder = Holder {
        who: request.origin.who(),
        action: request.action.as_str().to_string(),
        host: crate::lock::host_name(),
        pid: std::process::id(),
        since: crate::lock::now_secs(),
    };
    // Try at once first, so the usual case says nothing.
    match TargetLock::acquire_for(config, target, &holder, Duration::ZERO) {
        Ok(lock) => return Ok(lock),
        Err(Error::Busy(_)) => {}
        Err(e) => return Err(e),
    }
    progress.step(&format!(
        "another deploy of {target} is in progress; waiting up to {}s",
        request.options.lock_wait.as_secs()
    ));
    let (target, wait) = (target.to_string(), request.options.lock_wait);
    let waiting = std::time::Instant::now();
    let config = config.clone();
    let lock = tokio::task::spawn_blocking(move || TargetLock::acquire_for(&config, &target, &holder, wait))
        .await
        .map_err(|e| Error::Internal(format!("lock task failed: {e}")))?;
    crate::metrics::lock_waited(waiting.elapsed().as_secs_f64());
    lock
}

fn summarize(request: &Request, descriptor: &Descriptor) -> DescriptorSummary {
    DescriptorSummary {
        reference: request.descriptor.to_string(),
        version: descriptor.version.clone(),
        source: descriptor.path.display().to_string(),
        digest: descriptor.digest.clone(),
    }
}

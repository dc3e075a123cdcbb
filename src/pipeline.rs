//! The pipeline: runs the stages in order. The only place that knows it.
//!
//! resolve → load → (guard: a later stage) → plan → apply → watch → report.
//! Identity, access, the policy guard and the audit trail are stages still
//! to come: they slot in where the comments in [`run`] say, and every way
//! in gets them at once because every way in calls [`run`].

use std::time::Duration;

use crate::apply::Apply;
use crate::config::Config;
use crate::descriptor::{self, compose, Descriptor, DescriptorRef};
use crate::engine::DockerEngine;
use crate::error::{Error, Result};
use crate::health::Watch;
use crate::history;
use crate::lock::{Holder, TargetLock};
use crate::plan::{self, ChangeKind, ImageIds, Plan, ServiceChange};
use crate::request::{Action, DescriptorSummary, ImageUse, Outcome, OutcomeError, Request};
use crate::shutdown::Shutdown;
use crate::stack::Stack;

/// Receives progress lines while the pipeline works, so a long deploy is
/// never silent. Each way in decides where they go (stderr on a terminal,
/// the Rundeck log, nowhere for chat).
pub trait Progress: Send + Sync {
    /// One line of progress.
    fn step(&self, line: &str);
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _line: &str) {}
}

/// Runs one request through every stage, posts the report to the
/// configured webhooks, and returns what happened.
pub async fn run(request: &Request, config: &Config, progress: &dyn Progress, shutdown: &Shutdown) -> Result<Outcome> {
    let result = stages(request, config, progress, shutdown).await;
    if matches!(request.action, Action::Deploy | Action::Rollback | Action::Down) {
        match &result {
            Ok(outcome) => crate::notify::send_all(&config.notify.webhooks, outcome, progress).await,
            Err(e) => crate::notify::send_error(&config.notify.webhooks, request, e, progress).await,
        }
    }
    result
}

async fn stages(request: &Request, config: &Config, progress: &dyn Progress, shutdown: &Shutdown) -> Result<Outcome> {
    identify_and_authorize(request, config, progress).await?;
    let descriptor = descriptor::resolve(&request.descriptor, &config.descriptor_root())?;
    let mut stack = compose::load(&descriptor, &request.descriptor.default_project())?;
    if let Some(project) = &request.project {
        stack.name = descriptor::project_name(project);
    }
    // The policy guard will run here, before the engine is touched.
    let engine = DockerEngine::connect(config.labels.clone()).await?;
    let summary = summarize(request, &descriptor);
    match request.action {
        Action::Plan => {
            let images = local_images(&engine, &stack).await?;
            let plan = observe_and_plan(&engine, &stack, &images).await?;
            Ok(Outcome { plan: Some(plan), ..Outcome::new(stack.name.clone(), request.action, summary) })
        }
        Action::Deploy => {
            let _lock = lock(request, config, &stack.name, progress).await?;
            let outcome = deploy(request, config, &engine, &stack, summary, progress, shutdown).await?;
            remember(request, config, &outcome, progress);
            Ok(outcome)
        }
        Action::Status => status(request, &engine, &stack, summary).await,
        Action::Down => {
            let _lock = lock(request, config, &stack.name, progress).await?;
            down(request, &engine, &stack, summary, progress).await
        }
        Action::Rollback => {
            let _lock = lock(request, config, &stack.name, progress).await?;
            let previous = rollback_version(request, config, &stack)?;
            progress.step(&format!("rolling {} back to version {previous}", stack.name));
            let mut target = request.clone();
            if let DescriptorRef::Named { version, .. } = &mut target.descriptor {
                *version = Some(previous);
            }
            let descriptor = descriptor::resolve(&target.descriptor, &config.descriptor_root())?;
            let mut previous_stack = compose::load(&descriptor, &target.descriptor.default_project())?;
            previous_stack.name = stack.name.clone();
            let summary = summarize(&target, &descriptor);
            let mut outcome = deploy(&target, config, &engine, &previous_stack, summary, progress, shutdown).await?;
            outcome.action = Action::Rollback;
            remember(&target, config, &outcome, progress);
            Ok(outcome)
        }
    }
    // The audit record will be written here, for every outcome and error.
}

/// The version a rollback deploys: the one asked for, or the last version
/// that came up healthy before the one running now, from the deploy history.
fn rollback_version(request: &Request, config: &Config, stack: &Stack) -> Result<String> {
    let DescriptorRef::Named { version, .. } = &request.descriptor else {
        return Err(Error::Usage(format!(
            "rollback needs a named descriptor (APPLICATION/RELEASE), not the file {}: deploy the previous file instead",
            request.descriptor
        )));
    };
    if let Some(v) = version {
        return Ok(v.clone());
    }
    let past = history::read(&config.state_dir(), &stack.name)?;
    match history::rollback_candidates(&past) {
        (_, Some(previous)) => Ok(previous),
        (Some(current), None) => Err(Error::Usage(format!(
            "{}: version {current} is the only healthy version in the deploy history; name one with --to",
            stack.name
        ))),
        (None, _) => Err(Error::Usage(format!(
            "{}: no healthy deploy in the history at {}; name the version with --to",
            stack.name,
            config.state_dir().display()
        ))),
    }
}

/// Appends a finished deploy or rollback to the target's history. A
/// failure to write is reported but does not change the deploy's verdict.
fn remember(request: &Request, config: &Config, outcome: &Outcome, progress: &dyn Progress) {
    let Some(report) = &outcome.report else { return };
    let deployment = history::Deployment {
        time: crate::lock::now_secs(),
        action: outcome.action.as_str().to_string(),
        reference: outcome.descriptor.reference.clone(),
        version: outcome.descriptor.version.clone(),
        digest: outcome.descriptor.digest.clone(),
        verdict: if report.verdict.is_healthy() && outcome.error.is_none() { "healthy" } else { "failed" }.to_string(),
        rolled_back: outcome.rollback.is_some(),
        who: request.origin.who(),
    };
    if let Err(e) = history::record(&config.state_dir(), &outcome.target, &deployment) {
        progress.step(&format!("warning: {e}"));
    }
}

/// The identity and access stages: who is asking (looked up in the
/// directory) and whether the rules let them. Fails closed; without an
/// `ldap` section it only says plainly that nothing is checked.
async fn identify_and_authorize(request: &Request, config: &Config, progress: &dyn Progress) -> Result<()> {
    let changes_things = matches!(request.action, Action::Deploy | Action::Down | Action::Rollback);
    let Some(ldap) = &config.ldap else {
        if changes_things {
            progress.step(
                "note: no access control is active (no `ldap` and `access` configured): \
                 anyone who can run dockmaster and reach the engine can deploy",
            );
        }
        return Ok(());
    };
    let Some(user) = &request.user else {
        if config.access.is_some() {
            return Err(Error::Denied(
                "access rules are configured: log in with --user UID and the password in DOCKMASTER_PASSWORD".into(),
            ));
        }
        return Ok(());
    };
    let principal = match &request.password {
        Some(password) => crate::identity::authenticate(ldap, user, &password.0).await?,
        None => crate::identity::lookup(ldap, user).await?,
    };
    let groups = if principal.groups.is_empty() { "none".to_string() } else { principal.groups.join(", ") };
    progress.step(&format!("{} found in the directory (groups: {groups})", principal.uid));
    let Some(access) = &config.access else {
        if changes_things {
            progress.step("note: no `access` rules are configured: every user the directory knows may deploy");
        }
        return Ok(());
    };
    let descriptor = match &request.descriptor {
        DescriptorRef::Named { application, release, .. } => format!("{application}/{release}"),
        DescriptorRef::File(path) => path.display().to_string(),
    };
    match crate::access::authorize(access, &principal, request.action.as_str(), &descriptor, &request.environment) {
        crate::access::Decision::Allow { rule } => {
            progress.step(&format!(
                "{} may {} {descriptor} (access rule {rule})",
                principal.uid,
                request.action.as_str()
            ));
            Ok(())
        }
        crate::access::Decision::Deny { reason } => Err(Error::Denied(reason)),
    }
}

/// Takes the target's lock, waiting for another deploy if there is one.
async fn lock(request: &Request, config: &Config, target: &str, progress: &dyn Progress) -> Result<TargetLock> {
    let holder = Holder {
        who: request.origin.who(),
        action: request.action.as_str().to_string(),
        pid: std::process::id(),
        since: crate::lock::now_secs(),
    };
    let dir = config.lock_dir();
    // Try at once first, so the usual case says nothing.
    if let Ok(lock) = TargetLock::acquire(&dir, target, &holder, Duration::ZERO) {
        return Ok(lock);
    }
    progress.step(&format!(
        "another deploy of {target} is in progress; waiting up to {}s",
        request.options.lock_wait.as_secs()
    ));
    let (target, wait) = (target.to_string(), request.options.lock_wait);
    tokio::task::spawn_blocking(move || TargetLock::acquire(&dir, &target, &holder, wait))
        .await
        .map_err(|e| Error::Engine(format!("lock task failed: {e}")))?
}

fn summarize(request: &Request, descriptor: &Descriptor) -> DescriptorSummary {
    DescriptorSummary {
        reference: request.descriptor.to_string(),
        version: descriptor.version.clone(),
        source: descriptor.path.display().to_string(),
        digest: descriptor.digest.clone(),
    }
}

/// The image ID each service's image has on the engine now (`None` when
/// missing), without building or pulling anything.
async fn local_images(engine: &DockerEngine, stack: &Stack) -> Result<ImageIds> {
    let mut images = ImageIds::new();
    for (name, svc) in &stack.services {
        images.insert(name.clone(), engine.image_id(&svc.image).await?);
    }
    Ok(images)
}

async fn observe_and_plan(engine: &DockerEngine, stack: &Stack, images: &ImageIds) -> Result<Plan> {
    let observed = engine.observe(&stack.name).await?;
    let networks = engine.existing_networks(&plan::wanted_networks(stack)).await?;
    let volumes = engine.existing_volumes(&plan::wanted_volumes(stack)).await?;
    Ok(plan::plan(stack, &observed, images, &networks, &volumes))
}

/// Makes sure every image exists: builds what has a build section and is
/// missing (or everything with `--build`), loads what is missing from the
/// configured image archives, and pulls the rest that is missing. Says where
/// each image came from.
async fn ensure_images(
    request: &Request,
    config: &Config,
    engine: &DockerEngine,
    stack: &Stack,
    progress: &dyn Progress,
) -> Result<(ImageIds, Vec<ImageUse>)> {
    let mut images = ImageIds::new();
    let mut uses = Vec::new();
    let mut built: Vec<String> = Vec::new();
    for (name, svc) in &stack.services {
        let existing = engine.image_id(&svc.image).await?;
        let buildable = svc.build.is_some();
        let policy = svc.pull_policy.unwrap_or(crate::stack::PullPolicy::Missing);
        if policy == crate::stack::PullPolicy::Build && !buildable {
            return Err(Error::Descriptor(format!("service `{name}`: pull_policy: build needs a build section")));
        }
        let force_build = request.options.build || policy == crate::stack::PullPolicy::Build;
        let force_pull = policy == crate::stack::PullPolicy::Always && !buildable;
        let mut archive = None;
        let (id, source) = if buildable && built.contains(&svc.image) {
            // Several services may share one built image: build it once.
            (engine.image_id(&svc.image).await?, "built")
        } else if buildable && (force_build || existing.is_none()) {
            progress.step(&format!("building image `{}` for service `{name}`", svc.image));
            let mut lines = |line: &str| progress.step(&format!("  {line}"));
            built.push(svc.image.clone());
            (Some(engine.build(name, svc, &mut lines).await?), "built")
        } else if force_pull && config.deploy.pull != Some(crate::config::PullPolicy::Never) {
            progress.step(&format!("pulling image `{}` for service `{name}` (pull_policy: always)", svc.image));
            let mut lines = |line: &str| progress.step(&format!("  {line}"));
            (Some(engine.pull(&svc.image, &mut lines).await?), "pulled")
        } else if let Some(id) = existing {
            (Some(id), "present")
        } else if policy == crate::stack::PullPolicy::Never {
            return Err(Error::Unreachable(format!(
                "image `{}` of service `{name}` is not on the engine and the service says pull_policy: never; \
                 build or load it on the engine first",
                svc.image
            )));
        } else if let Some(path) =
            config.image_archives.as_deref().and_then(|dir| crate::engine::archive::find(dir, &svc.image))
        {
            progress.step(&format!("loading image `{}` from archive {}", svc.image, path.display()));
            engine.load_archive(&path).await?;
            archive = Some(path.display().to_string());
            let id = engine.image_id(&svc.image).await?.ok_or_else(|| {
                Error::Engine(format!(
                    "archive {} was loaded but image `{}` is not on the engine",
                    path.display(),
                    svc.image
                ))
            })?;
            (Some(id), "archive")
        } else if config.deploy.pull == Some(crate::config::PullPolicy::Never) {
            return Err(Error::Unreachable(format!(
                "image `{}` of service `{name}` is not on the engine, no archive in `image_archives` holds it, \
                 and pulling is disabled (deploy.pull: never); build or load it on the engine first",
                svc.image
            )));
        } else {
            progress.step(&format!("pulling image `{}` for service `{name}`", svc.image));
            let mut lines = |line: &str| progress.step(&format!("  {line}"));
            (Some(engine.pull(&svc.image, &mut lines).await?), "pulled")
        };
        uses.push(ImageUse {
            service: name.clone(),
            image: svc.image.clone(),
            id: id.clone(),
            source: source.to_string(),
            archive,
            repo_digests: engine.repo_digests(&svc.image).await,
        });
        images.insert(name.clone(), id);
    }
    Ok((images, uses))
}

/// Checks what must exist outside the stack before anything changes, so a
/// deploy that cannot succeed fails with nothing touched.
async fn preflight(engine: &DockerEngine, stack: &Stack) -> Result<()> {
    for (name, svc) in &stack.services {
        for from in &svc.volumes_from {
            if let crate::stack::VolumesFromSource::Container(container) = &from.source {
                if !engine.container_exists(container).await? {
                    return Err(Error::Descriptor(format!(
                        "service `{name}`: volumes_from names container `{container}`, which does not exist on the engine \
                         (define it as a service in the descriptor, or create it first)"
                    )));
                }
            }
        }
    }
    for (key, network) in &stack.networks {
        if network.external && engine.existing_networks(&[stack.network_name(key)]).await?.is_empty() {
            return Err(Error::Descriptor(format!(
                "network `{key}` is external but `{}` does not exist on the engine (create it with `docker network create`)",
                stack.network_name(key)
            )));
        }
    }
    for (key, volume) in &stack.volumes {
        if volume.external && engine.existing_volumes(&[stack.volume_name(key)]).await?.is_empty() {
            return Err(Error::Descriptor(format!(
                "volume `{key}` is external but `{}` does not exist on the engine (create it with `docker volume create`)",
                stack.volume_name(key)
            )));
        }
    }
    Ok(())
}

async fn deploy(
    request: &Request,
    config: &Config,
    engine: &DockerEngine,
    stack: &Stack,
    summary: DescriptorSummary,
    progress: &dyn Progress,
    shutdown: &Shutdown,
) -> Result<Outcome> {
    preflight(engine, stack).await?;
    let (images, image_uses) = ensure_images(request, config, engine, stack, progress).await?;
    let plan = observe_and_plan(engine, stack, &images).await?;
    for warning in &plan.warnings {
        progress.step(&format!("warning: {warning}"));
    }
    if plan.is_noop() {
        progress.step(&format!("no changes: all {} services of `{}` are up to date", plan.services.len(), stack.name));
    }
    let observed = engine.observe(&stack.name).await?;
    for network in &plan.networks {
        let key = network_key(stack, network);
        progress.step(&format!("creating network {network}"));
        engine.create_network(stack, &key).await?;
    }
    for volume in &plan.volumes {
        let key = stack.volumes.keys().find(|k| stack.volume_name(k) == *volume).cloned().unwrap_or_default();
        progress.step(&format!("creating volume {volume}"));
        engine.create_volume(stack, &key).await?;
    }
    let mut descriptor_labels = std::collections::BTreeMap::new();
    descriptor_labels.insert(crate::engine::LABEL_REFERENCE.to_string(), summary.reference.clone());
    descriptor_labels.insert(crate::engine::LABEL_DIGEST.to_string(), summary.digest.clone());
    if let Some(version) = &summary.version {
        descriptor_labels.insert(crate::engine::LABEL_VERSION.to_string(), version.clone());
    }
    let apply = Apply {
        engine,
        stack,
        plan: &plan,
        observed: &observed,
        options: &request.options,
        progress,
        shutdown,
        descriptor_labels,
    };
    let applied = apply.run().await;
    let error = applied.error.map(|e| OutcomeError { exit_code: e.exit_code(), message: e.to_string() });
    Ok(Outcome {
        target: stack.name.clone(),
        action: Action::Deploy,
        descriptor: summary,
        plan: Some(plan),
        report: Some(applied.report),
        rollback: applied.rollback,
        images: image_uses,
        error,
    })
}

fn network_key(stack: &Stack, engine_name: &str) -> String {
    stack
        .services
        .values()
        .flat_map(crate::engine::spec::service_networks)
        .find(|k| stack.network_name(k) == engine_name)
        .unwrap_or_else(|| crate::stack::DEFAULT_NETWORK.to_string())
}

async fn status(
    request: &Request,
    engine: &DockerEngine,
    stack: &Stack,
    summary: DescriptorSummary,
) -> Result<Outcome> {
    let observed = engine.observe(&stack.name).await?;
    // What runs now has had all the time it needs: no stability window.
    let mut watch = Watch::new(engine, stack, Duration::ZERO, request.options.log_lines);
    for c in &observed {
        if stack.services.contains_key(&c.service) {
            watch.track(&c.service, &c.id).await?;
        }
    }
    let report = watch.report(false).await;
    Ok(Outcome { report: Some(report), ..Outcome::new(stack.name.clone(), Action::Status, summary) })
}

async fn down(
    request: &Request,
    engine: &DockerEngine,
    stack: &Stack,
    summary: DescriptorSummary,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let observed = engine.observe(&stack.name).await?;
    // Dependents go first: the reverse of the start order.
    let order: Vec<String> = stack.start_levels().map(|l| l.concat()).unwrap_or_default();
    let rank = |service: &str| order.iter().position(|s| s == service).unwrap_or(usize::MAX);
    let mut doomed: Vec<_> = observed.iter().collect();
    doomed.sort_by_key(|c| std::cmp::Reverse(rank(&c.service)));
    let mut changes = Vec::new();
    for c in doomed {
        progress.step(&format!("removing {}", c.name));
        engine.remove_container(&c.id, &c.name).await?;
        changes.push(ServiceChange {
            service: c.service.clone(),
            container: c.name.clone(),
            action: ChangeKind::Remove,
            reasons: vec!["down".into()],
            level: 0,
            strategy: None,
        });
    }
    let networks = engine.target_networks(&stack.name).await?;
    for network in &networks {
        progress.step(&format!("removing network {network}"));
        engine.remove_network(network).await?;
    }
    let mut warnings = Vec::new();
    let volumes = engine.target_volumes(&stack.name).await?;
    if request.options.remove_volumes {
        for volume in &volumes {
            progress.step(&format!("removing volume {volume}"));
            engine.remove_volume(volume).await?;
        }
    } else if !volumes.is_empty() {
        warnings.push(format!("kept volumes {} (use --volumes to remove them)", volumes.join(", ")));
    }
    let plan = Plan { target: stack.name.clone(), services: changes, networks, volumes: vec![], warnings };
    Ok(Outcome { plan: Some(plan), ..Outcome::new(stack.name.clone(), Action::Down, summary) })
}

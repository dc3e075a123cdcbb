//! The engine stages on one Docker engine: dockmaster creates, replaces
//! and removes the containers itself (see [`crate::apply`]) and watches
//! them (see [`crate::health`]).

use std::time::Duration;

use super::{Cx, Engine};
use crate::apply::{Apply, RollbackReport};
use crate::config::Config;
use crate::engine::{descriptor_labels, DockerEngine};
use crate::error::{Error, Result};
use crate::health::Watch;
use crate::pipeline::{Applied, Planned, Progress};
use crate::plan::{self, ChangeKind, ImageIds, Observed, Plan, ServiceChange};
use crate::request::{Action, DescriptorSummary, ImageUse, Outcome, Request};
use crate::stack::{FileSource, Stack};

impl Engine for DockerEngine {
    type Undo = crate::apply::Undo;

    fn describe(&self) -> String {
        self.host.clone()
    }

    fn rules(&self) -> plan::Rules {
        plan::Rules::ONE_ENGINE
    }

    async fn observe(&self, target: &str) -> Result<Vec<plan::ObservedContainer>> {
        DockerEngine::observe(self, target).await
    }

    async fn observe_target(&self, stack: &Stack) -> Result<Observed> {
        // On a surveyed engine the containers, networks and volumes come
        // from one set of list calls; the images are inspected once each.
        let (networks, volumes) = (plan::wanted_networks(stack), plan::wanted_volumes(stack));
        let (images, containers, networks, volumes, leftovers) = tokio::join!(
            local_images(self, stack),
            DockerEngine::observe(self, &stack.name),
            self.existing_networks(&networks),
            self.existing_volumes(&volumes),
            self.leftovers(&stack.name),
        );
        Ok(Observed {
            containers: containers?,
            images: images?,
            networks: networks?,
            volumes: volumes?,
            leftovers: leftovers?,
        })
    }

    fn check(&self, stack: &Stack) -> Result<()> {
        refuse_unsupported(stack)
    }

    async fn prepare(&self, cx: &Cx<'_>, stack: &Stack, observed: &mut Observed) -> Result<Vec<ImageUse>> {
        preflight(self, stack).await?;
        let (images, uses) = ensure_images(cx.request, cx.config, self, stack, cx.progress).await?;
        observed.images = images;
        Ok(uses)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        deploy: &Planned<'_>,
        summary: &DescriptorSummary,
    ) -> Result<Applied<Self::Undo>> {
        let (stack, plan) = (deploy.stack, deploy.plan);
        for network in &plan.networks {
            let key = network_key(stack, network);
            cx.progress.step(&format!("creating network {network}"));
            self.create_network(stack, &key).await?;
        }
        for volume in &plan.volumes {
            let key = stack.volumes.keys().find(|k| stack.volume_name(k) == *volume).cloned().unwrap_or_default();
            cx.progress.step(&format!("creating volume {volume}"));
            self.create_volume(stack, &key).await?;
        }
        Ok(applier(self, cx, deploy, Some(summary)).run().await)
    }

    async fn finish(&self, cx: &Cx<'_>, deploy: &Planned<'_>, undo: &[Self::Undo]) -> Result<()> {
        applier(self, cx, deploy, None).finalize(undo).await;
        Ok(())
    }

    async fn undo(
        &self,
        cx: &Cx<'_>,
        deploy: &Planned<'_>,
        undo: &[Self::Undo],
        reason: String,
    ) -> Result<RollbackReport> {
        Ok(applier(self, cx, deploy, None).roll_back(undo, reason).await)
    }

    async fn status(&self, cx: &Cx<'_>, stack: &Stack, summary: DescriptorSummary) -> Result<Outcome> {
        status(cx.request, self, stack, summary).await
    }

    async fn down(&self, cx: &Cx<'_>, stack: &Stack, summary: DescriptorSummary) -> Result<Outcome> {
        down(cx.request, self, stack, summary, cx.progress).await
    }
}

/// The apply stage of one engine for this deploy: new containers carry
/// the descriptor's reference, digest and version (finishing and undoing
/// create none).
fn applier<'a>(
    engine: &'a DockerEngine,
    cx: &Cx<'a>,
    deploy: &Planned<'a>,
    summary: Option<&DescriptorSummary>,
) -> Apply<'a> {
    let Planned { stack, plan, observed } = *deploy;
    let descriptor_labels = summary.map(descriptor_labels).unwrap_or_default();
    Apply {
        engine,
        stack,
        plan,
        observed: &observed.containers,
        options: &cx.request.options,
        progress: cx.progress,
        shutdown: cx.shutdown,
        descriptor_labels,
        leftovers: observed.leftovers.clone(),
        images: &observed.images,
    }
}

/// What one engine cannot run, refused before anything changes, every
/// problem at once: more than one replica (one engine runs one container
/// per service; saying so beats deploying one silently) and `external`
/// secrets or configs (only Swarm keeps them), and what no engine runs
/// ([`Stack::unrunnable`]).
fn refuse_unsupported(stack: &Stack) -> Result<()> {
    let mut problems = stack.unrunnable();
    for (name, svc) in &stack.services {
        if let Some(n) = svc.swarm.as_ref().and_then(|s| s.replicas).filter(|n| *n > 1) {
            problems.push(format!(
                "service `{name}`: deploy.replicas is {n}, but this environment's engine runs one container per \
                 service; deploy to an environment whose engine has `kind: swarm`, or set replicas to 1"
            ));
        }
        for (kind, file) in svc.files() {
            if let FileSource::External { name: engine_name } = &file.source {
                let (what, section) = (kind.what(), kind.section());
                problems.push(format!(
                    "service `{name}`: {what} `{}` is external (`{engine_name}` on the engine), and only Swarm \
                     keeps {section}; give it `file:` or `environment:` in the top-level `{section}:`, or deploy \
                     to an environment whose engine has `kind: swarm`",
                    file.name
                ));
            }
        }
    }
    super::refuse_problems(problems, "this environment's engine cannot run the descriptor as written")
}

/// The image ID each service's image has on the engine now (`None` when
/// missing), without building or pulling anything: each distinct image is
/// inspected once, all at once.
async fn local_images(engine: &DockerEngine, stack: &Stack) -> Result<ImageIds> {
    let facts = image_facts(engine, stack).await?;
    Ok(stack
        .services
        .iter()
        .map(|(name, svc)| (name.clone(), facts.get(&svc.image).cloned().flatten().map(|(id, _)| id)))
        .collect())
}

/// Each distinct image of the stack inspected once, concurrently: its ID
/// and registry digests, `None` when missing.
async fn image_facts(engine: &DockerEngine, stack: &Stack) -> Result<ImageFacts> {
    let mut distinct: Vec<&str> = stack.services.values().map(|s| s.image.as_str()).collect();
    distinct.sort();
    distinct.dedup();
    let answers = futures_util::future::join_all(distinct.iter().map(|i| engine.image_facts(i))).await;
    let mut facts = ImageFacts::new();
    for (image, answer) in distinct.into_iter().zip(answers) {
        facts.insert(image.to_string(), answer?);
    }
    Ok(facts)
}

/// Image reference -> (ID, registry digests), `None` when missing.
type ImageFacts = std::collections::BTreeMap<String, Option<(String, Vec<String>)>>;

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
    // What the engine has, read once per distinct image; an image built,
    // pulled or loaded below is read again once, after that.
    let mut facts = image_facts(engine, stack).await?;
    for (name, svc) in &stack.services {
        let existing = facts.get(&svc.image).cloned().flatten().map(|(id, _)| id);
        let buildable = svc.build.is_some();
        let policy = svc.pull_policy.unwrap_or(crate::stack::PullPolicy::Missing);
        if policy == crate::stack::PullPolicy::Build && !buildable {
            return Err(Error::Descriptor(format!("service `{name}`: pull_policy: build needs a build section")));
        }
        let force_build = request.options.build || policy == crate::stack::PullPolicy::Build;
        let force_pull = policy == crate::stack::PullPolicy::Always && !buildable;
        let mut archive = None;
        // Several services may share one built image: build it once (its
        // facts were read again right after the build).
        let shared_build = buildable && built.contains(&svc.image);
        let (id, source) = if shared_build {
            (existing, "built")
        } else if buildable && (force_build || existing.is_none()) {
            progress.step(&format!("building image `{}` for service `{name}`", svc.image));
            let mut lines = |line: &str| progress.step(&format!("  {line}"));
            built.push(svc.image.clone());
            (Some(engine.build(name, svc, &mut lines).await?), "built")
        } else if force_pull && config.deploy.pull != Some(crate::config::PullPolicy::Never) {
            progress.step(&format!("pulling image `{}` for service `{name}` (pull_policy: always)", svc.image));
            let mut lines = |line: &str| progress.step(&format!("  {line}"));
            (Some(engine.pull_for(&svc.image, svc.platform.as_deref(), &mut lines).await?), "pulled")
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
            (Some(engine.pull_for(&svc.image, svc.platform.as_deref(), &mut lines).await?), "pulled")
        };
        if source != "present" && !shared_build {
            facts.insert(svc.image.clone(), engine.image_facts(&svc.image).await.ok().flatten());
        }
        let repo_digests = facts.get(&svc.image).cloned().flatten().map(|(_, d)| d).unwrap_or_default();
        uses.push(ImageUse {
            service: name.clone(),
            image: svc.image.clone(),
            id: id.clone(),
            source: source.to_string(),
            archive,
            repo_digests,
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
    // Every container read at once, not one after the other.
    let ours: Vec<_> = observed.iter().filter(|c| stack.services.contains_key(&c.service)).collect();
    let snapshots = futures_util::future::join_all(ours.iter().map(|c| engine.snapshot(&c.id))).await;
    for (c, snapshot) in ours.into_iter().zip(snapshots) {
        watch.track_read(&c.service, &c.id, snapshot?);
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
    // Everything of the target, seen in one look before anything goes.
    let networks = engine.target_networks(&stack.name).await?;
    let volumes = engine.target_volumes(&stack.name).await?;
    // Dependents go first: the reverse of the start order, one level at a
    // time; a level's containers go at once (`parallelism` at a time).
    let levels: Vec<Vec<String>> = stack.start_levels().unwrap_or_default();
    let level_of = |service: &str| levels.iter().position(|l| l.iter().any(|s| s == service)).unwrap_or(usize::MAX);
    let mut by_level: std::collections::BTreeMap<std::cmp::Reverse<usize>, Vec<&plan::ObservedContainer>> =
        Default::default();
    for c in &observed {
        by_level.entry(std::cmp::Reverse(level_of(&c.service))).or_default().push(c);
    }
    let mut changes = Vec::new();
    for (_, doomed) in by_level {
        for c in &doomed {
            progress.step(&format!("removing {}", c.name));
        }
        for batch in doomed.chunks(request.options.parallelism.max(1)) {
            let removals: Vec<_> = batch
                .iter()
                .map(|c| engine.remove_container_with(&c.id, &c.name, request.options.remove_volumes))
                .collect();
            for result in futures_util::future::join_all(removals).await {
                result?;
            }
        }
        changes.extend(doomed.iter().map(|c| ServiceChange {
            service: c.service.clone(),
            container: c.name.clone(),
            action: ChangeKind::Remove,
            reasons: vec!["down".into()],
            level: 0,
            strategy: None,
        }));
    }
    for network in &networks {
        progress.step(&format!("removing network {network}"));
        engine.remove_network(network).await?;
    }
    let mut warnings = Vec::new();
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

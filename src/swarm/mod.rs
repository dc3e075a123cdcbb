//! The Swarm engine: a descriptor deployed as a stack of Swarm services on
//! a manager node, for targets that span machines.
//!
//! dockmaster does not schedule anything itself here. It writes service
//! specs the way `docker stack deploy` does (so `docker stack ps` and
//! `docker stack services` keep working), lets Swarm roll them out with the
//! descriptor's `update_config`, watches tasks until every service has its
//! replicas running (healthy, where it has a healthcheck) or the deadline
//! passes, and rolls back through Swarm's own service rollback (or, with
//! `--no-rollback`, leaves the failed update in place). Identity,
//! access, policy, locks, approvals and the audit trail stay in the
//! pipeline, so a cluster gets the same guarantees as one host.

mod files;
pub mod spec;
mod watch;

use std::collections::{BTreeMap, HashMap};

use bollard::errors::Error as BollardError;
use bollard::models::{Service as SwarmService, ServiceSpec};
use bollard::query_parameters::{
    InspectServiceOptionsBuilder, ListServicesOptionsBuilder, UpdateServiceOptionsBuilder,
};

use crate::apply::RollbackReport;
use crate::engine::spec::{network_body, service_networks, LABEL_FIELDS, LABEL_HASH, LABEL_SERVICE, LABEL_TARGET};
use crate::engine::{DockerEngine, LABEL_VERSION};
use crate::error::{Error, Result};
use crate::pipeline::{Applied, Cx, Engine, Planned};
use crate::plan::{ChangeKind, Observed, ObservedContainer, Plan, ServiceChange};
use crate::request::{Action, DescriptorSummary, ImageUse, Outcome};
use crate::stack::Stack;
use watch::Watched;

/// A Swarm manager reached through its Docker API.
pub struct SwarmEngine {
    engine: DockerEngine,
    environment: String,
}

impl SwarmEngine {
    /// Checks that the engine is a Swarm manager: only managers accept
    /// service changes, and a worker or a node outside any swarm would
    /// fail every call with a less helpful message.
    pub async fn new(engine: DockerEngine, environment: &str) -> Result<SwarmEngine> {
        let info = engine.docker().info().await.map_err(|e| {
            Error::Unreachable(format!("environment `{environment}`: engine at {} did not answer: {e}", engine.host))
        })?;
        let swarm = info.swarm.unwrap_or_default();
        if swarm.control_available != Some(true) {
            let state = swarm.local_node_state.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into());
            let error = swarm.error.filter(|e| !e.is_empty()).map(|e| format!(", error: {e}")).unwrap_or_default();
            return Err(Error::Unreachable(format!(
                "environment `{environment}`: the engine at {} is not a Swarm manager (swarm state: {state}{error}); \
                 run `docker swarm init` there, point engine.host at a manager node, or set engine.kind: docker",
                engine.host
            )));
        }
        Ok(SwarmEngine { engine, environment: environment.to_string() })
    }

    /// The target's services, with their task counts.
    async fn services(&self, target: &str) -> Result<Vec<SwarmService>> {
        let filters: HashMap<String, Vec<String>> =
            [("label".to_string(), vec![format!("{LABEL_TARGET}={target}")])].into_iter().collect();
        let options = ListServicesOptionsBuilder::default().filters(&filters).status(true).build();
        self.engine.docker().list_services(Some(options)).await.map_err(|e| self.fail("list services", e))
    }

    async fn inspect(&self, name: &str) -> Result<Option<SwarmService>> {
        let options = InspectServiceOptionsBuilder::default().build();
        match self.engine.docker().inspect_service(name, Some(options)).await {
            Ok(s) => Ok(Some(s)),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.fail(&format!("inspect service {name}"), e)),
        }
    }

    fn fail(&self, doing: &str, e: BollardError) -> Error {
        match e {
            BollardError::DockerResponseServerError { status_code, message } => Error::Engine(format!(
                "environment `{}`: the Swarm manager refused to {doing}: {message} (HTTP {status_code})",
                self.environment
            )),
            other => Error::Unreachable(format!(
                "environment `{}`: the Swarm manager at {} stopped answering while trying to {doing}: {other}",
                self.environment, self.engine.host
            )),
        }
    }

    /// Refuses a stack with fields Swarm cannot honour, naming each.
    fn refuse_unsupported(&self, stack: &Stack) -> Result<()> {
        crate::pipeline::refuse_unrunnable(stack)?;
        let mut problems = Vec::new();
        for (name, svc) in &stack.services {
            let fields = spec::unsupported(svc);
            if !fields.is_empty() {
                problems.push(format!("  - service `{name}`: {}", fields.join(", ")));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::Descriptor(format!(
            "environment `{}` deploys to Swarm, which cannot honour these fields (deploy to an environment with \
             engine.kind: docker, or remove them):\n{}",
            self.environment,
            problems.join("\n")
        )))
    }

    /// Things a person should know: what Swarm ignores.
    fn ignored(stack: &Stack) -> Vec<String> {
        let mut warnings = Vec::new();
        for (name, svc) in &stack.services {
            if !svc.depends_on.is_empty() {
                warnings.push(format!(
                    "service `{name}`: depends_on is not a start order on Swarm; services start together"
                ));
            }
            if svc.container_name.is_some() {
                warnings
                    .push(format!("service `{name}`: container_name is ignored on Swarm (tasks are named by Swarm)"));
            }
            if svc.build.is_some() {
                warnings.push(format!(
                    "service `{name}`: build is ignored on Swarm; `{}` must be on every node or in a registry",
                    svc.image
                ));
            }
        }
        warnings
    }

    async fn create_networks(&self, stack: &Stack, plan: &Plan, cx: &Cx<'_>) -> Result<()> {
        for (key, network) in &stack.networks {
            if network.external && self.engine.existing_networks(&[stack.network_name(key)]).await?.is_empty() {
                return Err(Error::Descriptor(format!(
                    "network `{key}` is external but `{}` does not exist on the swarm (create it with \
                     `docker network create --driver overlay --attachable`)",
                    stack.network_name(key)
                )));
            }
        }
        for name in &plan.networks {
            let key = stack
                .services
                .values()
                .flat_map(service_networks)
                .find(|k| stack.network_name(k) == *name)
                .unwrap_or_else(|| crate::stack::DEFAULT_NETWORK.to_string());
            let mut body = network_body(stack, &key, &self.engine.extra_labels);
            if stack.networks.get(&key).and_then(|n| n.driver.as_ref()).is_none() {
                body.driver = Some("overlay".into());
            }
            body.attachable = Some(true);
            body.labels.get_or_insert_with(HashMap::new).insert(spec::LABEL_NAMESPACE.into(), stack.name.clone());
            cx.progress.step(&format!("creating overlay network {name}"));
            self.engine
                .docker()
                .create_network(body)
                .await
                .map_err(|e| self.fail(&format!("create network {name}"), e))?;
        }
        Ok(())
    }

    /// Creates or updates one service; returns what undoing it takes.
    /// Without `rollback` (`--no-rollback`), an update that fails is not
    /// rolled back by Swarm either: its `failure_action: rollback` becomes
    /// `pause` (see [`spec::without_rollback`]).
    async fn apply_one(
        &self,
        stack: &Stack,
        change: &ServiceChange,
        labels: &BTreeMap<String, String>,
        files: &files::Objects,
        rollback: bool,
    ) -> Result<Undo> {
        let svc = &stack.services[&change.service];
        let hash = spec::config_hash(stack, &change.service, svc);
        let mut all_labels = self.engine.extra_labels.clone();
        all_labels.extend(labels.clone());
        let body = spec::service_spec(stack, &change.service, svc, &hash, &all_labels, files);
        let name = change.container.clone();
        match change.action {
            ChangeKind::Create => {
                self.engine
                    .docker()
                    .create_service(body, None)
                    .await
                    .map_err(|e| self.fail(&format!("create service {name}"), e))?;
                Ok(Undo::Created(name))
            }
            _ => {
                let current = self
                    .inspect(&name)
                    .await?
                    .ok_or_else(|| Error::Engine(format!("service {name} disappeared during the deploy")))?;
                let before = watch::update_start(&current);
                let version = current.version.and_then(|v| v.index).unwrap_or_default();
                let options = UpdateServiceOptionsBuilder::default().version(version as i32).build();
                let body = if rollback { body } else { spec::without_rollback(body) };
                self.engine
                    .docker()
                    .update_service(&name, body, options, None)
                    .await
                    .map_err(|e| self.fail(&format!("update service {name}"), e))?;
                Ok(Undo::Updated(name, before))
            }
        }
    }

    /// Asks Swarm to roll a service back to its previous spec.
    async fn rollback_service(&self, name: &str) -> Result<()> {
        let Some(current) = self.inspect(name).await? else { return Ok(()) };
        let version = current.version.and_then(|v| v.index).unwrap_or_default();
        let spec: ServiceSpec = current.spec.unwrap_or_default();
        let options = UpdateServiceOptionsBuilder::default().version(version as i32).rollback("previous").build();
        self.engine
            .docker()
            .update_service(name, spec, options, None)
            .await
            .map_err(|e| self.fail(&format!("roll back service {name}"), e))?;
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        match self.engine.docker().delete_service(name).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.fail(&format!("remove service {name}"), e)),
        }
    }

    /// Undoes a failed deploy: services Swarm has not rolled back itself go
    /// back through Swarm's rollback; services this deploy created go away.
    async fn restore(&self, cx: &Cx<'_>, stack: &Stack, undo: &[Undo], reason: String) -> Result<RollbackReport> {
        let mut restored = Vec::new();
        for u in undo {
            match u {
                Undo::Created(name) => {
                    cx.progress.step(&format!("rollback: removing new service {name}"));
                    self.delete(name).await?;
                }
                Undo::Updated(name, _) => {
                    let state = self.inspect(name).await?.and_then(|s| s.update_status).and_then(|u| u.state);
                    let by_swarm = matches!(
                        state,
                        Some(bollard::models::ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
                            | Some(bollard::models::ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
                    );
                    if by_swarm {
                        cx.progress.step(&format!("rollback: Swarm is already rolling {name} back"));
                    } else {
                        cx.progress.step(&format!("rollback: asking Swarm to roll {name} back"));
                        self.rollback_service(name).await?;
                    }
                    restored.push(name.clone());
                }
            }
        }
        if restored.is_empty() {
            cx.progress.step("rolled back: no previous version; the failed services were removed");
            return Ok(RollbackReport { reason, version: None, previous: false, restored: None });
        }
        let services: Vec<String> =
            stack.services.keys().filter(|s| restored.contains(&spec::service_name(stack, s))).cloned().collect();
        let report = watch::watch(self, cx, stack, &services, &HashMap::new(), Watched::Rollback).await?;
        let version = self.observe_versions(&stack.name).await?.into_iter().next();
        Ok(RollbackReport { reason, version, previous: true, restored: Some(report) })
    }

    /// What the services no longer use (old content, or a failed deploy's
    /// own after a rollback) goes; a failure here changes no verdict. A
    /// failed deploy left in place (`--no-rollback`) is not pruned: the
    /// previous spec's files may still serve tasks Swarm has not replaced
    /// and a later `docker service rollback`.
    async fn prune(&self, stack: &Stack, cx: &Cx<'_>) {
        if let Err(e) = self.prune_files(&stack.name, cx.progress).await {
            cx.progress.step(&format!("warning: unused secrets and configs were not removed: {e}"));
        }
    }

    async fn observe_versions(&self, target: &str) -> Result<Vec<String>> {
        Ok(Engine::observe(self, target).await?.into_iter().filter_map(|o| o.descriptor_version).collect())
    }
}

/// What a deploy did to one service, to undo it.
#[derive(Debug, Clone)]
pub(crate) enum Undo {
    Created(String),
    /// Updated; with when Swarm's updater had last started before.
    Updated(String, Option<String>),
}

impl Engine for SwarmEngine {
    type Undo = Undo;

    fn describe(&self) -> String {
        format!("swarm {}", self.engine.host)
    }

    fn rules(&self) -> crate::plan::Rules {
        crate::plan::Rules {
            hash: spec::config_hash,
            name: spec::service_name,
            containers: false,
            warnings: SwarmEngine::ignored,
        }
    }

    async fn observe(&self, target: &str) -> Result<Vec<ObservedContainer>> {
        let mut observed = Vec::new();
        for s in self.services(target).await? {
            let labels = s.spec.as_ref().and_then(|spec| spec.labels.clone()).unwrap_or_default();
            let Some(service) = labels.get(LABEL_SERVICE).cloned() else { continue };
            let status = s.service_status.clone().unwrap_or_default();
            observed.push(ObservedContainer {
                id: s.id.clone().unwrap_or_default(),
                name: s.spec.as_ref().and_then(|spec| spec.name.clone()).unwrap_or_default(),
                service,
                config_hash: labels.get(LABEL_HASH).cloned().unwrap_or_default(),
                field_hashes: labels.get(LABEL_FIELDS).and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default(),
                image_id: labels.get(spec::LABEL_IMAGE).cloned().unwrap_or_default(),
                running: status.running_tasks.unwrap_or(0) > 0,
                exit_code: None,
                descriptor_version: labels.get(LABEL_VERSION).cloned(),
                descriptor_digest: labels.get(crate::engine::LABEL_DIGEST).cloned(),
                top_level: labels.get(crate::engine::spec::LABEL_TOP_LEVEL).and_then(|j| serde_json::from_str(j).ok()),
            });
        }
        observed.sort_by(|a, b| a.service.cmp(&b.service));
        Ok(observed)
    }

    async fn observe_target(&self, stack: &Stack) -> Result<Observed> {
        let wanted = crate::plan::wanted_networks(stack);
        let (containers, networks) =
            tokio::join!(Engine::observe(self, &stack.name), self.engine.existing_networks(&wanted));
        Ok(Observed { containers: containers?, networks: networks?, ..Observed::default() })
    }

    fn check(&self, stack: &Stack) -> Result<()> {
        self.refuse_unsupported(stack)
    }

    async fn prepare(&self, _cx: &Cx<'_>, stack: &Stack, _observed: &mut Observed) -> Result<Vec<ImageUse>> {
        // External secrets and configs must exist before anything changes;
        // images are the nodes' business (or a registry's).
        self.ensure_files(stack, None).await?;
        Ok(vec![])
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        deploy: &Planned<'_>,
        summary: &DescriptorSummary,
    ) -> Result<Applied<Self::Undo>> {
        let (stack, plan) = (deploy.stack, deploy.plan);
        let files = self.ensure_files(stack, Some(cx.progress)).await?;
        self.create_networks(stack, plan, cx).await?;
        let labels = crate::engine::descriptor_labels(summary);
        let rollback = cx.request.options.rollback;
        let mut undo = Vec::new();
        let mut error = None;
        for change in plan.services.iter().filter(|c| matches!(c.action, ChangeKind::Create | ChangeKind::Recreate)) {
            let verb = if change.action == ChangeKind::Create { "creating" } else { "updating" };
            cx.progress.step(&format!("{verb} service {} ({})", change.container, change.reasons.join(", ")));
            cx.progress.phase(crate::pipeline::Phase::Applied);
            match self.apply_one(stack, change, &labels, &files, rollback).await {
                Ok(u) => undo.push(u),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let services: Vec<String> = stack.services.keys().cloned().collect();
        // This deploy's updates, with the updater's start time before each.
        let updated: HashMap<String, Option<String>> = plan
            .services_with(ChangeKind::Recreate)
            .filter_map(|c| {
                let at = undo.iter().find_map(|u| match u {
                    Undo::Updated(name, before) if *name == c.container => Some(before.clone()),
                    _ => None,
                })?;
                Some((c.service.clone(), at))
            })
            .collect();
        cx.progress.phase(crate::pipeline::Phase::Watching);
        let report = watch::watch(self, cx, stack, &services, &updated, Watched::Deploy).await?;
        Ok(Applied { report, undo, error })
    }

    async fn finish(&self, cx: &Cx<'_>, deploy: &Planned<'_>, _undo: &[Self::Undo]) -> Result<()> {
        for gone in deploy.plan.services_with(ChangeKind::Remove) {
            cx.progress.step(&format!("removing service {} (no longer in the descriptor)", gone.container));
            self.delete(&gone.container).await?;
        }
        self.prune(deploy.stack, cx).await;
        Ok(())
    }

    async fn undo(
        &self,
        cx: &Cx<'_>,
        deploy: &Planned<'_>,
        undo: &[Self::Undo],
        reason: String,
    ) -> Result<RollbackReport> {
        let report = self.restore(cx, deploy.stack, undo, reason).await?;
        self.prune(deploy.stack, cx).await;
        Ok(report)
    }

    async fn status(&self, cx: &Cx<'_>, stack: &Stack, summary: DescriptorSummary) -> Result<Outcome> {
        let services: Vec<String> = stack.services.keys().cloned().collect();
        let report = watch::watch(self, cx, stack, &services, &HashMap::new(), Watched::Status).await?;
        Ok(Outcome { report: Some(report), ..Outcome::new(stack.name.clone(), Action::Status, summary) })
    }

    async fn down(&self, cx: &Cx<'_>, stack: &Stack, summary: DescriptorSummary) -> Result<Outcome> {
        let mut changes = Vec::new();
        for s in self.services(&stack.name).await? {
            let name = s.spec.as_ref().and_then(|spec| spec.name.clone()).unwrap_or_default();
            let service =
                s.spec.and_then(|spec| spec.labels).and_then(|l| l.get(LABEL_SERVICE).cloned()).unwrap_or_default();
            cx.progress.step(&format!("removing service {name}"));
            self.delete(&name).await?;
            changes.push(ServiceChange {
                service,
                container: name,
                action: ChangeKind::Remove,
                reasons: vec!["down".into()],
                level: 0,
                strategy: None,
            });
        }
        // A network goes once its tasks are gone: Swarm stops them
        // asynchronously, so wait for them (bounded) before removing it.
        let networks = self.engine.target_networks(&stack.name).await?;
        for network in &networks {
            cx.progress.step(&format!("removing network {network}"));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                match self.engine.remove_network(network).await {
                    Ok(()) => break,
                    Err(e) if std::time::Instant::now() > deadline => return Err(e),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
                }
            }
        }
        self.prune_files(&stack.name, cx.progress).await?;
        let plan = Plan { target: stack.name.clone(), services: changes, networks, volumes: vec![], warnings: vec![] };
        Ok(Outcome { plan: Some(plan), ..Outcome::new(stack.name.clone(), Action::Down, summary) })
    }
}

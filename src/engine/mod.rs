//! The engine stage: everything dockmaster asks of Docker, through `bollard`.
//!
//! The rest of the pipeline sees engine-independent values (observed
//! containers, snapshots) so the planner and the health rules stay pure.
//! Every engine error is turned into an [`Error`] that says what was being
//! done, to what, and what the engine answered.

pub mod archive;
pub mod connect;
mod hooks;
pub mod spec;
mod survey;
pub use survey::Survey;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerStateStatusEnum, EventMessage, HealthStatusEnum, VolumeCreateRequest};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, RenameContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt};

use crate::error::{Error, Result};
use crate::plan::{ConfigHash, ObservedContainer};
use crate::stack::{Service, Stack};
use spec::{LABEL_FIELDS, LABEL_HASH, LABEL_SERVICE, LABEL_TARGET};

/// Label recording the descriptor version a container was deployed from.
pub const LABEL_VERSION: &str = "dockmaster.descriptor-version";
/// Label recording the digest of the descriptor a container was deployed from.
pub const LABEL_DIGEST: &str = "dockmaster.descriptor-digest";
/// Label recording the reference a container was deployed from.
pub const LABEL_REFERENCE: &str = "dockmaster.descriptor";

/// Suffix of the name a replaced container is kept under until its
/// successor is healthy (see the apply stage).
pub const PREVIOUS_SUFFIX: &str = "_dm_previous";

/// How long removing a network is retried while the engine still reports
/// endpoints on it (a race right after its containers are removed).
pub const NETWORK_REMOVAL_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// A connection to one Docker engine.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    /// Where the engine is, for messages (`unix:///var/run/docker.sock`).
    pub host: String,
    /// Labels the operator wants on everything dockmaster creates.
    pub extra_labels: BTreeMap<String, String>,
    /// The survey a [surveyed](DockerEngine::surveyed) engine keeps.
    survey: std::sync::Arc<survey::SurveyCache>,
}

/// What the engine says about one container right now: the source of truth
/// for the health rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSnapshot {
    /// Container ID.
    pub id: String,
    /// Engine state: `created`, `running`, `restarting`, `exited`, `dead`, ...
    pub state: String,
    /// The process is running now (false between a `die` and the restart
    /// that follows it).
    pub running: bool,
    /// The engine is about to restart it (restart policy back-off).
    pub restarting: bool,
    /// Exit code of the last run, when it has exited at least once.
    pub exit_code: Option<i64>,
    /// The kernel killed it for memory.
    pub oom_killed: bool,
    /// An engine-side error starting it (e.g. a port already in use).
    pub error: Option<String>,
    /// `starting`, `healthy`, `unhealthy`; `None` without a healthcheck.
    pub health: Option<String>,
    /// Output of the latest healthcheck probe.
    pub last_probe_output: Option<String>,
    /// How often the engine restarted it.
    pub restart_count: i64,
    /// The image ID it runs.
    pub image_id: String,
    /// Published ports as `host_ip:host_port->port/proto`.
    pub ports: Vec<String>,
    /// When its current run started, when it has started at all.
    pub started_at: Option<std::time::SystemTime>,
}

impl DockerEngine {
    /// Connects to the engine named by `DOCKER_HOST` (or the local socket),
    /// negotiates the API version and checks that it answers.
    pub async fn connect(extra_labels: BTreeMap<String, String>) -> Result<DockerEngine> {
        DockerEngine::connect_to(&connect::EngineConfig::default(), "default", extra_labels).await
    }

    /// The bollard client, for the Swarm engine's service calls.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Every container of a target, running or not.
    pub async fn observe(&self, target: &str) -> Result<Vec<ObservedContainer>> {
        let list = self.containers_where(Some((LABEL_TARGET, target)), &[]).await?;
        let mut observed = Vec::new();
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let Some(service) = labels.get(LABEL_SERVICE).cloned() else { continue };
            let name_of = |c: &Option<Vec<String>>| {
                c.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default()
            };
            // Containers kept for rollback, or set aside by an adoption, are
            // not part of the target's state.
            let name = name_of(&c.names);
            if name.ends_with(PREVIOUS_SUFFIX) || name.contains(crate::ownership::ADOPTED_MARK) {
                continue;
            }
            let field_hashes = labels.get(LABEL_FIELDS).and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
            let name =
                c.names.unwrap_or_default().first().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default();
            let id = c.id.unwrap_or_default();
            let running = matches!(c.state, Some(bollard::models::ContainerSummaryStateEnum::RUNNING));
            // The summary has no exit code; inspect the stopped ones.
            let exit_code = if running { None } else { self.snapshot(&id).await?.and_then(|s| s.exit_code) };
            observed.push(ObservedContainer {
                id,
                name,
                service,
                config_hash: labels.get(LABEL_HASH).cloned().unwrap_or_default(),
                field_hashes,
                image_id: c.image_id.unwrap_or_default(),
                running,
                exit_code,
                descriptor_version: labels.get(LABEL_VERSION).cloned(),
                descriptor_digest: labels.get(LABEL_DIGEST).cloned(),
                top_level: labels.get(spec::LABEL_TOP_LEVEL).and_then(|j| serde_json::from_str(j).ok()),
            });
        }
        observed.sort_by(|a, b| a.service.cmp(&b.service));
        Ok(observed)
    }

    /// Containers of a target kept under [`PREVIOUS_SUFFIX`] names: left
    /// behind only when a deploy was killed before it could finish or roll
    /// back. Returns (id, name) pairs.
    pub async fn leftovers(&self, target: &str) -> Result<Vec<(String, String)>> {
        let list = self.containers_where(Some((LABEL_TARGET, target)), &[]).await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let name = c.names?.first()?.trim_start_matches('/').to_string();
                name.ends_with(PREVIOUS_SUFFIX).then(|| (c.id.unwrap_or_default(), name))
            })
            .collect())
    }

    /// Renames a container.
    pub async fn rename(&self, id: &str, new_name: &str) -> Result<()> {
        self.survey.forget();
        let options = RenameContainerOptionsBuilder::default().name(new_name).build();
        self.docker
            .rename_container(id, options)
            .await
            .map_err(|e| self.fail(&format!("rename container {id} to {new_name}"), e))
    }

    /// Stops a container (its own grace period); one already stopped or
    /// gone is not an error.
    pub async fn stop(&self, id: &str, what: &str) -> Result<()> {
        self.survey.forget();
        match self.docker.stop_container(id, Some(StopContainerOptionsBuilder::default().build())).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304 | 404, .. }) => Ok(()),
            Err(e) => Err(self.fail(&format!("stop {what}"), e)),
        }
    }

    /// Names of the networks that exist among `wanted`.
    pub async fn existing_networks(&self, wanted: &[String]) -> Result<Vec<String>> {
        let list = self.all_networks().await?;
        Ok(list.into_iter().filter_map(|n| n.name).filter(|n| wanted.contains(n)).collect())
    }

    /// Names of the volumes that exist among `wanted`.
    pub async fn existing_volumes(&self, wanted: &[String]) -> Result<Vec<String>> {
        let list = self.all_volumes().await?;
        Ok(list.into_iter().map(|v| v.name).filter(|n| wanted.contains(n)).collect())
    }

    /// Names of every volume (and network) labelled as the target's: what
    /// `down --volumes` removes.
    pub async fn target_volumes(&self, target: &str) -> Result<Vec<String>> {
        let list = self.all_volumes().await?;
        Ok(list
            .into_iter()
            .filter(|v| v.labels.get(LABEL_TARGET).map(String::as_str) == Some(target))
            .map(|v| v.name)
            .collect())
    }

    /// Names of the networks labelled as the target's.
    pub async fn target_networks(&self, target: &str) -> Result<Vec<String>> {
        let list = self.all_networks().await?;
        Ok(list
            .into_iter()
            .filter(|n| n.labels.as_ref().and_then(|l| l.get(LABEL_TARGET)).map(String::as_str) == Some(target))
            .filter_map(|n| n.name)
            .collect())
    }

    /// A local image's ID and registry digests in one request, or `None`
    /// when the engine does not have it.
    pub async fn image_facts(&self, reference: &str) -> Result<Option<(String, Vec<String>)>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id.map(|id| (id, image.repo_digests.unwrap_or_default()))),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.fail(&format!("inspect image {reference}"), e)),
        }
    }

    /// The ID of a local image, or `None` when the engine does not have it.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.fail(&format!("inspect image {reference}"), e)),
        }
    }

    /// Builds a service's image from its build context, reporting each line
    /// of build output to `progress`. Fails with the builder's own message.
    pub async fn build(&self, service: &str, svc: &Service, progress: &mut (dyn FnMut(&str) + Send)) -> Result<String> {
        let Some(build) = &svc.build else {
            return Err(Error::Engine(format!("service `{service}` has no build section")));
        };
        let context = tar_context(&build.context).map_err(|e| {
            Error::Descriptor(format!(
                "service `{service}`: cannot read build context {}: {e}",
                build.context.display()
            ))
        })?;
        let args: HashMap<&str, &str> = build.args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(&build.dockerfile)
            .t(&svc.image)
            .rm(true)
            .forcerm(true)
            .buildargs(&args);
        if let Some(target) = &build.target {
            options = options.target(target);
        }
        if !build.cache_from.is_empty() {
            options = options.cachefrom(&build.cache_from);
        }
        if let Some(platform) = &svc.platform {
            options = options.platform(platform);
        }
        let body = bollard::body_full(context.into());
        let mut stream = self.docker.build_image(options.build(), None, Some(body));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.fail(&format!("build image for service `{service}`"), e))?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::Descriptor(format!("service `{service}`: image build failed: {detail}")));
            }
            if let Some(line) = info.stream {
                let line = line.trim_end();
                if !line.is_empty() {
                    progress(line);
                }
            }
        }
        self.image_id(&svc.image).await?.ok_or_else(|| {
            Error::Engine(format!("service `{service}`: the build finished but image `{}` is not there", svc.image))
        })
    }

    /// Pulls an image from its registry, reporting progress lines. Fails
    /// with a message that says plainly when no registry is reachable.
    pub async fn pull(&self, reference: &str, progress: &mut (dyn FnMut(&str) + Send)) -> Result<String> {
        self.pull_for(reference, None, progress).await
    }

    /// [`Self::pull`] for a service's `platform` (`linux/amd64`), when it names one.
    pub async fn pull_for(
        &self,
        reference: &str,
        platform: Option<&str>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String> {
        let (name, tag) = split_reference(reference);
        let mut options = CreateImageOptionsBuilder::default().from_image(&name).tag(&tag);
        if let Some(platform) = platform {
            options = options.platform(platform);
        }
        let options = options.build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        let mut last = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        if status != last {
                            progress(&format!("{reference}: {status}"));
                            last = status;
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::Unreachable(format!(
                        "image `{reference}` is not present on the engine and could not be pulled: {e}. \
                         If this engine cannot reach a registry, build or load the image there first \
                         (`docker load -i image.tar`)"
                    )))
                }
            }
        }
        self.image_id(reference).await?.ok_or_else(|| {
            Error::Unreachable(format!("image `{reference}` was pulled but the engine does not list it"))
        })
    }

    /// Loads a `docker save` archive into the engine, streaming the file.
    pub async fn load_archive(&self, path: &Path) -> Result<()> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::Usage(format!("image archive {}: cannot open: {e}", path.display())))?;
        let chunks = futures_util::stream::unfold(file, |mut file| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 1 << 20];
            match file.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((bytes::Bytes::from(buf), file))
                }
            }
        });
        let options = bollard::query_parameters::ImportImageOptionsBuilder::default().quiet(true).build();
        let mut stream = self.docker.import_image(options, bollard::body_stream(chunks), None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.fail(&format!("load image archive {}", path.display()), e))?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(Error::Engine(format!(
                    "image archive {}: the engine refused it: {detail}",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// The repository digests of a local image (`name@sha256:…`), empty for
    /// images that were built here and never pushed.
    pub async fn repo_digests(&self, reference: &str) -> Vec<String> {
        self.docker.inspect_image(reference).await.ok().and_then(|i| i.repo_digests).unwrap_or_default()
    }

    /// Creates a network the stack owns.
    pub async fn create_network(&self, stack: &Stack, key: &str) -> Result<()> {
        self.survey.forget();
        let body = spec::network_body(stack, key, &self.extra_labels);
        let name = body.name.clone();
        self.docker.create_network(body).await.map_err(|e| self.fail(&format!("create network {name}"), e))?;
        Ok(())
    }

    /// Creates a named volume the stack owns.
    pub async fn create_volume(&self, stack: &Stack, key: &str) -> Result<()> {
        self.survey.forget();
        let declared = stack.volumes.get(key).cloned().unwrap_or_default();
        let mut labels = spec::resource_labels(stack, &declared.labels, &self.extra_labels);
        labels.insert("com.docker.compose.volume".into(), key.into());
        let request = VolumeCreateRequest {
            name: Some(stack.volume_name(key)),
            driver: declared.driver.clone(),
            driver_opts: if declared.driver_opts.is_empty() {
                None
            } else {
                Some(declared.driver_opts.into_iter().collect())
            },
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(|e| self.fail(&format!("create volume {}", stack.volume_name(key)), e))?;
        Ok(())
    }

    /// Creates (but does not start) a service's container, attached to all
    /// its networks. Returns the container ID.
    pub async fn create_container(
        &self,
        stack: &Stack,
        service: &str,
        svc: &Service,
        hash: &ConfigHash,
        descriptor_labels: &BTreeMap<String, String>,
        inherit: &[(String, String)],
    ) -> Result<String> {
        self.survey.forget();
        let name = stack.container_name(service);
        let mut extra = self.extra_labels.clone();
        extra.extend(descriptor_labels.clone());
        let labels = spec::container_labels(stack, service, svc, hash, &extra);
        let mut body = spec::container_body(stack, service, svc, labels);
        spec::inherit_anonymous_volumes(&mut body, svc, inherit);
        let mut options = CreateContainerOptionsBuilder::default().name(&name);
        if let Some(platform) = &svc.platform {
            options = options.platform(platform);
        }
        let options = options.build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.fail(&format!("create container {name} for service `{service}`"), e))?;
        // Secrets and configs given as variables or inline text become files
        // in the container before it starts; without this they would be
        // silently missing.
        if let Some(archive) = spec::inline_files_archive(svc) {
            let options = bollard::query_parameters::UploadToContainerOptionsBuilder::default().path("/").build();
            self.docker
                .upload_to_container(&created.id, Some(options), bollard::body_full(archive.into()))
                .await
                .map_err(|e| self.fail(&format!("write secrets and configs into {name}"), e))?;
        }
        for key in spec::service_networks(svc).iter().skip(1) {
            let network = stack.network_name(key);
            let request = bollard::models::NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(spec::endpoint(service, svc, key)),
            };
            self.docker
                .connect_network(&network, request)
                .await
                .map_err(|e| self.fail(&format!("connect {name} to network {network}"), e))?;
        }
        Ok(created.id)
    }

    /// Starts a container.
    pub async fn start(&self, id: &str, what: &str) -> Result<()> {
        self.survey.forget();
        self.docker.start_container(id, None).await.map_err(|e| self.fail(&format!("start {what}"), e))
    }

    /// Stops (grace period from the container's own settings) and removes a
    /// container. A container that is already gone is not an error.
    pub async fn remove_container(&self, id: &str, what: &str) -> Result<()> {
        self.remove_container_with(id, what, false).await
    }

    /// [`DockerEngine::remove_container`], and with `volumes` its anonymous
    /// volumes too (`down --volumes`), so none is left dangling. Named
    /// volumes are never removed here.
    pub async fn remove_container_with(&self, id: &str, what: &str, volumes: bool) -> Result<()> {
        self.survey.forget();
        self.stop(id, what).await?;
        let options = RemoveContainerOptionsBuilder::default().force(true).v(volumes).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.fail(&format!("remove {what}"), e)),
        }
    }

    /// Removes a container at once (SIGKILL), without a grace period: for
    /// the failed containers of a deploy being rolled back, which serve
    /// nothing worth draining. One already gone is not an error.
    /// Its fresh anonymous volumes go with it; the ones it inherited from a
    /// kept container are mounted by name, so the engine keeps them.
    pub async fn discard(&self, id: &str, what: &str) -> Result<()> {
        self.survey.forget();
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.fail(&format!("remove {what}"), e)),
        }
    }

    /// Removes a network; one already gone is not an error. Right after its
    /// containers are removed the engine may still report endpoints on it
    /// (seen on Docker 20.10); that is retried for up to
    /// [`NETWORK_REMOVAL_GRACE`], as Compose rides the race out.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        self.survey.forget();
        let deadline = std::time::Instant::now() + NETWORK_REMOVAL_GRACE;
        loop {
            match self.docker.remove_network(name).await {
                Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => return Ok(()),
                Err(BollardError::DockerResponseServerError { ref message, .. })
                    if message.contains("active endpoints") && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                Err(e) => return Err(self.fail(&format!("remove network {name}"), e)),
            }
        }
    }

    /// Removes a volume unless a container still uses it (the engine answers
    /// 409); one already gone is not an error either.
    pub async fn remove_unused_volume(&self, name: &str) -> Result<()> {
        self.survey.forget();
        let options = RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError { status_code: 404, .. })
            | Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(self.fail(&format!("remove volume {name}"), e)),
        }
    }

    /// Removes a volume; one already gone is not an error.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        self.survey.forget();
        let options = RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.fail(&format!("remove volume {name}"), e)),
        }
    }

    /// The anonymous volumes a container uses, as (path in the container,
    /// volume name): declared without a name (`- /var/lib/mysql`) or by
    /// the image's `VOLUME`. A recreate hands them to the new container,
    /// as Compose does, so no data stays behind in an orphaned volume.
    pub async fn anonymous_volumes(&self, id: &str) -> Result<Vec<(String, String)>> {
        let inspect = match self.docker.inspect_container(id, None).await {
            Ok(c) => c,
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.fail(&format!("inspect container {id}"), e)),
        };
        let anonymous = |name: &str| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        Ok(inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ.as_deref() == Some("volume"))
            .filter_map(|m| Some((m.destination?, m.name?)))
            .filter(|(_, name)| anonymous(name))
            .collect())
    }

    /// Whether a container exists, by name or ID.
    pub async fn container_exists(&self, name: &str) -> Result<bool> {
        Ok(self.snapshot(name).await?.is_some())
    }

    /// The engine's current view of a container; `None` when it is gone.
    pub async fn snapshot(&self, id: &str) -> Result<Option<ContainerSnapshot>> {
        let inspect = match self.docker.inspect_container(id, None).await {
            Ok(i) => i,
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
            Err(e) => return Err(self.fail(&format!("inspect container {id}"), e)),
        };
        let state = inspect.state.unwrap_or_default();
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        let health = state.health.as_ref().and_then(|h| match h.status {
            Some(HealthStatusEnum::HEALTHY) => Some("healthy".to_string()),
            Some(HealthStatusEnum::UNHEALTHY) => Some("unhealthy".to_string()),
            Some(HealthStatusEnum::STARTING) => Some("starting".to_string()),
            _ => None,
        });
        let last_probe_output = state
            .health
            .as_ref()
            .and_then(|h| h.log.as_ref())
            .and_then(|log| log.last())
            .and_then(|probe| probe.output.clone())
            .map(|o| o.trim().to_string());
        let exited_once = matches!(
            state.status,
            Some(
                ContainerStateStatusEnum::EXITED
                    | ContainerStateStatusEnum::DEAD
                    | ContainerStateStatusEnum::RESTARTING
            )
        ) || inspect.restart_count.unwrap_or(0) > 0;
        let mut ports = Vec::new();
        if let Some(map) = inspect.network_settings.and_then(|n| n.ports) {
            let mut keys: Vec<_> = map.keys().cloned().collect();
            keys.sort();
            for key in keys {
                for b in map.get(&key).cloned().flatten().unwrap_or_default() {
                    let ip = b.host_ip.unwrap_or_default();
                    let port = b.host_port.unwrap_or_default();
                    let entry = format!("{ip}:{port}->{key}");
                    if !ports.contains(&entry) {
                        ports.push(entry);
                    }
                }
            }
        }
        Ok(Some(ContainerSnapshot {
            id: inspect.id.unwrap_or_default(),
            state: status,
            running: state.running.unwrap_or(false),
            restarting: state.restarting.unwrap_or(false),
            exit_code: if exited_once { state.exit_code } else { None },
            oom_killed: state.oom_killed.unwrap_or(false),
            error: state.error.filter(|e| !e.is_empty()),
            health,
            last_probe_output,
            restart_count: inspect.restart_count.unwrap_or(0),
            image_id: inspect.image.unwrap_or_default(),
            ports,
            started_at: state.started_at.as_deref().filter(|t| !t.starts_with("0001-")).and_then(|t| {
                humantime::parse_rfc3339_weak(t.trim_end_matches('Z').split('.').next().unwrap_or(t)).ok()
            }),
        }))
    }

    /// The last `lines` lines of a container's output (stdout and stderr).
    pub async fn log_tail(&self, id: &str, lines: usize) -> Vec<String> {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&lines.to_string()).build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
        let all: Vec<String> = text.lines().map(|l| l.to_string()).collect();
        let skip = all.len().saturating_sub(lines);
        all.into_iter().skip(skip).collect()
    }

    /// The engine's container events for one target, from `since` (Unix
    /// seconds, engine time) on: the request is only sent when the stream
    /// is first polled, and `since` has the engine replay what happened in
    /// between, so no event is lost. The healthcheck's `exec_*` noise is
    /// filtered out by the engine.
    pub fn events(
        &self,
        target: &str,
        since: i64,
    ) -> impl Stream<Item = std::result::Result<EventMessage, BollardError>> + use<> {
        let filters: HashMap<String, Vec<String>> = [
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![format!("{LABEL_TARGET}={target}")]),
            (
                "event".to_string(),
                ["start", "die", "oom", "health_status", "restart", "destroy", "stop", "kill"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
        ]
        .into_iter()
        .collect();
        let options = EventsOptionsBuilder::default().since(&since.to_string()).filters(&filters).build();
        self.docker.clone().events(Some(options))
    }

    /// Turns a bollard error into ours, naming what was being done.
    fn fail(&self, doing: &str, e: BollardError) -> Error {
        match e {
            BollardError::DockerResponseServerError { status_code, message } => {
                Error::Engine(format!("engine refused to {doing}: {message} (HTTP {status_code})"))
            }
            BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError
            | BollardError::SocketNotFoundError(_) => Error::Unreachable(format!(
                "Docker engine at {} stopped answering while trying to {doing}: {e}",
                self.host
            )),
            other => Error::Engine(format!("failed to {doing}: {other}")),
        }
    }
}

/// Packs a build context folder into a tar archive, honouring
/// `.dockerignore` patterns of the simple kind (exact paths and `*` globs
/// at the top level). Symbolic links are stored as links, as Docker does.
fn tar_context(dir: &Path) -> std::io::Result<Vec<u8>> {
    let ignore: Vec<String> = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    add_dir(&mut builder, dir, Path::new(""), &ignore)?;
    builder.into_inner()
}

fn add_dir(builder: &mut tar::Builder<Vec<u8>>, root: &Path, rel: &Path, ignore: &[String]) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = rel.join(entry.file_name());
        let text = path.to_string_lossy();
        if ignore.iter().any(|p| glob_match(p, &text)) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            builder.append_dir(&path, entry.path())?;
            add_dir(builder, root, &path, ignore)?;
        } else {
            builder.append_path_with_name(entry.path(), &path)?;
        }
    }
    Ok(())
}

/// Splits `registry/name:tag` (or `name@sha256:...`) into the name and
/// the tag or digest the pull API wants; no tag means `latest`.
fn split_reference(reference: &str) -> (String, String) {
    if let Some((name, digest)) = reference.split_once('@') {
        return (name.to_string(), digest.to_string());
    }
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (reference.to_string(), "latest".to_string()),
    }
}

/// `*` matches any run of characters except `/`; everything else literally.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).take_while(|&i| i == 0 || t[i - 1] != b'/').any(|i| go(&p[1..], &t[i..])),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_docker_pull() {
        assert_eq!(split_reference("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split_reference("reg:5000/app:1.2"), ("reg:5000/app".into(), "1.2".into()));
        assert_eq!(split_reference("reg:5000/app"), ("reg:5000/app".into(), "latest".into()));
        assert_eq!(split_reference("app@sha256:ab"), ("app".into(), "sha256:ab".into()));
    }

    #[test]
    fn dockerignore_globs() {
        assert!(glob_match("*.log", "build.log"));
        assert!(!glob_match("*.log", "dir/build.log"));
        assert!(glob_match("target", "target"));
        assert!(!glob_match("target", "targets"));
    }

    #[test]
    fn build_context_skips_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("secret.log"), "x").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.log\n").unwrap();
        let bytes = tar_context(dir.path()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.contains(&"Dockerfile".to_string()));
        assert!(!names.iter().any(|n| n.ends_with(".log")), "{names:?}");
    }
}

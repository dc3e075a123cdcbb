//! Containers: observing a target's, creating, starting, stopping,
//! renaming and removing them, and reading their state and logs.

use std::collections::BTreeMap;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::spec::{LABEL_FIELDS, LABEL_HASH, LABEL_SERVICE, LABEL_TARGET};
use super::*;
use crate::error::Result;
use crate::plan::{ConfigHash, ObservedContainer};
use crate::stack::{Service, Stack};

impl DockerEngine {
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
        self.remove(id, what, volumes).await
    }

    /// Removes a container at once (SIGKILL), without a grace period: for
    /// the failed containers of a deploy being rolled back, which serve
    /// nothing worth draining. One already gone is not an error.
    /// Its fresh anonymous volumes go with it; the ones it inherited from a
    /// kept container are mounted by name, so the engine keeps them.
    pub async fn discard(&self, id: &str, what: &str) -> Result<()> {
        self.survey.forget();
        self.remove(id, what, true).await
    }

    /// Removes a container (forced); one already gone is not an error, and
    /// neither is one the engine is removing already (a removal an
    /// interrupted client started, or another one's): it is done when the
    /// container is gone.
    async fn remove(&self, id: &str, what: &str, volumes: bool) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(volumes).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 409, message })
                if message.contains("already in progress") =>
            {
                self.gone(id, what).await
            }
            Err(e) => Err(self.fail(&format!("remove {what}"), e)),
        }
    }

    /// Waits (a minute at most) until a container the engine is removing
    /// is gone.
    async fn gone(&self, id: &str, what: &str) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.snapshot(id).await?.is_some() {
            if std::time::Instant::now() > deadline {
                return Err(Error::Engine(format!(
                    "{what} is still being removed by the engine after a minute; run the command again once \
                     `docker ps -a` no longer lists it"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        Ok(())
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
            listed: false,
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
}

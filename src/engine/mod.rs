//! The engine stage: everything dockmaster asks of Docker, through `bollard`.
//!
//! The rest of the pipeline sees engine-independent values (observed
//! containers, snapshots) so the planner and the health rules stay pure.
//! Every engine error is turned into an [`Error`] that says what was being
//! done, to what, and what the engine answered.

pub mod archive;
pub mod connect;
mod containers;
mod hooks;
mod images;
pub mod listed;
mod networks;
pub mod spec;
mod survey;
mod volumes;
pub use survey::Survey;

use std::collections::{BTreeMap, HashMap};

use bollard::errors::Error as BollardError;
use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptionsBuilder;
use bollard::Docker;
use futures_util::Stream;

use crate::error::{Error, Result};
use spec::LABEL_TARGET;

/// Label recording the descriptor version a container was deployed from.
pub const LABEL_VERSION: &str = "dockmaster.descriptor-version";
/// Label recording the digest of the descriptor a container was deployed from.
pub const LABEL_DIGEST: &str = "dockmaster.descriptor-digest";
/// Label recording the reference a container was deployed from.
pub const LABEL_REFERENCE: &str = "dockmaster.descriptor";

/// The labels that record which descriptor a container (or Swarm
/// service) was deployed from: what `status` and `rollback` read back.
pub fn descriptor_labels(summary: &crate::request::DescriptorSummary) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_REFERENCE.to_string(), summary.reference.clone());
    labels.insert(LABEL_DIGEST.to_string(), summary.digest.clone());
    if let Some(version) = &summary.version {
        labels.insert(LABEL_VERSION.to_string(), version.clone());
    }
    labels
}

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
    /// Read from the engine's container list rather than an inspect (see
    /// [`listed`]): the restart count, exit details and probe output are
    /// unknown, and `started_at` is a lower bound from the list's
    /// "Up 5 minutes".
    pub listed: bool,
}

impl DockerEngine {
    /// Connects to the engine named by `DOCKER_HOST` (or the local socket),
    /// negotiates the API version and checks that it answers.
    pub async fn connect(extra_labels: BTreeMap<String, String>) -> Result<DockerEngine> {
        DockerEngine::connect_to(&connect::EngineConfig::default(), "default", extra_labels).await
    }

    /// Asks the engine whether it answers now (the client is shared and
    /// was checked only when first made): for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| Error::Unreachable(format!("Docker engine at {} does not answer: {e}", self.host)))
    }

    /// The bollard client, for the Swarm engine's service calls.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
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

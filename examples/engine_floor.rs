//! The engine floor for `bench/run.py`: the same containers a deployer would
//! make, created and started straight through the engine API, all at once,
//! then waited on until healthy. No deployer can beat it; the benchmark
//! reports dockmaster's time as a ratio to it.
//!
//! ```text
//! cargo run --release --example engine_floor -- up      STACK.json
//! cargo run --release --example engine_floor -- replace STACK.json SERVICE
//! cargo run --release --example engine_floor -- noop    STACK.json
//! cargo run --release --example engine_floor -- down    STACK.json
//! ```
//!
//! `STACK.json` is written by the benchmark (see `bench/run.py`, `floor_spec`):
//! the project name, the labels every resource carries, the network, and one
//! entry per service with its level (dependency depth), command, environment,
//! restart policy and healthcheck.
//!
//! - `up`: creates the network, then for each level in turn creates and
//!   starts all its containers concurrently and waits until each is healthy
//!   (its `health_status: healthy` event; a service without a healthcheck
//!   counts once started). The wait reads the engine's event stream only, so
//!   there is no polling delay. A `die` event of any container ends it at
//!   once with exit 1: the fastest possible failure verdict.
//! - `replace`: the changed service's container is removed (SIGKILL) and a
//!   new one is created, started and waited on.
//! - `noop`: one list call, checking that every container runs and is healthy.
//! - `down`: every container removed at once (SIGKILL, no grace period), then
//!   the network.
//!
//! It prints one line saying what it did and exits 0, or exits 1 with the
//! reason on stderr.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkCreateRequest, NetworkingConfig,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::future::join_all;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

/// The label naming the floor's project on everything it creates.
const PROJECT_LABEL: &str = "engine-floor.project";
/// The label naming the service a container runs.
const SERVICE_LABEL: &str = "engine-floor.service";
/// No wait lasts longer than this.
const DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
struct Spec {
    project: String,
    image: String,
    network: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    services: Vec<ServiceSpec>,
}

#[derive(Debug, Deserialize, Clone)]
struct ServiceSpec {
    name: String,
    #[serde(default)]
    level: usize,
    command: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    restart: Option<String>,
    #[serde(default)]
    healthcheck: Option<Health>,
}

#[derive(Debug, Deserialize, Clone)]
struct Health {
    test: Vec<String>,
    interval_ms: i64,
    timeout_ms: i64,
    retries: i64,
    #[serde(default)]
    start_period_ms: i64,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What the event stream tells the waits.
enum News {
    Healthy(String),
    Unhealthy(String),
    Started(String),
    Died(String),
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    match run(&args).await {
        Ok(done) => println!("engine_floor: {done} in {:.2}s", started.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("engine_floor: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(args: &[String]) -> Result<String, Failure> {
    let (mode, path) = match args {
        [mode, path, ..] => (mode.as_str(), path),
        _ => return Err("usage: engine_floor up|replace|noop|down STACK.json [SERVICE]".into()),
    };
    let spec: Spec = serde_json::from_slice(&std::fs::read(path)?)?;
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    match mode {
        "up" => up(&docker, &spec).await,
        "replace" => {
            let service = args.get(2).ok_or("replace needs a SERVICE")?;
            replace(&docker, &spec, service).await
        }
        "noop" => noop(&docker, &spec).await,
        "down" => down(&docker, &spec).await,
        other => Err(format!("unknown mode `{other}`").into()),
    }
}

fn container_name(spec: &Spec, service: &str) -> String {
    format!("{}-{service}-1", spec.project)
}

/// Forwards the project's container events to a channel. Events are asked
/// for from one second before now, so none is missed while the stream
/// connects.
fn watch_events(docker: &Docker, spec: &Spec) -> mpsc::UnboundedReceiver<News> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs().saturating_sub(1)).unwrap_or(0);
    let filters: HashMap<String, Vec<String>> = [
        ("type".to_string(), vec!["container".to_string()]),
        ("label".to_string(), vec![format!("{PROJECT_LABEL}={}", spec.project)]),
        ("event".to_string(), vec!["start".into(), "die".into(), "health_status".into()]),
    ]
    .into_iter()
    .collect();
    let options = EventsOptionsBuilder::default().since(&since.to_string()).filters(&filters).build();
    let mut stream = docker.events(Some(options));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(event)) = stream.next().await {
            let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
            let Some(service) = attributes.get(SERVICE_LABEL).cloned() else { continue };
            let news = match event.action.as_deref().unwrap_or("") {
                "start" => News::Started(service),
                "die" => News::Died(service),
                a if a.ends_with(": healthy") => News::Healthy(service),
                a if a.ends_with(": unhealthy") => News::Unhealthy(service),
                _ => continue,
            };
            if tx.send(news).is_err() {
                break;
            }
        }
    });
    rx
}

fn body(spec: &Spec, svc: &ServiceSpec) -> ContainerCreateBody {
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(PROJECT_LABEL.into(), spec.project.clone());
    labels.insert(SERVICE_LABEL.into(), svc.name.clone());
    let ms = |v: i64| v * 1_000_000;
    let healthcheck = svc.healthcheck.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()),
        interval: Some(ms(h.interval_ms)),
        timeout: Some(ms(h.timeout_ms)),
        retries: Some(h.retries),
        start_period: Some(ms(h.start_period_ms)),
        ..Default::default()
    });
    let restart_policy = svc.restart.as_deref().map(|r| RestartPolicy {
        name: Some(match r {
            "always" => RestartPolicyNameEnum::ALWAYS,
            "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
            "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
            _ => RestartPolicyNameEnum::NO,
        }),
        maximum_retry_count: None,
    });
    let endpoint = EndpointSettings { aliases: Some(vec![svc.name.clone()]), ..Default::default() };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(svc.command.clone()),
        env: Some(svc.environment.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        healthcheck,
        host_config: Some(HostConfig {
            network_mode: Some(spec.network.clone()),
            restart_policy,
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some([(spec.network.clone(), endpoint)].into_iter().collect()),
        }),
        ..Default::default()
    }
}

async fn create_and_start(docker: &Docker, spec: &Spec, svc: &ServiceSpec) -> Result<(), Failure> {
    let name = container_name(spec, &svc.name);
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let created =
        docker.create_container(Some(options), body(spec, svc)).await.map_err(|e| format!("create {name}: {e}"))?;
    docker.start_container(&created.id, None).await.map_err(|e| format!("start {name}: {e}"))?;
    Ok(())
}

/// Starts the given services at once and waits until every one is settled:
/// healthy, or started when it has no healthcheck.
async fn start_and_wait(
    docker: &Docker,
    spec: &Spec,
    services: &[&ServiceSpec],
    news: &mut mpsc::UnboundedReceiver<News>,
    deadline: Instant,
) -> Result<(), Failure> {
    let results = join_all(services.iter().map(|svc| create_and_start(docker, spec, svc))).await;
    for result in results {
        result?;
    }
    let with_check: HashSet<&str> =
        services.iter().filter(|s| s.healthcheck.is_some()).map(|s| s.name.as_str()).collect();
    let mut waiting: HashSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, news.recv())
            .await
            .map_err(|_| format!("deadline passed waiting for {waiting:?}"))?
            .ok_or("the engine's event stream ended")?;
        match event {
            News::Healthy(s) => {
                waiting.remove(s.as_str());
            }
            News::Started(s) if !with_check.contains(s.as_str()) => {
                waiting.remove(s.as_str());
            }
            News::Started(_) => {}
            News::Unhealthy(s) => return Err(format!("failed: {s} is unhealthy").into()),
            News::Died(s) => return Err(format!("failed: {s} died").into()),
        }
    }
    Ok(())
}

async fn ensure_network(docker: &Docker, spec: &Spec) -> Result<(), Failure> {
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(PROJECT_LABEL.into(), spec.project.clone());
    let request = NetworkCreateRequest { name: spec.network.clone(), labels: Some(labels), ..Default::default() };
    match docker.create_network(request).await {
        Ok(_) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
        Err(e) => Err(format!("create network {}: {e}", spec.network).into()),
    }
}

async fn up(docker: &Docker, spec: &Spec) -> Result<String, Failure> {
    let deadline = Instant::now() + DEADLINE;
    let mut news = watch_events(docker, spec);
    ensure_network(docker, spec).await?;
    let levels = spec.services.iter().map(|s| s.level).max().unwrap_or(0);
    for level in 0..=levels {
        let services: Vec<&ServiceSpec> = spec.services.iter().filter(|s| s.level == level).collect();
        start_and_wait(docker, spec, &services, &mut news, deadline).await?;
    }
    Ok(format!("{} services healthy in {} level(s)", spec.services.len(), levels + 1))
}

async fn replace(docker: &Docker, spec: &Spec, service: &str) -> Result<String, Failure> {
    let deadline = Instant::now() + DEADLINE;
    let svc = spec.services.iter().find(|s| s.name == service).ok_or_else(|| format!("no service `{service}`"))?;
    let mut news = watch_events(docker, spec);
    let name = container_name(spec, service);
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    docker.remove_container(&name, Some(options)).await.map_err(|e| format!("remove {name}: {e}"))?;
    // The old container's own `die` is not news about the new one.
    while news.try_recv().is_ok() {}
    start_and_wait(docker, spec, &[svc], &mut news, deadline).await?;
    Ok(format!("{service} replaced and healthy"))
}

async fn list(docker: &Docker, spec: &Spec) -> Result<Vec<bollard::models::ContainerSummary>, Failure> {
    let filters: HashMap<String, Vec<String>> =
        [("label".to_string(), vec![format!("{PROJECT_LABEL}={}", spec.project)])].into_iter().collect();
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    Ok(docker.list_containers(Some(options)).await?)
}

async fn noop(docker: &Docker, spec: &Spec) -> Result<String, Failure> {
    let containers = list(docker, spec).await?;
    let healthy = containers.iter().filter(|c| c.status.as_deref().unwrap_or("").contains("(healthy)")).count();
    if healthy != spec.services.len() {
        return Err(format!("{healthy} of {} services healthy", spec.services.len()).into());
    }
    Ok(format!("all {healthy} services already healthy"))
}

async fn down(docker: &Docker, spec: &Spec) -> Result<String, Failure> {
    let containers = list(docker, spec).await?;
    let removals = containers.iter().filter_map(|c| c.id.as_deref()).map(|id| async move {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        docker.remove_container(id, Some(options)).await
    });
    for result in join_all(removals).await {
        result?;
    }
    match docker.remove_network(&spec.network).await {
        Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
        Err(e) => return Err(format!("remove network {}: {e}", spec.network).into()),
    }
    Ok(format!("{} containers and the network removed", containers.len()))
}

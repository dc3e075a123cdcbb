//! The normalised model of a descriptor.
//!
//! Every descriptor format (Compose v1, 2.x, 3.x, the Compose Specification)
//! is loaded into this one model, and every later stage (guard, plan, apply,
//! watch) reads only this model. Keeping the formats out of the later stages
//! is what lets a v1 descriptor and a modern one deploy the same way.
//!
//! The model is plain data: it serialises to JSON for the configuration hash
//! that decides whether a container must be recreated, so field order and map
//! order must be deterministic (`BTreeMap`), and nothing that does not change
//! the container (such as the order services were written in) may be in it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod container;
mod graph;
mod host;
mod mounts;
mod names;
mod resources;
mod swarm;

pub use container::{Device, FileKind, FileMount, FileSource, Ulimit};
pub use host::{BlkioConfig, DeviceRequest, Hook, ThrottleDevice, WeightDevice};
pub use mounts::{Mount, MountKind, VolumesFrom, VolumesFromSource};
pub use resources::{Network, Subnet, Volume};
pub use swarm::{Placement, SwarmDeploy, SwarmRestart, UpdateConfig};

/// Which descriptor format a file was written in. Kept for messages and for
/// the few places where the formats really behave differently (v1 services
/// use the default bridge and legacy links instead of a project network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Services at the top level, no `services:` key (docker-compose 1.x "v1").
    V1,
    /// `version: "2.x"`.
    V2,
    /// `version: "3.x"`.
    V3,
    /// The Compose Specification (no `version:`, or one that is ignored).
    Spec,
}

/// A whole descriptor, normalised: what should run on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// The project name: prefixes container, network and volume names.
    pub name: String,
    /// The format the descriptor was written in.
    pub format: Format,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Networks declared at the top level, by their key in the descriptor.
    pub networks: BTreeMap<String, Network>,
    /// Named volumes declared at the top level, by their key.
    pub volumes: BTreeMap<String, Volume>,
    /// Things the loader accepted but wants a person to know (ignored
    /// `version:`, published ports under host networking, ...). The plan
    /// prints them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The files the loader read besides the descriptor (included, extended
    /// and override files, env files), with each one's hex SHA-256, so the
    /// descriptor's digest covers them
    /// ([`crate::descriptor::Descriptor::digest_with`]).
    #[serde(skip)]
    pub inputs: BTreeMap<std::path::PathBuf, String>,
}

/// One service: the desired configuration of its container.
///
/// Everything in here that is serialised feeds the configuration hash, so a
/// change to any field recreates the container and nothing else does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// The image reference (`busybox:1.36`, `registry/app@sha256:...`). When
    /// `build` is set and `image` is not, the loader fills in
    /// `<project>-<service>` as Compose does.
    pub image: String,
    /// How to build the image when it is built locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// Overrides the image's `CMD`. `None` keeps the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Overrides the image's `ENTRYPOINT`. `None` keeps the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables. A `None` value means "unset" (Compose's bare
    /// `- NAME` whose variable is not in the environment).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Mounts: named volumes, bind mounts and tmpfs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// `volumes_from`: `service:NAME[:ro|rw]` or `container:NAME[:ro|rw]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<VolumesFrom>,
    /// Networks the service joins, by their key in the stack's `networks`.
    /// Empty with no `network_mode` means the project's default network.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, ServiceNetwork>,
    /// `host`, `none`, `bridge`, `service:NAME` or `container:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Legacy links `SERVICE[:ALIAS]` (v1 descriptors on the default bridge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Start-order dependencies with the condition to wait for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    /// The container healthcheck. `None` keeps the image's; a check with
    /// `disable: true` turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Restart policy: `no`, `always`, `on-failure[:N]`, `unless-stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// Container labels set by the descriptor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A fixed container name instead of `<project>-<service>-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Marked one-shot by the descriptor (label `dockmaster.one-shot: "true"`):
    /// it is done, not dead, when it exits 0. See [`Stack::is_one_shot`] for
    /// the other ways a service counts as one-shot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_shot: bool,
    /// Container hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `USER[:GROUP]` to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Run privileged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Give the container a TTY (`tty: true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Keep stdin open (`stdin_open: true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    /// Signal sent to stop the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Time between the stop signal and SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub stop_grace_period: Option<Duration>,
    /// Extra `/etc/hosts` entries, `host:ip`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Resource limits and reservations (`deploy.resources`, `mem_limit`, ...).
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// Logging driver and options (`logging`, v1 `log_driver`/`log_opt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// When to pull the image (`pull_policy`); `None` is `missing`. Not part
    /// of the configuration hash, as in Compose: it changes how the image is
    /// obtained, not the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Run an init process as PID 1 (`init: true`); `None` keeps the
    /// engine's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Mount the container's root filesystem read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Kernel capabilities added (`cap_add`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Kernel capabilities dropped (`cap_drop`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Host devices made available in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// Resolver options (`ndots:2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// Namespaced kernel parameters (`net.core.somaxconn: 1024`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Resource limits by name (`nofile`, `nproc`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Size of `/dev/shm` in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// Security options (`no-new-privileges:true`, `seccomp:...`, `label:...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// PID namespace: `host`, or `container:NAME` / `service:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// IPC namespace: `host`, `private`, `shareable`, `none`, or
    /// `container:NAME` / `service:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// The profiles that enable this service; empty means always enabled.
    /// Services whose profiles are all inactive are not in the stack at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Secrets mounted read-only into the container (`/run/secrets/NAME` by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileMount>,
    /// Configs mounted read-only into the container (`/NAME` by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileMount>,
    /// What `deploy:` says that only Swarm acts on (replicas, update and
    /// rollback settings, placement). Not part of a container's
    /// configuration hash; a `swarm` environment deploys with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<SwarmDeploy>,
    /// Ports the container exposes without publishing them (`expose`):
    /// `PORT[/PROTOCOL]` or a range `START-END[/PROTOCOL]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// Relative CPU weight (`cpu_shares`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// CPUs the container may run on (`cpuset: "0-2,4"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// CFS quota in microseconds per period (`cpu_quota`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds (`cpu_period`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// Real-time period in microseconds (`cpu_rt_period`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<i64>,
    /// Real-time runtime in microseconds (`cpu_rt_runtime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<i64>,
    /// Memory plus swap in bytes (`memswap_limit`; -1 is unlimited swap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<i64>,
    /// Swappiness, 0-100 (`mem_swappiness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_swappiness: Option<i64>,
    /// OOM-killer preference, -1000 to 1000 (`oom_score_adj`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    /// Storage driver options (`storage_opt: {size: 20G}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    /// Block-I/O weights and throttles (`blkio_config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    /// Device cgroup rules (`c 1:3 mr`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// The cgroup the container's cgroup is created under (`cgroup_parent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// The cgroup namespace: `host` or `private` (`cgroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The container's MAC address on its first network (`mac_address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// The image platform (`linux/amd64`): what to pull and build, and what
    /// the engine creates the container from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// GPUs handed out by the engine's device drivers (`gpus:`; `all` is one
    /// request with count -1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceRequest>,
    /// Devices (GPUs) reserved through `deploy.resources.reservations.devices`,
    /// which Compose also asks a single engine for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_requests: Vec<DeviceRequest>,
    /// Supplementary groups of the container's user (`group_add`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// The user namespace mode (`userns_mode: host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// The UTS namespace (`uts: host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    /// The container's NIS domain name (`domainname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// The OCI runtime (`runtime: runc`, `nvidia`, `runsc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Legacy links to containers outside the stack, `CONTAINER[:ALIAS]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    /// OCI annotations on the container (`annotations`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The volume driver for the service's anonymous and undeclared volumes
    /// (v1 `volume_driver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_driver: Option<String>,
    /// Commands run in the container after it starts (`post_start`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<Hook>,
    /// Commands run in the container before it is stopped (`pre_stop`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Hook>,
}

/// Compose's `pull_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Pull only when the engine lacks the image (`missing`, `if_not_present`).
    Missing,
    /// Pull on every deploy: a new image behind the tag recreates the container.
    Always,
    /// Never pull: the image must be on the engine (built, loaded, or pulled before).
    Never,
    /// Build the image on every deploy (needs a `build` section).
    Build,
}

/// How to build a service's image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// The build context, absolute (resolved against the descriptor's folder).
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// Build arguments.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// The stage to build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Images the builder may take cached layers from (`cache_from`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// The port inside the container.
    pub target: u16,
    /// The host port; `None` lets the engine pick one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<u16>,
    /// The host address to bind; `None` binds every address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// A service's attachment to one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNetwork {
    /// Extra DNS names on that network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A static IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// A static IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
}

/// What a dependent waits for before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency's container has started.
    ServiceStarted,
    /// The dependency's healthcheck reports healthy.
    ServiceHealthy,
    /// The dependency ran to completion and exited 0.
    ServiceCompletedSuccessfully,
}

impl Condition {
    /// The condition as Compose spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::ServiceStarted => "service_started",
            Condition::ServiceHealthy => "service_healthy",
            Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
        }
    }
}

/// A `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// What to wait for.
    pub condition: Condition,
    /// When false, a missing or failed dependency only warns.
    pub required: bool,
    /// Restart the dependent when the dependency is recreated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
}

/// A container healthcheck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Time between probes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub interval: Option<Duration>,
    /// Time one probe may take.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Failed probes in a row that make the container unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Grace period during which failures do not count.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub start_period: Option<Duration>,
    /// Probe interval during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub start_interval: Option<Duration>,
    /// `disable: true`: no healthcheck, even if the image has one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

/// CPU and memory limits and reservations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU limit in cores (`0.5` = half a core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Memory reservation in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// Maximum number of processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
}

impl Resources {
    /// True when no limit is set; keeps the hash of unlimited services short.
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// Logging driver settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logging {
    /// The driver (`json-file`, `syslog`, ...). `None` keeps the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// The name of the network a stack's services join when they name none.
pub const DEFAULT_NETWORK: &str = "default";

impl Service {
    /// The service's secrets, then its configs, each with its kind.
    pub fn files(&self) -> impl Iterator<Item = (FileKind, &FileMount)> {
        let secrets = self.secrets.iter().map(|f| (FileKind::Secret, f));
        secrets.chain(self.configs.iter().map(|f| (FileKind::Config, f)))
    }
}

/// Serialises optional durations as whole milliseconds, so the configuration
/// hash and the JSON form are stable and readable.
mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests;

//! The `policy` section: what descriptors may ask of a shared host, and
//! where structural changes need an approver. Checking a descriptor
//! against it is `crate::policy`'s business.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The `policy` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The rules; all that match a request are checked.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    /// Where structural changes need an approval (when access rules are
    /// configured). Default: every environment.
    #[serde(default)]
    pub approval: Option<ApprovalConfig>,
    /// Host folders every descriptor may read files from besides its own
    /// application's folder (`env_file`, `extends`, `include`, a build
    /// context): a shared folder of common fragments, say. Default none.
    #[serde(default)]
    pub file_roots: Vec<PathBuf>,
}

/// Where structural changes need an approval.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// Environment globs. An empty list: approval is never needed.
    pub environments: Vec<String>,
}

/// One named rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// The rule's name, quoted in every violation it finds.
    pub name: String,
    /// `APPLICATION/RELEASE` globs (as in access rules) the rule applies
    /// to; default all. File paths match `**` only.
    #[serde(default = "everything")]
    pub descriptors: Vec<String>,
    /// Environment globs; default all.
    #[serde(default = "everything")]
    pub environments: Vec<String>,
    /// Named volumes (engine-side names, `external` ones included) and
    /// containers used through `volumes_from` must start with this: a
    /// team's prefix, so no team mounts another team's data.
    #[serde(default)]
    pub volume_prefix: Option<String>,
    /// Host paths only from under these host folders: bind mounts, the
    /// `file:` of secrets and configs, and named volumes that bind a host
    /// folder (`driver_opts` `type: none`/`o: bind` with `device:`). Both
    /// sides are resolved on this host, symbolic links included. An empty
    /// list forbids them all; no key allows any.
    #[serde(default)]
    pub bind_roots: Option<Vec<PathBuf>>,
    /// When set, host access is forbidden except what is listed here:
    /// `privileged` (also a `post_start`/`pre_stop` hook with
    /// `privileged: true`), `pid_host`, `network_host`, `ipc_host`,
    /// `devices`, `cap_add` (any capability) or `cap_add:NAME` (that one),
    /// the `security_opt` entries that lift confinement:
    /// `seccomp_unconfined`, `apparmor_unconfined`, `label_disable`,
    /// `systempaths_unconfined`, `no_new_privileges_false`; and
    /// `userns_host` (`userns_mode: host`: container root is host root),
    /// `uts_host`, `cgroup_host` (`cgroup: host`), `cgroup_parent` (placing
    /// the container in another cgroup, out of its limits),
    /// `device_cgroup_rules` (device access by number), `runtime` (any OCI
    /// runtime) or `runtime:NAME` (that one), `gpus` (GPU and other device
    /// requests), `oom_score_adj` (a negative one: other containers are
    /// killed first) and `external_links` (links into containers outside
    /// the stack, which expose their environment). Joining the network,
    /// PID or IPC namespace of a container or service outside the stack is
    /// refused whatever the list says.
    #[serde(default)]
    pub privileges: Option<Vec<String>>,
    /// CPU and memory limits.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Images only from these registries: a host (`registry.example.com`),
    /// a host and path prefix (`docker.io/library`), or `local` for images
    /// the descriptor builds itself.
    #[serde(default)]
    pub registries: Option<Vec<String>>,
    /// Images must be pinned by digest (`image@sha256:…`).
    #[serde(default)]
    pub require_digest: bool,
    /// Label prefixes no descriptor may set (e.g. `traefik.`, the reverse
    /// proxy's routing labels, which the platform team owns).
    #[serde(default)]
    pub reserved_labels: Vec<String>,
    /// The most replicas one service may ask for (`deploy.replicas`; a
    /// service without it has one): a cap on what a team can take from a
    /// shared cluster. `deploy.mode: global` (a task on every node, however
    /// many) is refused under a cap.
    #[serde(default)]
    pub max_replicas: Option<u64>,
    /// Placement constraints every service must carry, written as in the
    /// descriptor (`node.labels.team == shop`): keeps a team's tasks on its
    /// own nodes of a shared swarm.
    #[serde(default)]
    pub placement_constraints: Vec<String>,
}

/// Limits a rule requires and caps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Every service must set a CPU and a memory limit, each above zero
    /// (the engine reads 0 as unlimited).
    #[serde(default)]
    pub required: bool,
    /// The most CPUs one service may ask for.
    #[serde(default)]
    pub max_cpus: Option<f64>,
    /// The most memory one service may ask for (`512m`, `2g`).
    #[serde(default)]
    pub max_memory: Option<String>,
}

fn everything() -> Vec<String> {
    vec!["**".into()]
}

/// The host-access names `privileges` accepts.
pub const PRIVILEGES: &[&str] = &[
    "privileged",
    "pid_host",
    "network_host",
    "ipc_host",
    "devices",
    "cap_add",
    "seccomp_unconfined",
    "apparmor_unconfined",
    "label_disable",
    "systempaths_unconfined",
    "no_new_privileges_false",
    "userns_host",
    "uts_host",
    "cgroup_host",
    "cgroup_parent",
    "device_cgroup_rules",
    "runtime",
    "gpus",
    "oom_score_adj",
    "external_links",
];

impl PolicyConfig {
    /// Checks the rules when the configuration loads, so a typo fails
    /// before any deploy instead of silently allowing everything.
    pub fn validate(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = |msg: String| Error::Usage(format!("policy.rules[{i}] ({}): {msg}", rule.name));
            if rule.name.trim().is_empty() {
                return Err(Error::Usage(format!("policy.rules[{i}]: `name` is empty; every rule needs a name")));
            }
            if !names.insert(rule.name.clone()) {
                return Err(at("two rules have this name; names must be unique".into()));
            }
            for p in rule.privileges.iter().flatten() {
                let base = p.split_once(':').map(|(b, _)| b).unwrap_or(p);
                if !PRIVILEGES.contains(&base) || (p.contains(':') && !matches!(base, "cap_add" | "runtime")) {
                    return Err(at(format!(
                        "privileges: `{p}` is not one of {}, cap_add:NAME or runtime:NAME",
                        PRIVILEGES.join(", ")
                    )));
                }
            }
            if let Some(limits) = &rule.limits {
                if let Some(m) = &limits.max_memory {
                    crate::descriptor::compose::units::byte_size(m)
                        .map_err(|e| at(format!("limits.max_memory: {e}")))?;
                }
                if limits.max_cpus.is_some_and(|c| c.is_nan() || c <= 0.0) {
                    return Err(at("limits.max_cpus must be a positive number of CPUs".into()));
                }
            }
            for root in rule.bind_roots.iter().flatten() {
                if !root.is_absolute() {
                    return Err(at(format!("bind_roots: `{}` is not an absolute path", root.display())));
                }
            }
        }
        Ok(())
    }
}

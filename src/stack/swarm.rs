//! What `deploy:` says that only Swarm acts on: replicas, rolling update
//! and rollback settings, placement, Swarm's restart policy and service
//! labels. A single engine ignores these (with a warning from the loader)
//! and refuses more than one replica; a `swarm` environment honours them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `deploy:` beyond resources, as Swarm reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwarmDeploy {
    /// `deploy.mode`: `replicated` (the default) or `global` (one task on
    /// every node). A single engine runs one container either way, as
    /// Compose does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `deploy.replicas`; `None` is Swarm's default, one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    /// `deploy.update_config`: how a changed service rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    /// `deploy.rollback_config`: how Swarm goes back when it rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// `deploy.placement`.
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,
    /// `deploy.restart_policy` with Swarm's delay and window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<SwarmRestart>,
    /// `deploy.labels`: labels on the service, not on its containers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `update_config` / `rollback_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Tasks updated at once (0: all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u64>,
    /// Wait between batches.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "super::opt_duration")]
    pub delay: Option<Duration>,
    /// `continue`, `rollback` or `pause` (`continue` or `pause` for a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<String>,
    /// How long a new task is watched for failure after it starts.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "super::opt_duration")]
    pub monitor: Option<Duration>,
    /// The share of tasks that may fail before the failure action applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
    /// `stop-first` (the default) or `start-first`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// `deploy.placement`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Constraints such as `node.role == manager`, `node.labels.zone == a`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Spread preferences, as the descriptor after `spread:` (`node.labels.zone`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<String>,
    /// At most this many replicas on one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u64>,
}

impl Placement {
    /// True when no placement is asked for.
    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty() && self.spread.is_empty() && self.max_replicas_per_node.is_none()
    }
}

/// `deploy.restart_policy` as Swarm applies it to tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwarmRestart {
    /// `none`, `on-failure` or `any`.
    pub condition: String,
    /// Wait between restarts.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "super::opt_duration")]
    pub delay: Option<Duration>,
    /// Give up after this many attempts (within `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    /// How long to wait before deciding a restart worked.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "super::opt_duration")]
    pub window: Option<Duration>,
}

impl SwarmDeploy {
    /// True when nothing Swarm-only is set: no model entry is needed.
    pub fn is_empty(&self) -> bool {
        *self == SwarmDeploy::default()
    }
}

//! The parts of a service's container that Compose passes to the engine
//! beyond the common settings: block-I/O weights and throttles, device
//! requests (GPUs), and the commands run in the container after it starts
//! and before it stops (`post_start`, `pre_stop`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `blkio_config`: block-I/O weight and per-device throttles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioConfig {
    /// Relative weight (10-1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    /// Per-device weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<WeightDevice>,
    /// Read limit, bytes per second, per device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<ThrottleDevice>,
    /// Read limit, operations per second, per device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<ThrottleDevice>,
    /// Write limit, bytes per second, per device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<ThrottleDevice>,
    /// Write limit, operations per second, per device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<ThrottleDevice>,
}

/// One device's block-I/O weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightDevice {
    /// The device (`/dev/sda`).
    pub path: String,
    /// Its weight (10-1000).
    pub weight: u16,
}

/// One device's throttle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleDevice {
    /// The device (`/dev/sda`).
    pub path: String,
    /// Bytes or operations per second.
    pub rate: u64,
}

/// A request for devices the engine's device drivers hand out (GPUs):
/// `gpus:` and `deploy.resources.reservations.devices`, as the engine's
/// `DeviceRequests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    /// The driver (`nvidia`); `None` lets the engine pick by capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// How many devices; -1 is all of them (`count: all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Specific devices by ID (exclusive with `count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// The capabilities asked for (`gpu`, `compute`, `utility`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

impl DeviceRequest {
    /// Whether this asks for GPUs (a `gpu` capability, or any `gpus:` entry).
    pub fn is_gpu(&self) -> bool {
        self.capabilities.iter().any(|c| c == "gpu")
    }
}

/// A command run inside the container: `post_start` after it starts,
/// `pre_stop` before it is stopped, as Compose runs them (an exec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// The command, as a list (a string is split like a shell would).
    pub command: Vec<String>,
    /// The user to run it as; `None` is the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Run it with extended privileges.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// The folder to run it in; `None` is the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Extra variables for the command (`None`: unset).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
}

//! What a service mounts: named and anonymous volumes, bind mounts and
//! tmpfs with their options, and the volumes it takes from another service
//! or container (`volumes_from`).

use serde::{Deserialize, Serialize};

/// One mount of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// What kind of mount.
    pub kind: MountKind,
    /// Named volume key, absolute host path (bind) or nothing (tmpfs, and an
    /// anonymous volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The path inside the container.
    pub target: String,
    /// Mounted read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Bind mounts: SELinux relabelling, `z` (shared) or `Z` (private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// Bind mounts: mount propagation (`rprivate`, `shared`, `rslave`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Volumes: do not copy the image's files into an empty volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
    /// Volumes: mount only this folder of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    /// tmpfs: size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_size: Option<i64>,
    /// tmpfs: permission bits of the mount point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_mode: Option<u32>,
    /// tmpfs: mount flags (`noexec`, `nosuid`, `nodev`, `exec`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs_flags: Vec<String>,
}

impl Mount {
    /// A mount with no options.
    pub fn new(kind: MountKind, source: Option<String>, target: impl Into<String>, read_only: bool) -> Mount {
        Mount {
            kind,
            source,
            target: target.into(),
            read_only,
            selinux: None,
            propagation: None,
            nocopy: false,
            subpath: None,
            tmpfs_size: None,
            tmpfs_mode: None,
            tmpfs_flags: Vec::new(),
        }
    }
}

/// The kinds of mount the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named (or anonymous) volume.
    Volume,
    /// A host path.
    Bind,
    /// A tmpfs.
    Tmpfs,
}

/// A `volumes_from` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumesFrom {
    /// Another service of the stack, or an existing container by name.
    pub source: VolumesFromSource,
    /// Mount the volumes read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Where `volumes_from` takes its volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumesFromSource {
    /// A service of the same stack: implies start order.
    Service(String),
    /// A container outside the stack that must already exist.
    Container(String),
}

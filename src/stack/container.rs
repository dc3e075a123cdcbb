//! Parts of a service's container that are more than a plain value:
//! devices, resource limits, and the files (secrets and configs) put into it.

use serde::{Deserialize, Serialize};

/// A host device given to a container (`/dev/ttyUSB0:/dev/ttyUSB0:rwm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The device on the host.
    pub source: String,
    /// Where it appears in the container.
    pub target: String,
    /// cgroup permissions: some of `r`, `w`, `m`.
    pub permissions: String,
}

/// One resource limit; `soft` and `hard` are equal for the single-number form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// The soft limit.
    pub soft: i64,
    /// The hard limit.
    pub hard: i64,
}

/// A secret or config mounted into a container as a read-only file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMount {
    /// The secret's or config's key in the descriptor.
    pub name: String,
    /// Where the content comes from.
    pub source: FileSource,
    /// The absolute path inside the container.
    pub target: String,
    /// Owner user ID (`uid`), for content written into the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Owner group ID (`gid`), for content written into the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// Permission bits (`mode: 0440`), for content written into the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// Secrets or configs: the two differ in their defaults and, on Swarm, in
/// the store that keeps them; everything else about them is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// `secrets:`
    Secret,
    /// `configs:`
    Config,
}

impl FileKind {
    /// `secret` or `config`, for messages.
    pub fn what(self) -> &'static str {
        match self {
            FileKind::Secret => "secret",
            FileKind::Config => "config",
        }
    }

    /// The descriptor section: `secrets` or `configs`.
    pub fn section(self) -> &'static str {
        match self {
            FileKind::Secret => "secrets",
            FileKind::Config => "configs",
        }
    }

    /// Where a file lands when the reference names no target, or a
    /// relative one: `/run/secrets/<name>` for secrets, `/<name>` for configs.
    pub fn target(self, name: &str) -> String {
        match (self, name.starts_with('/')) {
            (_, true) => name.to_string(),
            (FileKind::Secret, false) => format!("/run/secrets/{name}"),
            (FileKind::Config, false) => format!("/{name}"),
        }
    }
}

/// Where a secret's or config's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileSource {
    /// A host file (absolute path), bind-mounted read-only; it must exist
    /// when the container is created.
    File(String),
    /// The value of a variable (`environment: VAR`), taken at load time and
    /// written into the container before it starts. The value is part of
    /// the configuration hash (a new value recreates the container) but is
    /// never printed.
    Environment {
        /// The variable's name, for messages and `dockmaster config`.
        variable: String,
        /// Its value.
        value: String,
    },
    /// Text written in the descriptor (`content:`, configs only), written
    /// into the container before it starts.
    Content(String),
    /// `external: true`: an object that already exists on the engine under
    /// this name. Only Swarm keeps secrets and configs, so a plain engine
    /// refuses it at plan and deploy (see [`crate::stack::Stack::engine_refusals`]),
    /// while `dockmaster config` shows it as Compose does.
    External {
        /// The engine-side name (`name:`, else the key).
        name: String,
    },
}

impl FileSource {
    /// The text to write into the container, for the sources that are not
    /// a host file.
    pub fn inline_text(&self) -> Option<&str> {
        match self {
            FileSource::File(_) | FileSource::External { .. } => None,
            FileSource::Environment { value, .. } => Some(value),
            FileSource::Content(text) => Some(text),
        }
    }
}

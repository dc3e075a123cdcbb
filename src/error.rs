//! Errors a request can end in, and the exit codes they map to.
//!
//! The exit codes are a contract: Rundeck fails a step on anything but 0 and
//! cron wrappers branch on the code, so each kind of failure keeps its number
//! forever. `docs/exit-codes.md` documents them; change both together.

use thiserror::Error;

/// All services healthy (or the command had nothing to watch).
pub const EXIT_OK: i32 = 0;
/// Deployed, but not healthy: failed, crashed or timed out.
pub const EXIT_UNHEALTHY: i32 = 1;
/// Bad command line or configuration.
pub const EXIT_USAGE: i32 = 2;
/// Descriptor not found or invalid; nothing changed.
pub const EXIT_DESCRIPTOR: i32 = 3;
/// Access denied or policy violation; nothing changed.
pub const EXIT_DENIED: i32 = 4;
/// Engine, directory or registry unreachable.
pub const EXIT_UNREACHABLE: i32 = 5;
/// The target is busy with another deploy.
pub const EXIT_BUSY: i32 = 6;
/// The engine refused an operation halfway, or dockmaster hit a bug.
pub const EXIT_INTERNAL: i32 = 7;

/// Why a request did not produce an outcome. Each variant maps to one exit
/// code, so a caller can tell "denied" from "invalid descriptor" from
/// "engine unreachable" without parsing messages.
#[derive(Debug, Error)]
pub enum Error {
    /// The command line or the configuration file is wrong.
    #[error("{0}")]
    Usage(String),
    /// The descriptor could not be found, read or understood.
    #[error("{0}")]
    Descriptor(String),
    /// The request is not allowed.
    #[error("{0}")]
    Denied(String),
    /// A component dockmaster needs did not answer.
    #[error("{0}")]
    Unreachable(String),
    /// Another deploy holds the target.
    #[error("{0}")]
    Busy(String),
    /// The engine refused an operation halfway (a create, a start, a
    /// rename it would not do).
    #[error("{0}")]
    Engine(String),
    /// dockmaster itself failed: a background task that died, a document
    /// it could not render, a stored record it could not read back. Never
    /// the caller's input and never the engine's answer, so the message
    /// says it is dockmaster's fault and an operator looks at its log.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The exit code for this error, from the documented contract.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Descriptor(_) => EXIT_DESCRIPTOR,
            Error::Denied(_) => EXIT_DENIED,
            Error::Unreachable(_) => EXIT_UNREACHABLE,
            Error::Busy(_) => EXIT_BUSY,
            Error::Engine(_) | Error::Internal(_) => EXIT_INTERNAL,
        }
    }
}

impl Error {
    /// The verdict a request that ended in this error is recorded and
    /// reported with: `denied` for a refusal, `unavailable` when the
    /// directory or the engine did not answer (nothing was decided about
    /// the request), `error` otherwise. The one mapping for the audit
    /// trail, the Rundeck data lines and refusals before the pipeline.
    pub fn verdict(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::Unreachable(_) => "unavailable",
            _ => "error",
        }
    }
}

/// The result type of the pipeline's stages.
pub type Result<T> = std::result::Result<T, Error>;

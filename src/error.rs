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
    /// The descriptor breaks the policy: every violation, kept as a list
    /// so each way in can render it in its own form. Exit code 4, as any
    /// refusal.
    #[error("{}", .0.as_violations())]
    Violations(Findings),
    /// The descriptor cannot be run as written: every problem, kept as a
    /// list. Exit code 3, as any descriptor error.
    #[error("{}", .0.as_problems())]
    Problems(Findings),
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
            Error::Descriptor(_) | Error::Problems(_) => EXIT_DESCRIPTOR,
            Error::Denied(_) | Error::Violations(_) => EXIT_DENIED,
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
            Error::Denied(_) | Error::Violations(_) => "denied",
            Error::Unreachable(_) => "unavailable",
            _ => "error",
        }
    }
}

impl Error {
    /// The findings a listed error carries (violations, problems), one
    /// per entry; empty for the others.
    pub fn items(&self) -> &[String] {
        match self {
            Error::Violations(f) | Error::Problems(f) => &f.items,
            _ => &[],
        }
    }
}

/// What a refusal or a descriptor error found, as a list: the subject
/// (`Shop/web breaks the policy for `prod``) and one entry per finding.
/// Ways in render the list in their own form (lines on a terminal and in
/// the Rundeck log, bullets in chat, an array in JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    /// What the findings are about.
    pub subject: String,
    /// One entry per finding, never empty.
    pub items: Vec<String>,
}

impl Findings {
    /// The text of a policy refusal: every violation on its own line.
    fn as_violations(&self) -> String {
        let n = self.items.len();
        let list: Vec<String> = self.items.iter().map(|v| format!("  - {v}")).collect();
        let s = if n == 1 { "" } else { "s" };
        format!("{} ({n} violation{s}); nothing was changed:\n{}", self.subject, list.join("\n"))
    }

    /// The text of a descriptor error: one problem inline, several on
    /// their own lines.
    fn as_problems(&self) -> String {
        match self.items.as_slice() {
            [one] => format!("{}: {one}; nothing was changed", self.subject),
            many => {
                format!("{} ({} problems; nothing was changed):\n  - {}", self.subject, many.len(), many.join("\n  - "))
            }
        }
    }
}

/// The result type of the pipeline's stages.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(items: &[&str]) -> Findings {
        Findings {
            subject: "Shop/web breaks the policy for `prod`".into(),
            items: items.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn listed_errors_keep_their_items_their_exit_codes_and_their_words() {
        let v = Error::Violations(findings(&["service `app`: privileged", "service `db`: bind mount"]));
        assert_eq!((v.exit_code(), v.verdict()), (EXIT_DENIED, "denied"));
        assert_eq!(v.items(), ["service `app`: privileged", "service `db`: bind mount"]);
        assert_eq!(
            v.to_string(),
            "Shop/web breaks the policy for `prod` (2 violations); nothing was changed:\n  - service `app`: privileged\n  - service `db`: bind mount"
        );
        let one = Error::Problems(Findings { subject: "no engine can run it".into(), items: vec!["a".into()] });
        assert_eq!(
            (one.exit_code(), one.to_string().as_str()),
            (EXIT_DESCRIPTOR, "no engine can run it: a; nothing was changed")
        );
        let two =
            Error::Problems(Findings { subject: "no engine can run it".into(), items: vec!["a".into(), "b".into()] });
        assert_eq!(two.to_string(), "no engine can run it (2 problems; nothing was changed):\n  - a\n  - b");
        assert!(Error::Denied("no".into()).items().is_empty());
        assert_eq!(Error::Internal("bug".into()).exit_code(), EXIT_INTERNAL);
    }
}

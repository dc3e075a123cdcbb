//! The descriptor policy: what a descriptor may ask of a shared host, and
//! which changes a team may make without an approver.
//!
//! A platform team writes named rules; each applies to some descriptors
//! (`APPLICATION/RELEASE` globs, so per team) in some environments, and
//! every matching rule is checked. The guard runs after the loader and
//! before the engine is touched: a violating descriptor changes nothing,
//! and every violation is listed at once, naming the service, the key and
//! the rule, so one round of fixes is enough.

pub mod classify;
mod rules;

pub use classify::{classify, classify_against, top_level_hashes, ChangeClass, Classification};
pub use rules::{check, foreign_container_names, foreign_namespaces, NAMESPACE_RULE};

pub use crate::config::policy::{ApprovalConfig, Limits, PolicyConfig, PolicyRule, PRIVILEGES};

use crate::error::Error;

impl PolicyConfig {
    /// Whether structural changes need an approval in `environment`.
    pub fn approval_needed(&self, environment: &str) -> bool {
        match &self.approval {
            None => true,
            Some(a) => a.environments.iter().any(|e| crate::access::glob(e, environment)),
        }
    }
}

/// One broken rule, for one service and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The service (or `volumes` for a top-level volume no service mounts).
    pub service: String,
    /// The descriptor key at fault (`volumes`, `image`, `cap_add`…).
    pub key: String,
    /// The rule's name.
    pub rule: String,
    /// What is wrong, and what would be allowed.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service `{}`, `{}`: {} (policy rule `{}`)", self.service, self.key, self.message, self.rule)
    }
}

/// The error for a descriptor with violations: all of them, one per line.
pub fn violations_error(descriptor: &str, environment: &str, violations: &[Violation]) -> Error {
    Error::Violations(crate::error::Findings {
        subject: format!("{descriptor} breaks the policy for `{environment}`"),
        items: violations.iter().map(ToString::to_string).collect(),
    })
}

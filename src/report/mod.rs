//! Reports: one renderer per audience, all from the one `Outcome`.
//!
//! Renderers are pure functions from an `Outcome` to text, so each
//! audience's format is tested without deploying anything. The terminal
//! table is [`text`]; the machine-readable form is [`json`].

pub mod chat;
pub mod json;
pub mod text;

use crate::plan::{ChangeKind, Plan};

/// The plan's changes grouped the way every report shows them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Changes {
    /// Services that got a new container.
    pub created: Vec<String>,
    /// Services whose container was replaced, with the reasons.
    pub recreated: Vec<Recreated>,
    /// Stopped containers that were started again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub started: Vec<String>,
    /// Services left as they were.
    pub unchanged: Vec<String>,
    /// Services whose container was removed.
    pub removed: Vec<String>,
}

/// One replaced service and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recreated {
    /// The service.
    pub service: String,
    /// Why it was replaced (field names, never values).
    pub reasons: Vec<String>,
}

impl Changes {
    /// Groups a plan's service changes.
    pub fn of(plan: &Plan) -> Changes {
        let mut changes = Changes::default();
        for c in &plan.services {
            match c.action {
                ChangeKind::Create => changes.created.push(c.service.clone()),
                ChangeKind::Recreate => {
                    changes.recreated.push(Recreated { service: c.service.clone(), reasons: c.reasons.clone() })
                }
                ChangeKind::Start => changes.started.push(c.service.clone()),
                ChangeKind::Keep => changes.unchanged.push(c.service.clone()),
                ChangeKind::Remove => changes.removed.push(c.service.clone()),
            }
        }
        changes
    }

    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.recreated.is_empty() && self.started.is_empty() && self.removed.is_empty()
    }
}

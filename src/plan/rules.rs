//! What the planner must know about each engine, and nothing more: the
//! one diff ([`super::diff`]) reads these rules instead of branching on
//! the kind of engine.

use super::{config_hash, ConfigHash};
use crate::stack::{Service, Stack};

/// What the planner must know about an engine: how it labels and names
/// what it runs, and whether dockmaster runs the containers itself. The
/// diff is the same for every engine; these are its only differences.
#[derive(Clone, Copy)]
pub struct Rules {
    /// The configuration hash the engine labels with.
    pub hash: fn(&Stack, &str, &Service) -> ConfigHash,
    /// The engine-side name of a service's container (or Swarm service).
    pub name: fn(&Stack, &str) -> String,
    /// dockmaster runs the containers itself (one engine): images are
    /// compared by ID, a stopped container is started, containers bound
    /// to a replaced one are replaced with it, services start by
    /// dependency level and missing volumes are created. Swarm compares
    /// the image by reference (it is in the hash), reconciles replicas and
    /// starts services together.
    pub containers: bool,
    /// Warnings about what this engine does not do as written.
    pub warnings: fn(&Stack) -> Vec<String>,
}

impl Rules {
    /// One Docker engine, containers run by dockmaster.
    pub const ONE_ENGINE: Rules = Rules {
        hash: config_hash,
        name: |stack, service| stack.container_name(service),
        containers: true,
        warnings: host_ports,
    };
}

/// A service on the host network publishes nothing: say so.
fn host_ports(stack: &Stack) -> Vec<String> {
    let host =
        stack.services.iter().filter(|(_, svc)| svc.network_mode.as_deref() == Some("host") && !svc.ports.is_empty());
    host.map(|(name, _)| {
        format!("service `{name}` uses host networking: its published ports are ignored by the engine")
    })
    .collect()
}

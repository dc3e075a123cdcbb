//! Checks across the whole stack, after every part has been read: a service
//! may only name networks, volumes and services that exist, and services
//! must not wait for each other in a circle. Compose refuses the same files;
//! refusing them here means nothing is half-deployed.

use super::fault::{Parsed, Place};
use crate::stack::{MountKind, Stack, VolumesFromSource, DEFAULT_NETWORK};

/// Checks the references of every service, then the start order. A
/// `partial` stack (one part of a whole: a registry fragment) keeps a
/// reference to a service, volume or network it does not define, for the
/// caller to report, instead of refusing it.
pub(crate) fn check(stack: &mut Stack, partial: bool) -> Parsed<()> {
    let services = Place::root().key("services");
    let mut warnings = Vec::new();
    for (name, svc) in &stack.services {
        let at = services.key(name);
        if svc.network_mode.is_some() && !svc.networks.is_empty() {
            return Err(
                at.fault_at_key("network_mode", "`network_mode` and `networks` cannot be combined; keep one of them")
            );
        }
        for network in svc.networks.keys() {
            if network != DEFAULT_NETWORK && !stack.networks.contains_key(network) && !partial {
                return Err(at.key("networks").fault_at_key(
                    network,
                    format!("network {network:?} is not declared; add it under the top-level `networks:`"),
                ));
            }
        }
        for (key, mode) in [("network_mode", &svc.network_mode), ("pid", &svc.pid), ("ipc", &svc.ipc)] {
            if let Some(other) = mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
                if !stack.services.contains_key(other) && !partial {
                    return Err(at.key(key).fault(unknown_service(other)));
                }
            }
        }
        for (i, mount) in svc.volumes.iter().enumerate() {
            if let (MountKind::Volume, Some(volume)) = (mount.kind, &mount.source) {
                if !stack.volumes.contains_key(volume) && !partial {
                    return Err(at.key("volumes").index(i).fault(format!(
                        "volume {volume:?} is not declared; add it under the top-level `volumes:` \
                         (or write ./{volume} for a folder next to the descriptor)"
                    )));
                }
            }
        }
        for (dependency, how) in &svc.depends_on {
            if !stack.services.contains_key(dependency) && !partial {
                if how.required {
                    return Err(at.key("depends_on").fault_at_key(dependency, unknown_service(dependency)));
                }
                warnings.push(format!(
                    "{}: optional dependency {dependency:?} is not a service of this stack; ignored",
                    at.describe()
                ));
            }
        }
        for (i, link) in svc.links.iter().enumerate() {
            let target = link.split(':').next().unwrap_or(link);
            if !stack.services.contains_key(target) && !partial {
                return Err(at.key("links").index(i).fault(unknown_service(target)));
            }
        }
        for (i, from) in svc.volumes_from.iter().enumerate() {
            if let VolumesFromSource::Service(other) = &from.source {
                if !stack.services.contains_key(other) && !partial {
                    return Err(at.key("volumes_from").index(i).fault(format!(
                        "{} (write container:{other} for a container outside the stack)",
                        unknown_service(other)
                    )));
                }
            }
        }
    }
    stack.warnings.extend(warnings);
    if let Err(members) = stack.start_levels() {
        let cycle = find_cycle(stack, &members);
        let first = cycle.first().cloned().unwrap_or_default();
        return Err(services.key(&first).fault(format!(
            "services wait for each other in a circle: {} (through depends_on, links, volumes_from or \
             network_mode/pid/ipc: service:); remove one of these dependencies",
            cycle.join(" → ")
        )));
    }
    Ok(())
}

fn unknown_service(name: &str) -> String {
    format!("service {name:?} is not defined in this descriptor")
}

/// One cycle among `members`, the services [`Stack::start_levels`] could not
/// order, written as a closed path (`a → b → a`). Every member waits for at
/// least one other member, so following such waits must come back round.
fn find_cycle(stack: &Stack, members: &[String]) -> Vec<String> {
    let Some(start) = members.first() else {
        return Vec::new();
    };
    let mut path = vec![start.clone()];
    for _ in 0..=members.len() {
        let Some(current) = path.last() else {
            break;
        };
        let next = stack.dependencies(current).into_keys().find(|d| members.contains(d));
        let Some(next) = next else {
            break;
        };
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let mut cycle = path.split_off(pos);
            cycle.push(next);
            return cycle;
        }
        path.push(next);
    }
    // Not expected; name the members rather than nothing.
    members.to_vec()
}

//! Ownership: dockmaster changes only engine objects its request owns.
//!
//! Every container, network and volume dockmaster creates carries the
//! owner labels of [`crate::target::Owner`]. Before a request reads or
//! changes a target, every object it would touch is looked at: the
//! target's own (by its label) and every name the descriptor would create
//! (container names, networks, volumes). An object owned by another scope
//! or environment is refused, naming its owner (exit 4). An object with no
//! owner labels (made by an older dockmaster, by `docker compose` or by
//! hand) is refused too, unless an administrator adopts it (`--adopt`).

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::ListServicesOptionsBuilder;

use crate::engine::spec::LABEL_TARGET;
use crate::engine::DockerEngine;
use crate::error::{Error, Result};
use crate::stack::Stack;
use crate::target::Owner;

/// One engine object a request would touch, with its labels.
#[derive(Debug, Clone)]
struct Object {
    kind: &'static str,
    name: String,
    /// The engine ID (containers only: networks and volumes are adopted
    /// as they are).
    id: Option<String>,
    labels: HashMap<String, String>,
}

/// What an adopted container's name gets: it is stopped and kept under
/// `<name>_dm_adopted_<unix time>` (no longer the target's), so the deploy
/// creates its own in its place and nothing of the old one is lost.
pub const ADOPTED_MARK: &str = "_dm_adopted_";

/// What the check found that the request may only touch by adopting it.
#[derive(Debug, Default)]
pub struct Findings {
    /// Objects owned by another scope or environment: never touched.
    pub foreign: Vec<String>,
    /// Objects without owner labels: touched only with `--adopt`.
    pub unowned: Vec<String>,
}

/// Looks at every object the request would touch and refuses foreign ones
/// (exit 4), and unowned ones unless `adopt`. `files_share`: compose files
/// may change each other's objects (no access rules are configured).
/// Returns the unowned objects adopted, for the progress and the record.
pub async fn check(
    engine: &DockerEngine,
    stack: &Stack,
    owner: &Owner,
    files_share: bool,
    adopt: bool,
) -> Result<Vec<String>> {
    let mut objects = containers(engine, stack).await?;
    objects.extend(networks_and_volumes(engine, stack).await?);
    decide(engine, stack, owner, files_share, adopt, objects).await
}

/// [`check`] for a Swarm environment: the stack's services (by label and
/// by the names it would create), networks and volumes. Adopted services
/// are updated in place, which gives them the owner labels.
pub async fn check_swarm(
    engine: &DockerEngine,
    stack: &Stack,
    owner: &Owner,
    files_share: bool,
    adopt: bool,
) -> Result<Vec<String>> {
    let mut objects = services(engine, stack).await?;
    objects.extend(networks_and_volumes(engine, stack).await?);
    decide(engine, stack, owner, files_share, adopt, objects).await
}

/// Refuses foreign objects, and unowned ones unless adopting; sets adopted
/// containers aside.
async fn decide(
    engine: &DockerEngine,
    stack: &Stack,
    owner: &Owner,
    files_share: bool,
    adopt: bool,
    objects: Vec<Object>,
) -> Result<Vec<String>> {
    let findings = judge(&objects, owner, files_share);
    if !findings.foreign.is_empty() {
        return Err(Error::Denied(format!(
            "target `{}` ({}) would touch engine objects that belong to someone else; dockmaster never changes \
             or removes them, and nothing was changed:\n  - {}\nDeploy under your own application/release, or \
             rename what collides (container_name, a volume's or network's `name:`)",
            stack.name,
            owner.describe(),
            findings.foreign.join("\n  - ")
        )));
    }
    if findings.unowned.is_empty() {
        return Ok(Vec::new());
    }
    if !adopt {
        return Err(Error::Denied(format!(
            "target `{}` would touch engine objects that dockmaster did not create (or created before it \
             labelled owners), and nothing was changed:\n  - {}\nAn administrator who has checked they belong \
             to {} can adopt them with --adopt (it needs the `admin` right when access rules are on)",
            stack.name,
            findings.unowned.join("\n  - "),
            owner.describe()
        )));
    }
    // Adopting: containers are set aside (stopped, renamed), networks and
    // volumes are used as they are, so no data goes.
    let mut notes = findings.unowned;
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    for object in objects.iter().filter(|o| o.kind == "container" && Owner::from_labels(&o.labels).is_none()) {
        let Some(id) = &object.id else { continue };
        let kept = format!("{}{ADOPTED_MARK}{since}", object.name);
        engine.stop(id, &format!("container {}", object.name)).await?;
        engine.rename(id, &kept).await?;
        notes.push(format!(
            "container `{}` stopped and kept as `{kept}` (remove it with `docker rm {kept}` once the new one serves)",
            object.name
        ));
    }
    Ok(notes)
}

/// Sorts objects into foreign and unowned, as seen by `owner`.
fn judge(objects: &[Object], owner: &Owner, files_share: bool) -> Findings {
    let mut findings = Findings::default();
    for object in objects {
        match Owner::from_labels(&object.labels) {
            Some(theirs) if owner.may_change(&theirs, files_share) => {}
            Some(theirs) => {
                findings.foreign.push(format!("{} `{}` belongs to {}", object.kind, object.name, theirs.describe()))
            }
            None => {
                let made_by = match object.labels.get(LABEL_TARGET) {
                    Some(t) => format!("made by an earlier dockmaster for target `{t}`"),
                    None => match object.labels.get("com.docker.compose.project") {
                        Some(p) => format!("made by docker compose for project `{p}`"),
                        None => "not made by dockmaster".to_string(),
                    },
                };
                findings.unowned.push(format!("{} `{}` ({made_by})", object.kind, object.name))
            }
        }
    }
    findings
}

/// An object's ID (containers) and labels, as listed.
type Found = (Option<String>, HashMap<String, String>);

/// The engine error of a listing, as an unreachable engine.
fn listing(engine: &DockerEngine, what: &str, e: bollard::errors::Error) -> Error {
    Error::Unreachable(format!("cannot {what} on the engine at {}: {e}", engine.host))
}

/// The target's containers (by label) and every container the stack would
/// create by name.
async fn containers(engine: &DockerEngine, stack: &Stack) -> Result<Vec<Object>> {
    let names: Vec<String> = stack.services.keys().map(|s| stack.container_name(s)).collect();
    let found = engine.containers_where(Some((LABEL_TARGET, &stack.name)), &names).await?;
    let mut objects: BTreeMap<String, Found> = BTreeMap::new();
    for c in found {
        let name = crate::engine::Survey::name_of(&c);
        // Containers kept aside by an adoption are no longer the target's.
        if !name.contains(ADOPTED_MARK) {
            objects.insert(name, (c.id, c.labels.unwrap_or_default()));
        }
    }
    Ok(objects.into_iter().map(|(name, (id, labels))| Object { kind: "container", name, id, labels }).collect())
}

/// The target's Swarm services (by label) and every service the stack
/// would create by name (`<target>_<service>`).
async fn services(engine: &DockerEngine, stack: &Stack) -> Result<Vec<Object>> {
    let names: Vec<String> = stack.services.keys().map(|s| crate::swarm::spec::service_name(stack, s)).collect();
    let options = ListServicesOptionsBuilder::default().build();
    let list = engine.docker().list_services(Some(options)).await.map_err(|e| listing(engine, "list services", e))?;
    let mut found = Vec::new();
    for service in list {
        let spec = service.spec.unwrap_or_default();
        let name = spec.name.unwrap_or_default();
        let labels = spec.labels.unwrap_or_default();
        if names.contains(&name) || labels.get(LABEL_TARGET) == Some(&stack.name) {
            found.push(Object { kind: "service", name, id: None, labels });
        }
    }
    Ok(found)
}

/// The networks and volumes the stack would create, and the target's.
async fn networks_and_volumes(engine: &DockerEngine, stack: &Stack) -> Result<Vec<Object>> {
    let mut found = Vec::new();
    let networks: Vec<String> = crate::plan::wanted_networks(stack)
        .iter()
        .filter(|key| !stack.networks.get(*key).is_some_and(|n| n.external))
        .map(|key| stack.network_name(key))
        .collect();
    for n in engine.all_networks().await? {
        let name = n.name.unwrap_or_default();
        let labels = n.labels.unwrap_or_default();
        if networks.contains(&name) || labels.get(LABEL_TARGET) == Some(&stack.name) {
            found.push(Object { kind: "network", name, id: None, labels });
        }
    }
    let volumes = crate::plan::wanted_volumes(stack);
    for v in engine.all_volumes().await? {
        if volumes.contains(&v.name) || v.labels.get(LABEL_TARGET) == Some(&stack.name) {
            found.push(Object { kind: "volume", name: v.name, id: None, labels: v.labels });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::DescriptorRef;

    fn object(kind: &'static str, name: &str, labels: &[(&str, &str)]) -> Object {
        Object {
            kind,
            name: name.into(),
            id: None,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn foreign_and_unowned_objects_are_told_apart_and_named() {
        let shop = Owner::of(
            &DescriptorRef::Named { application: "Shop".into(), release: "Staging".into(), version: None },
            "default",
        );
        let tlo: Vec<(String, String)> = Owner::of(
            &DescriptorRef::Named { application: "TLO".into(), release: "Milestone".into(), version: None },
            "default",
        )
        .labels()
        .into_iter()
        .collect();
        let tlo: Vec<(&str, &str)> = tlo.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let own: Vec<(String, String)> = shop.labels().into_iter().collect();
        let own: Vec<(&str, &str)> = own.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let objects = [
            object("container", "mine", &own),
            object("container", "theirs", &tlo),
            object("volume", "old", &[(LABEL_TARGET, "shop-staging")]),
            object("network", "compose_default", &[("com.docker.compose.project", "compose")]),
        ];
        let found = judge(&objects, &shop, true);
        assert_eq!(found.foreign, vec!["container `theirs` belongs to `TLO/Milestone` in `default`".to_string()]);
        assert_eq!(found.unowned.len(), 2, "{:?}", found.unowned);
        assert!(found.unowned[0].contains("earlier dockmaster"), "{:?}", found.unowned);
        assert!(found.unowned[1].contains("docker compose"), "{:?}", found.unowned);
    }
}

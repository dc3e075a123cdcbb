//! The planner: desired `Stack` × observed engine state → `Plan`.
//!
//! A pure function with no I/O, so every "why was this recreated?" question
//! is answered by a unit test rather than by a deploy. `dockmaster plan`
//! prints the plan; `dockmaster deploy` executes it.
//!
//! A container is recreated only when its configuration hash or its image
//! changed, as Compose does. Besides the whole hash, each container carries
//! a short hash per top-level field of its service, so the plan can say
//! *which* part changed ("environment changed") without ever storing or
//! printing a value, secrets included.

use std::collections::BTreeMap;

use crate::stack::{Service, Stack};
use serde::Serialize;

mod hash;
mod rules;
use hash::changed_fields;
pub use hash::{config_hash, ConfigHash};
pub use rules::Rules;

/// A container of the target as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    /// Engine container ID.
    pub id: String,
    /// Container name, without the leading `/`.
    pub name: String,
    /// The service it was created for (label `dockmaster.service`).
    pub service: String,
    /// The whole configuration hash it was created with.
    pub config_hash: String,
    /// Per-field hashes it was created with (may be empty for containers
    /// created by older versions).
    pub field_hashes: BTreeMap<String, String>,
    /// The image ID it runs.
    pub image_id: String,
    /// Whether it is running now.
    pub running: bool,
    /// Its exit code if it has exited.
    pub exit_code: Option<i64>,
    /// The descriptor version it was deployed from (label
    /// `dockmaster.descriptor-version`), when known.
    pub descriptor_version: Option<String>,
    /// The digest of the descriptor it was deployed from (label
    /// `dockmaster.descriptor-digest`), when known: what `status` reports.
    pub descriptor_digest: Option<String>,
    /// The hashes of the top-level declarations (networks, volumes,
    /// secrets, configs) it was deployed with (label
    /// `dockmaster.top-level`), so a change to them is seen as structural;
    /// `None` for containers of earlier versions.
    pub top_level: Option<BTreeMap<String, String>>,
}

/// What the planner knows about the desired images: the image ID each
/// service's image reference resolves to now, when it exists locally.
pub type ImageIds = BTreeMap<String, Option<String>>;

/// What to do with one service's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// No container yet: create and start one.
    Create,
    /// The configuration or image changed: replace the container.
    Recreate,
    /// Unchanged but not running: start it again.
    Start,
    /// Unchanged and in the state it should be in.
    Keep,
    /// Its service is no longer in the descriptor: remove it.
    Remove,
}

impl ChangeKind {
    /// The action as plans print it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Recreate => "recreate",
            ChangeKind::Start => "start",
            ChangeKind::Keep => "keep",
            ChangeKind::Remove => "remove",
        }
    }
}

/// How a container is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The new container starts while the old one still runs; the old one
    /// stops once the new one is healthy. No downtime.
    StartFirst,
    /// The old container stops first, because the two cannot run side by
    /// side (a fixed host port, a fixed container name, host networking).
    StopFirst,
}

/// The planned change for one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceChange {
    /// The service name.
    pub service: String,
    /// The container name it has (or will have).
    pub container: String,
    /// What will be done.
    pub action: ChangeKind,
    /// Why, for anything but `keep`: each names a field, never a value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The dependency level: level 0 starts first, level n waits for its
    /// dependencies in lower levels.
    pub level: usize,
    /// How the container is replaced, for `recreate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

/// Everything a deploy will change, in the order it will change it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The target (project) the plan is for.
    pub target: String,
    /// One entry per service, in start order; removals last.
    pub services: Vec<ServiceChange>,
    /// Networks that will be created.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Named volumes that will be created.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Things a person should know before applying (from the loader too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Plan {
    /// True when applying the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        self.networks.is_empty()
            && self.volumes.is_empty()
            && self.services.iter().all(|c| c.action == ChangeKind::Keep)
    }

    /// The services planned for one kind of change.
    pub fn services_with(&self, action: ChangeKind) -> impl Iterator<Item = &ServiceChange> {
        self.services.iter().filter(move |c| c.action == action)
    }
}

/// What one look at the engine found for a target: with the stack, the
/// planner's whole input. Each engine fills in what it has (Swarm keeps
/// no images, volumes or leftovers of its own).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The target's containers (or Swarm services), in service order.
    pub containers: Vec<ObservedContainer>,
    /// The image ID each service's image resolves to on the engine now.
    pub images: ImageIds,
    /// Engine-side names of the networks the stack needs that exist.
    pub networks: Vec<String>,
    /// Engine-side names of the volumes the stack needs that exist.
    pub volumes: Vec<String>,
    /// Containers an earlier deploy kept aside and never cleared (id,
    /// name); one engine only.
    pub leftovers: Vec<(String, String)>,
}

/// [`diff`] for one engine, from its parts (the unit tests' form).
pub fn plan(
    stack: &Stack,
    observed: &[ObservedContainer],
    images: &ImageIds,
    existing_networks: &[String],
    existing_volumes: &[String],
) -> Plan {
    let observed = Observed {
        containers: observed.to_vec(),
        images: images.clone(),
        networks: existing_networks.to_vec(),
        volumes: existing_volumes.to_vec(),
        leftovers: vec![],
    };
    diff(stack, &observed, &Rules::ONE_ENGINE)
}

/// Computes the plan for bringing what was observed to the stack: the one
/// pure diff every engine uses, with its [`Rules`].
///
/// Services come out in dependency order; a stack with a dependency cycle
/// is refused by the loader before it gets here, so a cycle found here
/// only falls back to name order.
pub fn diff(stack: &Stack, observed: &Observed, rules: &Rules) -> Plan {
    let all = || vec![stack.services.keys().cloned().collect::<Vec<_>>()];
    let levels = if rules.containers { stack.start_levels().unwrap_or_else(|_| all()) } else { all() };
    let mut services = Vec::new();
    for (level, names) in levels.iter().enumerate() {
        for name in names {
            let Some(svc) = stack.services.get(name) else { continue };
            let container = (rules.name)(stack, name);
            let current = observed.containers.iter().find(|c| &c.service == name);
            let hash = (rules.hash)(stack, name, svc);
            let wanted_image = observed.images.get(name).cloned().flatten();
            let (action, reasons) = match current {
                None => (ChangeKind::Create, vec!["new service".to_string()]),
                Some(c) => {
                    let mut reasons = changed_fields(&hash, c);
                    match &wanted_image {
                        _ if !rules.containers => {}
                        Some(id) if *id != c.image_id => reasons.push(format!(
                            "image `{}` now resolves to {} (container runs {})",
                            svc.image,
                            short_id(id),
                            short_id(&c.image_id)
                        )),
                        None if svc.build.is_some() => reasons.push(format!("image `{}` will be built", svc.image)),
                        None => reasons.push(format!("image `{}` is not present and must be pulled", svc.image)),
                        _ => {}
                    }
                    if c.name != container {
                        reasons.push(format!("container name changes from `{}` to `{container}`", c.name));
                    }
                    if !reasons.is_empty() {
                        (ChangeKind::Recreate, reasons)
                    } else if !rules.containers || c.running || (stack.is_one_shot(name) && c.exit_code == Some(0)) {
                        (ChangeKind::Keep, vec![])
                    } else {
                        let why = match c.exit_code {
                            Some(code) => format!("container is stopped (exit code {code})"),
                            None => "container is not running".to_string(),
                        };
                        (ChangeKind::Start, vec![why])
                    }
                }
            };
            let (action, reasons) =
                if rules.containers { propagate(stack, name, action, reasons, &services) } else { (action, reasons) };
            let strategy = (rules.containers && action == ChangeKind::Recreate).then(|| strategy(svc));
            services.push(ServiceChange { service: name.clone(), container, action, reasons, level, strategy });
        }
    }
    for c in &observed.containers {
        if !stack.services.contains_key(&c.service) {
            services.push(ServiceChange {
                service: c.service.clone(),
                container: c.name.clone(),
                action: ChangeKind::Remove,
                reasons: vec!["service is no longer in the descriptor".to_string()],
                level: if rules.containers { levels.len() } else { 0 },
                strategy: None,
            });
        }
    }
    let networks = wanted_networks(stack).into_iter().filter(|n| !observed.networks.contains(n)).collect();
    let volumes = match rules.containers {
        true => wanted_volumes(stack).into_iter().filter(|v| !observed.volumes.contains(v)).collect(),
        false => vec![],
    };
    let mut warnings = stack.warnings.clone();
    warnings.extend((rules.warnings)(stack));
    Plan { target: stack.name.clone(), services, networks, volumes, warnings }
}

/// A service whose container is bound to another service's container must
/// be recreated with it: `network_mode: service:x` joins x's network
/// namespace and `volumes_from` takes x's volumes, both by container, and
/// `depends_on` with `restart: true` asks for it explicitly.
fn propagate(
    stack: &Stack,
    name: &str,
    action: ChangeKind,
    mut reasons: Vec<String>,
    planned: &[ServiceChange],
) -> (ChangeKind, Vec<String>) {
    if !matches!(action, ChangeKind::Keep | ChangeKind::Start) {
        return (action, reasons);
    }
    let Some(svc) = stack.services.get(name) else { return (action, reasons) };
    let replaced = |other: &str| {
        planned.iter().any(|c| c.service == other && matches!(c.action, ChangeKind::Create | ChangeKind::Recreate))
    };
    let mut why = Vec::new();
    if let Some(other) = svc.network_mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
        if replaced(other) {
            why.push(format!("`{other}` is replaced and this service shares its network (network_mode)"));
        }
    }
    for from in &svc.volumes_from {
        if let crate::stack::VolumesFromSource::Service(other) = &from.source {
            if replaced(other) {
                why.push(format!("`{other}` is replaced and this service uses its volumes (volumes_from)"));
            }
        }
    }
    for (other, dep) in &svc.depends_on {
        if dep.restart && replaced(other) {
            why.push(format!("`{other}` is replaced and depends_on sets restart: true"));
        }
    }
    if why.is_empty() {
        return (action, reasons);
    }
    reasons.retain(|r| !r.starts_with("container is"));
    reasons.extend(why);
    (ChangeKind::Recreate, reasons)
}

/// Start-first unless the old and new container cannot run side by side.
fn strategy(svc: &Service) -> Strategy {
    let fixed_port = svc.ports.iter().any(|p| p.published.is_some());
    let host_network = svc.network_mode.as_deref() == Some("host");
    if fixed_port || svc.container_name.is_some() || host_network {
        Strategy::StopFirst
    } else {
        Strategy::StartFirst
    }
}

/// Engine-side names of the networks the stack creates (not external ones).
pub fn wanted_networks(stack: &Stack) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for svc in stack.services.values() {
        if svc.network_mode.is_some() {
            continue;
        }
        if svc.networks.is_empty() {
            keys.push(crate::stack::DEFAULT_NETWORK.to_string());
        }
        keys.extend(svc.networks.keys().cloned());
    }
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !stack.networks.get(k).is_some_and(|n| n.external))
        .map(|k| stack.network_name(&k))
        .collect()
}

/// `--force-recreate`: every service the descriptor keeps or would only
/// start is recreated, as `docker compose up --force-recreate` does.
/// Services already being created or recreated keep their own reasons.
pub fn force_recreate(plan: &mut Plan, stack: &Stack) {
    for change in &mut plan.services {
        if matches!(change.action, ChangeKind::Keep | ChangeKind::Start) {
            change.action = ChangeKind::Recreate;
            change.reasons = vec!["--force-recreate".to_string()];
            change.strategy = stack.services.get(&change.service).map(strategy);
        }
    }
}

/// Engine-side names of the named volumes the stack creates (not external).
pub fn wanted_volumes(stack: &Stack) -> Vec<String> {
    stack.volumes.iter().filter(|(_, v)| !v.external).map(|(k, _)| stack.volume_name(k)).collect()
}

/// The fields whose hash differs, as reasons a person can read.
/// `sha256:0123456789ab…` → `0123456789ab`, for messages.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{Condition, Dependency, Format, Volume};

    fn stack() -> Stack {
        let mut web = Service { image: "app:1".into(), ..Default::default() };
        web.depends_on
            .insert("db".into(), Dependency { condition: Condition::ServiceHealthy, required: true, restart: false });
        web.environment.insert("MODE".into(), Some("prod".into()));
        let db = Service { image: "db:1".into(), ..Default::default() };
        let mut volumes = BTreeMap::new();
        volumes.insert("data".to_string(), Volume::default());
        Stack {
            name: "shop".into(),
            format: Format::Spec,
            services: [("web".to_string(), web), ("db".to_string(), db)].into_iter().collect(),
            networks: BTreeMap::new(),
            volumes,
            warnings: vec![],
            inputs: Default::default(),
        }
    }

    fn images() -> ImageIds {
        [("web".to_string(), Some("sha256:aaa".to_string())), ("db".to_string(), Some("sha256:bbb".to_string()))]
            .into_iter()
            .collect()
    }

    fn observed_as_deployed(stack: &Stack) -> Vec<ObservedContainer> {
        stack
            .services
            .iter()
            .map(|(name, svc)| {
                let hash = config_hash(stack, name, svc);
                ObservedContainer {
                    id: format!("id-{name}"),
                    name: stack.container_name(name),
                    service: name.clone(),
                    config_hash: hash.whole,
                    field_hashes: hash.fields,
                    image_id: images().get(name).cloned().flatten().unwrap_or_default(),
                    running: true,
                    exit_code: None,
                    descriptor_version: None,
                    descriptor_digest: None,
                    top_level: Some(crate::policy::top_level_hashes(stack)),
                }
            })
            .collect()
    }

    #[test]
    fn a_fresh_target_creates_everything_in_dependency_order() {
        let s = stack();
        let p = plan(&s, &[], &images(), &[], &[]);
        let order: Vec<(&str, ChangeKind, usize)> =
            p.services.iter().map(|c| (c.service.as_str(), c.action, c.level)).collect();
        assert_eq!(order, vec![("db", ChangeKind::Create, 0), ("web", ChangeKind::Create, 1)]);
        assert_eq!(p.networks, vec!["shop_default"]);
        assert_eq!(p.volumes, vec!["shop_data"]);
        assert!(!p.is_noop());
    }

    #[test]
    fn the_same_stack_on_the_same_images_is_a_noop() {
        let s = stack();
        let p = plan(&s, &observed_as_deployed(&s), &images(), &["shop_default".into()], &["shop_data".into()]);
        assert!(p.is_noop(), "{p:?}");
    }

    #[test]
    fn an_environment_change_recreates_only_that_service_and_names_the_field_not_the_value() {
        let s = stack();
        let observed = observed_as_deployed(&s);
        let mut changed = s.clone();
        changed.services.get_mut("web").unwrap().environment.insert("MODE".into(), Some("s3cr3t".into()));
        let p = plan(&changed, &observed, &images(), &["shop_default".into()], &["shop_data".into()]);
        let web = p.services.iter().find(|c| c.service == "web").unwrap();
        assert_eq!(web.action, ChangeKind::Recreate);
        assert_eq!(web.reasons, vec!["`environment` changed"]);
        assert!(!format!("{p:?}").contains("s3cr3t"));
        assert_eq!(p.services.iter().find(|c| c.service == "db").unwrap().action, ChangeKind::Keep);
    }

    #[test]
    fn services_bound_to_a_replaced_container_are_replaced_too_and_strategies_fit() {
        let mut s = stack();
        let mut sidecar = Service { image: "side:1".into(), ..Default::default() };
        sidecar.network_mode = Some("service:db".into());
        s.services.insert("sidecar".into(), sidecar);
        s.services.get_mut("web").unwrap().ports.push(crate::stack::Port {
            target: 80,
            published: Some(8080),
            host_ip: None,
            protocol: "tcp".into(),
        });
        let mut imgs = images();
        imgs.insert("sidecar".into(), Some("sha256:side".into()));
        let observed = {
            let mut o = observed_as_deployed(&s);
            for c in &mut o {
                c.image_id = imgs[&c.service].clone().unwrap();
            }
            o
        };
        let mut changed = s.clone();
        changed.services.get_mut("db").unwrap().environment.insert("X".into(), Some("1".into()));
        changed.services.get_mut("web").unwrap().environment.insert("X".into(), Some("1".into()));
        let p = plan(&changed, &observed, &imgs, &["shop_default".into()], &["shop_data".into()]);
        let get = |n: &str| p.services.iter().find(|c| c.service == n).unwrap();
        assert_eq!(get("sidecar").action, ChangeKind::Recreate);
        assert!(get("sidecar").reasons[0].contains("network_mode"), "{:?}", get("sidecar").reasons);
        assert_eq!(get("db").strategy, Some(Strategy::StartFirst));
        assert_eq!(get("web").strategy, Some(Strategy::StopFirst), "a fixed host port cannot be shared");
    }

    #[test]
    fn how_the_image_is_obtained_does_not_recreate_the_container() {
        let s = stack();
        let mut changed = s.clone();
        changed.services.get_mut("web").unwrap().pull_policy = Some(crate::stack::PullPolicy::Always);
        let p = plan(&changed, &observed_as_deployed(&s), &images(), &["shop_default".into()], &["shop_data".into()]);
        assert!(p.is_noop(), "{p:?}");
    }

    #[test]
    fn a_new_image_id_behind_the_same_tag_recreates() {
        let s = stack();
        let mut imgs = images();
        imgs.insert("db".into(), Some("sha256:ccccccccccccccccc".into()));
        let p = plan(&s, &observed_as_deployed(&s), &imgs, &["shop_default".into()], &["shop_data".into()]);
        let db = p.services.iter().find(|c| c.service == "db").unwrap();
        assert_eq!(db.action, ChangeKind::Recreate);
        assert!(db.reasons[0].contains("cccccccccccc"), "{:?}", db.reasons);
    }

    #[test]
    fn stopped_containers_start_completed_one_shots_stay_and_orphans_go() {
        let mut s = stack();
        s.services.get_mut("db").unwrap().one_shot = true;
        let mut observed = observed_as_deployed(&s);
        for c in &mut observed {
            c.running = false;
            c.exit_code = Some(0);
        }
        observed.push(ObservedContainer {
            id: "old".into(),
            name: "shop-cache-1".into(),
            service: "cache".into(),
            config_hash: "x".into(),
            field_hashes: BTreeMap::new(),
            image_id: "sha256:x".into(),
            running: true,
            exit_code: None,
            descriptor_version: None,
            descriptor_digest: None,
            top_level: None,
        });
        let p = plan(&s, &observed, &images(), &["shop_default".into()], &["shop_data".into()]);
        let kinds: Vec<(&str, ChangeKind)> = p.services.iter().map(|c| (c.service.as_str(), c.action)).collect();
        assert_eq!(kinds, vec![("db", ChangeKind::Keep), ("web", ChangeKind::Start), ("cache", ChangeKind::Remove)]);
    }

    #[test]
    fn swarm_rules_diff_by_hash_alone_and_start_everything_together() {
        let s = stack();
        let rules = Rules {
            hash: config_hash,
            name: |stack, service| format!("{}_{service}", stack.name),
            containers: false,
            warnings: |_| vec!["swarm ignores depends_on".into()],
        };
        let mut containers = observed_as_deployed(&s);
        for c in &mut containers {
            c.name = format!("shop_{}", c.service);
            // No task runs and the image ID is unknown: Swarm's business.
            c.running = false;
            c.image_id = String::new();
        }
        containers.retain(|c| c.service != "web");
        let observed = Observed { containers, ..Observed::default() };
        let p = diff(&s, &observed, &rules);
        let kinds: Vec<(&str, ChangeKind, usize)> =
            p.services.iter().map(|c| (c.service.as_str(), c.action, c.level)).collect();
        assert_eq!(kinds, vec![("db", ChangeKind::Keep, 0), ("web", ChangeKind::Create, 0)]);
        assert_eq!(p.services[1].container, "shop_web");
        assert!(p.services.iter().all(|c| c.strategy.is_none()));
        assert!(p.volumes.is_empty(), "Swarm creates volumes on the nodes");
        assert_eq!(p.warnings, vec!["swarm ignores depends_on".to_string()]);
        // The same observation under one engine's rules replaces db: its
        // container name and image ID are not what one engine runs.
        let one = diff(&s, &Observed { images: images(), ..observed.clone() }, &Rules::ONE_ENGINE);
        assert_eq!(one.services[0].action, ChangeKind::Recreate, "{:?}", one.services[0].reasons);
    }
}

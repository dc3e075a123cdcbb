//! What the services of a stack need of each other: the order they start
//! in, what each waits for, and which ones may or must finish.

use std::collections::BTreeMap;

use super::{Condition, Dependency, Stack, VolumesFromSource};

impl Stack {
    /// Whether a service must finish: exiting 0 is its job and running on
    /// is "not done yet". Only what the descriptor says makes a service so:
    /// the label `dockmaster.one-shot: "true"`, or another service waiting
    /// for it with `service_completed_successfully`.
    pub fn must_finish(&self, service: &str) -> bool {
        let Some(svc) = self.services.get(service) else {
            return false;
        };
        svc.one_shot
            || self.services.values().any(|other| {
                other.depends_on.get(service).is_some_and(|d| d.condition == Condition::ServiceCompletedSuccessfully)
            })
    }

    /// Whether a service may finish: exiting 0 counts as done, not dead.
    ///
    /// Every service that [must finish](Stack::must_finish) may, and so
    /// may a data container: another service takes its volumes with
    /// `volumes_from` and it has no restart policy that would keep it
    /// running. Such a service is judged by what it does: one that exits 0
    /// is done (the `*-data` containers of legacy descriptors), one that
    /// keeps running is watched like any other service (a database whose
    /// volumes a backup service borrows), never waited on to exit.
    pub fn is_one_shot(&self, service: &str) -> bool {
        let Some(svc) = self.services.get(service) else {
            return false;
        };
        if svc.one_shot {
            return true;
        }
        let awaited = self.services.values().any(|other| {
            other.depends_on.get(service).is_some_and(|d| d.condition == Condition::ServiceCompletedSuccessfully)
        });
        if awaited {
            return true;
        }
        let keeps_running = matches!(svc.restart.as_deref(), Some(p) if p != "no");
        let lends_volumes = self.services.values().any(|other| {
            other.volumes_from.iter().any(|v| v.source == VolumesFromSource::Service(service.to_string()))
        });
        lends_volumes && !keeps_running
    }

    /// Every service a service must wait for, with the condition: its
    /// `depends_on`, plus the order that `links`, `volumes_from` and
    /// `network_mode`/`pid`/`ipc: service:x` imply (those wait for the start
    /// only).
    pub fn dependencies(&self, service: &str) -> BTreeMap<String, Dependency> {
        let Some(svc) = self.services.get(service) else {
            return BTreeMap::new();
        };
        let mut deps = svc.depends_on.clone();
        let started = Dependency { condition: Condition::ServiceStarted, required: true, restart: false };
        let mut implied = Vec::new();
        for link in &svc.links {
            implied.push(link.split(':').next().unwrap_or(link).to_string());
        }
        for from in &svc.volumes_from {
            if let VolumesFromSource::Service(name) = &from.source {
                implied.push(name.clone());
            }
        }
        for mode in [&svc.network_mode, &svc.pid, &svc.ipc] {
            if let Some(other) = mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
                implied.push(other.to_string());
            }
        }
        for name in implied {
            if self.services.contains_key(&name) {
                deps.entry(name).or_insert_with(|| started.clone());
            }
        }
        deps
    }

    /// Services in an order where every service comes after the ones it
    /// depends on, grouped into levels whose members do not depend on each
    /// other. Fails with the services of a cycle if there is one.
    pub fn start_levels(&self) -> Result<Vec<Vec<String>>, Vec<String>> {
        let mut remaining: BTreeMap<String, Vec<String>> =
            self.services.keys().map(|name| (name.clone(), self.dependencies(name).into_keys().collect())).collect();
        let mut levels = Vec::new();
        while !remaining.is_empty() {
            let ready: Vec<String> = remaining
                .iter()
                .filter(|(_, deps)| deps.iter().all(|d| !remaining.contains_key(d)))
                .map(|(name, _)| name.clone())
                .collect();
            if ready.is_empty() {
                return Err(remaining.into_keys().collect());
            }
            for name in &ready {
                remaining.remove(name);
            }
            levels.push(ready);
        }
        Ok(levels)
    }
}

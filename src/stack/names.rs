//! What a stack's objects are called on the engine, and what no engine
//! can run as written.

use super::Stack;

impl Stack {
    /// Moves the stack onto `target` (the pipeline's one target): its name,
    /// and the names of images it builds without naming them, which
    /// Compose calls `<project>-<service>` after the project they run in,
    /// not the one the loader first assumed.
    pub fn retarget(&mut self, target: &str) {
        let before = self.name.clone();
        for (service, svc) in self.services.iter_mut() {
            if svc.build.is_some() && svc.image == format!("{before}-{service}").to_ascii_lowercase() {
                svc.image = format!("{target}-{service}").to_ascii_lowercase();
            }
        }
        self.name = target.to_string();
    }

    /// The engine-side name of a network declared under `key`.
    pub fn network_name(&self, key: &str) -> String {
        match self.networks.get(key) {
            Some(n) if n.name.is_some() => n.name.clone().unwrap_or_default(),
            // An external network without `name:` is called by its key, as
            // Compose does: it belongs to no project.
            Some(n) if n.external => key.to_string(),
            _ => format!("{}_{}", self.name, key),
        }
    }

    /// The engine-side name of a named volume declared under `key`.
    pub fn volume_name(&self, key: &str) -> String {
        match self.volumes.get(key) {
            Some(v) if v.name.is_some() => v.name.clone().unwrap_or_default(),
            // An external volume without `name:` is called by its key, as
            // Compose does: it belongs to no project.
            Some(v) if v.external => key.to_string(),
            _ => format!("{}_{}", self.name, key),
        }
    }

    /// What no engine can run as written, one line per place: a volume
    /// whose path inside the container is relative (`- db-data`).
    ///
    /// Compose's `config` accepts such a file, so the loader does too and
    /// `dockmaster config` shows it; the engine would refuse it only when
    /// the container is created, halfway through a deploy. Every engine
    /// stage and the registry's publish check call this first, so nothing
    /// changes.
    pub fn unrunnable(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, svc) in &self.services {
            for (i, mount) in svc.volumes.iter().enumerate() {
                if !mount.target.starts_with('/') {
                    out.push(format!(
                        "service \"{name}\", key \"volumes[{i}]\": the path inside the container must be absolute, \
                         found {:?}; write SOURCE:/absolute/path, e.g. \"{}:/var/lib/{}\"",
                        mount.target,
                        mount.source.as_deref().unwrap_or(&mount.target),
                        mount.target.rsplit('/').next().unwrap_or("data"),
                    ));
                }
            }
        }
        out
    }

    /// The container name of a service: `container_name`, or
    /// `<project>-<service>-1` as Compose v2 names it.
    pub fn container_name(&self, service: &str) -> String {
        match self.services.get(service).and_then(|s| s.container_name.clone()) {
            Some(name) => name,
            None => format!("{}-{}-1", self.name, service),
        }
    }
}

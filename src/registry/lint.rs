//! What a version assembled from fragments references but no fragment
//! defines: the lint a publish runs on the loaded model of every version it
//! makes.
//!
//! Fragments come from different build servers, so a fragment may name a
//! service another one publishes later (or never). The loader, told the
//! descriptor is partial, keeps such references in the model instead of
//! refusing them; this module lists them, one [`Warning`] per reference:
//!
//! - a service named in `depends_on`, `links`, `volumes_from` (a service)
//!   or `network_mode`/`pid`/`ipc: service:X` that no fragment defines;
//! - a container named in `volumes_from` or `network_mode`/`pid`/`ipc:
//!   container:X` (in the v1 format, a `volumes_from` name that is no
//!   service) that is no service's `container_name`: it must exist on the
//!   engine;
//! - a volume or network a service uses that is declared nowhere, or
//!   declared `external` (it must exist on the engine).

use serde::{Deserialize, Serialize};

use crate::stack::{MountKind, Stack, VolumesFromSource, DEFAULT_NETWORK};

/// One reference of a version that no fragment defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The version whose fragment (last) defined `service`: the fragment
    /// to fix. For the fragment being published, the version it makes.
    pub fragment: i64,
    /// The service holding the reference.
    pub service: String,
    /// The key, as the loader names it (`volumes_from[1]`, `depends_on`).
    pub key: String,
    /// What it references (`bittorrent-sync-data`).
    pub reference: String,
    /// What is wrong, and what a deploy of the version does about it.
    pub message: String,
}

/// A [`Warning`] with the version it belongs to: the `warnings` list of a
/// publish's `201` (and of a strict `422`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located {
    /// The application of the version.
    pub application: String,
    /// Its release.
    pub release: String,
    /// Its number (in a strict `422`, the number it would have had).
    pub version: i64,
    /// The warning.
    #[serde(flatten)]
    pub warning: Warning,
}

impl Located {
    /// One line for people: `TLO GE/Milestone/2: service "plex" (fragment
    /// of version 2), key "volumes_from[1]": ...`.
    pub fn line(&self) -> String {
        let w = &self.warning;
        format!(
            "{}/{}/{}: service {:?} (fragment of version {}), key {:?}: {}",
            self.application, self.release, self.version, w.service, w.fragment, w.key, w.message
        )
    }
}

/// Every warning of `versions`, with its version.
pub fn located(versions: &[super::store::VersionInfo]) -> Vec<Located> {
    versions
        .iter()
        .flat_map(|v| {
            v.warnings.iter().map(|w| Located {
                application: v.application.clone(),
                release: v.release.clone(),
                version: v.version,
                warning: w.clone(),
            })
        })
        .collect()
}

/// The references of `stack` that nothing in it defines, in a stable order
/// (by service, then key). `fragment` is left 0 for the store to fill in.
pub fn lint(stack: &Stack) -> Vec<Warning> {
    let mut out = Vec::new();
    let is_service = |name: &str| stack.services.contains_key(name);
    let is_container = |name: &str| {
        stack.services.contains_key(name) || stack.services.values().any(|s| s.container_name.as_deref() == Some(name))
    };
    for (name, svc) in &stack.services {
        let mut warn = |key: String, reference: &str, message: String| {
            out.push(Warning { fragment: 0, service: name.clone(), key, reference: reference.to_string(), message })
        };
        let no_service = |other: &str| {
            format!(
                "service {other:?} is defined by no fragment of this release: a deploy of this version is refused \
                 (exit 3) until a fragment defines it"
            )
        };
        let no_container = |other: &str| {
            format!(
                "no fragment defines a service or `container_name` {other:?}: container {other:?} must exist on the \
                 engine when this version is deployed (else the deploy stops with exit 3)"
            )
        };
        for (dependency, how) in &svc.depends_on {
            if !is_service(dependency) {
                let message = if how.required {
                    no_service(dependency)
                } else {
                    format!(
                        "service {dependency:?} is defined by no fragment of this release; the dependency is \
                         optional (`required: false`), so a deploy ignores it"
                    )
                };
                warn("depends_on".into(), dependency, message);
            }
        }
        for (i, link) in svc.links.iter().enumerate() {
            let target = link.split(':').next().unwrap_or(link);
            if !is_service(target) {
                warn(format!("links[{i}]"), target, no_service(target));
            }
        }
        for (key, mode) in [("network_mode", &svc.network_mode), ("pid", &svc.pid), ("ipc", &svc.ipc)] {
            let Some(mode) = mode.as_deref() else { continue };
            if let Some(other) = mode.strip_prefix("service:") {
                if !is_service(other) {
                    warn(key.into(), other, no_service(other));
                }
            } else if let Some(other) = mode.strip_prefix("container:") {
                if !is_container(other) {
                    warn(key.into(), other, no_container(other));
                }
            }
        }
        for (i, from) in svc.volumes_from.iter().enumerate() {
            match &from.source {
                VolumesFromSource::Service(other) if !is_service(other) => {
                    warn(format!("volumes_from[{i}]"), other, no_service(other))
                }
                VolumesFromSource::Container(other) if !is_container(other) => {
                    warn(format!("volumes_from[{i}]"), other, no_container(other))
                }
                _ => {}
            }
        }
        for (i, mount) in svc.volumes.iter().enumerate() {
            let (MountKind::Volume, Some(volume)) = (mount.kind, &mount.source) else { continue };
            match stack.volumes.get(volume) {
                None => warn(
                    format!("volumes[{i}]"),
                    volume,
                    format!(
                        "volume {volume:?} is declared nowhere (no fragment's top-level `volumes:`): a deploy of \
                         this version is refused (exit 3) until a fragment declares it"
                    ),
                ),
                Some(v) if v.external => warn(
                    format!("volumes[{i}]"),
                    volume,
                    format!(
                        "volume {volume:?} is external, must exist on the engine (as {:?}) when this version is \
                         deployed",
                        stack.volume_name(volume)
                    ),
                ),
                Some(_) => {}
            }
        }
        for network in svc.networks.keys() {
            match stack.networks.get(network) {
                None if network == DEFAULT_NETWORK => {}
                None => warn(
                    format!("networks.{network}"),
                    network,
                    format!(
                        "network {network:?} is declared nowhere (no fragment's top-level `networks:`): a deploy \
                         of this version is refused (exit 3) until a fragment declares it"
                    ),
                ),
                Some(n) if n.external => warn(
                    format!("networks.{network}"),
                    network,
                    format!(
                        "network {network:?} is external, must exist on the engine (as {:?}) when this version is \
                         deployed",
                        stack.network_name(network)
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_text(text: &str) -> Vec<(String, String, String)> {
        let stack = crate::descriptor::compose::load_partial_in_memory(text, "registry").unwrap();
        lint(&stack).into_iter().map(|w| (w.service, w.key, w.reference)).collect()
    }

    fn triple(service: &str, key: &str, reference: &str) -> (String, String, String) {
        (service.into(), key.into(), reference.into())
    }

    #[test]
    fn the_seeds_volumes_from_a_container_no_fragment_defines_is_reported() {
        let plex = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/examples/registry/plex.yml"),
        )
        .unwrap_or_else(|_| {
            "plex-data:\n  image: busybox\n  container_name: plex-data\nplex:\n  image: p\n  net: host\n  \
             volumes_from:\n  - plex-data\n  - bittorrent-sync-data\n"
                .into()
        });
        assert_eq!(lint_text(&plex), vec![triple("plex", "volumes_from[1]", "bittorrent-sync-data")]);
        // Once a fragment defines it (by name or container_name), it is not.
        let more = format!("{plex}bt:\n  image: busybox\n  container_name: bittorrent-sync-data\n");
        assert_eq!(lint_text(&more), vec![]);
    }

    #[test]
    fn every_kind_of_reference_no_fragment_defines_is_reported_in_order() {
        let text = "services:
  web:
    image: x
    depends_on: [db]
    links: [cache]
    volumes_from: [service:assets, container:legacy]
    volumes: [data:/data, ext:/ext, nowhere:/n, /anon]
    networks: [front, outside, back]
  side:
    image: x
    network_mode: service:ghost
    pid: container:web-box
  ok:
    image: x
    container_name: web-box
volumes:
  data: {}
  ext: {external: true}
networks:
  front: {}
  outside: {external: true, name: corp-net}
";
        let (stack, warnings) = {
            let stack = crate::descriptor::compose::load_partial_in_memory(text, "registry").unwrap();
            let w = lint(&stack);
            (stack, w)
        };
        assert!(stack.services.contains_key("web"));
        let got: Vec<_> = warnings.iter().map(|w| (w.service.clone(), w.key.clone(), w.reference.clone())).collect();
        assert_eq!(
            got,
            vec![
                triple("side", "network_mode", "ghost"),
                triple("web", "depends_on", "db"),
                triple("web", "links[0]", "cache"),
                triple("web", "volumes_from[0]", "assets"),
                triple("web", "volumes_from[1]", "legacy"),
                triple("web", "volumes[1]", "ext"),
                triple("web", "volumes[2]", "nowhere"),
                triple("web", "networks.back", "back"),
                triple("web", "networks.outside", "outside"),
            ]
        );
        let external = warnings.iter().find(|w| w.reference == "outside").unwrap();
        assert!(
            external.message.contains("external, must exist on the engine") && external.message.contains("corp-net")
        );
        let nowhere = warnings.iter().find(|w| w.reference == "nowhere").unwrap();
        assert!(nowhere.message.contains("declared nowhere"), "{}", nowhere.message);
        // A whole descriptor still refuses what a partial one keeps.
        assert!(crate::descriptor::compose::load_in_memory(text, "registry").is_err());
    }
}

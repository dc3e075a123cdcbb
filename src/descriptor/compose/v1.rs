//! Compose v1: services at the top level, as docker-compose 1.x read them.
//!
//! The teams we serve publish v1 descriptors; Compose v2 no longer reads
//! them. This module rewrites a v1 tree into the Compose Specification's
//! shape, the way docker-compose 1.29.2 normalised it, so the one reader
//! after it handles both:
//!
//! - services move under `services:`;
//! - `net: container:x` becomes `network_mode: service:x` when `x` is a
//!   service (else it stays `container:x`), and `net: host|bridge|none`
//!   becomes `network_mode`;
//! - a service with no `net:` joins the engine's default bridge
//!   (`network_mode: bridge`) with legacy `links`, not a project network;
//! - `volumes_from: [x]` takes the volumes of service `x`, or of an existing
//!   container `x` when no service has that name (`container:x`);
//! - `log_driver`/`log_opt` become `logging`, `dockerfile` goes into `build`;
//! - a named volume (`data:/data`) uses the literal engine-side name, as v1
//!   did (no project prefix): it is declared with that `name:`.

use serde_yaml::{Mapping, Value};

use super::fault::{Parsed, Place};

/// Rewrites a v1 tree in place into the Specification's shape: services
/// move under `services:` and their v1 keys become today's. `warnings` gets
/// the note that the file is v1. What depends on the whole project (the
/// default bridge, `volumes_from` of containers, literal volume names) is
/// left to [`finish`], after `extends` and override files are merged.
pub(super) fn rewrite(tree: &mut Value, warnings: &mut Vec<String>) -> Parsed<()> {
    let Value::Mapping(top) = std::mem::take(tree) else { return Ok(()) };
    let names: Vec<String> = top.keys().filter_map(|k| k.as_str().map(str::to_string)).collect();
    let mut services = Mapping::new();
    for (key, value) in top {
        let Some(name) = key.as_str().map(str::to_string) else { continue };
        let place = Place::root().key(&name);
        let Value::Mapping(mut svc) = value else {
            return Err(place.fault("a v1 service must be a mapping of its settings"));
        };
        rewrite_service(&mut svc, &names, &place)?;
        services.insert(Value::String(name), Value::Mapping(svc));
    }
    let mut spec = Mapping::new();
    spec.insert("services".into(), Value::Mapping(services));
    *tree = Value::Mapping(spec);
    warnings.push(
        "this is a Compose v1 file (services at the top level): read as docker-compose 1.29.2 did, \
         on the default bridge with legacy links"
            .to_string(),
    );
    Ok(())
}

fn rewrite_service(svc: &mut Mapping, services: &[String], place: &Place) -> Parsed<()> {
    if svc.contains_key("network_mode") || svc.contains_key("networks") {
        return Err(place.fault("`network_mode` and `networks` are not v1 keys: use `net:` in a v1 file"));
    }
    match svc.remove("net") {
        Some(Value::String(net)) => {
            let mode = match net.strip_prefix("container:") {
                Some(other) if services.iter().any(|s| s == other) => format!("service:{other}"),
                _ => net,
            };
            svc.insert("network_mode".into(), Value::String(mode));
        }
        Some(Value::Null) | None => {}
        Some(_) => return Err(place.key("net").fault("`net` must be a string (host, bridge, none or container:NAME)")),
    }
    let driver = svc.remove("log_driver");
    let options = svc.remove("log_opt");
    if driver.is_some() || options.is_some() {
        let mut logging = Mapping::new();
        if let Some(d) = driver {
            logging.insert("driver".into(), d);
        }
        if let Some(o) = options {
            logging.insert("options".into(), o);
        }
        svc.insert("logging".into(), Value::Mapping(logging));
    }
    if let Some(dockerfile) = svc.remove("dockerfile") {
        let context = svc.remove("build").unwrap_or_else(|| ".".into());
        let mut build = Mapping::new();
        build.insert("context".into(), context);
        build.insert("dockerfile".into(), dockerfile);
        svc.insert("build".into(), Value::Mapping(build));
    }
    Ok(())
}

/// Completes a v1 project once every file is merged, as docker-compose
/// 1.29.2 did: a service without `net:` joins the engine's default bridge
/// (`network_mode: bridge`), `volumes_from` a name that is no service takes
/// an existing container's volumes, and a named volume (`data:/data`) is
/// the engine volume of that literal name (no project prefix).
pub(super) fn finish(tree: &mut Value) {
    let Some(Value::Mapping(services)) = tree.get_mut("services") else { return };
    let names: Vec<String> = services.keys().filter_map(|k| k.as_str().map(str::to_string)).collect();
    let mut volumes = Mapping::new();
    for (_, svc) in services.iter_mut() {
        let Value::Mapping(svc) = svc else { continue };
        if !svc.contains_key("network_mode") {
            svc.insert("network_mode".into(), "bridge".into());
        }
        if let Some(Value::Sequence(list)) = svc.get_mut("volumes_from") {
            for entry in list.iter_mut() {
                let Some(text) = entry.as_str() else { continue };
                if text.starts_with("container:") || text.starts_with("service:") {
                    continue;
                }
                let source = text.split(':').next().unwrap_or(text);
                if !names.iter().any(|s| s == source) {
                    *entry = Value::String(format!("container:{text}"));
                }
            }
        }
        // With a `volume_driver`, docker-compose 1.29.2 left relative paths
        // unresolved: `./mongo:/data/db` names the driver's volume `mongo`.
        let driver = svc.get("volume_driver").and_then(Value::as_str).map(str::to_string);
        if let (Some(_), Some(Value::Sequence(list))) = (&driver, svc.get_mut("volumes")) {
            for entry in list.iter_mut() {
                let Some(text) = entry.as_str() else { continue };
                let Some((name, rest)) = text.strip_prefix("./").and_then(|t| t.split_once(':')) else { continue };
                if !name.is_empty() && !name.contains('/') && name != "." && name != ".." {
                    *entry = Value::String(format!("{name}:{rest}"));
                }
            }
        }
        if let Some(Value::Sequence(list)) = svc.get("volumes") {
            for entry in list {
                let Some(text) = entry.as_str() else { continue };
                let source = text.split(':').next().unwrap_or_default();
                let is_named = text.contains(':')
                    && !source.is_empty()
                    && !source.starts_with(['/', '.', '~', '$'])
                    && !source.contains('/');
                if is_named {
                    let mut declared = Mapping::new();
                    declared.insert("name".into(), Value::String(source.to_string()));
                    if let Some(driver) = &driver {
                        declared.insert("driver".into(), Value::String(driver.clone()));
                    }
                    volumes.insert(Value::String(source.to_string()), Value::Mapping(declared));
                }
            }
        }
    }
    if volumes.is_empty() {
        return;
    }
    if let Value::Mapping(top) = tree {
        match top.get_mut("volumes") {
            Some(Value::Mapping(existing)) => {
                for (k, v) in volumes {
                    if !existing.contains_key(&k) {
                        existing.insert(k, v);
                    }
                }
            }
            _ => {
                top.insert("volumes".into(), Value::Mapping(volumes));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalised(text: &str) -> Value {
        let mut tree: Value = serde_yaml::from_str(text).unwrap();
        let mut warnings = vec![];
        rewrite(&mut tree, &mut warnings).unwrap();
        finish(&mut tree);
        assert!(warnings[0].contains("v1"));
        tree
    }

    #[test]
    fn v1_services_are_rewritten_as_docker_compose_1_29_did() {
        let t = normalised(
            "app:\n  image: a\n  net: \"container:db\"\n  volumes_from: [data, ext-data:ro]\n  log_driver: syslog\n  log_opt: {tag: x}\n  volumes: ['cache:/c', './rel:/r']\ndb:\n  image: b\n  net: host\ndata:\n  image: busybox\n",
        );
        let app = &t["services"]["app"];
        assert_eq!(app["network_mode"], "service:db");
        assert_eq!(app["volumes_from"][0], "data");
        assert_eq!(app["volumes_from"][1], "container:ext-data:ro");
        assert_eq!(app["logging"]["driver"], "syslog");
        assert_eq!(app["logging"]["options"]["tag"], "x");
        assert_eq!(t["services"]["db"]["network_mode"], "host");
        assert_eq!(t["services"]["data"]["network_mode"], "bridge");
        assert_eq!(t["volumes"]["cache"]["name"], "cache");
        assert!(t["volumes"].get("./rel").is_none());
        // A volume driver makes `./NAME` the driver's volume NAME, as in 1.29.2.
        let t = normalised(
            "db:\n  image: mongo\n  volume_driver: local\n  volumes: ['./mongo:/data/db:rw', '/srv:/srv']\n",
        );
        assert_eq!(t["services"]["db"]["volumes"][0], "mongo:/data/db:rw");
        assert_eq!(t["services"]["db"]["volumes"][1], "/srv:/srv");
        assert_eq!(
            (&t["volumes"]["mongo"]["name"], &t["volumes"]["mongo"]["driver"]),
            (&"mongo".into(), &"local".into())
        );
    }
}

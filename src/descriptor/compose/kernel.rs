//! How a service's container meets the host kernel: init process, read-only
//! root, capabilities, devices, DNS, sysctls, ulimits, `/dev/shm`, security
//! options and the PID and IPC namespaces.
//!
//! Each key is read into the model as written (after interpolation) and
//! checked for the shape the engine accepts, so a typo fails at load time
//! rather than at container creation, half-way through a deploy.

use serde_yaml::Value;

use super::fault::{Parsed, Place};
use super::units::byte_size;
use super::value::{
    boolean, integer, list, list_or_dict, mapping, opt_string, string, string_list, string_or_list, type_name,
    unknown_key,
};
use crate::stack::{Device, Service, Ulimit};

/// The service keys this module reads.
#[rustfmt::skip]
pub(crate) const KEYS: &[&str] = &[
    "init", "read_only", "cap_add", "cap_drop", "devices", "dns", "dns_search", "dns_opt", "sysctls", "ulimits",
    "shm_size", "security_opt", "pid", "ipc",
];

/// Reads the service key `key` (one of [`KEYS`]) into `svc`.
pub(crate) fn read(svc: &mut Service, key: &str, value: &Value, place: &Place) -> Parsed<()> {
    match key {
        "init" => svc.init = if value.is_null() { None } else { Some(boolean(value, place)?) },
        "read_only" => svc.read_only = !value.is_null() && boolean(value, place)?,
        "cap_add" => svc.cap_add = capabilities(value, place)?,
        "cap_drop" => svc.cap_drop = capabilities(value, place)?,
        "devices" => svc.devices = devices(value, place)?,
        "dns" => svc.dns = string_or_list(value, place)?,
        "dns_search" => svc.dns_search = string_or_list(value, place)?,
        "dns_opt" => svc.dns_opt = string_list(value, place)?,
        "sysctls" => svc.sysctls = sysctls(value, place)?,
        "ulimits" => svc.ulimits = ulimits(value, place)?,
        "shm_size" => svc.shm_size = size(value, place)?,
        "security_opt" => svc.security_opt = string_list(value, place)?,
        "pid" => svc.pid = namespace(value, place, &["host"])?,
        _ => svc.ipc = namespace(value, place, &["host", "private", "shareable", "none"])?,
    }
    Ok(())
}

/// `cap_add` / `cap_drop`: capability names (`NET_ADMIN`, `CAP_SYS_TIME`, `ALL`).
fn capabilities(value: &Value, place: &Place) -> Parsed<Vec<String>> {
    let caps = string_list(value, place)?;
    for (i, cap) in caps.iter().enumerate() {
        if cap.is_empty() || !cap.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(place.index(i).fault(format!("invalid capability {cap:?}: write a name like NET_ADMIN")));
        }
    }
    Ok(caps)
}

/// `devices:`: `HOST[:CONTAINER[:PERMISSIONS]]` or `{source, target, permissions}`.
fn devices(value: &Value, place: &Place) -> Parsed<Vec<Device>> {
    let mut out = Vec::new();
    for (i, item) in list(value, place)?.iter().enumerate() {
        let at = place.index(i);
        let device = match item {
            Value::Mapping(_) => {
                let mut d = Device { source: String::new(), target: String::new(), permissions: "rwm".into() };
                for (key, v) in mapping(item, &at)? {
                    let kat = at.key(&key);
                    match key.as_str() {
                        "source" => d.source = string(v, &kat)?,
                        "target" => d.target = string(v, &kat)?,
                        "permissions" => d.permissions = string(v, &kat)?,
                        k if k.starts_with("x-") => {}
                        k => return Err(unknown_key(&at, k, &["source", "target", "permissions"])),
                    }
                }
                if d.target.is_empty() {
                    d.target = d.source.clone();
                }
                d
            }
            _ => {
                let text = string(item, &at)?;
                let parts: Vec<&str> = text.split(':').collect();
                let (source, target, permissions) = match parts.as_slice() {
                    [source] => (*source, *source, "rwm"),
                    [source, p] if is_permissions(p) => (*source, *source, *p),
                    [source, target] => (*source, *target, "rwm"),
                    [source, target, p] => (*source, *target, *p),
                    _ => return Err(at.fault(format!("invalid device {text:?}: write HOST[:CONTAINER[:rwm]]"))),
                };
                Device { source: source.into(), target: target.into(), permissions: permissions.into() }
            }
        };
        if !device.source.starts_with('/') {
            return Err(at.fault(format!(
                "device {:?} is not a path under /dev; CDI device names are not supported yet by dockmaster",
                device.source
            )));
        }
        if !device.target.starts_with('/') {
            return Err(
                at.fault(format!("the device path in the container must be absolute, found {:?}", device.target))
            );
        }
        if !is_permissions(&device.permissions) {
            return Err(
                at.fault(format!("invalid device permissions {:?}: use some of r, w and m", device.permissions))
            );
        }
        out.push(device);
    }
    Ok(out)
}

fn is_permissions(text: &str) -> bool {
    !text.is_empty() && text.len() <= 3 && text.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// `sysctls:`: `{name: value}` or `[name=value]`; every one needs a value.
fn sysctls(value: &Value, place: &Place) -> Parsed<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for (name, v) in list_or_dict(value, place)? {
        match v {
            Some(v) if !name.is_empty() => {
                out.insert(name, v);
            }
            _ => return Err(place.fault(format!("sysctl {name:?} needs a value: write {name}=VALUE"))),
        }
    }
    Ok(out)
}

/// `ulimits:`: `{nofile: 1024}` (soft = hard) or `{nofile: {soft, hard}}`.
fn ulimits(value: &Value, place: &Place) -> Parsed<std::collections::BTreeMap<String, Ulimit>> {
    let mut out = std::collections::BTreeMap::new();
    for (name, v) in mapping(value, place)? {
        let at = place.key(&name);
        let limit = match v {
            Value::Mapping(_) => {
                let (mut soft, mut hard) = (None, None);
                for (key, lv) in mapping(v, &at)? {
                    match key.as_str() {
                        "soft" => soft = Some(integer(lv, &at.key(&key))?),
                        "hard" => hard = Some(integer(lv, &at.key(&key))?),
                        k if k.starts_with("x-") => {}
                        k => return Err(unknown_key(&at, k, &["soft", "hard"])),
                    }
                }
                match (soft, hard) {
                    (Some(soft), Some(hard)) => Ulimit { soft, hard },
                    _ => return Err(at.fault("a ulimit written as a mapping needs both `soft` and `hard`")),
                }
            }
            Value::Null | Value::Sequence(_) | Value::Tagged(_) => {
                return Err(at.fault(format!("expected a number or {{soft, hard}}, found {}", type_name(v))))
            }
            other => {
                let n = integer(other, &at)?;
                Ulimit { soft: n, hard: n }
            }
        };
        if limit.soft > limit.hard && limit.hard >= 0 {
            return Err(at.fault(format!("the soft limit ({}) is above the hard limit ({})", limit.soft, limit.hard)));
        }
        out.insert(name, limit);
    }
    Ok(out)
}

/// A byte size: a number of bytes, or text with a unit (`64m`, `1gb`).
fn size(value: &Value, place: &Place) -> Parsed<Option<i64>> {
    let size = match value {
        Value::Null => return Ok(None),
        Value::Number(_) => integer(value, place)?,
        other => byte_size(&string(other, place)?).map_err(|why| place.fault(why))?,
    };
    if size < 0 {
        return Err(place.fault(format!("a size cannot be negative, found {size}")));
    }
    Ok(Some(size))
}

/// `pid:` / `ipc:`: one of `modes`, or `container:NAME` / `service:NAME`.
fn namespace(value: &Value, place: &Place, modes: &[&str]) -> Parsed<Option<String>> {
    let Some(mode) = opt_string(value, place)? else {
        return Ok(None);
    };
    let shared = ["container:", "service:"].iter().any(|p| mode.strip_prefix(p).is_some_and(|n| !n.is_empty()));
    if mode.is_empty() || shared || modes.contains(&mode.as_str()) {
        return Ok(Some(mode).filter(|m| !m.is_empty()));
    }
    Err(place.fault(format!(
        "invalid mode {mode:?}: use {}, container:NAME or service:NAME",
        modes.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Parsed<Service> {
        let value: Value = serde_yaml::from_str(text).unwrap();
        let mut svc = Service::default();
        let at = Place::root().key("services").key("web");
        for (key, v) in mapping(&value, &at)? {
            read(&mut svc, &key, v, &at.key(&key))?;
        }
        Ok(svc)
    }

    #[test]
    fn every_key_is_read() {
        let svc = read_all(
            "{init: true, read_only: true, cap_add: [NET_ADMIN], cap_drop: [ALL], \
             devices: ['/dev/fuse', '/dev/sda:/dev/xvda:r', {source: /dev/kvm, permissions: rw}], \
             dns: 1.1.1.1, dns_search: [example.com], dns_opt: ['ndots:2'], sysctls: ['net.core.somaxconn=1024'], \
             ulimits: {nproc: 65535, nofile: {soft: 20000, hard: 40000}}, shm_size: 64m, \
             security_opt: ['no-new-privileges:true'], pid: host, ipc: 'service:db'}",
        )
        .unwrap();
        assert_eq!(svc.init, Some(true));
        assert!(svc.read_only);
        assert_eq!((svc.cap_add, svc.cap_drop), (vec!["NET_ADMIN".to_string()], vec!["ALL".to_string()]));
        assert_eq!(
            svc.devices[0],
            Device { source: "/dev/fuse".into(), target: "/dev/fuse".into(), permissions: "rwm".into() }
        );
        assert_eq!(svc.devices[1].target, "/dev/xvda");
        assert_eq!(svc.devices[1].permissions, "r");
        assert_eq!((svc.devices[2].target.as_str(), svc.devices[2].permissions.as_str()), ("/dev/kvm", "rw"));
        assert_eq!(svc.dns, vec!["1.1.1.1"]);
        assert_eq!(svc.dns_search, vec!["example.com"]);
        assert_eq!(svc.dns_opt, vec!["ndots:2"]);
        assert_eq!(svc.sysctls["net.core.somaxconn"], "1024");
        assert_eq!(svc.ulimits["nproc"], Ulimit { soft: 65535, hard: 65535 });
        assert_eq!(svc.ulimits["nofile"], Ulimit { soft: 20000, hard: 40000 });
        assert_eq!(svc.shm_size, Some(64 << 20));
        assert_eq!(svc.security_opt, vec!["no-new-privileges:true"]);
        assert_eq!(svc.pid.as_deref(), Some("host"));
        assert_eq!(svc.ipc.as_deref(), Some("service:db"));
    }

    #[test]
    fn bad_values_say_why() {
        for (text, needle) in [
            ("{cap_add: ['NET ADMIN']}", "invalid capability"),
            ("{devices: ['nvidia.com/gpu=all']}", "CDI"),
            ("{devices: ['/dev/a:/dev/b:rwx']}", "permissions"),
            ("{devices: ['/dev/a:rel']}", "absolute"),
            ("{sysctls: [net.core.somaxconn]}", "needs a value"),
            ("{ulimits: {nofile: {soft: 2}}}", "both `soft` and `hard`"),
            ("{ulimits: {nofile: {soft: 3, hard: 2}}}", "above the hard limit"),
            ("{ulimits: {nofile: [1]}}", "expected a number"),
            ("{shm_size: lots}", "size"),
            ("{pid: sideways}", "invalid mode"),
            ("{ipc: 'service:'}", "invalid mode"),
            ("{init: maybe}", "true or false"),
        ] {
            let err = read_all(text).unwrap_err();
            assert!(err.message.contains(needle), "{text}: {}", err.message);
        }
    }
}

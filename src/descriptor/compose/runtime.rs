//! How a service's container runs: healthcheck, restart policy, resources
//! (`mem_limit`, `cpus`, ... and `deploy.resources`), logging, extra hosts,
//! and the rest of `deploy:`.
//!
//! Compose has two spellings for most resources (the service keys and
//! `deploy.resources`); both are read, and a descriptor that gives both
//! with different values is refused rather than guessed at.

use std::fmt::Debug;

use serde_yaml::Value;

use super::fault::{Parsed, Place, Seg};
use super::units::{byte_size, duration};
use super::value::{
    boolean, float, integer, is_empty, mapping, opt_string, scalar_string, string, string_list, type_name, unknown_key,
    unsigned, unsupported_key,
};
use crate::stack::{DeviceRequest, Healthcheck, Logging, Resources, SwarmDeploy};

#[rustfmt::skip]
const HEALTHCHECK_KEYS: &[&str] = &[
    "test", "interval", "timeout", "retries", "start_period", "start_interval", "disable",
];
#[rustfmt::skip]
const DEPLOY_KEYS: &[&str] = &[
    "mode", "replicas", "resources", "restart_policy", "endpoint_mode", "labels", "update_config", "rollback_config",
    "placement",
];

/// `healthcheck:`. A string test runs in the shell (`CMD-SHELL`); a list is
/// kept as written and must start with `NONE`, `CMD` or `CMD-SHELL`.
/// `disable: true` and `test: ["NONE"]` are the same thing and are stored
/// the same way, so they hash the same.
pub(crate) fn healthcheck(value: &Value, place: &Place) -> Parsed<Option<Healthcheck>> {
    if value.is_null() {
        return Ok(None);
    }
    let mut check = Healthcheck {
        test: Vec::new(),
        interval: None,
        timeout: None,
        retries: None,
        start_period: None,
        start_interval: None,
        disable: false,
    };
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        let period = || -> Parsed<Option<std::time::Duration>> {
            match opt_string(v, &at)? {
                None => Ok(None),
                Some(text) => duration(&text).map(Some).map_err(|why| at.fault(why)),
            }
        };
        match key.as_str() {
            "test" => {
                check.test = match v {
                    Value::Sequence(_) => {
                        let test = string_list(v, &at)?;
                        match test.first().map(String::as_str) {
                            Some("NONE" | "CMD" | "CMD-SHELL") => test,
                            _ => {
                                return Err(at.fault(
                                    "a healthcheck test list starts with \"CMD\", \"CMD-SHELL\" or \"NONE\", \
                                     e.g. [\"CMD\", \"curl\", \"-f\", \"http://localhost\"]",
                                ))
                            }
                        }
                    }
                    Value::Null => Vec::new(),
                    _ => vec!["CMD-SHELL".to_string(), string(v, &at)?],
                }
            }
            "interval" => check.interval = period()?,
            "timeout" => check.timeout = period()?,
            "start_period" => check.start_period = period()?,
            "start_interval" => check.start_interval = period()?,
            "retries" => check.retries = if v.is_null() { None } else { Some(unsigned(v, &at)?) },
            "disable" => check.disable = !v.is_null() && boolean(v, &at)?,
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, HEALTHCHECK_KEYS)),
        }
    }
    let none = check.test.first().is_some_and(|t| t == "NONE");
    if check.disable && !check.test.is_empty() && !none {
        return Err(place.fault("`disable: true` and a `test` contradict each other; remove one"));
    }
    if check.disable || none {
        check.disable = true;
        check.test = vec!["NONE".to_string()];
    }
    Ok(Some(check))
}

/// Checks a restart policy: `no`, `always`, `on-failure[:N]`, `unless-stopped`.
fn restart_policy(text: &str, place: &Place) -> Parsed<String> {
    let ok = match text.split_once(':') {
        None => matches!(text, "no" | "always" | "on-failure" | "unless-stopped"),
        Some(("on-failure", n)) => n.parse::<u32>().is_ok(),
        Some(_) => false,
    };
    if ok {
        Ok(text.to_string())
    } else {
        Err(place.fault(format!(
            "unknown restart policy {text:?}; use \"no\", \"always\", \"on-failure[:N]\" or \"unless-stopped\""
        )))
    }
}

/// `restart:`. YAML 1.1 readers turned `restart: no` into `false`; both mean "no".
pub(crate) fn restart(value: &Value, place: &Place) -> Parsed<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(false) => Ok(Some("no".into())),
        other => restart_policy(&string(other, place)?, place).map(Some),
    }
}

/// `extra_hosts:`: `["host:ip", "host=ip"]` or `{host: ip}` / `{host: [ip, ...]}`,
/// normalised to `host:ip`.
pub(crate) fn extra_hosts(value: &Value, place: &Place) -> Parsed<Vec<String>> {
    let mut out = Vec::new();
    let mut add = |host: &str, ip: &str, at: &Place| -> Parsed<()> {
        let ip = ip.trim();
        let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
        if host.trim().is_empty() || ip.is_empty() {
            return Err(at.fault(format!("invalid extra host {host:?} → {ip:?}: write \"HOST:IP\" or \"HOST=IP\"")));
        }
        out.push(format!("{}:{ip}", host.trim()));
        Ok(())
    };
    match value {
        Value::Null => {}
        Value::Sequence(_) => {
            for (i, entry) in string_list(value, place)?.into_iter().enumerate() {
                let at = place.index(i);
                let split = entry.split_once('=').or_else(|| entry.split_once(':'));
                match split {
                    Some((host, ip)) => add(host, ip, &at)?,
                    None => return Err(at.fault(format!("invalid extra host {entry:?}: write \"HOST:IP\""))),
                }
            }
        }
        _ => {
            for (host, ips) in mapping(value, place)? {
                let at = place.key(&host);
                match ips {
                    Value::Sequence(_) => {
                        for ip in string_list(ips, &at)? {
                            add(&host, &ip, &at)?;
                        }
                    }
                    other => add(&host, &string(other, &at)?, &at)?,
                }
            }
        }
    }
    Ok(out)
}

/// `logging: {driver, options}`.
pub(crate) fn logging(value: &Value, place: &Place) -> Parsed<Option<Logging>> {
    if value.is_null() {
        return Ok(None);
    }
    let mut logging = Logging { driver: None, options: Default::default() };
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "driver" => logging.driver = opt_string(v, &at)?,
            "options" => {
                for (name, option) in mapping(v, &at)? {
                    match option {
                        Value::Null => {}
                        other => {
                            let text = scalar_string(other).ok_or_else(|| {
                                at.key(&name).fault(format!("expected a string, found {}", type_name(other)))
                            })?;
                            logging.options.insert(name, text);
                        }
                    }
                }
            }
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, &["driver", "options"])),
        }
    }
    Ok(Some(logging))
}

/// One resource, possibly given twice (service key and `deploy.resources`),
/// with where each was written relative to the service.
#[derive(Debug, Default)]
struct Twice<T> {
    first: Option<(T, Place)>,
    second: Option<(T, Place)>,
}

impl<T: PartialEq + Debug + Clone> Twice<T> {
    fn set_first(&mut self, value: Option<T>, place: &Place) {
        self.first = value.map(|v| (v, place.clone()));
    }

    fn set_second(&mut self, value: Option<T>, place: &Place) {
        self.second = value.map(|v| (v, place.clone()));
    }

    /// The value, refusing two different ones.
    fn finish(&self, service: &Place) -> Parsed<Option<T>> {
        match (&self.first, &self.second) {
            (Some((a, at_a)), Some((b, at_b))) if a != b => {
                let mut fault = service.fault(format!(
                    "{} ({a:?}) and {} ({b:?}) disagree; keep one of them",
                    relative(service, at_a),
                    relative(service, at_b)
                ));
                fault.line_of = at_b.clone();
                Err(fault)
            }
            (Some((a, _)), _) | (None, Some((a, _))) => Ok(Some(a.clone())),
            (None, None) => Ok(None),
        }
    }
}

/// `place` named from `service`: `"deploy.resources.limits.memory"`.
fn relative(service: &Place, place: &Place) -> String {
    let inner: Vec<String> = place
        .segs()
        .iter()
        .skip(service.segs().len())
        .map(|seg| match seg {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => format!("[{i}]"),
        })
        .collect();
    format!("{:?}", inner.join("."))
}

/// The resource settings of a service as read, before they are reconciled.
#[derive(Debug, Default)]
pub(crate) struct ResourceKeys {
    cpus: Twice<f64>,
    memory: Twice<i64>,
    memory_reservation: Twice<i64>,
    pids_limit: Twice<i64>,
}

fn size(value: &Value, place: &Place) -> Parsed<Option<i64>> {
    match value {
        Value::Null => Ok(None),
        Value::Number(_) => integer(value, place).map(Some),
        other => byte_size(&string(other, place)?).map(Some).map_err(|why| place.fault(why)),
    }
}

fn cpus(value: &Value, place: &Place) -> Parsed<Option<f64>> {
    if value.is_null() {
        return Ok(None);
    }
    let n = float(value, place)?;
    if n < 0.0 {
        return Err(place.fault(format!("cpus must not be negative, found {n}")));
    }
    Ok(Some(n))
}

fn pids(value: &Value, place: &Place) -> Parsed<Option<i64>> {
    if value.is_null() {
        return Ok(None);
    }
    integer(value, place).map(Some)
}

impl ResourceKeys {
    /// Reads a service-level key: `mem_limit`, `mem_reservation`, `cpus`, `pids_limit`.
    pub(crate) fn read(&mut self, key: &str, value: &Value, place: &Place) -> Parsed<()> {
        match key {
            "mem_limit" => self.memory.set_first(size(value, place)?, place),
            "mem_reservation" => self.memory_reservation.set_first(size(value, place)?, place),
            "cpus" => self.cpus.set_first(cpus(value, place)?, place),
            _ => self.pids_limit.set_first(pids(value, place)?, place),
        }
        Ok(())
    }

    /// The reconciled resources of the service at `service`.
    pub(crate) fn finish(&self, service: &Place) -> Parsed<Resources> {
        Ok(Resources {
            cpus: self.cpus.finish(service)?,
            memory: self.memory.finish(service)?,
            memory_reservation: self.memory_reservation.finish(service)?,
            pids_limit: self.pids_limit.finish(service)?,
        })
    }
}

/// What `deploy:` says beyond resources.
#[derive(Debug, Default)]
pub(crate) struct Deploy {
    /// `restart_policy`, as an engine restart policy.
    pub(crate) restart: Option<String>,
    /// `replicas`, when given.
    pub(crate) replicas: Option<i64>,
    /// What only Swarm acts on; `None` when nothing Swarm-only is set.
    pub(crate) swarm: Option<SwarmDeploy>,
    /// `resources.reservations.devices`: devices (GPUs) the engine's
    /// drivers hand the container, as Compose asks a single engine for them.
    pub(crate) devices: Vec<DeviceRequest>,
}

/// `deploy:`. Resources and the restart policy apply on every engine;
/// replicas, placement, update and rollback settings and service labels
/// are kept for `swarm` environments (a single engine warns that it
/// ignores them, and refuses more than one replica when deploying); the
/// rest is refused.
pub(crate) fn deploy(
    value: &Value,
    place: &Place,
    resources: &mut ResourceKeys,
    warnings: &mut Vec<String>,
) -> Parsed<Deploy> {
    let mut out = Deploy::default();
    let mut swarm = SwarmDeploy::default();
    let swarm_only = |at: &Place, warnings: &mut Vec<String>| {
        warnings.push(format!("{}: acted on only by a `swarm` environment; a single engine ignores it", at.describe()))
    };
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "mode" => {
                swarm.mode = match opt_string(v, &at)?.as_deref() {
                    None => None,
                    Some(mode @ ("replicated" | "global")) => Some(mode.to_string()),
                    Some(other) => {
                        return Err(at.fault(format!("unknown deploy mode {other:?}; use replicated or global")))
                    }
                };
                if swarm.mode.as_deref() == Some("global") {
                    warnings.push(format!(
                        "{}: `global` runs one task on every node of a `swarm` environment; a single engine runs \
                         one container, as Compose does",
                        at.describe()
                    ));
                }
            }
            "replicas" => {
                out.replicas = if v.is_null() { None } else { Some(integer(v, &at)?) };
                if let Some(n) = out.replicas {
                    swarm.replicas = Some(u64::try_from(n).map_err(|_| at.fault("replicas cannot be negative"))?);
                }
            }
            "endpoint_mode" => {
                if !matches!(opt_string(v, &at)?.as_deref(), None | Some("vip")) {
                    return Err(unsupported_key(place, &key));
                }
            }
            "resources" => out.devices = deploy_resources(v, &at, resources, warnings)?,
            "restart_policy" => {
                out.restart = restart_policy_block(v, &at, warnings)?;
                swarm.restart_policy = super::swarm::restart(v, &at)?;
            }
            "labels" => swarm.labels = super::swarm::labels(v, &at)?,
            "update_config" => swarm.update_config = super::swarm::update_config(v, &at, false)?,
            "rollback_config" => swarm.rollback_config = super::swarm::update_config(v, &at, true)?,
            "placement" => swarm.placement = super::swarm::placement(v, &at)?,
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, DEPLOY_KEYS)),
        }
        if matches!(key.as_str(), "labels" | "update_config" | "rollback_config" | "placement") && !is_empty(v) {
            swarm_only(&at, warnings);
        }
    }
    // The restart policy alone applies on every engine already.
    let only_restart = SwarmDeploy { restart_policy: None, ..swarm.clone() }.is_empty();
    if !only_restart || swarm.restart_policy.as_ref().is_some_and(|r| r.delay.is_some() || r.window.is_some()) {
        out.swarm = Some(swarm);
    }
    Ok(out)
}

fn deploy_resources(
    value: &Value,
    place: &Place,
    resources: &mut ResourceKeys,
    warnings: &mut Vec<String>,
) -> Parsed<Vec<DeviceRequest>> {
    let mut devices = Vec::new();
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "limits" => {
                for (limit, lv) in mapping(v, &at)? {
                    let lat = at.key(&limit);
                    match limit.as_str() {
                        "cpus" => resources.cpus.set_second(cpus(lv, &lat)?, &lat),
                        "memory" => resources.memory.set_second(size(lv, &lat)?, &lat),
                        "pids" => resources.pids_limit.set_second(pids(lv, &lat)?, &lat),
                        k if k.starts_with("x-") => {}
                        k => return Err(unknown_key(&at, k, &["cpus", "memory", "pids"])),
                    }
                }
            }
            "reservations" => {
                for (reservation, rv) in mapping(v, &at)? {
                    let rat = at.key(&reservation);
                    match reservation.as_str() {
                        "memory" => resources.memory_reservation.set_second(size(rv, &rat)?, &rat),
                        "cpus" | "generic_resources" => {
                            if !is_empty(rv) {
                                warnings.push(format!(
                                    "{}: ignored: only Swarm schedules by reservations; the engine has no such setting",
                                    rat.describe()
                                ));
                            }
                        }
                        "devices" => devices = super::host::reserved_devices(rv, &rat)?,
                        k if k.starts_with("x-") => {}
                        k => return Err(unknown_key(&at, k, &["cpus", "memory", "devices", "generic_resources"])),
                    }
                }
            }
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, &["limits", "reservations"])),
        }
    }
    Ok(devices)
}

/// `deploy.restart_policy` as Compose maps it onto an engine restart policy:
/// `none` → `no`, `on-failure` (with `max_attempts`) → `on-failure:N`,
/// `any` (the default) → `always`. Delays and windows are Swarm-only.
fn restart_policy_block(value: &Value, place: &Place, warnings: &mut Vec<String>) -> Parsed<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    let mut condition = "any".to_string();
    let mut attempts = None;
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "condition" => condition = string(v, &at)?,
            "max_attempts" => attempts = if v.is_null() { None } else { Some(unsigned::<u32>(v, &at)?) },
            "delay" | "window" => {
                if let Some(text) = opt_string(v, &at)? {
                    duration(&text).map_err(|why| at.fault(why))?;
                    warnings.push(format!(
                        "{}: acted on only by a `swarm` environment; a single engine restarts with its own back-off",
                        at.describe()
                    ));
                }
            }
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, &["condition", "max_attempts", "delay", "window"])),
        }
    }
    let policy = match condition.as_str() {
        "none" | "no" => "no".to_string(),
        "any" | "always" => "always".to_string(),
        "unless-stopped" => "unless-stopped".to_string(),
        "on-failure" => match attempts {
            Some(n) if n > 0 => format!("on-failure:{n}"),
            _ => "on-failure".to_string(),
        },
        other => {
            return Err(place
                .key("condition")
                .fault(format!("unknown restart condition {other:?}; use \"none\", \"on-failure\" or \"any\"")))
        }
    };
    restart_policy(&policy, place).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn healthcheck_forms() {
        let at = Place::root();
        let check = healthcheck(&yaml("{test: curl -f http://x, interval: 1m30s, retries: 3, start_period: 5s}"), &at)
            .unwrap()
            .unwrap();
        assert_eq!(check.test, vec!["CMD-SHELL", "curl -f http://x"]);
        assert_eq!(check.interval, Some(std::time::Duration::from_secs(90)));
        assert_eq!(check.retries, Some(3));
        let check = healthcheck(&yaml("{test: [CMD, true]}"), &at).unwrap().unwrap();
        assert_eq!(check.test, vec!["CMD", "true"]);
        let off = healthcheck(&yaml("{disable: true}"), &at).unwrap().unwrap();
        assert_eq!(off, healthcheck(&yaml("{test: [NONE]}"), &at).unwrap().unwrap());
        assert!(off.disable);
        for bad in ["{test: [curl]}", "{interval: 10}", "{disable: true, test: [CMD, x]}", "{retries: -1}", "{tset: x}"]
        {
            assert!(healthcheck(&yaml(bad), &at).is_err(), "{bad}");
        }
        assert!(healthcheck(&yaml("{interval: 10}"), &at).unwrap_err().message.contains("no unit"));
    }

    #[test]
    fn restart_policies() {
        let at = Place::root();
        assert_eq!(restart(&yaml("on-failure:3"), &at).unwrap().as_deref(), Some("on-failure:3"));
        assert_eq!(restart(&yaml("false"), &at).unwrap().as_deref(), Some("no"));
        assert!(restart(&yaml("sometimes"), &at).is_err());
        assert!(restart(&yaml("on-failure:x"), &at).is_err());
    }

    #[test]
    fn extra_hosts_in_every_form() {
        let at = Place::root();
        assert_eq!(
            extra_hosts(&yaml("[\"db:10.0.0.2\", \"v6=::1\", \"br=[::2]\"]"), &at).unwrap(),
            vec!["db:10.0.0.2", "v6:::1", "br:::2"]
        );
        assert_eq!(
            extra_hosts(&yaml("{a: 1.2.3.4, b: [5.6.7.8, \"::1\"]}"), &at).unwrap(),
            vec!["a:1.2.3.4", "b:5.6.7.8", "b:::1"]
        );
        assert!(extra_hosts(&yaml("[nohost]"), &at).is_err());
    }

    #[test]
    fn resources_from_both_spellings_must_agree() {
        let at = Place::root().key("services").key("web");
        let mut keys = ResourceKeys::default();
        keys.read("mem_limit", &yaml("512m"), &at.key("mem_limit")).unwrap();
        keys.read("cpus", &yaml("0.5"), &at.key("cpus")).unwrap();
        let mut warnings = Vec::new();
        let deployed = deploy(
            &yaml("{resources: {limits: {memory: 512M, pids: 100}, reservations: {memory: 1g}}, restart_policy: {condition: on-failure, max_attempts: 2, delay: 5s}, replicas: 1}"),
            &at.key("deploy"),
            &mut keys,
            &mut warnings,
        )
        .unwrap();
        assert_eq!(deployed.restart.as_deref(), Some("on-failure:2"));
        assert_eq!(deployed.replicas, Some(1));
        assert_eq!(warnings.len(), 1);
        let r = keys.finish(&at).unwrap();
        assert_eq!(r.memory, Some(512 << 20));
        assert_eq!(r.memory_reservation, Some(1 << 30));
        assert_eq!(r.cpus, Some(0.5));
        assert_eq!(r.pids_limit, Some(100));
        deploy(&yaml("{resources: {limits: {cpus: '1'}}}"), &at.key("deploy"), &mut keys, &mut warnings).unwrap();
        let err = keys.finish(&at).unwrap_err();
        assert!(err.message.contains("disagree"), "{}", err.message);
    }

    #[test]
    fn swarm_only_deploy_keys_warn_and_the_rest_is_refused() {
        let at = Place::root().key("services").key("web").key("deploy");
        let mut warnings = Vec::new();
        let mut keys = ResourceKeys::default();
        deploy(
            &yaml("{placement: {constraints: ['node.role == manager']}, update_config: {parallelism: 2}, labels: [a=b], resources: {reservations: {cpus: '1'}}, replicas: 3}"),
            &at,
            &mut keys,
            &mut warnings,
        )
        .unwrap();
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("only by a `swarm` environment")), "{warnings:?}");
        let kept = deploy(&yaml("{replicas: 3, update_config: {order: start-first}}"), &at, &mut keys, &mut warnings)
            .unwrap()
            .swarm
            .unwrap();
        assert_eq!(kept.replicas, Some(3));
        assert_eq!(kept.update_config.unwrap().order.as_deref(), Some("start-first"));
        for bad in [
            "{replicas: -1}",
            "{mode: everywhere}",
            "{resources: {reservations: {devices: [{driver: nvidia}]}}}",
            "{resources: {limits: {memry: 1g}}}",
        ] {
            let mut keys = ResourceKeys::default();
            assert!(deploy(&yaml(bad), &at, &mut keys, &mut Vec::new()).is_err(), "{bad}");
        }
    }
}

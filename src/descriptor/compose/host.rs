//! The service keys Compose passes to the engine beyond the common ones:
//! CPU and memory tuning, cgroups, block I/O, storage options, devices
//! handed out by drivers (`gpus`), namespaces (`userns_mode`, `uts`,
//! `cgroup`), identity (`mac_address`, `domainname`, `group_add`,
//! `platform`, `runtime`), `expose`, `external_links`, `annotations`, the
//! v1 `volume_driver`, and the `post_start` / `pre_stop` hooks.
//!
//! Each is read as written (after interpolation) and checked for the shape
//! the engine accepts, so a typo fails at load time, not half-way through a
//! deploy.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::fault::{Parsed, Place};
use super::units::{byte_size, duration, shell_words};
use super::value::{
    boolean, integer, list, list_or_dict, mapping, opt_string, string, string_list, type_name, unknown_key,
};
use crate::stack::{BlkioConfig, DeviceRequest, Hook, Service, ThrottleDevice, WeightDevice};

/// The service keys this module reads.
#[rustfmt::skip]
pub(crate) const KEYS: &[&str] = &[
    "cpu_shares", "cpuset", "cpu_quota", "cpu_period", "cpu_rt_period", "cpu_rt_runtime", "memswap_limit",
    "mem_swappiness", "oom_score_adj", "storage_opt", "blkio_config", "device_cgroup_rules", "cgroup_parent",
    "cgroup", "mac_address", "platform", "gpus", "group_add", "userns_mode", "uts", "domainname", "runtime",
    "external_links", "annotations", "post_start", "pre_stop", "expose", "volume_driver",
];

const DEVICE_KEYS: &[&str] = &["capabilities", "count", "device_ids", "driver", "options"];
const HOOK_KEYS: &[&str] = &["command", "user", "privileged", "working_dir", "environment"];
const BLKIO_KEYS: &[&str] =
    &["weight", "weight_device", "device_read_bps", "device_read_iops", "device_write_bps", "device_write_iops"];

/// Reads the service key `key` (one of [`KEYS`]) into `svc`.
pub(crate) fn read(svc: &mut Service, key: &str, value: &Value, place: &Place) -> Parsed<()> {
    match key {
        "cpu_shares" => svc.cpu_shares = ranged(value, place, 0, i64::MAX)?,
        "cpuset" => svc.cpuset = cpuset(value, place)?,
        "cpu_quota" => svc.cpu_quota = ranged(value, place, -1, i64::MAX)?,
        "cpu_period" => svc.cpu_period = ranged(value, place, 0, 1_000_000)?,
        "cpu_rt_period" => svc.cpu_rt_period = micros(value, place)?,
        "cpu_rt_runtime" => svc.cpu_rt_runtime = micros(value, place)?,
        "memswap_limit" => svc.memswap_limit = memswap(value, place)?,
        "mem_swappiness" => svc.mem_swappiness = ranged(value, place, 0, 100)?,
        "oom_score_adj" => svc.oom_score_adj = ranged(value, place, -1000, 1000)?,
        "storage_opt" => svc.storage_opt = string_map(value, place)?,
        "blkio_config" => svc.blkio_config = blkio(value, place)?,
        "device_cgroup_rules" => svc.device_cgroup_rules = cgroup_rules(value, place)?,
        "cgroup_parent" => svc.cgroup_parent = opt_string(value, place)?.filter(|s| !s.is_empty()),
        "cgroup" => svc.cgroup = one_of(value, place, &["host", "private"])?,
        "mac_address" => svc.mac_address = mac_address(value, place)?,
        "platform" => svc.platform = platform(value, place)?,
        "gpus" => svc.gpus = gpus(value, place)?,
        "group_add" => svc.group_add = string_list(value, place)?,
        "userns_mode" => svc.userns_mode = one_of(value, place, &["host"])?,
        "uts" => svc.uts = one_of(value, place, &["host"])?,
        "domainname" => svc.domainname = opt_string(value, place)?.filter(|s| !s.is_empty()),
        "runtime" => svc.runtime = opt_string(value, place)?.filter(|s| !s.is_empty()),
        "external_links" => svc.external_links = external_links(value, place)?,
        "annotations" => svc.annotations = string_map(value, place)?,
        "post_start" => svc.post_start = hooks(value, place)?,
        "pre_stop" => svc.pre_stop = hooks(value, place)?,
        "expose" => svc.expose = expose(value, place)?,
        _ => svc.volume_driver = opt_string(value, place)?.filter(|s| !s.is_empty()),
    }
    Ok(())
}

/// A whole number in `min..=max`, or `None` for null.
fn ranged(value: &Value, place: &Place, min: i64, max: i64) -> Parsed<Option<i64>> {
    if value.is_null() {
        return Ok(None);
    }
    let n = integer(value, place)?;
    if n < min || n > max {
        return Err(place.fault(format!("{n} is out of range: use a whole number from {min} to {max}")));
    }
    Ok(Some(n))
}

/// Microseconds: a number, or a duration (`950ms`, `1s`).
fn micros(value: &Value, place: &Place) -> Parsed<Option<i64>> {
    match value {
        Value::Null => Ok(None),
        Value::Number(_) => ranged(value, place, 0, i64::MAX),
        other => {
            let text = string(other, place)?;
            if let Ok(n) = text.trim().parse::<i64>() {
                return ranged(&Value::from(n), place, 0, i64::MAX);
            }
            let d = duration(&text).map_err(|why| place.fault(why))?;
            Ok(Some(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
        }
    }
}

/// `memswap_limit`: bytes or a size; -1 is unlimited swap.
fn memswap(value: &Value, place: &Place) -> Parsed<Option<i64>> {
    let n = match value {
        Value::Null => return Ok(None),
        Value::Number(_) => integer(value, place)?,
        other => {
            let text = string(other, place)?;
            match text.trim() {
                "-1" => -1,
                t => byte_size(t).map_err(|why| place.fault(why))?,
            }
        }
    };
    if n < -1 {
        return Err(place.fault(format!("memswap_limit must be a size or -1 (unlimited), found {n}")));
    }
    Ok(Some(n))
}

/// `cpuset`: CPU numbers and ranges, `0-3,5`.
fn cpuset(value: &Value, place: &Place) -> Parsed<Option<String>> {
    let Some(text) = opt_string(value, place)?.filter(|s| !s.is_empty()) else { return Ok(None) };
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let valid = text.split(',').all(|part| match part.split_once('-') {
        Some((a, b)) => number(a) && number(b),
        None => number(part),
    });
    if !valid {
        return Err(place.fault(format!("invalid cpuset {text:?}: write CPU numbers and ranges, e.g. \"0-3,5\"")));
    }
    Ok(Some(text))
}

/// One of `modes`, or `None` for null or empty.
fn one_of(value: &Value, place: &Place, modes: &[&str]) -> Parsed<Option<String>> {
    let Some(mode) = opt_string(value, place)?.filter(|s| !s.is_empty()) else { return Ok(None) };
    if !modes.contains(&mode.as_str()) {
        let list: Vec<String> = modes.iter().map(|m| format!("{m:?}")).collect();
        return Err(place.fault(format!("invalid mode {mode:?}: use {}", list.join(" or "))));
    }
    Ok(Some(mode))
}

/// A map of strings (`storage_opt`, `annotations`): mapping or `k=v` list.
fn string_map(value: &Value, place: &Place) -> Parsed<BTreeMap<String, String>> {
    Ok(list_or_dict(value, place)?.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
}

/// `mac_address`: six hex pairs separated by `:` (or `-`).
fn mac_address(value: &Value, place: &Place) -> Parsed<Option<String>> {
    let Some(text) = opt_string(value, place)?.filter(|s| !s.is_empty()) else { return Ok(None) };
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let valid = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Err(place.fault(format!("invalid MAC address {text:?}: write six hex pairs, e.g. 02:42:ac:11:00:02")));
    }
    Ok(Some(text))
}

/// `platform`: `OS[/ARCH[/VARIANT]]`, e.g. `linux/amd64`, `linux/arm64/v8`.
fn platform(value: &Value, place: &Place) -> Parsed<Option<String>> {
    let Some(text) = opt_string(value, place)?.filter(|s| !s.is_empty()) else { return Ok(None) };
    let parts: Vec<&str> = text.split('/').collect();
    let word = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if parts.len() > 3 || !parts.iter().all(word) {
        return Err(place.fault(format!("invalid platform {text:?}: write OS[/ARCH[/VARIANT]], e.g. linux/amd64")));
    }
    Ok(Some(text))
}

/// `device_cgroup_rules`: `TYPE MAJOR:MINOR ACCESS` (`c 1:3 mr`, `a *:* rwm`).
fn cgroup_rules(value: &Value, place: &Place) -> Parsed<Vec<String>> {
    let rules = string_list(value, place)?;
    for (i, rule) in rules.iter().enumerate() {
        let parts: Vec<&str> = rule.split_whitespace().collect();
        let number = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        let valid = match parts.as_slice() {
            [kind, numbers, access] => {
                matches!(*kind, "a" | "b" | "c")
                    && numbers.split_once(':').is_some_and(|(a, b)| number(a) && number(b))
                    && !access.is_empty()
                    && access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
            }
            _ => false,
        };
        if !valid {
            return Err(place.index(i).fault(format!(
                "invalid device cgroup rule {rule:?}: write TYPE MAJOR:MINOR ACCESS, e.g. \"c 1:3 mr\""
            )));
        }
    }
    Ok(rules)
}

/// `external_links`: `CONTAINER[:ALIAS]`.
fn external_links(value: &Value, place: &Place) -> Parsed<Vec<String>> {
    let links = string_list(value, place)?;
    for (i, link) in links.iter().enumerate() {
        let (name, alias) = link.split_once(':').unwrap_or((link, link));
        if name.is_empty() || alias.is_empty() || alias.contains(':') {
            return Err(place.index(i).fault(format!("invalid external link {link:?}: write CONTAINER[:ALIAS]")));
        }
    }
    Ok(links)
}

/// `expose`: `PORT[/PROTOCOL]` or `START-END[/PROTOCOL]`, numbers or text.
fn expose(value: &Value, place: &Place) -> Parsed<Vec<String>> {
    let ports = string_list(value, place)?;
    for (i, port) in ports.iter().enumerate() {
        let (range, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
        let number = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
        let valid = match range.split_once('-') {
            Some((a, b)) => number(a) && number(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok(),
            None => number(range),
        } && matches!(protocol, "tcp" | "udp" | "sctp");
        if !valid {
            return Err(place.index(i).fault(format!(
                "invalid exposed port {port:?}: write PORT[/PROTOCOL] or START-END[/PROTOCOL] (tcp, udp, sctp)"
            )));
        }
    }
    Ok(ports)
}

/// `blkio_config`.
fn blkio(value: &Value, place: &Place) -> Parsed<Option<BlkioConfig>> {
    if value.is_null() {
        return Ok(None);
    }
    let mut out = BlkioConfig::default();
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "weight" => out.weight = weight(v, &at)?,
            "weight_device" => {
                for (i, item) in list(v, &at)?.iter().enumerate() {
                    let iat = at.index(i);
                    let (mut path, mut w) = (None, None);
                    for (k, x) in mapping(item, &iat)? {
                        match k.as_str() {
                            "path" => path = Some(string(x, &iat.key(&k))?),
                            "weight" => w = weight(x, &iat.key(&k))?,
                            k if k.starts_with("x-") => {}
                            k => return Err(unknown_key(&iat, k, &["path", "weight"])),
                        }
                    }
                    match (path, w) {
                        (Some(path), Some(weight)) => out.weight_device.push(WeightDevice { path, weight }),
                        _ => return Err(iat.fault("a weight_device entry needs `path` and `weight`")),
                    }
                }
            }
            "device_read_bps" => out.device_read_bps = throttles(v, &at, true)?,
            "device_write_bps" => out.device_write_bps = throttles(v, &at, true)?,
            "device_read_iops" => out.device_read_iops = throttles(v, &at, false)?,
            "device_write_iops" => out.device_write_iops = throttles(v, &at, false)?,
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, BLKIO_KEYS)),
        }
    }
    Ok(Some(out))
}

/// A block-I/O weight, 10 to 1000 (0 is "not set").
fn weight(value: &Value, place: &Place) -> Parsed<Option<u16>> {
    match ranged(value, place, 0, 1000)? {
        None | Some(0) => Ok(None),
        Some(n) if n < 10 => Err(place.fault(format!("a block-I/O weight is 10 to 1000, found {n}"))),
        Some(n) => Ok(Some(n as u16)),
    }
}

/// `[{path, rate}]`; bytes per second may be a size (`12mb`).
fn throttles(value: &Value, place: &Place, bytes: bool) -> Parsed<Vec<ThrottleDevice>> {
    let mut out = Vec::new();
    for (i, item) in list(value, place)?.iter().enumerate() {
        let at = place.index(i);
        let (mut path, mut rate) = (None, None);
        for (k, x) in mapping(item, &at)? {
            let kat = at.key(&k);
            match k.as_str() {
                "path" => path = Some(string(x, &kat)?),
                "rate" => {
                    let n = match x {
                        Value::Number(_) => integer(x, &kat)?,
                        other if bytes => byte_size(&string(other, &kat)?).map_err(|why| kat.fault(why))?,
                        other => integer(other, &kat)?,
                    };
                    rate = Some(u64::try_from(n).map_err(|_| kat.fault(format!("a rate cannot be negative: {n}")))?);
                }
                k if k.starts_with("x-") => {}
                k => return Err(unknown_key(&at, k, &["path", "rate"])),
            }
        }
        match (path, rate) {
            (Some(path), Some(rate)) => out.push(ThrottleDevice { path, rate }),
            _ => return Err(at.fault("a throttle entry needs `path` and `rate`")),
        }
    }
    Ok(out)
}

/// `gpus:`: `all`, or a list of device requests; each asks for GPUs.
fn gpus(value: &Value, place: &Place) -> Parsed<Vec<DeviceRequest>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.trim() == "all" => {
            Ok(vec![DeviceRequest { count: Some(-1), capabilities: vec!["gpu".into()], ..Default::default() }])
        }
        Value::Sequence(_) => {
            let mut out = Vec::new();
            for (i, item) in list(value, place)?.iter().enumerate() {
                let mut request = device_request(item, &place.index(i), false)?;
                if !request.is_gpu() {
                    request.capabilities.push("gpu".into());
                }
                out.push(request);
            }
            Ok(out)
        }
        other => Err(place.fault(format!("expected `all` or a list of GPU requests, found {}", type_name(other)))),
    }
}

/// `deploy.resources.reservations.devices`: each entry needs `capabilities`.
pub(crate) fn reserved_devices(value: &Value, place: &Place) -> Parsed<Vec<DeviceRequest>> {
    list(value, place)?.iter().enumerate().map(|(i, item)| device_request(item, &place.index(i), true)).collect()
}

/// One device request: `{capabilities, count, device_ids, driver, options}`.
fn device_request(value: &Value, place: &Place, needs_capabilities: bool) -> Parsed<DeviceRequest> {
    let mut out = DeviceRequest::default();
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "capabilities" => out.capabilities = string_list(v, &at)?,
            "count" => {
                out.count = match v {
                    Value::Null => None,
                    Value::String(s) if s.trim() == "all" => Some(-1),
                    other => Some(ranged(other, &at, -1, i64::MAX)?.unwrap_or(-1)),
                }
            }
            "device_ids" => out.device_ids = string_list(v, &at)?,
            "driver" => out.driver = opt_string(v, &at)?.filter(|s| !s.is_empty()),
            "options" => out.options = string_map(v, &at)?,
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, DEVICE_KEYS)),
        }
    }
    if needs_capabilities && out.capabilities.is_empty() {
        return Err(place.fault("a device reservation needs `capabilities`, e.g. [gpu]"));
    }
    if out.count.is_some() && !out.device_ids.is_empty() {
        return Err(place.fault("`count` and `device_ids` cannot both be set; keep one"));
    }
    Ok(out)
}

/// `post_start` / `pre_stop`: a list of `{command, user, privileged, working_dir, environment}`.
fn hooks(value: &Value, place: &Place) -> Parsed<Vec<Hook>> {
    let mut out = Vec::new();
    for (i, item) in list(value, place)?.iter().enumerate() {
        let at = place.index(i);
        let mut hook = Hook::default();
        for (key, v) in mapping(item, &at)? {
            let kat = at.key(&key);
            match key.as_str() {
                "command" => {
                    hook.command = match v {
                        Value::Sequence(_) => string_list(v, &kat)?,
                        Value::Null => Vec::new(),
                        other => shell_words(&string(other, &kat)?).map_err(|why| kat.fault(why))?,
                    }
                }
                "user" => hook.user = opt_string(v, &kat)?.filter(|s| !s.is_empty()),
                "privileged" => hook.privileged = !v.is_null() && boolean(v, &kat)?,
                "working_dir" => hook.working_dir = opt_string(v, &kat)?.filter(|s| !s.is_empty()),
                "environment" => hook.environment = list_or_dict(v, &kat)?.into_iter().collect(),
                k if k.starts_with("x-") => {}
                k => return Err(unknown_key(&at, k, HOOK_KEYS)),
            }
        }
        if hook.command.is_empty() {
            return Err(at.fault("a hook needs `command`, the command to run in the container"));
        }
        out.push(hook);
    }
    Ok(out)
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
            "{cpu_shares: 512, cpuset: '0-1,3', cpu_quota: 50000, cpu_period: 100000, cpu_rt_period: 1s, \
             cpu_rt_runtime: 950ms, memswap_limit: 1g, mem_swappiness: 10, oom_score_adj: -200, \
             storage_opt: {size: 20G}, blkio_config: {weight: 300, weight_device: [{path: /dev/sda, weight: 400}], \
             device_read_bps: [{path: /dev/sda, rate: 12mb}], device_write_iops: [{path: /dev/sda, rate: 30}]}, \
             device_cgroup_rules: ['c 1:3 mr', 'a *:* rwm'], cgroup_parent: m-executor, cgroup: private, \
             mac_address: '02:42:ac:11:00:02', platform: linux/arm64/v8, gpus: all, group_add: [mail, 42], \
             userns_mode: host, uts: host, domainname: example.com, runtime: runc, external_links: [redis_1, 'db:mysql'], \
             annotations: [com.example.a=b], expose: [3000, '8000-8010/udp'], volume_driver: local, \
             post_start: [{command: 'echo hi', user: root, privileged: true, environment: {A: '1'}}], \
             pre_stop: [{command: [./drain, --now], working_dir: /app}]}",
        )
        .unwrap();
        assert_eq!((svc.cpu_shares, svc.cpuset.as_deref()), (Some(512), Some("0-1,3")));
        assert_eq!((svc.cpu_quota, svc.cpu_period), (Some(50000), Some(100000)));
        assert_eq!((svc.cpu_rt_period, svc.cpu_rt_runtime), (Some(1_000_000), Some(950_000)));
        assert_eq!((svc.memswap_limit, svc.mem_swappiness, svc.oom_score_adj), (Some(1 << 30), Some(10), Some(-200)));
        assert_eq!(svc.storage_opt["size"], "20G");
        let blkio = svc.blkio_config.unwrap();
        assert_eq!((blkio.weight, blkio.weight_device[0].weight), (Some(300), 400));
        assert_eq!(blkio.device_read_bps[0].rate, 12 << 20);
        assert_eq!(blkio.device_write_iops[0].rate, 30);
        assert_eq!(svc.device_cgroup_rules, vec!["c 1:3 mr", "a *:* rwm"]);
        assert_eq!((svc.cgroup_parent.as_deref(), svc.cgroup.as_deref()), (Some("m-executor"), Some("private")));
        assert_eq!(svc.mac_address.as_deref(), Some("02:42:ac:11:00:02"));
        assert_eq!(svc.platform.as_deref(), Some("linux/arm64/v8"));
        let all = DeviceRequest { count: Some(-1), capabilities: vec!["gpu".into()], ..Default::default() };
        assert_eq!(svc.gpus, vec![all]);
        assert_eq!(svc.group_add, vec!["mail", "42"]);
        assert_eq!((svc.userns_mode.as_deref(), svc.uts.as_deref()), (Some("host"), Some("host")));
        assert_eq!((svc.domainname.as_deref(), svc.runtime.as_deref()), (Some("example.com"), Some("runc")));
        assert_eq!(svc.external_links, vec!["redis_1", "db:mysql"]);
        assert_eq!(svc.annotations["com.example.a"], "b");
        assert_eq!(svc.expose, vec!["3000", "8000-8010/udp"]);
        assert_eq!(svc.volume_driver.as_deref(), Some("local"));
        assert_eq!(svc.post_start[0].command, vec!["echo", "hi"]);
        assert!(svc.post_start[0].privileged);
        assert_eq!(svc.pre_stop[0].working_dir.as_deref(), Some("/app"));
    }

    #[test]
    fn gpu_requests_and_reservations() {
        let svc = read_all("{gpus: [{driver: nvidia, device_ids: ['0', '3'], capabilities: [compute]}]}").unwrap();
        let gpu = &svc.gpus[0];
        assert_eq!((gpu.driver.as_deref(), gpu.device_ids.len()), (Some("nvidia"), 2));
        assert_eq!(gpu.capabilities, vec!["compute", "gpu"]);
        let at = Place::root();
        let value: Value = serde_yaml::from_str("[{driver: nvidia, count: all, capabilities: [gpu]}]").unwrap();
        let reserved = reserved_devices(&value, &at).unwrap();
        assert_eq!((reserved[0].count, reserved[0].is_gpu()), (Some(-1), true));
        let value: Value = serde_yaml::from_str("[{driver: nvidia, count: 1}]").unwrap();
        assert!(reserved_devices(&value, &at).unwrap_err().message.contains("capabilities"));
    }

    #[test]
    fn bad_values_say_why() {
        for (text, needle) in [
            ("{cpuset: 'a-b'}", "cpuset"),
            ("{mem_swappiness: 101}", "out of range"),
            ("{oom_score_adj: -1001}", "out of range"),
            ("{cgroup: shared}", "invalid mode"),
            ("{userns_mode: 'container:x'}", "invalid mode"),
            ("{mac_address: '02:42'}", "MAC address"),
            ("{platform: 'linux//amd64'}", "platform"),
            ("{device_cgroup_rules: ['x 1:3 mr']}", "cgroup rule"),
            ("{expose: ['80/icmp']}", "exposed port"),
            ("{external_links: ['a:b:c']}", "external link"),
            ("{gpus: [{count: 1, device_ids: ['0']}]}", "cannot both"),
            ("{gpus: some}", "expected `all`"),
            ("{blkio_config: {weight: 5}}", "10 to 1000"),
            ("{blkio_config: {device_read_bps: [{path: /dev/sda}]}}", "`path` and `rate`"),
            ("{post_start: [{user: root}]}", "needs `command`"),
            ("{memswap_limit: -2}", "-1"),
        ] {
            let err = read_all(text).unwrap_err();
            assert!(err.message.contains(needle), "{text}: {}", err.message);
        }
    }
}

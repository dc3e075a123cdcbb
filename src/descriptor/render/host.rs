//! A service's keys that Compose passes to the engine beyond the common
//! ones (the model's `stack::host` and kernel settings): init, capabilities,
//! DNS, sysctls, ulimits, namespaces, CPU and memory tuning, cgroups, block
//! I/O, device requests (GPUs), hooks. Separate from `services` because they
//! are a long, flat list of one-key mappings that reads best on its own.

use serde_json::{json, Map, Value};

use super::put_if;
use crate::stack::{DeviceRequest, Hook, Service};

/// The container's kernel settings: init, read-only root, capabilities,
/// devices, DNS, sysctls, ulimits, `/dev/shm`, security options, namespaces.
pub(super) fn kernel(m: &mut Map<String, Value>, s: &Service) {
    if let Some(init) = s.init {
        m.insert("init".into(), json!(init));
    }
    put_if(m, "read_only", s.read_only, json!(true));
    for (key, list) in [
        ("cap_add", &s.cap_add),
        ("cap_drop", &s.cap_drop),
        ("dns", &s.dns),
        ("dns_search", &s.dns_search),
        ("dns_opt", &s.dns_opt),
        ("security_opt", &s.security_opt),
    ] {
        put_if(m, key, !list.is_empty(), json!(list));
    }
    let devices: Vec<String> =
        s.devices.iter().map(|d| format!("{}:{}:{}", d.source, d.target, d.permissions)).collect();
    put_if(m, "devices", !devices.is_empty(), json!(devices));
    put_if(m, "sysctls", !s.sysctls.is_empty(), json!(s.sysctls));
    let ulimits: Map<String, Value> =
        s.ulimits.iter().map(|(k, l)| (k.clone(), json!({"soft": l.soft, "hard": l.hard}))).collect();
    put_if(m, "ulimits", !ulimits.is_empty(), Value::Object(ulimits));
    if let Some(size) = s.shm_size {
        m.insert("shm_size".into(), json!(size));
    }
    for (key, mode) in [("pid", &s.pid), ("ipc", &s.ipc)] {
        if let Some(mode) = mode {
            m.insert(key.into(), json!(mode));
        }
    }
}

/// One device request as Compose prints it (`count: -1` for `all`).
pub(super) fn device_request(d: &DeviceRequest) -> Value {
    let mut r = Map::new();
    put_if(&mut r, "capabilities", !d.capabilities.is_empty(), json!(d.capabilities));
    put_if(&mut r, "driver", d.driver.is_some(), json!(d.driver));
    put_if(&mut r, "count", d.count.is_some(), json!(d.count));
    put_if(&mut r, "device_ids", !d.device_ids.is_empty(), json!(d.device_ids));
    put_if(&mut r, "options", !d.options.is_empty(), json!(d.options));
    Value::Object(r)
}

fn hook(h: &Hook) -> Value {
    let mut r = Map::new();
    r.insert("command".into(), json!(h.command));
    put_if(&mut r, "user", h.user.is_some(), json!(h.user));
    put_if(&mut r, "privileged", h.privileged, json!(true));
    put_if(&mut r, "working_dir", h.working_dir.is_some(), json!(h.working_dir));
    put_if(&mut r, "environment", !h.environment.is_empty(), json!(h.environment));
    Value::Object(r)
}

/// The keys Compose passes to the engine beyond the common ones: CPU and
/// memory tuning, cgroups, block I/O, devices, namespaces, identity,
/// `expose`, links outside the stack, annotations, hooks.
pub(super) fn host(m: &mut Map<String, Value>, s: &Service) {
    for (key, value) in [
        ("cpu_shares", s.cpu_shares),
        ("cpu_quota", s.cpu_quota),
        ("cpu_period", s.cpu_period),
        ("cpu_rt_period", s.cpu_rt_period),
        ("cpu_rt_runtime", s.cpu_rt_runtime),
        ("mem_swappiness", s.mem_swappiness),
        ("oom_score_adj", s.oom_score_adj),
    ] {
        put_if(m, key, value.is_some(), json!(value));
    }
    // Sizes as Compose prints them: bytes, as text.
    put_if(m, "memswap_limit", s.memswap_limit.is_some(), json!(s.memswap_limit.map(|n| n.to_string())));
    for (key, value) in [
        ("cpuset", &s.cpuset),
        ("cgroup_parent", &s.cgroup_parent),
        ("cgroup", &s.cgroup),
        ("mac_address", &s.mac_address),
        ("platform", &s.platform),
        ("userns_mode", &s.userns_mode),
        ("uts", &s.uts),
        ("domainname", &s.domainname),
        ("runtime", &s.runtime),
        ("volume_driver", &s.volume_driver),
    ] {
        put_if(m, key, value.is_some(), json!(value));
    }
    for (key, list) in [
        ("device_cgroup_rules", &s.device_cgroup_rules),
        ("group_add", &s.group_add),
        ("external_links", &s.external_links),
        ("expose", &s.expose),
    ] {
        put_if(m, key, !list.is_empty(), json!(list));
    }
    put_if(m, "storage_opt", !s.storage_opt.is_empty(), json!(s.storage_opt));
    put_if(m, "annotations", !s.annotations.is_empty(), json!(s.annotations));
    if let Some(b) = &s.blkio_config {
        let mut blkio = Map::new();
        put_if(&mut blkio, "weight", b.weight.is_some(), json!(b.weight));
        let weights: Vec<Value> = b.weight_device.iter().map(|w| json!({"path": w.path, "weight": w.weight})).collect();
        put_if(&mut blkio, "weight_device", !weights.is_empty(), json!(weights));
        for (key, list) in [
            ("device_read_bps", &b.device_read_bps),
            ("device_read_iops", &b.device_read_iops),
            ("device_write_bps", &b.device_write_bps),
            ("device_write_iops", &b.device_write_iops),
        ] {
            let items: Vec<Value> = list.iter().map(|t| json!({"path": t.path, "rate": t.rate})).collect();
            put_if(&mut blkio, key, !items.is_empty(), json!(items));
        }
        m.insert("blkio_config".into(), Value::Object(blkio));
    }
    let gpus: Vec<Value> = s.gpus.iter().map(device_request).collect();
    put_if(m, "gpus", !gpus.is_empty(), json!(gpus));
    for (key, hooks) in [("post_start", &s.post_start), ("pre_stop", &s.pre_stop)] {
        let list: Vec<Value> = hooks.iter().map(hook).collect();
        put_if(m, key, !list.is_empty(), json!(list));
    }
}

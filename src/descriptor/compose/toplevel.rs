//! The top-level `networks:` and `volumes:` declarations.
//!
//! An entry may be null (`volumes: {site: }`): a resource the stack creates
//! with the engine's defaults. `external: true` (or the legacy
//! `external: {name: x}`) marks one that must already exist; it cannot also
//! say how to create it.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::fault::{Parsed, Place};
use super::value::{
    boolean, is_empty, list, list_or_dict, mapping, opt_string, scalar_string, string, type_name, unknown_key,
    unsupported_key,
};
use crate::stack::{Network, Subnet, Volume};

#[rustfmt::skip]
const NETWORK_KEYS: &[&str] = &[
    "name", "external", "driver", "driver_opts", "internal", "ipam", "labels", "attachable", "enable_ipv4",
    "enable_ipv6",
];
const VOLUME_KEYS: &[&str] = &["name", "external", "driver", "driver_opts", "labels"];

/// Whether a name is one Compose accepts for a service, network or volume key.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A name-keyed section (`networks:`, `volumes:`, `services:`): the entries
/// with valid keys, in file order.
pub(crate) fn section<'a>(value: &'a Value, place: &Place, what: &str) -> Parsed<Vec<(String, &'a Value)>> {
    let entries = mapping(value, place)?;
    for (name, _) in &entries {
        if !valid_name(name) {
            return Err(place.fault_at_key(
                name,
                format!("{what} name {name:?} is not valid: use letters, digits, \".\", \"_\" and \"-\""),
            ));
        }
    }
    Ok(entries)
}

/// `external:` in its three spellings; the legacy name comes back too.
fn external(value: &Value, place: &Place, warnings: &mut Vec<String>) -> Parsed<(bool, Option<String>)> {
    match value {
        Value::Mapping(_) => {
            let mut name = None;
            for (key, v) in mapping(value, place)? {
                match key.as_str() {
                    "name" => name = opt_string(v, &place.key(&key))?,
                    k if k.starts_with("x-") => {}
                    k => return Err(unknown_key(place, k, &["name"])),
                }
            }
            if name.is_some() {
                warnings.push(format!(
                    "{}: `external.name` is deprecated in Compose; write `name:` beside `external: true`",
                    place.describe()
                ));
            }
            Ok((true, name))
        }
        Value::Null => Ok((false, None)),
        other => Ok((boolean(other, place)?, None)),
    }
}

/// Driver options: values are strings (numbers are written as text).
fn driver_opts(value: &Value, place: &Place) -> Parsed<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (key, v) in mapping(value, place)? {
        let text = scalar_string(v)
            .ok_or_else(|| place.key(&key).fault(format!("expected a string, found {}", type_name(v))))?;
        out.insert(key, text);
    }
    Ok(out)
}

fn labels(value: &Value, place: &Place) -> Parsed<BTreeMap<String, String>> {
    Ok(list_or_dict(value, place)?.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
}

/// Refuses creation settings on an external resource.
fn check_external(external: bool, created_by: &[(&str, bool)], place: &Place) -> Parsed<()> {
    if !external {
        return Ok(());
    }
    if let Some((key, _)) = created_by.iter().find(|(_, set)| *set) {
        return Err(place.fault_at_key(
            key,
            format!("an external resource exists already, so {key:?} cannot apply to it; remove {key:?} or `external`"),
        ));
    }
    Ok(())
}

/// One top-level network.
pub(crate) fn network(value: &Value, place: &Place, warnings: &mut Vec<String>) -> Parsed<Network> {
    let mut net = Network::default();
    let mut legacy_name = None;
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "name" => net.name = opt_string(v, &at)?,
            "external" => (net.external, legacy_name) = external(v, &at, warnings)?,
            "driver" => net.driver = opt_string(v, &at)?,
            "driver_opts" => net.driver_opts = driver_opts(v, &at)?,
            "internal" => net.internal = !v.is_null() && boolean(v, &at)?,
            "labels" => net.labels = labels(v, &at)?,
            "ipam" => net.subnets = ipam(v, &at)?,
            "attachable" => net.attachable = !v.is_null() && boolean(v, &at)?,
            "enable_ipv6" => net.enable_ipv6 = !v.is_null() && boolean(v, &at)?,
            "enable_ipv4" => {
                if !v.is_null() && !boolean(v, &at)? {
                    return Err(unsupported_key(place, &key));
                }
            }
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, NETWORK_KEYS)),
        }
    }
    merge_legacy_name(&mut net.name, legacy_name, place)?;
    check_external(
        net.external,
        &[
            ("driver", net.driver.is_some()),
            ("driver_opts", !net.driver_opts.is_empty()),
            ("internal", net.internal),
            ("ipam", !net.subnets.is_empty()),
            ("enable_ipv6", net.enable_ipv6),
            ("attachable", net.attachable),
            ("labels", !net.labels.is_empty()),
        ],
        place,
    )?;
    Ok(net)
}

fn merge_legacy_name(name: &mut Option<String>, legacy: Option<String>, place: &Place) -> Parsed<()> {
    match (&*name, legacy) {
        (Some(a), Some(b)) if *a != b => {
            Err(place.fault(format!("`name` ({a:?}) and `external.name` ({b:?}) disagree; keep `name` only")))
        }
        (None, Some(b)) => {
            *name = Some(b);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `ipam:`: the default driver with `config: [{subnet, gateway, ip_range, aux_addresses}]`.
fn ipam(value: &Value, place: &Place) -> Parsed<Vec<Subnet>> {
    let mut subnets = Vec::new();
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "driver" => {
                if !matches!(opt_string(v, &at)?.as_deref(), None | Some("default")) {
                    return Err(unsupported_key(place, &key));
                }
            }
            "config" => {
                for (i, block) in list(v, &at)?.iter().enumerate() {
                    let bat = at.index(i);
                    let mut pool = Subnet::default();
                    for (bkey, bv) in mapping(block, &bat)? {
                        let kat = bat.key(&bkey);
                        match bkey.as_str() {
                            "subnet" => pool.subnet = string(bv, &kat)?,
                            "gateway" => pool.gateway = opt_string(bv, &kat)?,
                            "ip_range" => pool.ip_range = opt_string(bv, &kat)?,
                            "aux_addresses" => {
                                for (host, address) in mapping(bv, &kat)? {
                                    pool.aux_addresses.insert(host.clone(), string(address, &kat.key(&host))?);
                                }
                            }
                            k if k.starts_with("x-") => {}
                            k => return Err(unknown_key(&bat, k, &["subnet", "ip_range", "gateway", "aux_addresses"])),
                        }
                    }
                    if pool.subnet.is_empty() {
                        return Err(bat.fault("an IPAM pool needs `subnet` (CIDR, e.g. 172.20.0.0/24)"));
                    }
                    subnets.push(pool);
                }
            }
            "options" => {
                if !is_empty(v) {
                    return Err(unsupported_key(place, &key));
                }
            }
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, &["driver", "config", "options"])),
        }
    }
    Ok(subnets)
}

/// One top-level volume.
pub(crate) fn volume(value: &Value, place: &Place, warnings: &mut Vec<String>) -> Parsed<Volume> {
    let mut vol = Volume::default();
    let mut legacy_name = None;
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "name" => vol.name = opt_string(v, &at)?,
            "external" => (vol.external, legacy_name) = external(v, &at, warnings)?,
            "driver" => vol.driver = opt_string(v, &at)?,
            "driver_opts" => vol.driver_opts = driver_opts(v, &at)?,
            "labels" => vol.labels = labels(v, &at)?,
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, VOLUME_KEYS)),
        }
    }
    merge_legacy_name(&mut vol.name, legacy_name, place)?;
    check_external(
        vol.external,
        &[
            ("driver", vol.driver.is_some()),
            ("driver_opts", !vol.driver_opts.is_empty()),
            ("labels", !vol.labels.is_empty()),
        ],
        place,
    )?;
    Ok(vol)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn networks_in_every_form() {
        let at = Place::root().key("networks").key("front");
        let mut w = Vec::new();
        assert_eq!(network(&Value::Null, &at, &mut w).unwrap(), Network::default());
        let net = network(
            &yaml("{driver: bridge, driver_opts: {com.docker.network.driver.mtu: 1400}, internal: true, ipam: {config: [{subnet: 172.20.0.0/24}]}, labels: [a=b]}"),
            &at,
            &mut w,
        )
        .unwrap();
        assert_eq!(net.subnets[0].subnet, "172.20.0.0/24");
        assert_eq!(net.driver_opts["com.docker.network.driver.mtu"], "1400");
        assert!(net.internal);
        assert_eq!(net.labels["a"], "b");
        let ext = network(&yaml("{external: {name: shared}}"), &at, &mut w).unwrap();
        assert!(ext.external);
        assert_eq!(ext.name.as_deref(), Some("shared"));
        assert_eq!(w.len(), 1, "the legacy spelling warns");
        for bad in [
            "{external: true, driver: bridge}",
            "{ipam: {config: [{gateway: 10.0.0.1}]}}",
            "{enable_ipv4: false}",
            "{drivr: bridge}",
            "{name: a, external: {name: b}}",
            "[a]",
        ] {
            assert!(network(&yaml(bad), &at, &mut w).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_in_every_form() {
        let at = Place::root().key("volumes").key("data");
        let mut w = Vec::new();
        assert_eq!(volume(&Value::Null, &at, &mut w).unwrap(), Volume::default());
        let vol =
            volume(&yaml("{name: data-v1, driver: local, driver_opts: {type: none}, labels: {a: 1}}"), &at, &mut w)
                .unwrap();
        assert_eq!(vol.name.as_deref(), Some("data-v1"));
        assert_eq!(vol.labels["a"], "1");
        assert!(volume(&yaml("{external: true}"), &at, &mut w).unwrap().external);
        assert!(volume(&yaml("{external: true, driver: local}"), &at, &mut w).is_err());
        assert!(volume(&yaml("{size: 1g}"), &at, &mut w).is_err());
    }

    #[test]
    fn section_names_are_checked() {
        assert!(section(&yaml("{ok-name_1.x: {}}"), &Place::root(), "service").is_ok());
        assert!(section(&yaml("{'bad name': {}}"), &Place::root(), "service").is_err());
    }
}

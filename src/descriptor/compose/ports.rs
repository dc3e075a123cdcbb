//! `ports:`, short and long syntax.
//!
//! Short: `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`, where the ports
//! may be equal-sized ranges (`8000-8001:80-81` gives two ports), the host
//! port may be empty (`127.0.0.1::80`: the engine picks one) and an IPv6
//! host address is written in brackets (`[::1]:8080:80`). A bare number is
//! a container port. Long: `{target, published, host_ip, protocol, mode,
//! name, app_protocol}`.

use std::net::IpAddr;

use serde_yaml::Value;

use super::fault::{Parsed, Place};
use super::value::{mapping, scalar_string, string, type_name, unknown_key};
use crate::stack::Port;

const LONG_KEYS: &[&str] = &["target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"];

/// Parses the `ports:` list of a service.
pub(crate) fn ports(items: &[Value], place: &Place) -> Parsed<Vec<Port>> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = place.index(i);
        match item {
            Value::Mapping(_) => out.push(long(item, &at)?),
            Value::Number(_) | Value::String(_) => {
                let text = scalar_string(item).unwrap_or_default();
                out.extend(short(&text).map_err(|why| at.fault(format!("invalid port {text:?}: {why}")))?);
            }
            other => {
                return Err(at.fault(format!(
                    "expected a port (\"8080:80\") or a mapping (target, published, ...), found {}",
                    type_name(other)
                )))
            }
        }
    }
    Ok(out)
}

/// One short-syntax entry; ranges give several ports.
pub(crate) fn short(text: &str) -> Result<Vec<Port>, String> {
    let text = text.trim();
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, proto)) => (spec, protocol(proto)?),
        None => (text, "tcp".to_string()),
    };
    // The container port is after the last colon, the host port before it,
    // and anything before that is the host address (which may hold colons).
    let (host_ip, host, container) = match spec.rsplit_once(':') {
        None => (None, "", spec),
        Some((front, container)) => match front.rsplit_once(':') {
            None => (None, front, container),
            Some((ip, host)) => (host_ip(ip)?, host, container),
        },
    };
    let container = range(container, "container port")?;
    let host = if host.is_empty() { None } else { Some(range(host, "host port")?) };
    let count = container.1 - container.0 + 1;
    let published: Vec<Option<u16>> = match host {
        None => vec![None; usize::from(count)],
        Some((lo, hi)) if hi - lo + 1 == count => (lo..=hi).map(Some).collect(),
        Some((lo, hi)) if count == 1 => {
            return Err(format!(
                "a host port range ({lo}-{hi}) for one container port is not supported yet by dockmaster; \
                 publish one host port"
            ))
        }
        Some(_) => return Err("the host and container port ranges have different sizes".into()),
    };
    Ok((container.0..=container.1)
        .zip(published)
        .map(|(target, published)| Port { target, published, host_ip: host_ip.clone(), protocol: protocol.clone() })
        .collect())
}

/// A long-syntax entry.
fn long(value: &Value, place: &Place) -> Parsed<Port> {
    let mut port = Port { target: 0, published: None, host_ip: None, protocol: "tcp".into() };
    let mut has_target = false;
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        let text = || string(v, &at);
        match key.as_str() {
            "target" => {
                port.target = number(&text()?, "target").map_err(|why| at.fault(why))?;
                has_target = true;
            }
            "published" => {
                let published = if v.is_null() { String::new() } else { text()? };
                let published = published.trim();
                if published.contains('-') {
                    return Err(at.fault(format!(
                        "published port range {published:?} is not supported yet by dockmaster; publish one port"
                    )));
                }
                port.published = if published.is_empty() {
                    None
                } else {
                    Some(number(published, "published port").map_err(|why| at.fault(why))?)
                };
            }
            "host_ip" => {
                let ip = text()?;
                port.host_ip = if ip.trim().is_empty() { None } else { host_ip(&ip).map_err(|why| at.fault(why))? };
            }
            "protocol" => port.protocol = protocol(&text()?).map_err(|why| at.fault(why))?,
            // `ingress` and `host` publish the same way on a single engine.
            "mode" => match text()?.as_str() {
                "ingress" | "host" => {}
                other => return Err(at.fault(format!("unknown port mode {other:?}; use \"host\" or \"ingress\""))),
            },
            // Descriptive only, in Compose as here.
            "name" | "app_protocol" => {
                text()?;
            }
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, LONG_KEYS)),
        }
    }
    if !has_target {
        return Err(place.fault("a port in long syntax needs `target`, the port inside the container"));
    }
    Ok(port)
}

fn protocol(text: &str) -> Result<String, String> {
    let p = text.trim().to_ascii_lowercase();
    match p.as_str() {
        "tcp" | "udp" | "sctp" => Ok(p),
        _ => Err(format!("unknown protocol {text:?}; use tcp, udp or sctp")),
    }
}

/// A host address; `None` for an empty one. Brackets around IPv6 are dropped.
fn host_ip(text: &str) -> Result<Option<String>, String> {
    let trimmed = text.trim();
    let bare = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(trimmed);
    if bare.is_empty() {
        return Ok(None);
    }
    bare.parse::<IpAddr>()
        .map(|ip| Some(ip.to_string()))
        .map_err(|_| format!("{bare:?} is not an IP address (write IPv6 addresses in brackets: [::1]:8080:80)"))
}

fn number(text: &str, what: &str) -> Result<u16, String> {
    match text.trim().parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!("{what} {text:?} is not a port number (1-65535)")),
    }
}

/// `80` or `8000-8010`, as an inclusive range.
fn range(text: &str, what: &str) -> Result<(u16, u16), String> {
    match text.split_once('-') {
        None => number(text, what).map(|n| (n, n)),
        Some((lo, hi)) => {
            let (lo, hi) = (number(lo, what)?, number(hi, what)?);
            if lo > hi {
                return Err(format!("{what} range {text:?} runs backwards"));
            }
            Ok((lo, hi))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(target: u16, published: Option<u16>, ip: Option<&str>, protocol: &str) -> Port {
        Port { target, published, host_ip: ip.map(String::from), protocol: protocol.into() }
    }

    #[test]
    fn short_syntax_forms() {
        let table: Vec<(&str, Vec<Port>)> = vec![
            ("80", vec![port(80, None, None, "tcp")]),
            ("8080:80", vec![port(80, Some(8080), None, "tcp")]),
            ("127.0.0.1:8080:80", vec![port(80, Some(8080), Some("127.0.0.1"), "tcp")]),
            ("127.0.0.1::80", vec![port(80, None, Some("127.0.0.1"), "tcp")]),
            ("8080:80/udp", vec![port(80, Some(8080), None, "udp")]),
            ("53:53/UDP", vec![port(53, Some(53), None, "udp")]),
            ("[::1]:8080:80", vec![port(80, Some(8080), Some("::1"), "tcp")]),
            ("::1:8080:80", vec![port(80, Some(8080), Some("::1"), "tcp")]),
            ("8000-8001:80-81", vec![port(80, Some(8000), None, "tcp"), port(81, Some(8001), None, "tcp")]),
            ("80-81", vec![port(80, None, None, "tcp"), port(81, None, None, "tcp")]),
            (
                "0.0.0.0:9000-9001:9000-9001/udp",
                vec![port(9000, Some(9000), Some("0.0.0.0"), "udp"), port(9001, Some(9001), Some("0.0.0.0"), "udp")],
            ),
        ];
        for (text, expected) in table {
            assert_eq!(short(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_short_syntax_says_why() {
        for bad in [
            "",
            "80:abc",
            "abc",
            "0",
            "70000",
            "8080:80/icmp",
            "1.2.3:80:80",
            "8000-8001:80",
            "8000-8002:80-81",
            "81-80",
            ":80:",
            "80/",
        ] {
            assert!(short(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(short("8000-8001:80").unwrap_err().contains("not supported yet"));
    }

    #[test]
    fn long_syntax_and_mixed_lists() {
        let items: Vec<Value> =
            serde_yaml::from_str("- 80\n- \"443:443\"\n- {target: 53, published: \"5353\", protocol: udp, host_ip: 127.0.0.1, mode: host}\n- {target: 90, published: }\n")
                .unwrap();
        let at = Place::root().key("ports");
        assert_eq!(
            ports(&items, &at).unwrap(),
            vec![
                port(80, None, None, "tcp"),
                port(443, Some(443), None, "tcp"),
                port(53, Some(5353), Some("127.0.0.1"), "udp"),
                port(90, None, None, "tcp"),
            ]
        );
        for bad in
            ["[{published: 80}]", "[{target: 80, publish: 80}]", "[{target: 80, published: 8000-8001}]", "[[80]]"]
        {
            let items: Vec<Value> = serde_yaml::from_str(bad).unwrap();
            assert!(ports(&items, &at).is_err(), "{bad} must be refused");
        }
    }
}

//! Which services are deployed: profiles, and `scale: 0`.
//!
//! A service with `profiles:` is deployed only when one of them is active
//! (`--profile`, or `COMPOSE_PROFILES`; `*` activates every profile); a
//! service without profiles always is. A service scaled to zero is left
//! out too. Services left out are removed from the stack with a warning;
//! one that an enabled service needs (`depends_on` that is required,
//! `links`, `volumes_from`, `network_mode`/`pid`/`ipc: service:`) is an
//! error that says which profile to enable, as nothing would satisfy it.

use super::fault::{Parsed, Place};
use crate::stack::{Stack, VolumesFromSource};

/// The active profiles: `--profile` flags when given, else the
/// comma-separated `COMPOSE_PROFILES`.
pub(crate) fn active_profiles(flags: &[String], compose_profiles: Option<String>) -> Vec<String> {
    if !flags.is_empty() {
        return flags.to_vec();
    }
    compose_profiles
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Removes the services that are not enabled.
pub(crate) fn select(stack: &mut Stack, active: &[String], scaled_to_zero: &[String]) -> Parsed<()> {
    let all = active.iter().any(|p| p == "*");
    let mut left_out: Vec<(String, String)> = Vec::new();
    for (name, svc) in &stack.services {
        if scaled_to_zero.contains(name) {
            left_out.push((name.clone(), "it is scaled to 0".into()));
        } else if !all && !svc.profiles.is_empty() && !svc.profiles.iter().any(|p| active.contains(p)) {
            let names: Vec<String> = svc.profiles.iter().map(|p| format!("{p:?}")).collect();
            left_out.push((name.clone(), format!("its profiles ({}) are not active", names.join(", "))));
        }
    }
    for (name, _) in &left_out {
        stack.services.remove(name);
    }
    let services = Place::root().key("services");
    for (name, svc) in &stack.services {
        let mut needed: Vec<(&str, String)> = Vec::new();
        needed.extend(svc.depends_on.iter().filter(|(_, d)| d.required).map(|(n, _)| ("depends_on", n.clone())));
        needed.extend(svc.links.iter().map(|l| ("links", l.split(':').next().unwrap_or(l).to_string())));
        needed.extend(svc.volumes_from.iter().filter_map(|v| match &v.source {
            VolumesFromSource::Service(s) => Some(("volumes_from", s.clone())),
            VolumesFromSource::Container(_) => None,
        }));
        for (key, mode) in [("network_mode", &svc.network_mode), ("pid", &svc.pid), ("ipc", &svc.ipc)] {
            if let Some(other) = mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
                needed.push((key, other.to_string()));
            }
        }
        for (key, other) in needed {
            if let Some((_, why)) = left_out.iter().find(|(n, _)| *n == other) {
                let fix = if why.starts_with("its profiles") {
                    "; enable one of them (--profile NAME or COMPOSE_PROFILES)"
                } else {
                    ""
                };
                return Err(services
                    .key(name)
                    .fault_at_key(key, format!("needs service {other:?}, which is left out because {why}{fix}")));
            }
        }
    }
    if !left_out.is_empty() {
        let list: Vec<String> = left_out.iter().map(|(n, why)| format!("{n:?} ({why})")).collect();
        stack.warnings.push(format!("services left out of this deploy: {}", list.join(", ")));
    }
    if stack.services.is_empty() {
        return Err(Place::root().fault(format!(
            "no service is enabled: every service has profiles, none of them active (active: {}); \
             enable one with --profile NAME or COMPOSE_PROFILES",
            if active.is_empty() { "none".to_string() } else { active.join(", ") }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{Condition, Dependency, Format, Service};

    fn stack() -> Stack {
        let svc = |profiles: &[&str]| Service {
            image: "x".into(),
            profiles: profiles.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        };
        let mut web = svc(&[]);
        web.depends_on.insert(
            "debug".into(),
            Dependency { condition: Condition::ServiceStarted, required: false, restart: false },
        );
        Stack {
            name: "p".into(),
            format: Format::Spec,
            services: [
                ("web".to_string(), web),
                ("debug".to_string(), svc(&["debug"])),
                ("test".to_string(), svc(&["test", "ci"])),
            ]
            .into_iter()
            .collect(),
            networks: Default::default(),
            volumes: Default::default(),
            warnings: vec![],
            inputs: Default::default(),
        }
    }

    #[test]
    fn only_services_of_active_profiles_stay() {
        let mut s = stack();
        select(&mut s, &[], &[]).unwrap();
        assert_eq!(s.services.keys().collect::<Vec<_>>(), ["web"]);
        assert!(s.warnings[0].contains("\"debug\""), "{:?}", s.warnings);
        let mut s = stack();
        select(&mut s, &["ci".into()], &[]).unwrap();
        assert_eq!(s.services.keys().collect::<Vec<_>>(), ["test", "web"]);
        let mut s = stack();
        select(&mut s, &["*".into()], &["web".into()]).unwrap();
        assert_eq!(s.services.keys().collect::<Vec<_>>(), ["debug", "test"]);
    }

    #[test]
    fn a_needed_service_that_is_left_out_is_an_error() {
        let mut s = stack();
        s.services.get_mut("web").unwrap().depends_on.get_mut("debug").unwrap().required = true;
        let err = select(&mut s, &[], &[]).unwrap_err();
        assert!(
            err.message.contains("needs service \"debug\"") && err.message.contains("--profile"),
            "{}",
            err.message
        );
    }

    #[test]
    fn profiles_come_from_flags_or_the_environment() {
        assert_eq!(active_profiles(&["a".into()], Some("b,c".into())), vec!["a"]);
        assert_eq!(active_profiles(&[], Some(" b, ,c".into())), vec!["b", "c"]);
        assert!(active_profiles(&[], None).is_empty());
    }
}

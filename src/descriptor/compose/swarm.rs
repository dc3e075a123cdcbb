//! The keys of `deploy:` that only Swarm acts on, read into
//! [`SwarmDeploy`]: `replicas`, `update_config`, `rollback_config`,
//! `placement`, `labels` and the delay and window of `restart_policy`.
//! They are checked as strictly as the rest, so a typo in a rollout setting
//! fails on every engine, not only on the cluster.

use serde_yaml::Value;

use super::fault::{Parsed, Place};
use super::units::duration;
use super::value::{
    float, is_empty, list, list_or_dict, mapping, opt_string, string, string_list, unknown_key, unsigned,
};
use crate::stack::{Placement, SwarmRestart, UpdateConfig};

const UPDATE_KEYS: &[&str] = &["parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"];
const PLACEMENT_KEYS: &[&str] = &["constraints", "preferences", "max_replicas_per_node"];

/// `update_config` or (with `rollback: true`) `rollback_config`.
pub(crate) fn update_config(value: &Value, place: &Place, rollback: bool) -> Parsed<Option<UpdateConfig>> {
    if is_empty(value) {
        return Ok(None);
    }
    let mut out = UpdateConfig::default();
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "parallelism" => out.parallelism = Some(unsigned(v, &at)?),
            "delay" => out.delay = Some(duration_at(v, &at)?),
            "monitor" => out.monitor = Some(duration_at(v, &at)?),
            "max_failure_ratio" => {
                let ratio = float(v, &at)?;
                if !(0.0..=1.0).contains(&ratio) {
                    return Err(at.fault(format!("{ratio} is not a ratio between 0 and 1")));
                }
                out.max_failure_ratio = Some(ratio);
            }
            "failure_action" => {
                let action = string(v, &at)?;
                let allowed: &[&str] =
                    if rollback { &["continue", "pause"] } else { &["continue", "rollback", "pause"] };
                if !allowed.contains(&action.as_str()) {
                    return Err(
                        at.fault(format!("unknown failure_action {action:?}; use one of {}", allowed.join(", ")))
                    );
                }
                out.failure_action = Some(action);
            }
            "order" => {
                let order = string(v, &at)?;
                if !matches!(order.as_str(), "start-first" | "stop-first") {
                    return Err(at.fault(format!("unknown order {order:?}; use \"start-first\" or \"stop-first\"")));
                }
                out.order = Some(order);
            }
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, UPDATE_KEYS)),
        }
    }
    Ok(Some(out))
}

/// `placement`: constraints (`node.role == manager`), spread preferences
/// and `max_replicas_per_node`.
pub(crate) fn placement(value: &Value, place: &Place) -> Parsed<Placement> {
    let mut out = Placement::default();
    if is_empty(value) {
        return Ok(out);
    }
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        match key.as_str() {
            "constraints" => {
                out.constraints = string_list(v, &at)?;
                for (i, c) in out.constraints.iter().enumerate() {
                    if !(c.contains("==") || c.contains("!=")) {
                        return Err(at.index(i).fault(format!(
                            "constraint {c:?} has no `==` or `!=` (write it like \"node.role == manager\")"
                        )));
                    }
                }
            }
            "preferences" => {
                for (i, item) in list(v, &at)?.iter().enumerate() {
                    let iat = at.index(i);
                    for (kind, target) in mapping(item, &iat)? {
                        if kind != "spread" {
                            return Err(unknown_key(&iat, &kind, &["spread"]));
                        }
                        out.spread.push(string(target, &iat.key("spread"))?);
                    }
                }
            }
            "max_replicas_per_node" => {
                if !v.is_null() {
                    out.max_replicas_per_node = Some(unsigned(v, &at)?);
                }
            }
            k if k.starts_with("x-") => {}
            k => return Err(unknown_key(place, k, PLACEMENT_KEYS)),
        }
    }
    Ok(out)
}

/// `deploy.labels` (list or map): labels on the Swarm service itself.
pub(crate) fn labels(value: &Value, place: &Place) -> Parsed<std::collections::BTreeMap<String, String>> {
    Ok(list_or_dict(value, place)?.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
}

/// The Swarm side of `restart_policy`: the same condition, with the delay
/// and window that only Swarm honours.
pub(crate) fn restart(value: &Value, place: &Place) -> Parsed<Option<SwarmRestart>> {
    if is_empty(value) {
        return Ok(None);
    }
    let mut out = SwarmRestart { condition: "any".into(), ..SwarmRestart::default() };
    for (key, v) in mapping(value, place)? {
        let at = place.key(&key);
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "condition" => out.condition = string(v, &at)?,
            "max_attempts" => out.max_attempts = Some(unsigned(v, &at)?),
            "delay" => out.delay = Some(duration_at(v, &at)?),
            "window" => out.window = Some(duration_at(v, &at)?),
            // The engine-side reading of the block has named any other key.
            _ => {}
        }
    }
    Ok(Some(out))
}

fn duration_at(value: &Value, place: &Place) -> Parsed<std::time::Duration> {
    let text = opt_string(value, place)?.unwrap_or_default();
    duration(&text).map_err(|why| place.fault(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn rollout_settings_are_read_and_checked() {
        let at = Place::root();
        let u = update_config(
            &yaml("{parallelism: 1, delay: 2s, order: start-first, failure_action: rollback, monitor: 5s, max_failure_ratio: 0.5}"),
            &at,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(u.parallelism, Some(1));
        assert_eq!(u.delay, Some(std::time::Duration::from_secs(2)));
        assert_eq!(u.order.as_deref(), Some("start-first"));
        assert_eq!(u.max_failure_ratio, Some(0.5));
        let err = update_config(&yaml("{order: sideways}"), &at, false).unwrap_err().message;
        assert!(err.contains("sideways") && err.contains("start-first"), "{err}");
        let err = update_config(&yaml("{failure_action: rollback}"), &at, true).unwrap_err().message;
        assert!(err.contains("continue, pause"), "{err}");
        assert!(update_config(&yaml("{paralelism: 1}"), &at, false).unwrap_err().message.contains("paralelism"));
        assert!(update_config(&yaml("{max_failure_ratio: 2}"), &at, false).is_err());
    }

    #[test]
    fn placement_forms() {
        let at = Place::root();
        let p = placement(
            &yaml("{constraints: ['node.role == manager'], preferences: [{spread: node.labels.zone}], max_replicas_per_node: 2}"),
            &at,
        )
        .unwrap();
        assert_eq!(p.constraints, vec!["node.role == manager"]);
        assert_eq!(p.spread, vec!["node.labels.zone"]);
        assert_eq!(p.max_replicas_per_node, Some(2));
        let err = placement(&yaml("{constraints: ['node.role manager']}"), &at).unwrap_err().message;
        assert!(err.contains("=="), "{err}");
        assert!(placement(&yaml("{preferences: [{pack: x}]}"), &at).is_err());
    }
}

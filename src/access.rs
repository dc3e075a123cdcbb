//! Access rules: which directory groups (or users) may do which actions to
//! which descriptors in which environments.
//!
//! Deny wins over allow, and no matching rule means deny, so a rule set
//! can only grant what it names. A denial says which rule denied, or that
//! none allowed, so a person knows whom to ask.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::identity::Principal;

/// The actions rules can name.
pub const ACTIONS: &[&str] = &["deploy", "plan", "status", "rollback", "down", "history", "approve", "admin"];

/// The `access` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// The rules, in any order (deny wins).
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `allow` (default) or `deny`.
    #[serde(default)]
    pub effect: Effect,
    /// Directory group names this rule applies to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// User ids this rule applies to.
    #[serde(default)]
    pub users: Vec<String>,
    /// Actions (see [`ACTIONS`]), or `*`.
    pub actions: Vec<String>,
    /// Descriptor patterns over `APPLICATION/RELEASE` (or a file path):
    /// `*` matches within one path segment, `**` across segments.
    pub descriptors: Vec<String>,
    /// Environments, or `*`. Default: every environment.
    #[serde(default = "every")]
    pub environments: Vec<String>,
}

fn every() -> Vec<String> {
    vec!["*".into()]
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Grants the access.
    #[default]
    Allow,
    /// Refuses it, whatever else allows it.
    Deny,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the rule at this index.
    Allow {
        /// Index of the rule in the configuration.
        rule: usize,
    },
    /// Denied, and why.
    Deny {
        /// What denied it, in words.
        reason: String,
    },
}

impl AccessConfig {
    /// Checks the rules once, at start-up, so a typo fails loudly.
    pub fn validate(&self) -> Result<()> {
        for (i, rule) in self.rules.iter().enumerate() {
            for action in &rule.actions {
                if action != "*" && !ACTIONS.contains(&action.as_str()) {
                    return Err(Error::Usage(format!(
                        "access.rules[{i}]: unknown action `{action}` (one of {}, or *)",
                        ACTIONS.join(", ")
                    )));
                }
            }
            if rule.groups.is_empty() && rule.users.is_empty() {
                return Err(Error::Usage(format!("access.rules[{i}]: name `groups` or `users` it applies to")));
            }
            if rule.descriptors.is_empty() {
                return Err(Error::Usage(format!("access.rules[{i}]: `descriptors` is empty (use \"**\" for all)")));
            }
        }
        Ok(())
    }
}

/// Decides whether `principal` may do `action` to `descriptor` (its
/// `APPLICATION/RELEASE`, or its file path) in `environment`.
pub fn authorize(
    config: &AccessConfig,
    principal: &Principal,
    action: &str,
    descriptor: &str,
    environment: &str,
) -> Decision {
    let applies = |rule: &Rule| {
        let who = rule.users.contains(&principal.uid)
            || rule.groups.iter().any(|g| principal.groups.iter().any(|p| p == g) || *g == principal.dn);
        let what = rule.actions.iter().any(|a| a == "*" || a == action);
        let which = rule.descriptors.iter().any(|p| glob(p, descriptor));
        let r#where = rule.environments.iter().any(|e| e == "*" || e == environment);
        who && what && which && r#where
    };
    if let Some(i) = config.rules.iter().position(|r| r.effect == Effect::Deny && applies(r)) {
        return Decision::Deny { reason: format!("denied by access rule {i} (effect: deny)") };
    }
    match config.rules.iter().position(|r| r.effect == Effect::Allow && applies(r)) {
        Some(rule) => Decision::Allow { rule },
        None => Decision::Deny {
            reason: format!(
                "no access rule allows `{action}` on `{descriptor}` in `{environment}` for {} (groups: {}); \
                 ask an administrator to add one",
                principal.uid,
                if principal.groups.is_empty() { "none".to_string() } else { principal.groups.join(", ") }
            ),
        },
    }
}

/// `*` matches any run of characters but `/`; `**` matches anything.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p {
            [] => t.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=t.len()).any(|i| go(rest, &t[i..])),
            [b'*', rest @ ..] => (0..=t.len()).take_while(|&i| i == 0 || t[i - 1] != b'/').any(|i| go(rest, &t[i..])),
            [c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal {
            uid: "alice".into(),
            dn: "uid=alice,ou=people,dc=example,dc=org".into(),
            display_name: None,
            mail: None,
            groups: vec!["tlo-devs".into()],
        }
    }

    fn config(yaml: &str) -> AccessConfig {
        let c: AccessConfig = serde_yaml::from_str(yaml).unwrap();
        c.validate().unwrap();
        c
    }

    #[test]
    fn groups_get_actions_on_descriptor_patterns_in_environments() {
        let c = config("rules:\n  - groups: [tlo-devs]\n    actions: [deploy, plan, status, rollback]\n    descriptors: [\"TLO GE/*\"]\n    environments: [dev, qa]\n");
        assert_eq!(authorize(&c, &alice(), "deploy", "TLO GE/Milestone", "dev"), Decision::Allow { rule: 0 });
        let Decision::Deny { reason } = authorize(&c, &alice(), "deploy", "TLO GE/Milestone", "prod") else { panic!() };
        assert!(reason.contains("no access rule allows `deploy`") && reason.contains("tlo-devs"), "{reason}");
        assert!(matches!(authorize(&c, &alice(), "down", "TLO GE/Milestone", "dev"), Decision::Deny { .. }));
        assert!(matches!(authorize(&c, &alice(), "deploy", "TLO EE/Milestone", "dev"), Decision::Deny { .. }));
    }

    #[test]
    fn deny_wins_and_no_rule_means_deny() {
        let c = config("rules:\n  - groups: [tlo-devs]\n    actions: [\"*\"]\n    descriptors: [\"**\"]\n  - effect: deny\n    users: [alice]\n    actions: [down]\n    descriptors: [\"**\"]\n");
        assert_eq!(authorize(&c, &alice(), "deploy", "a/b", "dev"), Decision::Allow { rule: 0 });
        let Decision::Deny { reason } = authorize(&c, &alice(), "down", "a/b", "dev") else { panic!() };
        assert!(reason.contains("rule 1"), "{reason}");
        assert!(matches!(authorize(&AccessConfig::default(), &alice(), "plan", "a/b", "dev"), Decision::Deny { .. }));
    }

    #[test]
    fn typos_fail_at_load_and_globs_respect_segments() {
        let c: AccessConfig =
            serde_yaml::from_str("rules:\n  - groups: [x]\n    actions: [deploi]\n    descriptors: [\"*\"]\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("rules[0]: unknown action `deploi`"));
        assert!(glob("TLO GE/*", "TLO GE/Milestone"));
        assert!(!glob("TLO GE/*", "TLO GE/Milestone/3"));
        assert!(glob("**", "/srv/x/compose.yaml"));
        assert!(!glob("*", "a/b"));
    }
}

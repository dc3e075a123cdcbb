//! The `access` section: who may do what, to which descriptors, where.
//! Deciding a request against the rules is `crate::access`'s business.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The actions rules can name, in the order `access::allowed_actions` lists
/// them.
pub const ACTIONS: &[&str] = &["deploy", "plan", "status", "rollback", "down", "history", "approve", "admin"];

/// The `access` section of the configuration. Deserializing checks it
/// ([`AccessConfig::validate`]), so a typo fails when the file is read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "RawAccessConfig")]
pub struct AccessConfig {
    /// The rules, in any order (deny wins; indexes name them in messages).
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessConfig {
    #[serde(default)]
    rules: Vec<Rule>,
}

impl TryFrom<RawAccessConfig> for AccessConfig {
    type Error = Error;

    fn try_from(raw: RawAccessConfig) -> Result<AccessConfig> {
        let config = AccessConfig { rules: raw.rules };
        config.validate()?;
        Ok(config)
    }
}

/// One rule: who, may (or may not) do what, to which descriptors, where.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `allow` (default) or `deny`.
    #[serde(default)]
    pub effect: Effect,
    /// Directory groups this rule applies to: names (`tlo-devs`, compared
    /// without regard to case) or DNs (`cn=tlo-devs,ou=groups,...`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// User ids this rule applies to (compared without regard to case).
    #[serde(default)]
    pub users: Vec<String>,
    /// Actions (see [`ACTIONS`]), or `*` for all of them.
    pub actions: Vec<String>,
    /// Patterns over `APPLICATION/RELEASE[/VERSION]` or a file path: `*`
    /// matches any run of characters but `/`, `**` anything. A pattern
    /// without a version matches every version.
    pub descriptors: Vec<String>,
    /// Environment names, or `*` (the default).
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

impl AccessConfig {
    /// Checks the rules, so a typo fails loudly at start-up instead of
    /// silently granting or refusing. Errors name the rule by its index:
    /// `access.rules[2]: unknown action `deploi``.
    pub fn validate(&self) -> Result<()> {
        for (i, rule) in self.rules.iter().enumerate() {
            let bad = |message: String| Err(Error::Usage(format!("access.rules[{i}]: {message}")));
            if rule.actions.is_empty() {
                return bad(format!("`actions` is empty (name some of {}, or \"*\")", ACTIONS.join(", ")));
            }
            for action in &rule.actions {
                if action != "*" && !ACTIONS.contains(&action.as_str()) {
                    return bad(format!("unknown action `{action}` (one of {}, or \"*\")", ACTIONS.join(", ")));
                }
            }
            if rule.groups.is_empty() && rule.users.is_empty() {
                return bad("name the `groups` or `users` it applies to".into());
            }
            for who in rule.groups.iter().chain(&rule.users) {
                if who.trim().is_empty() {
                    return bad("an empty group or user name".into());
                }
            }
            if rule.descriptors.is_empty() {
                return bad("`descriptors` is empty (use \"**\" for all)".into());
            }
            if rule.descriptors.iter().any(|d| d.is_empty()) {
                return bad("an empty descriptor pattern (use \"**\" for all)".into());
            }
            if rule.environments.is_empty() || rule.environments.iter().any(|e| e.is_empty()) {
                return bad("`environments` is empty (leave it out, or use \"*\", for all)".into());
            }
        }
        Ok(())
    }
}

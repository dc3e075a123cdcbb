//! Access rules: which directory groups (or users) may do which actions to
//! which descriptors in which environments.
//!
//! Deny wins over allow, and no matching rule means deny, so a rule set
//! can only grant what it names. A denial says which rule denied, or that
//! none allowed, so a person knows whom to ask. Pure: no I/O.
//!
//! ```yaml
//! rules:
//!   - groups: [tlo-devs]
//!     actions: [deploy, plan, status, rollback]
//!     descriptors: ["TLO GE/*"]
//!     environments: [dev, qa]
//! ```

use crate::identity::Principal;

pub use crate::config::access::{AccessConfig, Effect, Rule, ACTIONS};

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the rule at this index of `access.rules`.
    Allow {
        /// Index of the rule in the configuration.
        rule: usize,
    },
    /// Denied, and why, in words meant for the person asking.
    Deny {
        /// Which rule denied it, or what no rule allows.
        reason: String,
    },
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// Decides whether `principal` may do `action` to `descriptor`
/// (`APPLICATION/RELEASE`, `APPLICATION/RELEASE/VERSION`, or a file path)
/// in `environment`. Deny wins; no matching rule denies.
pub fn authorize(
    config: &AccessConfig,
    principal: &Principal,
    action: &str,
    descriptor: &str,
    environment: &str,
) -> Decision {
    let mut allowed_by = None;
    for (i, rule) in config.rules.iter().enumerate() {
        let Some(who) = applies(rule, principal, action, descriptor, environment) else { continue };
        match rule.effect {
            Effect::Deny => {
                return Decision::Deny {
                    reason: format!(
                        "access.rules[{i}] denies `{action}` on `{descriptor}` in `{environment}` to {who}; \
                         ask an administrator if this is wrong"
                    ),
                };
            }
            Effect::Allow => {
                allowed_by.get_or_insert(i);
            }
        }
    }
    match allowed_by {
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

/// The actions `principal` may do to `descriptor` in `environment`, in
/// the order of [`ACTIONS`] (for help texts: "you may: plan, status").
pub fn allowed_actions(
    config: &AccessConfig,
    principal: &Principal,
    descriptor: &str,
    environment: &str,
) -> Vec<String> {
    ACTIONS
        .iter()
        .filter(|action| authorize(config, principal, action, descriptor, environment).is_allowed())
        .map(|action| action.to_string())
        .collect()
}

/// Whether some rule lets `principal` do `action` to something,
/// somewhere: for help texts that list what a person may do at all.
pub fn allowed_anywhere(config: &AccessConfig, principal: &Principal, action: &str) -> bool {
    config.rules.iter().any(|rule| {
        rule.effect == Effect::Allow
            && rule.actions.iter().any(|a| a == "*" || a == action)
            && (rule.users.iter().any(|u| same_name(u, &principal.uid))
                || rule.groups.iter().any(|g| member_of(principal, g)))
    })
}

/// Whether `rule` covers this request; if so, which part of the principal
/// it matched (`user alice`, `group ops`), for the denial message.
fn applies(rule: &Rule, principal: &Principal, action: &str, descriptor: &str, environment: &str) -> Option<String> {
    let what = rule.actions.iter().any(|a| a == "*" || a == action);
    let which = rule.descriptors.iter().any(|p| descriptor_matches(p, descriptor));
    let r#where = rule.environments.iter().any(|e| e == "*" || e == environment);
    if !(what && which && r#where) {
        return None;
    }
    if let Some(user) = rule.users.iter().find(|u| same_name(u, &principal.uid)) {
        return Some(format!("user {user}"));
    }
    rule.groups.iter().find(|g| member_of(principal, g)).map(|g| format!("{} (group {g})", principal.uid))
}

/// A group entry of a rule is a DN when it holds `=` (names cannot),
/// compared as the directory compares DNs; otherwise a name.
fn member_of(principal: &Principal, group: &str) -> bool {
    if group.contains('=') {
        let wanted = crate::identity::normalize_dn(group);
        principal.group_dns.iter().any(|dn| crate::identity::normalize_dn(dn) == wanted)
    } else {
        principal.groups.iter().any(|name| same_name(name, group))
    }
}

/// Directory names (`uid`, `cn`) match without regard to case.
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// A pattern matches the descriptor itself or, for a versioned reference
/// `APPLICATION/RELEASE/VERSION`, its `APPLICATION/RELEASE`: a rule that
/// names no version covers them all.
fn descriptor_matches(pattern: &str, descriptor: &str) -> bool {
    glob(pattern, descriptor) || unversioned(descriptor).is_some_and(|d| glob(pattern, d))
}

/// `APPLICATION/RELEASE` of `APPLICATION/RELEASE/VERSION`; `None` for file
/// paths (absolute, relative with `.`, or ending in `.yml`, `.yaml`,
/// `.json`) and for references without a version.
fn unversioned(descriptor: &str) -> Option<&str> {
    let lower = descriptor.to_ascii_lowercase();
    let is_path = descriptor.starts_with('/')
        || descriptor.starts_with('.')
        || descriptor.contains('\\')
        || [".yml", ".yaml", ".json"].iter().any(|ext| lower.ends_with(ext));
    if is_path || descriptor.matches('/').count() != 2 {
        return None;
    }
    descriptor.rsplit_once('/').map(|(reference, _)| reference)
}

/// `*` matches any run of characters but `/`; `**` matches anything;
/// everything else, spaces included, matches itself. Takes time in
/// proportion to the pattern's length times the text's, whatever the stars.
pub fn glob(pattern: &str, text: &str) -> bool {
    enum Token {
        Anything,
        WithinSegment,
        Byte(u8),
    }
    let mut tokens = Vec::new();
    let mut p = pattern.as_bytes();
    while let Some((&c, rest)) = p.split_first() {
        p = rest;
        tokens.push(match c {
            b'*' if p.first() == Some(&b'*') => {
                p = &p[1..];
                Token::Anything
            }
            b'*' => Token::WithinSegment,
            c => Token::Byte(c),
        });
    }
    // matches[j]: the tokens from here on match text[j..].
    let t = text.as_bytes();
    let n = t.len();
    let mut matches = vec![false; n + 1];
    matches[n] = true;
    for token in tokens.iter().rev() {
        let mut here = vec![false; n + 1];
        match token {
            Token::Byte(c) => {
                for j in 0..n {
                    here[j] = t[j] == *c && matches[j + 1];
                }
            }
            Token::Anything => {
                let mut any = false;
                for j in (0..=n).rev() {
                    any |= matches[j];
                    here[j] = any;
                }
            }
            Token::WithinSegment => {
                for j in (0..=n).rev() {
                    here[j] = matches[j] || (j < n && t[j] != b'/' && here[j + 1]);
                }
            }
        }
        matches = here;
    }
    matches[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(uid: &str, groups: &[&str]) -> Principal {
        Principal {
            uid: uid.into(),
            dn: format!("uid={uid},ou=people,dc=example,dc=org"),
            display_name: None,
            mail: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            group_dns: groups.iter().map(|g| format!("cn={g},ou=groups,dc=example,dc=org")).collect(),
        }
    }

    fn alice() -> Principal {
        person("alice", &["tlo-devs"])
    }

    fn config(yaml: &str) -> AccessConfig {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn reason(decision: Decision) -> String {
        match decision {
            Decision::Deny { reason } => reason,
            Decision::Allow { rule } => panic!("expected a denial, allowed by rule {rule}"),
        }
    }

    const TEAMS: &str = "rules:
  - groups: [tlo-devs]
    actions: [deploy, plan, status, rollback]
    descriptors: [\"TLO GE/*\"]
    environments: [dev, qa]
";

    #[test]
    fn a_group_may_do_its_actions_on_its_descriptors_in_its_environments_and_nothing_else() {
        let c = config(TEAMS);
        assert_eq!(authorize(&c, &alice(), "deploy", "TLO GE/Milestone", "dev"), Decision::Allow { rule: 0 });
        assert_eq!(authorize(&c, &alice(), "rollback", "TLO GE/Milestone", "qa"), Decision::Allow { rule: 0 });
        let r = reason(authorize(&c, &alice(), "deploy", "TLO GE/Milestone", "prod"));
        assert!(r.contains("no access rule allows `deploy` on `TLO GE/Milestone` in `prod` for alice"), "{r}");
        assert!(r.contains("groups: tlo-devs"), "{r}");
        assert!(!authorize(&c, &alice(), "down", "TLO GE/Milestone", "dev").is_allowed(), "action not granted");
        assert!(!authorize(&c, &alice(), "deploy", "TLO EE/Milestone", "dev").is_allowed(), "other application");
        assert!(!authorize(&c, &person("bob", &["ops"]), "plan", "TLO GE/Milestone", "dev").is_allowed());
        let r = reason(authorize(&c, &person("nobody", &[]), "plan", "TLO GE/Milestone", "dev"));
        assert!(r.contains("(groups: none)"), "{r}");
    }

    #[test]
    fn patterns_with_spaces_match_literally_and_versions_are_covered_by_unversioned_patterns() {
        let c = config(TEAMS);
        assert!(authorize(&c, &alice(), "deploy", "TLO GE/Milestone/3.2", "dev").is_allowed(), "any version");
        assert!(!authorize(&c, &alice(), "deploy", "TLO GEX/Milestone", "dev").is_allowed());
        assert!(!authorize(&c, &alice(), "deploy", "TLO  GE/Milestone", "dev").is_allowed(), "two spaces differ");
        let pinned = config(
            "rules:\n  - groups: [tlo-devs]\n    actions: [deploy]\n    descriptors: [\"TLO GE/Milestone/3.*\"]\n",
        );
        assert!(authorize(&pinned, &alice(), "deploy", "TLO GE/Milestone/3.2", "dev").is_allowed());
        assert!(!authorize(&pinned, &alice(), "deploy", "TLO GE/Milestone/4.0", "dev").is_allowed());
        assert!(!authorize(&pinned, &alice(), "deploy", "TLO GE/Milestone", "dev").is_allowed(), "no version given");
        // File paths: `*` stays within a folder, a version is never guessed.
        let files = config("rules:\n  - users: [alice]\n    actions: [plan]\n    descriptors: [\"/srv/tlo/*\"]\n");
        assert!(authorize(&files, &alice(), "plan", "/srv/tlo/compose.yaml", "dev").is_allowed());
        assert!(!authorize(&files, &alice(), "plan", "/srv/tlo/x/compose.yaml", "dev").is_allowed());
        assert!(!authorize(&files, &alice(), "plan", "/srv/tlo", "dev").is_allowed());
        assert!(glob("TLO GE/*", "TLO GE/Milestone"));
        assert!(!glob("TLO GE/*", "TLO GE/Milestone/3"));
        assert!(glob("TLO GE/**", "TLO GE/Milestone/3"));
        assert!(glob("**", "/srv/x/compose.yaml"));
        assert!(!glob("*", "a/b"));
        assert!(glob("*/web-*", "shop/web-2"));
        assert!(glob("a**b", "a/x/b") && !glob("a*b", "a/x/b") && glob("", "") && !glob("", "a"));
        let long = "a/".repeat(200);
        assert!(!glob("**a**a**a**a**a**a**b", &long), "no exponential back-tracking");
    }

    #[test]
    fn deny_wins_over_allow_and_names_the_rule_and_what_it_matched() {
        let c = config(
            "rules:
  - groups: [tlo-devs]
    actions: [\"*\"]
    descriptors: [\"**\"]
  - effect: deny
    users: [alice]
    actions: [down]
    descriptors: [\"**\"]
  - effect: deny
    groups: [interns]
    actions: [\"*\"]
    descriptors: [\"**\"]
    environments: [prod]
",
        );
        assert_eq!(authorize(&c, &alice(), "deploy", "a/b", "dev"), Decision::Allow { rule: 0 });
        let r = reason(authorize(&c, &alice(), "down", "a/b", "dev"));
        assert!(r.starts_with("access.rules[1] denies `down` on `a/b` in `dev` to user alice"), "{r}");
        let intern = person("ivy", &["tlo-devs", "interns"]);
        assert!(authorize(&c, &intern, "deploy", "a/b", "dev").is_allowed());
        let r = reason(authorize(&c, &intern, "deploy", "a/b", "prod"));
        assert!(r.contains("access.rules[2]") && r.contains("ivy (group interns)"), "{r}");
        // The order of the rules does not matter: deny still wins.
        let mut reversed = c.clone();
        reversed.rules.reverse();
        assert!(!authorize(&reversed, &alice(), "down", "a/b", "dev").is_allowed());
    }

    #[test]
    fn no_rules_means_nothing_is_allowed() {
        let empty = AccessConfig::default();
        for action in ACTIONS {
            assert!(!authorize(&empty, &alice(), action, "a/b", "dev").is_allowed(), "{action}");
        }
        assert!(allowed_actions(&empty, &alice(), "a/b", "dev").is_empty());
        assert!(config("rules: []\n").rules.is_empty());
    }

    #[test]
    fn groups_match_by_name_or_by_dn_and_names_ignore_case() {
        let c = config(
            "rules:
  - groups: [\"CN=TLO-Devs, ou=groups,dc=example,dc=org\"]
    actions: [status]
    descriptors: [\"**\"]
  - groups: [TLO-DEVS]
    actions: [plan]
    descriptors: [\"**\"]
  - users: [ALICE]
    actions: [history]
    descriptors: [\"**\"]
",
        );
        assert_eq!(authorize(&c, &alice(), "status", "a/b", "dev"), Decision::Allow { rule: 0 });
        assert_eq!(authorize(&c, &alice(), "plan", "a/b", "dev"), Decision::Allow { rule: 1 });
        assert_eq!(authorize(&c, &alice(), "history", "a/b", "dev"), Decision::Allow { rule: 2 });
        // Same name, another branch of the tree: the DN rule does not match.
        let mut elsewhere = alice();
        elsewhere.group_dns = vec!["cn=tlo-devs,ou=other,dc=example,dc=org".into()];
        assert!(!authorize(&c, &elsewhere, "status", "a/b", "dev").is_allowed());
        // A user id is not a group DN, even when it looks like one.
        let mut tricky = person("bob", &[]);
        tricky.dn = "cn=tlo-devs,ou=groups,dc=example,dc=org".into();
        assert!(!authorize(&c, &tricky, "status", "a/b", "dev").is_allowed());
    }

    #[test]
    fn allowed_actions_lists_what_the_rules_grant_minus_what_they_deny() {
        let c = config(
            "rules:
  - groups: [tlo-devs]
    actions: [\"*\"]
    descriptors: [\"TLO GE/*\"]
  - effect: deny
    groups: [tlo-devs]
    actions: [admin, approve, down]
    descriptors: [\"**\"]
",
        );
        assert_eq!(
            allowed_actions(&c, &alice(), "TLO GE/Milestone", "dev"),
            ["deploy", "plan", "status", "rollback", "history"]
        );
        assert!(allowed_actions(&c, &alice(), "TLO EE/Milestone", "dev").is_empty());
    }

    #[test]
    fn mistakes_fail_when_the_rules_are_read_naming_the_rule() {
        let error = |yaml: &str| serde_yaml::from_str::<AccessConfig>(yaml).unwrap_err().to_string();
        let e = error("rules:\n  - groups: [x]\n    actions: [plan]\n    descriptors: [a]\n  - groups: [x]\n    actions: [deploi]\n    descriptors: [\"*\"]\n");
        assert!(e.contains("access.rules[1]: unknown action `deploi`"), "{e}");
        assert!(error("rules:\n  - actions: [plan]\n    descriptors: [a]\n")
            .contains("access.rules[0]: name the `groups` or `users`"));
        assert!(error("rules:\n  - users: [a]\n    actions: []\n    descriptors: [a]\n").contains("`actions` is empty"));
        assert!(error("rules:\n  - users: [a]\n    actions: [plan]\n    descriptors: []\n")
            .contains("`descriptors` is empty"));
        assert!(error("rules:\n  - users: [a]\n    actions: [plan]\n    descriptors: [a]\n    environments: []\n")
            .contains("`environments` is empty"));
        assert!(error("rules:\n  - users: [a]\n    effect: maybe\n    actions: [plan]\n    descriptors: [a]\n")
            .contains("maybe"));
        assert!(error("rules:\n  - users: [a]\n    action: [plan]\n    descriptors: [a]\n").contains("action"));
        assert!(error("rule: []\n").contains("rule"));
    }
}

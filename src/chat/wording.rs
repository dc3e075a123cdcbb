//! How an error reads in a chat: what went wrong, without the server's
//! file paths or command-line advice (which mean nothing in a chat and
//! tell strangers about the server), lists as bullets, and dockmaster's
//! own failures owned as such.

use crate::error::Error;

/// An error as a chat user should read it: what went wrong, without the
/// server's file paths or command-line advice, which mean nothing in a
/// chat and tell strangers about the server.
pub fn for_chat(error: &Error) -> String {
    let text = match error {
        // A list stays a list: the subject, then a bullet per finding.
        Error::Violations(f) | Error::Problems(f) => {
            let items: Vec<String> = f.items.iter().map(|i| format!("• {}", scrub(i))).collect();
            format!("{} (nothing was changed):\n{}", scrub(&f.subject), items.join("\n"))
        }
        _ => scrub(&error.to_string()),
    };
    let mut text = text;
    // Where the server looked is the server's business.
    if let (Error::Descriptor(_), Some(at)) = (error, text.find(" not found: ")) {
        text = format!(
            "{} not found: check the application and release names (Discord suggests the ones you may use)",
            &text[..at]
        );
    }
    if matches!(error, Error::Engine(_) | Error::Internal(_)) {
        return format!(
            "{text} — this is dockmaster's fault, not yours: an administrator can find the details in its log"
        );
    }
    text
}

/// One message without the server's file paths or command-line advice.
fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    // Parenthesised advice about flags or configuration keys goes.
    let mut depth = 0usize;
    let mut aside = String::new();
    for c in message.chars() {
        match c {
            '(' => {
                depth += 1;
                aside.push(c);
            }
            ')' if depth > 0 => {
                depth -= 1;
                aside.push(c);
                if depth == 0 {
                    let advice = aside.contains("--") || aside.contains("config") || aside.contains("pass ");
                    if !advice {
                        out.push_str(&aside);
                    }
                    aside.clear();
                }
            }
            c if depth > 0 => aside.push(c),
            c => out.push(c),
        }
    }
    out.push_str(&aside);
    // Sentences that tell someone to run a command line are for a shell,
    // not a chat.
    let out: String = out
        .split_inclusive(". ")
        .filter(|sentence| !(sentence.contains("`dockmaster ") || sentence.contains(" --")))
        .collect();
    // Absolute paths name the server's layout.
    let words: Vec<String> = out
        .split(' ')
        .map(|w| {
            let bare = w.trim_matches(|c: char| "`'\",:;".contains(c));
            if bare.starts_with('/') && bare[1..].contains('/') {
                w.replace(bare, "(a path on the server)")
            } else {
                w.to_string()
            }
        })
        .collect();
    words.join(" ").replace("  ", " ").replace(" .", ".").replace(" ;", ";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_for_chat_carry_no_server_paths_or_command_line_advice() {
        let e = Error::Descriptor(
            "descriptor Shop/web not found: no folder /srv/dm/descriptors/Shop/web (the descriptor folder is \
             /srv/dm/descriptors; set `descriptors` in the config or pass --descriptors)"
                .into(),
        );
        let said = for_chat(&e);
        assert!(said.starts_with("descriptor Shop/web not found"), "{said}");
        assert!(!said.contains("/srv") && !said.contains("--"), "{said}");
        let e = Error::Usage("cannot read /etc/dockmaster/key.pem: denied (check `ldap.caFile` in the config)".into());
        let said = for_chat(&e);
        assert!(!said.contains("/etc/dockmaster") && !said.contains("ldap.caFile"), "{said}");
        assert!(said.contains("a path on the server"), "{said}");
        let e = Error::Denied(
            "Shop/web/2 is a structural change, which needs an approval in `prod`; bob may only change images here. \
             Someone with the `approve` right can run `dockmaster approve 'Shop/web/2' --env prod`, or deploy it. \
             Differences:\n - service `app`: new service"
                .into(),
        );
        let said = for_chat(&e);
        assert!(!said.contains("dockmaster approve") && !said.contains("--env"), "{said}");
        assert!(said.contains("needs an approval") && said.contains("new service"), "{said}");
        let e = Error::Denied("no access rule allows `deploy` of Shop/web in prod (you are in: ops)".into());
        assert_eq!(for_chat(&e), e.to_string(), "a refusal's reasons stay");
    }

    #[test]
    fn listed_errors_reach_chat_as_bullets_without_server_paths() {
        let e = crate::policy::violations_error(
            "Shop/web",
            "prod",
            &[
                crate::policy::Violation {
                    service: "app".into(),
                    key: "volumes".into(),
                    rule: "bind".into(),
                    message: "bind mount /srv/other-team/data is outside the allowed folders".into(),
                },
                crate::policy::Violation {
                    service: "app".into(),
                    key: "privileged".into(),
                    rule: "privileged".into(),
                    message: "privileged is not allowed".into(),
                },
            ],
        );
        assert_eq!(e.exit_code(), crate::error::EXIT_DENIED);
        assert_eq!(e.items().len(), 2);
        let said = for_chat(&e);
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines[0], "Shop/web breaks the policy for `prod` (nothing was changed):", "{said}");
        assert!(lines[1].starts_with("• ") && lines[2].starts_with("• "), "{said}");
        assert!(!said.contains("/srv"), "{said}");
    }
}

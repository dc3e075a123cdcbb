//! The chat command language, the same on every platform:
//! `deploy <ref> [env]`, `plan <ref> [env]`, `status <ref> [env]`,
//! `rollback <ref> [env] [version]`, `history <ref> [env]`,
//! `approve <ref> <version> [env]` and `help`.
//!
//! References may contain spaces (`TLO GE/Milestone/3`), so the words at
//! the end are read first: a last word that names a configured environment
//! is the environment. Quotes group words as in a shell.

/// What a chat user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `deploy`.
    Deploy,
    /// `plan`.
    Plan,
    /// `status`.
    Status,
    /// `rollback`.
    Rollback,
    /// `history`.
    History,
    /// `approve`.
    Approve,
    /// `help`.
    Help,
}

impl Verb {
    /// The verb as typed, and as access rules name the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Deploy => "deploy",
            Verb::Plan => "plan",
            Verb::Status => "status",
            Verb::Rollback => "rollback",
            Verb::History => "history",
            Verb::Approve => "approve",
            Verb::Help => "help",
        }
    }

    /// The pipeline action a verb asks for; `None` for the verbs chat
    /// answers itself (`history`, `help`). Exhaustive: a new verb must say.
    pub fn action(self) -> Option<crate::request::Action> {
        use crate::request::Action;
        match self {
            Verb::Deploy => Some(Action::Deploy),
            Verb::Plan => Some(Action::Plan),
            Verb::Status => Some(Action::Status),
            Verb::Rollback => Some(Action::Rollback),
            Verb::Approve => Some(Action::Approve),
            Verb::History | Verb::Help => None,
        }
    }

    /// Every verb, in help order.
    pub const ALL: [Verb; 7] =
        [Verb::Deploy, Verb::Plan, Verb::Status, Verb::Rollback, Verb::History, Verb::Approve, Verb::Help];

    fn parse(word: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(word))
    }

    /// How to call it, for help and errors.
    pub fn usage(self) -> &'static str {
        match self {
            Verb::Deploy => "deploy <APPLICATION/RELEASE[/VERSION]> [ENV]",
            Verb::Plan => "plan <APPLICATION/RELEASE[/VERSION]> [ENV]",
            Verb::Status => "status <APPLICATION/RELEASE> [ENV]",
            Verb::Rollback => "rollback <APPLICATION/RELEASE> [ENV] [VERSION]",
            Verb::History => "history <APPLICATION/RELEASE> [ENV]",
            Verb::Approve => "approve <APPLICATION/RELEASE> <VERSION> [ENV]",
            Verb::Help => "help",
        }
    }
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The verb.
    pub verb: Verb,
    /// The descriptor reference (with the version folded in).
    pub reference: String,
    /// The environment (`default` when not given).
    pub environment: String,
}

/// Splits like a shell: spaces separate, quotes group.
fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'' | '“' | '”') => {
                quote = Some(if c == '“' { '”' } else { c });
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                started = false;
            }
            (None, c) => current.push(c),
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".into());
    }
    if started || !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// Parses `text` (what follows the slash command). `environments` are the
/// configured environment names besides `default`.
pub fn parse(text: &str, environments: &[String]) -> Result<Command, String> {
    let mut words = words(text.trim())?;
    if words.is_empty() {
        return Ok(Command { verb: Verb::Help, reference: String::new(), environment: "default".into() });
    }
    let first = words.remove(0);
    let verb = Verb::parse(&first).ok_or_else(|| format!("unknown command `{first}`; try `help`"))?;
    if verb == Verb::Help {
        return Ok(Command { verb, reference: String::new(), environment: "default".into() });
    }
    let is_env = |w: &str| w == "default" || environments.iter().any(|e| e == w);
    let mut version = None;
    let mut environment = None;
    // From the end: [version] for rollback (after an environment or as the
    // last of a release reference), the environment, then the reference.
    if matches!(verb, Verb::Rollback | Verb::Approve) && words.len() >= 2 {
        let last = &words[words.len() - 1];
        let before = &words[words.len() - 2];
        if !is_env(last) && !last.contains('/') && (is_env(before) || before.contains('/')) {
            version = words.pop();
        }
    }
    if words.len() >= 2 && is_env(&words[words.len() - 1]) {
        environment = words.pop();
    }
    if version.is_none() && matches!(verb, Verb::Rollback | Verb::Approve) && words.len() >= 2 {
        let last = &words[words.len() - 1];
        if !last.contains('/') && words[words.len() - 2].contains('/') {
            version = words.pop();
        }
    }
    let mut reference = words.join(" ");
    if reference.is_empty() {
        return Err(format!("`{}` needs a descriptor: {}", verb.as_str(), verb.usage()));
    }
    if let Some(v) = version {
        if reference.matches('/').count() >= 2 {
            return Err(format!("`{reference}` already names a version; give `{v}` or the one in the reference"));
        }
        reference = format!("{reference}/{v}");
    }
    if verb == Verb::Approve && reference.matches('/').count() < 2 {
        return Err(format!("approve needs a version: {}", verb.usage()));
    }
    Ok(Command { verb, reference, environment: environment.unwrap_or_else(|| "default".into()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envs() -> Vec<String> {
        vec!["qa".into(), "prod".into()]
    }

    fn p(text: &str) -> Command {
        parse(text, &envs()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn references_with_spaces_and_trailing_environments_and_versions() {
        assert_eq!(p("deploy TLO GE/Milestone/3 prod").reference, "TLO GE/Milestone/3");
        assert_eq!(p("deploy TLO GE/Milestone/3 prod").environment, "prod");
        assert_eq!(p("deploy TLO GE/Milestone").environment, "default");
        assert_eq!(p("DEPLOY \"TLO GE/Milestone\" qa").reference, "TLO GE/Milestone");
        let r = p("rollback TLO GE/Milestone prod 2");
        assert_eq!((r.reference.as_str(), r.environment.as_str()), ("TLO GE/Milestone/2", "prod"));
        assert_eq!(p("rollback TLO GE/Milestone 2").reference, "TLO GE/Milestone/2");
        assert_eq!(p("rollback TLO GE/Milestone").reference, "TLO GE/Milestone");
        let a = p("approve Shop/Web 4 qa");
        assert_eq!((a.reference.as_str(), a.environment.as_str()), ("Shop/Web/4", "qa"));
        assert_eq!(p("").verb, Verb::Help);
        assert_eq!(p("help").verb, Verb::Help);
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse("nuke x/y", &envs()).unwrap_err().contains("unknown command `nuke`"));
        assert!(parse("deploy", &envs()).unwrap_err().contains("needs a descriptor"));
        assert!(parse("deploy prod", &envs()).is_ok(), "a lone word is a reference, not an environment");
        assert!(parse("approve Shop/Web qa", &envs()).unwrap_err().contains("needs a version"));
        assert!(parse("deploy \"Shop/Web", &envs()).unwrap_err().contains("quote"));
    }

    #[test]
    fn every_verb_maps_to_its_own_action_and_unknown_words_are_no_action() {
        use crate::request::Action;
        let mapped: Vec<(Verb, Option<Action>)> = Verb::ALL.into_iter().map(|v| (v, v.action())).collect();
        for (verb, action) in &mapped {
            match action {
                Some(a) => assert_eq!(a.as_str(), verb.as_str(), "{verb:?} asks for its own action"),
                None => assert!(matches!(verb, Verb::Help | Verb::History), "{verb:?} is answered by chat"),
            }
        }
        assert_eq!("Deploy".parse::<Action>().ok(), Some(Action::Deploy));
        let unknown = "nuke".parse::<Action>().unwrap_err().to_string();
        assert!(unknown.contains("`nuke` is not an action") && unknown.contains("approve"), "{unknown}");
        assert!("".parse::<Action>().is_err());
    }

    #[test]
    fn chat_references_are_never_file_paths() {
        use crate::descriptor::DescriptorRef;
        for path in ["/etc/passwd", "./compose.yaml", "../x/y", "~/x/y", "a/b/c.yml", "x.yaml"] {
            let e = DescriptorRef::parse_named(path).unwrap_err().to_string();
            assert!(e.contains("only APPLICATION/RELEASE"), "{path}: {e}");
        }
        assert!(DescriptorRef::parse_named("TLO GE/Milestone/3").is_ok());
    }
}

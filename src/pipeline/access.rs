//! Identify and authorize: who asks (looked up in the directory, never
//! taken on trust), and whether their rights cover the scope asked for.

use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::descriptor::DescriptorRef;
use crate::error::{Error, Result};
use crate::identity::Principal;
use crate::request::{Action, Request};

/// The `chat.channels` rules: commands for an environment a rule covers
/// are only taken in the channels it names (by name or id). Requests
/// that did not come from chat are not concerned.
pub fn channel_rule(config: &Config, origin: &crate::request::Origin, environment: &str) -> Result<()> {
    let crate::request::Origin::Chat { channel, channel_id, .. } = origin else { return Ok(()) };
    for rule in &config.chat.channels {
        if !rule.environments.iter().any(|e| crate::access::glob(e, environment)) {
            continue;
        }
        let here = [channel.trim_start_matches('#'), channel_id.as_str()];
        if !rule.channels.iter().any(|c| here.iter().any(|h| !h.is_empty() && *h == c.trim_start_matches('#'))) {
            let list: Vec<String> = rule.channels.iter().map(|c| format!("#{}", c.trim_start_matches('#'))).collect();
            return Err(Error::Denied(format!("commands for `{environment}` are only taken in {}", list.join(", "))));
        }
    }
    Ok(())
}

/// Who is asking: looked up in (or, with a password, logged in to) the
/// directory. `None` when no directory is configured, or when the CLI
/// names no user and no access rules need one. Fails closed.
pub async fn identify(
    config: &Config,
    user: Option<&str>,
    password: Option<&crate::request::Secret>,
    changes_things: bool,
    progress: &dyn Progress,
) -> Result<Option<Principal>> {
    let Some(directory) = crate::identity::Directory::shared(config.ldap.as_ref())? else {
        if changes_things {
            progress.step(
                "note: no access control is active (no `ldap` and `access` configured): \
                 anyone who can run dockmaster and reach the engine can deploy",
            );
        }
        return Ok(None);
    };
    let Some(user) = user else {
        if config.access.is_some() {
            return Err(Error::Denied(
                "access rules are configured: log in with --user UID and the password in DOCKMASTER_PASSWORD".into(),
            ));
        }
        return Ok(None);
    };
    let directory: Arc<crate::identity::Directory> = directory;
    let principal = match password {
        Some(password) => directory.authenticate(user, &password.0).await?,
        None => directory.lookup(user).await?,
    };
    let groups = if principal.groups.is_empty() { "none".to_string() } else { principal.groups.join(", ") };
    progress.step(&format!("{} found in the directory (groups: {groups})", principal.uid));
    Ok(Some(principal))
}

/// Whether the access rules let `principal` do `action` to the request's
/// descriptor and environment. Returns what decided, for the record.
pub fn authorize(
    request: &Request,
    config: &Config,
    principal: Option<&Principal>,
    action: Action,
    progress: &dyn Progress,
) -> Result<Option<String>> {
    let changes_things = matches!(action, Action::Deploy | Action::Down | Action::Rollback);
    let (Some(access), Some(principal)) = (&config.access, principal) else {
        if config.access.is_none() && principal.is_some() && changes_things {
            progress.step("note: no `access` rules are configured: every user the directory knows may deploy");
        }
        return Ok(None);
    };
    let requested = match &request.descriptor {
        DescriptorRef::Named { version, .. } => version.as_deref(),
        DescriptorRef::File(_) => None,
    };
    let scope = versioned_scope(&request.descriptor, requested);
    match crate::access::authorize(access, principal, action.as_str(), &scope, &request.environment) {
        crate::access::Decision::Allow { rule } => {
            let line = format!("{} may {} {scope} (access rule {rule})", principal.uid, action.as_str());
            progress.step(&line);
            Ok(Some(format!("allowed by access.rules[{rule}]")))
        }
        crate::access::Decision::Deny { reason } => Err(Error::Denied(reason)),
    }
}

/// Authorizes the request again once `latest` has been resolved to a
/// version, so rules that name versions (`TLO/Milestone/666`) allow and
/// deny what actually runs. `None` when nothing new was decided.
pub(super) fn authorize_version(
    request: &Request,
    config: &Config,
    principal: Option<&Principal>,
    resolved: Option<&str>,
) -> Result<Option<String>> {
    let (Some(access), Some(principal), DescriptorRef::Named { version: None, .. }) =
        (&config.access, principal, &request.descriptor)
    else {
        return Ok(None);
    };
    let scope = versioned_scope(&request.descriptor, resolved);
    match crate::access::authorize(access, principal, request.action.as_str(), &scope, &request.environment) {
        crate::access::Decision::Allow { rule } => Ok(Some(format!("allowed by access.rules[{rule}]"))),
        crate::access::Decision::Deny { reason } => {
            Err(Error::Denied(format!("{reason} (the latest version of {} is {scope})", request.descriptor)))
        }
    }
}

/// `--adopt` takes objects dockmaster did not label as its own: under
/// access rules only someone with the `admin` right may.
pub(super) fn authorize_adopt(request: &Request, config: &Config, principal: Option<&Principal>) -> Result<()> {
    let (Some(access), Some(principal)) = (&config.access, principal) else { return Ok(()) };
    let scope = scope(&request.descriptor);
    match crate::access::authorize(access, principal, "admin", &scope, &request.environment) {
        crate::access::Decision::Allow { .. } => Ok(()),
        crate::access::Decision::Deny { reason } => Err(Error::Denied(format!(
            "--adopt needs the `admin` right on {scope} in `{}`: {reason}",
            request.environment
        ))),
    }
}

/// What access rules and policies call a descriptor: `APPLICATION/RELEASE`
/// for a named one (every version alike), the path for a file.
pub fn scope(reference: &DescriptorRef) -> String {
    match reference {
        DescriptorRef::Named { application, release, .. } => format!("{application}/{release}"),
        DescriptorRef::File(path) => crate::target::canonical_file(path),
    }
}

/// What version-naming access rules see: `APPLICATION/RELEASE/VERSION` for
/// a named descriptor with a version, else [`scope`].
pub fn versioned_scope(reference: &DescriptorRef, version: Option<&str>) -> String {
    match (reference, version) {
        (DescriptorRef::Named { application, release, .. }, Some(v)) => format!("{application}/{release}/{v}"),
        _ => scope(reference),
    }
}

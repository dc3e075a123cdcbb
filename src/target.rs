//! The target: which Compose project on the engine a request acts on, and
//! which scope owns it. Decided here and nowhere else.
//!
//! A named descriptor (`APPLICATION/RELEASE[/VERSION]`) deploys to a target
//! derived from its application, release and environment only, so what
//! access rules authorised is what changes on the engine. The encoding is
//! injective: no application, release or environment name can produce
//! another one's target (see [`named`]). A descriptor's `name:` and
//! `-p/--project` do not move a named descriptor: `-p` is accepted only
//! when it names the same target.
//!
//! A compose file given by path deploys as Compose would name it: `-p`,
//! else the file's `name:`, else its folder, with the environment as a
//! suffix outside `default`. Ownership labels (see [`Owner`]) keep such a
//! file from changing a named descriptor's objects, or another file's
//! when access rules are on.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::descriptor::{project_name, DescriptorRef};
use crate::error::{Error, Result};

/// Label naming the owning scope: `APPLICATION/RELEASE`, or the canonical
/// path of a compose file.
pub const LABEL_SCOPE: &str = "dockmaster.scope";
/// Label naming the owning application (named descriptors only).
pub const LABEL_APPLICATION: &str = "dockmaster.application";
/// Label naming the owning release (named descriptors only).
pub const LABEL_RELEASE: &str = "dockmaster.release";
/// Label naming the environment the object was deployed to.
pub const LABEL_ENVIRONMENT: &str = "dockmaster.environment";

/// Who owns a target's engine objects: written as labels on every object
/// dockmaster creates, and compared before anything is changed or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `APPLICATION/RELEASE` for a named descriptor, the file's canonical
    /// path otherwise.
    pub scope: String,
    /// The application, for a named descriptor.
    pub application: Option<String>,
    /// The release, for a named descriptor.
    pub release: Option<String>,
    /// The environment.
    pub environment: String,
}

impl Owner {
    /// The owner of what a request about `reference` in `environment`
    /// creates.
    pub fn of(reference: &DescriptorRef, environment: &str) -> Owner {
        match reference {
            DescriptorRef::Named { application, release, .. } => Owner {
                scope: format!("{application}/{release}"),
                application: Some(application.clone()),
                release: Some(release.clone()),
                environment: environment.to_string(),
            },
            DescriptorRef::File(path) => Owner {
                scope: canonical_file(path),
                application: None,
                release: None,
                environment: environment.to_string(),
            },
        }
    }

    /// The labels every object of the target carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_SCOPE.to_string(), self.scope.clone());
        labels.insert(LABEL_ENVIRONMENT.to_string(), self.environment.clone());
        if let (Some(application), Some(release)) = (&self.application, &self.release) {
            labels.insert(LABEL_APPLICATION.to_string(), application.clone());
            labels.insert(LABEL_RELEASE.to_string(), release.clone());
        }
        labels
    }

    /// The owner an engine object's labels name; `None` when it carries no
    /// owner labels (made by an older dockmaster, or by something else).
    pub fn from_labels(labels: &std::collections::HashMap<String, String>) -> Option<Owner> {
        let scope = labels.get(LABEL_SCOPE)?.clone();
        Some(Owner {
            scope,
            application: labels.get(LABEL_APPLICATION).cloned(),
            release: labels.get(LABEL_RELEASE).cloned(),
            environment: labels.get(LABEL_ENVIRONMENT).cloned().unwrap_or_default(),
        })
    }

    /// Whether a request owned by `self` may change an object owned by
    /// `other`. The same scope in the same environment may; a compose file
    /// may change another file's objects only when `files_share` (no access
    /// rules, so paths are not scopes).
    pub fn may_change(&self, other: &Owner, files_share: bool) -> bool {
        if self.environment != other.environment {
            return false;
        }
        if self.scope == other.scope {
            return true;
        }
        let both_files = self.application.is_none() && other.application.is_none();
        both_files && files_share
    }

    /// How people name the owner in messages.
    pub fn describe(&self) -> String {
        match &self.application {
            Some(_) => format!("`{}` in `{}`", self.scope, self.environment),
            None => format!("the compose file {} in `{}`", self.scope, self.environment),
        }
    }
}

/// A file reference's canonical path (symlinks resolved), or the path as
/// given when it cannot be resolved (it does not exist: the load fails).
pub fn canonical_file(path: &std::path::Path) -> String {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The target of a named descriptor: injective over (application,
/// release, environment).
///
/// When every part is already a plain project-name word (`[a-z0-9]` runs
/// joined by single `-`), the parts are joined with `--`, which no part
/// can hold: `shop/prod` is `shop--prod`, and in `qa` `shop--prod--qa`.
/// Any other name (capitals, spaces, punctuation) is written readably and
/// followed by `_` and 16 hex digits of a SHA-256 over the exact parts:
/// `TLO GE/Milestone` is `tlo-ge--milestone_…`. Plain targets hold no
/// `_`, so the two forms never meet, and the digest tells apart names the
/// readable part folds together (`TLO GE` and `tlo-ge`).
pub fn named(application: &str, release: &str, environment: &str) -> String {
    let mut parts = vec![application, release];
    if environment != "default" {
        parts.push(environment);
    }
    if parts.iter().all(|p| plain(p)) {
        return parts.join("--");
    }
    let readable: Vec<String> = parts.iter().map(|p| project_name(p).replace('_', "-")).collect();
    let mut digest = Sha256::new();
    for part in [application, release, environment] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    let hash = hex::encode(digest.finalize());
    format!("{}_{}", readable.join("--"), &hash[..16])
}

/// `[a-z0-9]+(-[a-z0-9]+)*`: a word that is its own project name.
fn plain(part: &str) -> bool {
    !part.is_empty()
        && !part.starts_with('-')
        && !part.ends_with('-')
        && !part.contains("--")
        && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The target of a compose file in an environment: its project name, with
/// the environment as a suffix outside `default`.
pub fn file(project: &str, environment: &str) -> String {
    if environment == "default" {
        project.to_string()
    } else {
        project_name(&format!("{project}-{environment}"))
    }
}

/// The one place a request's target is decided.
///
/// `project` is `-p/--project`; `declared` is the loaded descriptor's
/// project name (its `name:`, or the default the loader gave it), when
/// the descriptor was loaded. A named descriptor ignores `declared` and
/// accepts `project` only when it names its own target.
pub fn of(
    reference: &DescriptorRef,
    environment: &str,
    project: Option<&str>,
    declared: Option<&str>,
) -> Result<String> {
    match reference {
        DescriptorRef::Named { application, release, .. } => {
            let target = named(application, release, environment);
            if let Some(project) = project.filter(|p| project_name(p) != target) {
                return Err(Error::Denied(format!(
                    "--project {project}: a named descriptor deploys only to its own target; `{application}/\
                     {release}` in `{environment}` is `{target}`. Leave --project out (or give {target})"
                )));
            }
            Ok(target)
        }
        DescriptorRef::File(_) => {
            let project = match (project, declared) {
                (Some(p), _) => project_name(p),
                (None, Some(d)) => d.to_string(),
                (None, None) => reference.default_project(),
            };
            Ok(file(&project, environment))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named_ref(application: &str, release: &str) -> DescriptorRef {
        DescriptorRef::Named { application: application.into(), release: release.into(), version: None }
    }

    #[test]
    fn plain_names_read_as_they_are_written() {
        assert_eq!(named("shop", "prod", "default"), "shop--prod");
        assert_eq!(named("shop", "prod", "qa"), "shop--prod--qa");
        assert_eq!(named("my-shop", "v2", "default"), "my-shop--v2");
        let t = named("TLO GE", "Milestone", "default");
        assert!(t.starts_with("tlo-ge--milestone_") && t.len() == "tlo-ge--milestone_".len() + 16, "{t}");
    }

    #[test]
    fn no_name_produces_another_scopes_or_environments_target() {
        // Each pair was one target before: separators, case, spaces and the
        // environment suffix folded them together.
        let pairs = [
            (("TLO GE", "Milestone", "default"), ("TLO", "GE Milestone", "default")),
            (("TLO", "Milestone prod", "default"), ("TLO", "Milestone", "prod")),
            (("tlo", "milestone-prod", "default"), ("tlo", "milestone", "prod")),
            (("TLO GE", "Milestone", "default"), ("tlo ge", "milestone", "default")),
            (("TLO GE", "Milestone", "default"), ("tlo-ge", "milestone", "default")),
            (("a", "b--c", "default"), ("a--b", "c", "default")),
            (("a", "b", "c"), ("a", "b--c", "default")),
            (("a_b", "c", "default"), ("a-b", "c", "default")),
            (("a", "b", "default"), ("a", "b", "Default")),
        ];
        for (x, y) in pairs {
            assert_ne!(named(x.0, x.1, x.2), named(y.0, y.1, y.2), "{x:?} and {y:?}");
        }
        // A release cannot spell another target's hash form either: `_` is
        // never in a plain target, and a hash form's digest covers the parts.
        assert!(!named("shop", "prod", "default").contains('_'));
    }

    #[test]
    fn project_moves_only_a_file_and_never_a_named_descriptor() {
        let shop = named_ref("Shop", "Staging");
        let own = named("Shop", "Staging", "default");
        assert_eq!(of(&shop, "default", None, Some("tlo-milestone")).unwrap(), own, "name: is ignored");
        let moved = of(&shop, "default", Some("tlo-milestone"), None).unwrap_err();
        assert_eq!(moved.exit_code(), crate::error::EXIT_DENIED, "{moved}");
        assert!(moved.to_string().contains(&own), "{moved}");
        assert_eq!(of(&shop, "default", Some(&own), None).unwrap(), own);
        let file = DescriptorRef::File("/x/compose.yaml".into());
        assert_eq!(of(&file, "qa", Some("web"), Some("other")).unwrap(), "web-qa");
        assert_eq!(of(&file, "default", None, Some("other")).unwrap(), "other");
    }

    #[test]
    fn owners_change_only_their_own_objects() {
        let shop = Owner::of(&named_ref("Shop", "Staging"), "default");
        let tlo = Owner::of(&named_ref("TLO", "Milestone"), "default");
        let shop_qa = Owner::of(&named_ref("Shop", "Staging"), "qa");
        let file = Owner::of(&DescriptorRef::File("/a/compose.yaml".into()), "default");
        let other_file = Owner::of(&DescriptorRef::File("/b/compose.yaml".into()), "default");
        assert!(shop.may_change(&shop, false));
        assert!(!shop.may_change(&tlo, true));
        assert!(!shop.may_change(&shop_qa, true));
        assert!(!file.may_change(&shop, true));
        assert!(!shop.may_change(&file, true));
        assert!(file.may_change(&other_file, true), "without access rules files share, as in Compose");
        assert!(!file.may_change(&other_file, false), "under access rules a path is a scope");
        let labels: std::collections::HashMap<String, String> = shop.labels().into_iter().collect();
        assert_eq!(Owner::from_labels(&labels), Some(shop));
    }
}

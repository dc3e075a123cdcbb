//! Descriptors: naming them (`DescriptorRef`), finding them (sources) and
//! reading them (the Compose loader).
//!
//! A reference is either `APPLICATION/RELEASE[/VERSION]` (names may contain
//! spaces: `TLO GE/Milestone/3`) or a path to a compose file. The local
//! descriptor folder is the default source; its layout is
//! `<root>/<application>/<release>/<version>.yml` (`.yaml` also accepted).

pub mod compose;
pub mod folder;
pub mod render;

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Which descriptor a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptorRef {
    /// A descriptor published under an application and release; `version`
    /// `None` means the latest.
    Named {
        /// The application, e.g. `TLO GE`.
        application: String,
        /// The release, e.g. `Milestone`.
        release: String,
        /// A version, e.g. `3`; `None` for the latest.
        version: Option<String>,
    },
    /// A compose file given by path.
    File(PathBuf),
}

impl DescriptorRef {
    /// Parses what a user typed.
    ///
    /// A value that ends in `.yml` or `.yaml`, or names an existing file, is
    /// a path; anything else must be `APPLICATION/RELEASE[/VERSION]`.
    pub fn parse(text: &str) -> Result<DescriptorRef> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(Error::Usage(
                "empty descriptor reference: give APPLICATION/RELEASE[/VERSION] or a path to a compose file".into(),
            ));
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.ends_with(".yml") || lower.ends_with(".yaml") || Path::new(trimmed).is_file() {
            return Ok(DescriptorRef::File(PathBuf::from(trimmed)));
        }
        DescriptorRef::parse_named(trimmed)
    }

    /// Parses `APPLICATION/RELEASE[/VERSION]` and nothing else: the form
    /// chat and HTTP ways in take, where a file path would let a remote
    /// user read files on the server. Never looks at the file system.
    pub fn parse_named(text: &str) -> Result<DescriptorRef> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(Error::Usage("empty descriptor reference: give APPLICATION/RELEASE[/VERSION]".into()));
        }
        let lower = trimmed.to_ascii_lowercase();
        if trimmed.starts_with(['/', '~', '.', '\\'])
            || lower.ends_with(".yml")
            || lower.ends_with(".yaml")
            || trimmed.chars().any(char::is_control)
        {
            return Err(Error::Usage(format!(
                "`{}` looks like a file path; only APPLICATION/RELEASE[/VERSION] references are taken here, \
                 e.g. `TLO GE/Milestone/3`",
                trimmed.chars().take(80).collect::<String>()
            )));
        }
        let mut parts: Vec<&str> = trimmed.split('/').map(str::trim).collect();
        // `APP/REL/` is what Rundeck makes of `APP/REL/${option.version}`
        // with the option left empty: the latest version.
        if parts.len() == 3 && parts[2].is_empty() {
            parts.pop();
        }
        if let Some(unexpanded) = parts.iter().find(|p| p.contains("${")) {
            return Err(Error::Descriptor(format!(
                "descriptor reference `{trimmed}`: `{unexpanded}` is a variable nobody expanded (a Rundeck job \
                 option that does not exist, or `${{option.x}}` where `${{option.x.value}}` was meant); give a \
                 real APPLICATION/RELEASE[/VERSION]"
            )));
        }
        let bad = || {
            Error::Usage(format!(
                "descriptor reference `{trimmed}` is neither a compose file (.yml/.yaml) nor \
                 APPLICATION/RELEASE[/VERSION]; example: `TLO GE/Milestone/3`"
            ))
        };
        if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
            return Err(bad());
        }
        match parts.as_slice() {
            [application, release] => Ok(DescriptorRef::Named {
                application: application.to_string(),
                release: release.to_string(),
                version: None,
            }),
            [application, release, version] => Ok(DescriptorRef::Named {
                application: application.to_string(),
                release: release.to_string(),
                version: if version.eq_ignore_ascii_case("latest") { None } else { Some(version.to_string()) },
            }),
            _ => Err(bad()),
        }
    }

    /// The default project name for this reference: application and release
    /// for a named descriptor (every version deploys onto the same target),
    /// the file's folder for a path, as Compose does.
    pub fn default_project(&self) -> String {
        match self {
            DescriptorRef::Named { application, release, .. } => project_name(&format!("{application}-{release}")),
            DescriptorRef::File(path) => {
                let folder = std::fs::canonicalize(path)
                    .ok()
                    .and_then(|p| p.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()));
                project_name(&folder.unwrap_or_else(|| "default".into()))
            }
        }
    }
}

impl fmt::Display for DescriptorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorRef::Named { application, release, version: Some(v) } => write!(f, "{application}/{release}/{v}"),
            DescriptorRef::Named { application, release, version: None } => write!(f, "{application}/{release}"),
            DescriptorRef::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Turns any text into a valid Compose project name: lower case letters,
/// digits, `-` and `_`, starting with a letter or digit.
pub fn project_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '_').to_string();
    if trimmed.is_empty() {
        "default".into()
    } else {
        trimmed
    }
}

/// A resolved descriptor: its bytes and where they came from.
#[derive(Debug, Clone)]
pub struct Descriptor {
    /// The reference it was resolved from.
    pub reference: DescriptorRef,
    /// The version resolved, for sources that have versions.
    pub version: Option<String>,
    /// The file it was read from: relative paths inside it (build contexts,
    /// bind mounts, `env_file`) resolve against its folder.
    pub path: PathBuf,
    /// The raw text.
    pub text: String,
    /// `sha256:<hex>` of the raw bytes: what was deployed, exactly.
    pub digest: String,
}

impl Descriptor {
    /// Reads a descriptor from a file.
    pub fn read(reference: DescriptorRef, version: Option<String>, path: &Path) -> Result<Descriptor> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Descriptor(format!("{}: cannot read descriptor: {e}", path.display())))?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Descriptor(format!("{}: descriptor is not UTF-8 text", path.display())))?;
        Ok(Descriptor { reference, version, path: path.to_path_buf(), text, digest })
    }

    /// The digest of the descriptor together with the other files its load
    /// read (`inputs`, see [`crate::stack::Stack::inputs`]): what an approval
    /// binds and the audit trail records. A descriptor that reads no other
    /// file keeps the digest of its bytes, so it matches the registry's
    /// ETag. Paths inside the descriptor's folder count relative to it, so
    /// the same folder elsewhere gives the same digest.
    pub fn digest_with(&self, inputs: &std::collections::BTreeMap<PathBuf, String>) -> String {
        let dir = self.path.parent().and_then(|d| std::path::absolute(d).ok()).unwrap_or_default();
        let absolute = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
        let others: std::collections::BTreeMap<String, &String> = inputs
            .iter()
            .filter(|(path, _)| **path != absolute && **path != self.path)
            .map(|(path, digest)| (path.strip_prefix(&dir).unwrap_or(path).display().to_string(), digest))
            .collect();
        if others.is_empty() {
            return self.digest.clone();
        }
        let mut hasher = Sha256::new();
        hasher.update(self.digest.as_bytes());
        for (path, digest) in others {
            hasher.update(format!("\n{path}\0{digest}").as_bytes());
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

/// Finds a descriptor: a path is read as is, a named reference is looked up
/// in the descriptor folder `root`.
pub fn resolve(reference: &DescriptorRef, root: &Path) -> Result<Descriptor> {
    match reference {
        DescriptorRef::File(path) => {
            if !path.is_file() {
                return Err(Error::Descriptor(format!(
                    "{}: no such descriptor file (check the path; named descriptors are written APPLICATION/RELEASE[/VERSION])",
                    path.display()
                )));
            }
            Descriptor::read(reference.clone(), None, path)
        }
        DescriptorRef::Named { .. } => folder::resolve(reference, root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_references_keep_spaces_and_latest_means_no_version() {
        assert_eq!(
            DescriptorRef::parse("TLO GE/Milestone/3").unwrap(),
            DescriptorRef::Named {
                application: "TLO GE".into(),
                release: "Milestone".into(),
                version: Some("3".into())
            }
        );
        assert_eq!(
            DescriptorRef::parse("TLO GE/Milestone/latest").unwrap(),
            DescriptorRef::parse("TLO GE/Milestone").unwrap()
        );
        assert_eq!(DescriptorRef::parse("a/b").unwrap().to_string(), "a/b");
        // Rundeck's empty version option: the latest.
        assert_eq!(
            DescriptorRef::parse("TLO GE/Milestone/").unwrap(),
            DescriptorRef::parse("TLO GE/Milestone").unwrap()
        );
        // An option Rundeck did not expand is a descriptor error (exit 3), not "unreachable".
        let e = DescriptorRef::parse("TLO GE/Milestone/${option.version}").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_DESCRIPTOR, "{e}");
        assert!(e.to_string().contains("nobody expanded"), "{e}");
    }

    #[test]
    fn paths_and_bad_references_are_told_apart() {
        assert_eq!(
            DescriptorRef::parse("x/compose.yaml").unwrap(),
            DescriptorRef::File(PathBuf::from("x/compose.yaml"))
        );
        for bad in ["", "only", "a/b/c/d", "a//b", "../b/1", "a/b/.."] {
            assert!(matches!(DescriptorRef::parse(bad), Err(Error::Usage(_))), "{bad:?} must be refused");
        }
    }

    #[test]
    fn project_names_are_what_compose_accepts() {
        assert_eq!(project_name("TLO GE-Milestone"), "tlo-ge-milestone");
        assert_eq!(project_name("  ***  "), "default");
        assert_eq!(project_name("My_App.v2"), "my_app-v2");
    }
}

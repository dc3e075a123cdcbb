//! The local descriptor folder: `<root>/<application>/<release>/<version>.yml`.
//!
//! This is the embedded default source, and the one an air-gapped site
//! without a registry uses. Versions sort numerically when they are numbers
//! (`10` after `9`), and as text otherwise; the latest is the last.

use std::cmp::Ordering;
use std::path::Path;

use super::{Descriptor, DescriptorRef};
use crate::error::{Error, Result};

/// Resolves a named reference in the folder `root`.
pub fn resolve(reference: &DescriptorRef, root: &Path) -> Result<Descriptor> {
    let DescriptorRef::Named { application, release, version } = reference else {
        return Err(Error::Descriptor(format!("{reference}: not a named descriptor reference")));
    };
    let release_dir = root.join(application).join(release);
    if !release_dir.is_dir() {
        return Err(Error::Descriptor(format!(
            "descriptor {reference} not found: no folder {} (the descriptor folder is {}; set `descriptors` in the config or pass --descriptors)",
            release_dir.display(),
            root.display()
        )));
    }
    let versions = versions(&release_dir)?;
    let wanted = match version {
        Some(v) => versions.iter().find(|(name, _)| name == v).cloned().ok_or_else(|| {
            let known: Vec<&str> = versions.iter().map(|(n, _)| n.as_str()).collect();
            Error::Descriptor(format!(
                "descriptor {reference} not found: {} has no version {v} (versions: {})",
                release_dir.display(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        })?,
        None => versions.last().cloned().ok_or_else(|| {
            Error::Descriptor(format!(
                "descriptor {reference} not found: {} holds no <version>.yml file",
                release_dir.display()
            ))
        })?,
    };
    Descriptor::read(reference.clone(), Some(wanted.0), &release_dir.join(wanted.1))
}

/// The applications in the descriptor folder (its sub-folders), sorted.
pub fn applications(root: &Path) -> Result<Vec<String>> {
    sub_folders(root)
}

/// The releases of an application, sorted.
pub fn releases(root: &Path, application: &str) -> Result<Vec<String>> {
    if application.is_empty() || application.contains('/') || application == ".." {
        return Err(Error::Usage(format!("`{application}` is not an application name")));
    }
    sub_folders(&root.join(application))
}

fn sub_folders(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Descriptor(format!("{}: cannot list the descriptor folder: {e}", dir.display())))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// The versions in a release folder, oldest first, with their file names.
pub fn versions(release_dir: &Path) -> Result<Vec<(String, String)>> {
    let entries = std::fs::read_dir(release_dir)
        .map_err(|e| Error::Descriptor(format!("{}: cannot list versions: {e}", release_dir.display())))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let version = file_name.strip_suffix(".yml").or_else(|| file_name.strip_suffix(".yaml"));
        if let Some(version) = version {
            if entry.path().is_file() && !version.is_empty() {
                found.push((version.to_string(), file_name.clone()));
            }
        }
    }
    found.sort_by(|a, b| compare_versions(&a.0, &b.0));
    Ok(found)
}

/// Numbers compare as numbers and come before names; names compare as text.
fn compare_versions(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_is_the_highest_number_and_versions_can_be_named() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("TLO GE").join("Milestone");
        std::fs::create_dir_all(&dir).unwrap();
        for v in ["2", "10", "9"] {
            std::fs::write(dir.join(format!("{v}.yml")), format!("# v{v}\nservices: {{}}\n")).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let latest = resolve(&DescriptorRef::parse("TLO GE/Milestone").unwrap(), root.path()).unwrap();
        assert_eq!(latest.version.as_deref(), Some("10"));
        assert!(latest.text.starts_with("# v10"));
        assert!(latest.digest.starts_with("sha256:"));
        let nine = resolve(&DescriptorRef::parse("TLO GE/Milestone/9").unwrap(), root.path()).unwrap();
        assert_eq!(nine.version.as_deref(), Some("9"));
    }

    #[test]
    fn missing_things_are_named() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("app/rel")).unwrap();
        std::fs::write(root.path().join("app/rel/1.yml"), "services: {}\n").unwrap();
        let err = resolve(&DescriptorRef::parse("app/rel/7").unwrap(), root.path()).unwrap_err().to_string();
        assert!(err.contains("no version 7") && err.contains("versions: 1"), "{err}");
        let err = resolve(&DescriptorRef::parse("nope/rel").unwrap(), root.path()).unwrap_err().to_string();
        assert!(err.contains("not found") && err.contains("nope"), "{err}");
    }
}

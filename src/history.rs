//! The deploy history of each target: which descriptor version was deployed
//! when, by whom, and whether it came up healthy.
//!
//! Container labels cannot answer "which version runs now": a container
//! kept unchanged by a later deploy still carries the version it was
//! created for. So every deploy and rollback appends one line to
//! `<state_dir>/history/<target>.jsonl`, flushed to disk before the command
//! reports, and `dockmaster rollback` reads it back. (The audit trail will
//! record the same facts with more context; this file is what rollback
//! needs, and stays small.)

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One deploy or rollback of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Seconds since the Unix epoch when it finished.
    pub time: u64,
    /// `deploy` or `rollback`.
    pub action: String,
    /// The reference as given.
    pub reference: String,
    /// The descriptor version, for named descriptors.
    pub version: Option<String>,
    /// The descriptor digest.
    pub digest: String,
    /// `healthy` or `failed`.
    pub verdict: String,
    /// Whether the failed deploy was rolled back (so it is not running).
    pub rolled_back: bool,
    /// Who asked.
    pub who: String,
}

impl Deployment {
    /// Whether this deploy left its own version running and healthy.
    fn took_effect(&self) -> bool {
        self.verdict == "healthy" && !self.rolled_back
    }
}

fn file(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join("history").join(format!("{target}.jsonl"))
}

/// Appends one deployment to a target's history and flushes it to disk.
pub fn record(state_dir: &Path, target: &str, deployment: &Deployment) -> Result<()> {
    let path = file(state_dir, target);
    let fail = |e: std::io::Error| {
        Error::Usage(format!("deploy history {}: cannot write: {e} (set `state_dir` in the config)", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut line = serde_json::to_string(deployment).map_err(|e| Error::Engine(format!("history record: {e}")))?;
    line.push('\n');
    let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(fail)?;
    f.write_all(line.as_bytes()).map_err(fail)?;
    f.sync_data().map_err(fail)
}

/// A target's history, oldest first. A missing file is an empty history;
/// a damaged line is skipped rather than losing the rest.
pub fn read(state_dir: &Path, target: &str) -> Result<Vec<Deployment>> {
    let path = file(state_dir, target);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::Usage(format!("deploy history {}: cannot read: {e}", path.display()))),
    };
    Ok(BufReader::new(f).lines().map_while(|l| l.ok()).filter_map(|l| serde_json::from_str(&l).ok()).collect())
}

/// The version running now (the last deploy that took effect) and the
/// version to roll back to: the last one before it that took effect with a
/// different version.
pub fn rollback_candidates(history: &[Deployment]) -> (Option<String>, Option<String>) {
    let mut effective = history.iter().rev().filter(|d| d.took_effect());
    let Some(current) = effective.next() else { return (None, None) };
    let previous = effective.find(|d| d.version != current.version).and_then(|d| d.version.clone());
    (current.version.clone(), previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(version: &str, verdict: &str, rolled_back: bool) -> Deployment {
        Deployment {
            time: 0,
            action: "deploy".into(),
            reference: "App/Rel".into(),
            version: Some(version.into()),
            digest: "sha256:0".into(),
            verdict: verdict.into(),
            rolled_back,
            who: "alice".into(),
        }
    }

    #[test]
    fn the_previous_version_is_the_last_healthy_one_before_the_running_one() {
        let h =
            vec![d("1", "healthy", false), d("2", "healthy", false), d("3", "failed", true), d("2", "healthy", false)];
        assert_eq!(rollback_candidates(&h), (Some("2".into()), Some("1".into())));
        assert_eq!(rollback_candidates(&[d("1", "failed", true)]), (None, None));
        assert_eq!(rollback_candidates(&[d("1", "healthy", false)]), (Some("1".into()), None));
    }

    #[test]
    fn records_survive_a_round_trip_and_damaged_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), "t", &d("1", "healthy", false)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("history/t.jsonl"))
            .unwrap()
            .write_all(b"{broken\n")
            .unwrap();
        record(dir.path(), "t", &d("2", "healthy", false)).unwrap();
        let h = read(dir.path(), "t").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].version.as_deref(), Some("2"));
        assert!(read(dir.path(), "other").unwrap().is_empty());
    }
}

//! The replay cache: a signed request (a Slack or Discord command, a
//! GitHub delivery) is acted on once.
//!
//! Entries are keyed on canonical content, not on how a header spelled it:
//! the timestamp, the body and the decoded signature bytes, so changing
//! the case of a signature's hex digits is the same request. They live in
//! SQLite in the state folder (`replay.db`), so a restart of `serve` does
//! not reopen the window, and every process sharing the state folder sees
//! them. Each entry is kept for its platform's window.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The persistent set of requests already acted on.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    path: PathBuf,
}

impl ReplayCache {
    /// Opens (creating) the cache at `path`.
    pub fn open(path: &Path) -> Result<ReplayCache> {
        let cache = ReplayCache { path: path.to_path_buf() };
        let conn = cache.connect()?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires INTEGER NOT NULL)")
            .map_err(|e| cache.fail(e))?;
        Ok(cache)
    }

    fn connect(&self) -> Result<rusqlite::Connection> {
        crate::audit::store::connect_durable(&self.path, Duration::from_secs(5)).map_err(|e| self.fail(e))
    }

    fn fail(&self, e: impl std::fmt::Display) -> Error {
        Error::Usage(format!("replay cache {}: {e} (check the state folder's permissions)", self.path.display()))
    }

    /// The canonical key of a signed request: `kind` and a SHA-256 over
    /// each part, length-prefixed (the timestamp, the body, the decoded
    /// signature bytes; or a delivery id).
    pub fn key(kind: &str, parts: &[&[u8]]) -> String {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        format!("{kind}:{}", hex::encode(hash.finalize()))
    }

    /// True the first time `key` is seen within `window`; false for a
    /// replay. Expired entries are dropped on the way. An error (the
    /// cache cannot be written) refuses the request: better a retry than
    /// a replay.
    pub fn first_sighting(&self, key: &str, window: Duration) -> Result<bool> {
        let now = crate::lock::now_secs() as i64;
        let conn = self.connect()?;
        conn.execute("DELETE FROM seen WHERE expires < ?1", [now]).map_err(|e| self.fail(e))?;
        let added = conn
            .execute(
                "INSERT OR IGNORE INTO seen (key, expires) VALUES (?1, ?2)",
                rusqlite::params![key, now + window.as_secs() as i64],
            )
            .map_err(|e| self.fail(e))?;
        Ok(added == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_first_seen_once_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.db");
        let key = ReplayCache::key("slack", &[b"1700000000", b"text=deploy", &[0xab, 0xcd]]);
        let cache = ReplayCache::open(&path).unwrap();
        assert!(cache.first_sighting(&key, Duration::from_secs(300)).unwrap());
        assert!(!cache.first_sighting(&key, Duration::from_secs(300)).unwrap(), "a replay");
        let restarted = ReplayCache::open(&path).unwrap();
        assert!(!restarted.first_sighting(&key, Duration::from_secs(300)).unwrap(), "still a replay after a restart");
        let other = ReplayCache::key("slack", &[b"1700000000", b"text=deploy", &[0xab, 0xce]]);
        assert!(restarted.first_sighting(&other, Duration::from_secs(300)).unwrap());
        // Parts are length-prefixed: moving a byte between them is another key.
        assert_ne!(ReplayCache::key("k", &[b"ab", b"c"]), ReplayCache::key("k", &[b"a", b"bc"]));
    }
}

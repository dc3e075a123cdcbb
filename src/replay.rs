//! The replay cache: a signed request (a Slack or Discord command, a
//! GitHub delivery) is acted on once.
//!
//! Entries are keyed on canonical content, not on how a header spelled it:
//! the timestamp, the body and the decoded signature bytes, so changing
//! the case of a signature's hex digits is the same request. They live in
//! the state backend (`replay.db` in the state folder, or the fleet's
//! PostgreSQL database), so a restart of `serve` does not reopen the
//! window, and every process (every `serve` replica) sharing it sees them.
//! Each entry is kept for its platform's window.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::state::sql::Sql;
use crate::state::{Database, Schema};

/// The cache's table, the same on both backends.
pub const SCHEMA: Schema = Schema {
    name: "replay",
    sqlite: &[("V1__seen", "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires INTEGER NOT NULL);")],
    postgres: &[("V1__seen", "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires BIGINT NOT NULL);")],
};

/// How long a SQLite writer waits for another process's write.
const BUSY: Duration = Duration::from_secs(5);

/// The persistent set of requests already acted on.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    db: Database,
}

impl ReplayCache {
    /// Opens (creating) the SQLite cache at `path`.
    pub fn open(path: &Path) -> Result<ReplayCache> {
        ReplayCache::open_in(Database::Sqlite(path.to_path_buf()))
    }

    /// Opens the cache the configuration names: shared by every replica
    /// in PostgreSQL when `state.url` is set, so a request replayed to
    /// another replica is refused there too; else `replay.db` in the
    /// state folder.
    pub fn for_config(config: &crate::config::Config) -> Result<ReplayCache> {
        ReplayCache::open_in(Database::for_store(config, config.state_dir().join("replay.db"))?)
    }

    /// Opens (creating) the cache in `db`.
    pub fn open_in(db: Database) -> Result<ReplayCache> {
        let cache = ReplayCache { db };
        cache.db.run(BUSY, |conn| SCHEMA.migrate(conn, &cache.db)).map_err(|e| cache.fail(e))?;
        Ok(cache)
    }

    fn fail(&self, e: Error) -> Error {
        match e {
            Error::Usage(message) => {
                Error::Usage(format!("replay cache: {message} (check the state folder's permissions, or `state.url`)"))
            }
            other => other,
        }
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
        let db = &self.db;
        db.run(BUSY, |conn| {
            conn.exec("DELETE FROM seen WHERE expires < ?1", &[now.into()])
                .map_err(|e| db.failed(e, "cannot clean the replay cache"))?;
            // One statement decides: of two replicas inserting the same
            // key at once, exactly one changes a row.
            let added = conn
                .exec(
                    "INSERT INTO seen (key, expires) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    &[key.into(), (now + window.as_secs() as i64).into()],
                )
                .map_err(|e| db.failed(e, "cannot write the replay cache"))?;
            Ok(added == 1)
        })
        .map_err(|e| self.fail(e))
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

//! Target locks in PostgreSQL, for a fleet of hosts.
//!
//! A flock file only serialises processes on one host. With `state.url`
//! set, a target's lock is a PostgreSQL session-level advisory lock: the
//! server releases it when the holder's session ends, so a holder killed
//! with `kill -9`, or a host that loses power, never leaves a stale lock.
//! Who holds it (who, on which host, since when) is written beside it in
//! `lock_holders`, so the one that waits can name the holder.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::sql::{Conn, Sql};
use super::{off_runtime, Database, Postgres, Schema};
use crate::error::{Error, Result};
use crate::lock::Holder;

/// The table of holders.
pub const SCHEMA: Schema = Schema {
    name: "locks",
    sqlite: &[(
        "V1__lock_holders",
        "CREATE TABLE IF NOT EXISTS lock_holders (target TEXT PRIMARY KEY, who TEXT NOT NULL, action TEXT NOT NULL,
            host TEXT NOT NULL, pid INTEGER NOT NULL, since INTEGER NOT NULL);",
    )],
    postgres: &[(
        "V1__lock_holders",
        "CREATE TABLE IF NOT EXISTS lock_holders (target TEXT PRIMARY KEY, who TEXT NOT NULL, action TEXT NOT NULL,
            host TEXT NOT NULL, pid BIGINT NOT NULL, since BIGINT NOT NULL);",
    )],
};

/// The 64-bit advisory-lock key of a name: the first eight bytes of its
/// SHA-256, so targets never collide by accident.
pub fn advisory_key(name: &str) -> i64 {
    let hash = Sha256::digest(format!("dockmaster:{name}").as_bytes());
    i64::from_be_bytes(hash[..8].try_into().unwrap_or_default())
}

/// A held advisory lock: its own session, ended on drop.
pub struct PgLock {
    session: Option<postgres::Client>,
    key: i64,
    target: String,
    holder: Holder,
}

impl std::fmt::Debug for PgLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgLock({})", self.target)
    }
}

impl PgLock {
    /// Takes `target`'s lock, waiting up to `wait` for the holder to
    /// finish; [`Error::Busy`] (exit 6) names the holder when the wait runs
    /// out, [`Error::Unreachable`] (exit 5) when PostgreSQL does not answer.
    pub fn acquire(pg: &Postgres, target: &str, holder: &Holder, wait: Duration) -> Result<PgLock> {
        let db = Database::Postgres(std::sync::Arc::new(pg.clone()));
        off_runtime(|| {
            let client = pg.connect()?;
            let mut conn = Conn::Postgres(Box::new(client));
            SCHEMA.migrate(&mut conn, &db)?;
            let key = advisory_key(&format!("target:{target}"));
            let deadline = Instant::now() + wait;
            let mut announced = false;
            loop {
                let got = conn
                    .query("SELECT pg_try_advisory_lock(?1)", &[key.into()])
                    .map_err(|e| db.failed(e, "cannot take the target's lock"))?;
                if got.first().map(|r| r.int(0)) == Some(1) {
                    break;
                }
                let current = read_holder(&mut conn, target);
                if Instant::now() >= deadline {
                    return Err(Error::Busy(crate::lock::busy_message(target, &current)));
                }
                if !announced {
                    tracing::info!(
                        "{}; waiting up to {}s",
                        crate::lock::busy_message(target, &current),
                        wait.as_secs()
                    );
                    announced = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let written = conn.exec(
                "INSERT INTO lock_holders (target, who, action, host, pid, since) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (target) DO UPDATE SET who = excluded.who, action = excluded.action,
                    host = excluded.host, pid = excluded.pid, since = excluded.since",
                &[
                    target.into(),
                    holder.who.as_str().into(),
                    holder.action.as_str().into(),
                    holder.host.as_str().into(),
                    i64::from(holder.pid).into(),
                    holder.since.into(),
                ],
            );
            if let Err(e) = written {
                tracing::warn!("state database {}: cannot record the lock's holder: {e}", pg.shown());
            }
            match conn {
                Conn::Postgres(client) => {
                    Ok(PgLock { session: Some(*client), key, target: target.to_string(), holder: holder.clone() })
                }
                Conn::Sqlite(_) => Err(Error::Internal("a PostgreSQL lock without a PostgreSQL session".into())),
            }
        })
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        let Some(mut session) = self.session.take() else { return };
        let (key, target, holder) = (self.key, self.target.clone(), self.holder.clone());
        // Ending the session is what releases the lock; the holder row is
        // cleared first so nobody reads a finished holder's name.
        off_runtime(move || {
            let _ = session.execute(
                "DELETE FROM lock_holders WHERE target = $1 AND host = $2 AND pid = $3 AND since = $4",
                &[&target, &holder.host, &i64::from(holder.pid), &(holder.since as i64)],
            );
            let _ = session.execute("SELECT pg_advisory_unlock($1)", &[&key]);
            drop(session);
        });
    }
}

fn read_holder(conn: &mut Conn, target: &str) -> Option<Holder> {
    let row = conn
        .query_opt("SELECT who, action, host, pid, since FROM lock_holders WHERE target = ?1", &[target.into()])
        .ok()??;
    Some(Holder {
        who: row.text(0),
        action: row.text(1),
        host: row.text(2),
        pid: row.int(3) as u32,
        since: row.int(4) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_target_and_are_stable() {
        assert_eq!(advisory_key("target:shop"), advisory_key("target:shop"));
        assert_ne!(advisory_key("target:shop"), advisory_key("target:blog"));
    }
}

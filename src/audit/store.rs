//! The audit trail's SQLite storage: one row per request, one per approval.
//!
//! The database is opened per operation (SQLite makes that cheap) so the
//! CLI, Rundeck steps and `dockmaster serve` can share one file; WAL lets
//! readers and one writer work at once, and `synchronous=FULL` makes a row
//! durable when `append` returns. Triggers refuse UPDATE and DELETE, so the
//! trail is append-only even for a careless script with the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Approval, Query, Record};
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started INTEGER NOT NULL,
    finished INTEGER NOT NULL,
    user TEXT NOT NULL,
    groups TEXT NOT NULL,
    origin TEXT NOT NULL,
    origin_detail TEXT NOT NULL,
    action TEXT NOT NULL,
    reference TEXT NOT NULL,
    environment TEXT NOT NULL,
    target TEXT,
    version TEXT,
    digest TEXT,
    decision TEXT,
    classification TEXT,
    differences TEXT NOT NULL,
    violations TEXT NOT NULL,
    plan TEXT,
    verdict TEXT NOT NULL,
    exit_code INTEGER NOT NULL,
    rolled_back INTEGER NOT NULL,
    error TEXT,
    descriptor TEXT
);
CREATE INDEX IF NOT EXISTS requests_target ON requests (target, id);
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    approver TEXT NOT NULL,
    reference TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    environment TEXT NOT NULL,
    differences TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS requests_append_only_u BEFORE UPDATE ON requests
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS requests_append_only_d BEFORE DELETE ON requests
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS approvals_append_only_u BEFORE UPDATE ON approvals
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS approvals_append_only_d BEFORE DELETE ON approvals
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS requests_append_only_r BEFORE INSERT ON requests
    WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM requests WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS approvals_append_only_r BEFORE INSERT ON approvals
    WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM approvals WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
";

/// The columns a record is read from, in [`record_of`]'s order.
const COLUMNS: &str = "id, started, finished, user, groups, origin, origin_detail, action, reference, environment, \
    target, version, digest, decision, classification, differences, violations, plan, verdict, exit_code, \
    rolled_back, error, descriptor, engine, chain";

/// The audit database at one path.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// Opens (creating when needed) the database and its schema. Called
    /// before a request does anything, so an unwritable trail stops the
    /// request before it changes something nobody could account for.
    pub fn open(path: &Path) -> Result<Store> {
        let store = Store { path: path.to_path_buf() };
        let conn = store.connect()?;
        // A damaged file is found before a request changes anything, not
        // after (exit 2, nothing done).
        let check: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0)).map_err(|e| corrupt(path, e))?;
        if check != "ok" {
            return Err(corrupt(path, check));
        }
        conn.execute_batch(SCHEMA).map_err(|e| unwritable(path, e))?;
        migrate(&conn).map_err(|e| unwritable(path, e))?;
        Ok(store)
    }

    /// Walks the hash chain from the first row: the number of chained rows
    /// when every link holds, else the id of the first row that breaks it
    /// (changed, inserted, or following a removed row) and why.
    pub fn verify(&self) -> Result<std::result::Result<usize, (i64, String)>> {
        let conn = self.connect()?;
        let mut stmt = conn
            .prepare(&format!("SELECT {COLUMNS} FROM requests ORDER BY id"))
            .map_err(|e| unreadable(&self.path, e))?;
        let rows = stmt.query_map([], record_of).map_err(|e| unreadable(&self.path, e))?;
        let mut previous: Option<String> = None;
        let mut chained = 0;
        for row in rows {
            let r = row.map_err(|e| unreadable(&self.path, e))?;
            let id = r.id.unwrap_or_default();
            match (&r.chain, &previous) {
                // Rows from before the chain began.
                (None, None) => continue,
                (None, Some(_)) => return Ok(Err((id, "its chain link is missing".into()))),
                (Some(link), _) => {
                    if *link != r.link(previous.as_deref().unwrap_or_default()) {
                        return Ok(Err((id, "its content or its place does not match its chain link".into())));
                    }
                    previous = Some(link.clone());
                    chained += 1;
                }
            }
        }
        Ok(Ok(chained))
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connect(&self) -> Result<Connection> {
        connect_durable(&self.path, Duration::from_secs(10)).map_err(|e| unwritable(&self.path, e))
    }

    /// Appends one request's record; durable when this returns. Returns
    /// the record's id.
    pub fn append(&self, r: &Record) -> Result<i64> {
        let mut conn = self.connect()?;
        // One writer at a time reads the last link and writes the next.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| unwritable(&self.path, e))?;
        let previous: Option<String> = tx
            .query_row("SELECT chain FROM requests ORDER BY id DESC LIMIT 1", [], |row| row.get(0))
            .optional()
            .map_err(|e| unwritable(&self.path, e))?
            .flatten();
        let link = r.link(previous.as_deref().unwrap_or_default());
        tx.execute(
            "INSERT INTO requests (started, finished, user, groups, origin, origin_detail, action, reference,
                environment, target, version, digest, decision, classification, differences, violations, plan,
                verdict, exit_code, rolled_back, error, descriptor, engine, chain)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                ?21, ?22, ?23, ?24)",
            params![
                r.started as i64,
                r.finished as i64,
                r.user,
                json(&r.groups),
                r.origin,
                r.origin_detail.to_string(),
                r.action,
                r.reference,
                r.environment,
                r.target,
                r.version,
                r.digest,
                r.decision,
                r.classification,
                json(&r.differences),
                json(&r.violations),
                r.plan,
                r.verdict,
                r.exit_code,
                r.rolled_back,
                r.error,
                r.descriptor,
                r.engine,
                link,
            ],
        )
        .map_err(|e| unwritable(&self.path, e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| unwritable(&self.path, e))?;
        Ok(id)
    }

    /// Records an approval; durable when this returns.
    pub fn approve(&self, a: &Approval) -> Result<i64> {
        let conn = self.connect()?;
        conn.execute(
            "INSERT INTO approvals (time, approver, reference, version, digest, environment, differences)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![a.time as i64, a.approver, a.reference, a.version, a.digest, a.environment, json(&a.differences)],
        )
        .map_err(|e| unwritable(&self.path, e))?;
        Ok(conn.last_insert_rowid())
    }

    /// The latest approval of exactly this descriptor (reference, version
    /// and digest) for `environment`, if anyone recorded one.
    pub fn approval(
        &self,
        reference: &str,
        version: &str,
        digest: &str,
        environment: &str,
    ) -> Result<Option<Approval>> {
        let conn = self.connect()?;
        conn.query_row(
            "SELECT time, approver, reference, version, digest, environment, differences FROM approvals
             WHERE reference = ?1 AND version = ?2 AND digest = ?3 AND environment = ?4 ORDER BY id DESC LIMIT 1",
            params![reference, version, digest, environment],
            |row| {
                Ok(Approval {
                    time: row.get::<_, i64>(0)? as u64,
                    approver: row.get(1)?,
                    reference: row.get(2)?,
                    version: row.get(3)?,
                    digest: row.get(4)?,
                    environment: row.get(5)?,
                    differences: serde_json::from_str(&row.get::<_, String>(6)?).unwrap_or_default(),
                })
            },
        )
        .optional()
        .map_err(|e| unreadable(&self.path, e))
    }

    /// Records matching `query`, newest first.
    pub fn query(&self, query: &Query) -> Result<Vec<Record>> {
        let conn = self.connect()?;
        let mut sql = format!("SELECT {COLUMNS} FROM requests WHERE started >= ?1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(query.since.unwrap_or(0) as i64)];
        if let Some(target) = &query.target {
            args.push(Box::new(target.clone()));
            sql.push_str(&format!(" AND target = ?{}", args.len()));
        }
        if let Some(user) = &query.user {
            args.push(Box::new(user.clone()));
            sql.push_str(&format!(" AND user = ?{} COLLATE NOCASE", args.len()));
        }
        if let Some(origin) = &query.origin {
            args.push(Box::new(origin.clone()));
            sql.push_str(&format!(" AND origin = ?{}", args.len()));
        }
        if let Some(name) = &query.origin_name {
            args.push(Box::new(name.clone()));
            sql.push_str(&format!(" AND json_extract(origin_detail, '$.name') = ?{}", args.len()));
        }
        if let Some(actions) = &query.actions {
            let list: Vec<String> = actions.iter().map(|a| format!("'{}'", a.replace('\'', "''"))).collect();
            sql.push_str(&format!(" AND action IN ({})", list.join(",")));
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(limit) = query.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut stmt = conn.prepare(&sql).map_err(|e| unreadable(&self.path, e))?;
        let params: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let rows = stmt.query_map(params.as_slice(), record_of).map_err(|e| unreadable(&self.path, e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| unreadable(&self.path, e))
    }
}

/// One row as a record, in [`COLUMNS`]' order.
fn record_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        id: Some(row.get(0)?),
        started: row.get::<_, i64>(1)? as u64,
        finished: row.get::<_, i64>(2)? as u64,
        user: row.get(3)?,
        groups: from_json(row.get(4)?),
        origin: row.get(5)?,
        origin_detail: serde_json::from_str(&row.get::<_, String>(6)?).unwrap_or_default(),
        action: row.get(7)?,
        reference: row.get(8)?,
        environment: row.get(9)?,
        target: row.get(10)?,
        version: row.get(11)?,
        digest: row.get(12)?,
        decision: row.get(13)?,
        classification: row.get(14)?,
        differences: from_json(row.get(15)?),
        violations: from_json(row.get(16)?),
        plan: row.get(17)?,
        verdict: row.get(18)?,
        exit_code: row.get(19)?,
        rolled_back: row.get(20)?,
        error: row.get(21)?,
        descriptor: row.get(22)?,
        engine: row.get(23)?,
        chain: row.get(24)?,
    })
}

/// Brings a trail written by an earlier dockmaster up to today's columns.
/// Columns are only ever added (an append-only trail keeps its rows as
/// they were written); old rows read them as empty.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('requests')")?;
    let columns: Vec<String> = stmt.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
    if !columns.iter().any(|c| c == "engine") {
        conn.execute_batch("ALTER TABLE requests ADD COLUMN engine TEXT")?;
    }
    if !columns.iter().any(|c| c == "chain") {
        conn.execute_batch("ALTER TABLE requests ADD COLUMN chain TEXT")?;
    }
    Ok(())
}

/// A connection for dockmaster's SQLite files (the audit trail, the
/// registry): its folder created, WAL so readers never block the writer,
/// `synchronous=FULL` so a committed row survives a power cut, and
/// `busy` to wait for another process's write.
pub fn connect_durable(path: &Path, busy: Duration) -> std::result::Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(busy).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(|e| e.to_string())?;
    Ok(conn)
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn from_json(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

fn unwritable(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "audit trail {}: cannot write: {e} (check `audit.database` in the configuration and the folder's permissions)",
        path.display()
    ))
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "audit trail {}: the database is damaged ({e}); nothing was done. Restore it from a backup, or move it \
         aside to start a new trail",
        path.display()
    ))
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Usage(format!("audit trail {}: cannot read: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Record {
        Record {
            started: n,
            finished: n,
            user: "alice".into(),
            action: "deploy".into(),
            reference: "Shop/rel".into(),
            environment: "default".into(),
            verdict: "healthy".into(),
            origin: "cli".into(),
            ..Record::default()
        }
    }

    #[test]
    fn rows_cannot_be_replaced_upserted_updated_or_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("audit.db")).unwrap();
        let id = store.append(&record(1)).unwrap();
        let conn = store.connect().unwrap();
        for attack in [
            format!(
                "INSERT OR REPLACE INTO requests (id, started, finished, user, groups, origin, origin_detail, action, \
                 reference, environment, differences, violations, verdict, exit_code, rolled_back) \
                 VALUES ({id}, 9, 9, 'mallory', '[]', 'cli', '{{}}', 'deploy', 'x', 'default', '[]', '[]', 'ok', 0, 0)"
            ),
            format!(
                "INSERT INTO requests (id, started, finished, user, groups, origin, origin_detail, action, reference, \
                 environment, differences, violations, verdict, exit_code, rolled_back) \
                 VALUES ({id}, 9, 9, 'mallory', '[]', 'cli', '{{}}', 'deploy', 'x', 'default', '[]', '[]', 'ok', 0, 0) \
                 ON CONFLICT(id) DO UPDATE SET user = 'mallory'"
            ),
            format!("UPDATE requests SET user = 'mallory' WHERE id = {id}"),
            format!("DELETE FROM requests WHERE id = {id}"),
        ] {
            let e = conn.execute_batch(&attack).unwrap_err().to_string();
            assert!(e.contains("append-only"), "{attack}: {e}");
        }
        let rows = store.query(&Query::default()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].user, "alice", "the row is as it was written");
    }

    #[test]
    fn the_hash_chain_names_the_first_changed_removed_or_inserted_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let store = Store::open(&path).unwrap();
        for n in 1..=4 {
            store.append(&record(n)).unwrap();
        }
        assert_eq!(store.verify().unwrap(), Ok(4));
        // Someone with the file drops the triggers and rewrites row 2.
        let conn = store.connect().unwrap();
        conn.execute_batch(
            "DROP TRIGGER requests_append_only_u; DROP TRIGGER requests_append_only_d; \
             UPDATE requests SET user = 'mallory' WHERE id = 2",
        )
        .unwrap();
        assert_eq!(store.verify().unwrap().unwrap_err().0, 2, "the changed row");
        conn.execute_batch("UPDATE requests SET user = 'alice' WHERE id = 2; DELETE FROM requests WHERE id = 3")
            .unwrap();
        assert_eq!(store.verify().unwrap().unwrap_err().0, 4, "the row after the removed one");
    }

    #[test]
    fn a_damaged_database_is_refused_before_anything_happens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let store = Store::open(&path).unwrap();
        for n in 1..=50 {
            store.append(&record(n)).unwrap();
        }
        drop(store);
        // Checkpoint the WAL into the file, then overwrite a page.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;").unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 8192, "at least two pages");
        for b in &mut bytes[4096..4096 + 512] {
            *b = 0x5a;
        }
        std::fs::write(&path, bytes).unwrap();
        let e = Store::open(&path).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE, "{e}");
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}

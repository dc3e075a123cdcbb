//! The audit trail's storage: one row per request, one per approval.
//!
//! The trail lives in the state backend (`crate::state`): a SQLite file
//! by default, or the fleet's PostgreSQL database. It is opened per
//! operation so the CLI, Rundeck steps and `dockmaster serve` share it.
//! On SQLite, WAL lets readers and one writer work at once and
//! `synchronous=FULL` makes a row durable when `append` returns; on
//! PostgreSQL a committed row is durable. On both, triggers refuse UPDATE
//! and DELETE, so the trail is append-only even for a careless script
//! with access, and appends are serialised so each row's hash-chain link
//! follows the one before it.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::{Approval, Query, Record};
use crate::error::{Error, Result};
use crate::state::sql::{Conn, DbError, Row, Sql, Value};
use crate::state::Database;

pub use super::schema::SCHEMA;

/// The columns a record is read from, in [`record_of`]'s order.
pub const COLUMNS: &str = "id, started, finished, \"user\", groups, origin, origin_detail, action, reference, \
    environment, target, version, digest, decision, classification, differences, violations, plan, verdict, \
    exit_code, rolled_back, error, descriptor, engine, chain";

/// How long a SQLite writer waits for another process's write.
const BUSY: Duration = Duration::from_secs(10);

/// The audit trail in one database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (creating when needed) the SQLite trail at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_in(Database::Sqlite(path.to_path_buf()))
    }

    /// Opens the trail in `db`, creating or upgrading its schema. Called
    /// before a request does anything, so an unwritable (or unreachable)
    /// trail stops the request before it changes something nobody could
    /// account for.
    pub fn open_in(db: Database) -> Result<Store> {
        let store = Store { db };
        store.db.run(BUSY, |conn| {
            if let Conn::Sqlite(sqlite) = conn {
                // A damaged file is found before a request changes
                // anything, not after (exit 2, nothing done).
                let check: String =
                    sqlite.query_row("PRAGMA quick_check", [], |row| row.get(0)).map_err(|e| store.corrupt(e))?;
                if check != "ok" {
                    return Err(store.corrupt(check));
                }
                legacy_columns(sqlite).map_err(|e| store.unwritable(e.into()))?;
            }
            SCHEMA.migrate(conn, &store.db)
        })?;
        Ok(store)
    }

    /// Where the trail lives.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Walks the hash chain from the first row: the number of chained rows
    /// when every link holds, else the id of the first row that breaks it
    /// (changed, inserted, or following a removed row) and why.
    pub fn verify(&self) -> Result<std::result::Result<usize, (i64, String)>> {
        let rows = self.db.run(BUSY, |conn| {
            conn.query(&format!("SELECT {COLUMNS} FROM requests ORDER BY id"), &[]).map_err(|e| self.unreadable(e))
        })?;
        let mut previous: Option<String> = None;
        let mut chained = 0;
        for row in rows {
            let r = record_of(&row);
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

    /// Appends one request's record; durable when this returns. Returns
    /// the record's id.
    pub fn append(&self, r: &Record) -> Result<i64> {
        self.db.run(BUSY, |conn| {
            // One writer at a time reads the last link and writes the next.
            conn.transaction(&["requests"], |tx| {
                let previous = tx
                    .query_opt("SELECT chain FROM requests ORDER BY id DESC LIMIT 1", &[])?
                    .and_then(|row| row.opt_text(0));
                let link = r.link(previous.as_deref().unwrap_or_default());
                insert_record(tx, r, None, &link)
            })
            .map_err(|e| self.unwritable(e))
        })
    }

    /// Copies `r` with its own id and chain link, as `state migrate` does:
    /// the link was computed over the row's content and the link before
    /// it, so copying rows in id order keeps the chain verifiable.
    pub fn copy_in(tx: &mut dyn Sql, r: &Record) -> std::result::Result<i64, DbError> {
        insert_record(tx, r, r.id, r.chain.as_deref().unwrap_or_default())
    }

    /// Records an approval; durable when this returns.
    pub fn approve(&self, a: &Approval) -> Result<i64> {
        self.db.run(BUSY, |conn| {
            let row = conn
                .query_opt(
                    "INSERT INTO approvals (time, approver, reference, version, digest, environment, differences)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                    &approval_values(a),
                )
                .map_err(|e| self.unwritable(e))?;
            Ok(row.map(|r| r.int(0)).unwrap_or_default())
        })
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
        self.db.run(BUSY, |conn| {
            let row = conn
                .query_opt(
                    "SELECT time, approver, reference, version, digest, environment, differences FROM approvals
                     WHERE reference = ?1 AND version = ?2 AND digest = ?3 AND environment = ?4
                     ORDER BY id DESC LIMIT 1",
                    &[reference.into(), version.into(), digest.into(), environment.into()],
                )
                .map_err(|e| self.unreadable(e))?;
            Ok(row.map(|row| approval_of(&row)))
        })
    }

    /// Every approval, oldest first (for `state migrate`).
    pub fn approvals(&self) -> Result<Vec<(i64, Approval)>> {
        self.db.run(BUSY, |conn| {
            let rows = conn
                .query(
                    "SELECT time, approver, reference, version, digest, environment, differences, id FROM approvals
                     ORDER BY id",
                    &[],
                )
                .map_err(|e| self.unreadable(e))?;
            Ok(rows.iter().map(|row| (row.int(7), approval_of(row))).collect())
        })
    }

    /// Copies one approval with its id (for `state migrate`).
    pub fn copy_approval(tx: &mut dyn Sql, id: i64, a: &Approval) -> std::result::Result<(), DbError> {
        let mut values = approval_values(a);
        values.push(id.into());
        tx.exec(
            "INSERT INTO approvals (time, approver, reference, version, digest, environment, differences, id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            &values,
        )?;
        Ok(())
    }

    /// Records matching `query`, newest first.
    pub fn query(&self, query: &Query) -> Result<Vec<Record>> {
        self.db.run(BUSY, |conn| {
            let mut sql = format!("SELECT {COLUMNS} FROM requests WHERE started >= ?1");
            let mut args: Vec<Value> = vec![query.since.unwrap_or(0).into()];
            if let Some(target) = &query.target {
                args.push(target.into());
                sql.push_str(&format!(" AND target = ?{}", args.len()));
            }
            if let Some(user) = &query.user {
                args.push(user.to_lowercase().into());
                sql.push_str(&format!(" AND lower(\"user\") = ?{}", args.len()));
            }
            if let Some(origin) = &query.origin {
                args.push(origin.into());
                sql.push_str(&format!(" AND origin = ?{}", args.len()));
            }
            if let Some(name) = &query.origin_name {
                args.push(name.into());
                let field = conn.dialect().json_text("origin_detail", "name");
                sql.push_str(&format!(" AND {field} = ?{}", args.len()));
            }
            if let Some(actions) = &query.actions {
                let mut places = Vec::new();
                for action in actions {
                    args.push(action.into());
                    places.push(format!("?{}", args.len()));
                }
                sql.push_str(&format!(" AND action IN ({})", places.join(",")));
            }
            sql.push_str(" ORDER BY id DESC");
            if let Some(limit) = query.limit {
                sql.push_str(&format!(" LIMIT {limit}"));
            }
            let rows = conn.query(&sql, &args).map_err(|e| self.unreadable(e))?;
            Ok(rows.iter().map(record_of).collect())
        })
    }

    fn unwritable(&self, e: DbError) -> Error {
        match e {
            e if e.unreachable => self.db.failed(e, "cannot write the audit trail"),
            e => Error::Usage(format!(
                "audit trail {}: cannot write: {e} (check `audit.database` or `state.url` in the configuration, \
                 and the folder's permissions)",
                self.db.shown()
            )),
        }
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> Error {
        Error::Usage(format!(
            "audit trail {}: the database is damaged ({e}); nothing was done. Restore it from a backup, or move it \
             aside to start a new trail",
            self.db.shown()
        ))
    }

    fn unreadable(&self, e: DbError) -> Error {
        if e.unreachable {
            return self.db.failed(e, "cannot read the audit trail");
        }
        Error::Usage(format!("audit trail {}: cannot read: {e}", self.db.shown()))
    }
}

fn insert_record(tx: &mut dyn Sql, r: &Record, id: Option<i64>, link: &str) -> std::result::Result<i64, DbError> {
    let mut values: Vec<Value> = vec![
        r.started.into(),
        r.finished.into(),
        r.user.as_str().into(),
        json(&r.groups).into(),
        r.origin.as_str().into(),
        r.origin_detail.to_string().into(),
        r.action.as_str().into(),
        r.reference.as_str().into(),
        r.environment.as_str().into(),
        r.target.clone().into(),
        r.version.clone().into(),
        r.digest.clone().into(),
        r.decision.clone().into(),
        r.classification.clone().into(),
        json(&r.differences).into(),
        json(&r.violations).into(),
        r.plan.clone().into(),
        r.verdict.as_str().into(),
        r.exit_code.into(),
        r.rolled_back.into(),
        r.error.clone().into(),
        r.descriptor.clone().into(),
        r.engine.clone().into(),
        link.into(),
    ];
    let (id_column, id_place) = match id {
        Some(id) => {
            values.push(id.into());
            (", id", ", ?25")
        }
        None => ("", ""),
    };
    let row = tx.query_opt(
        &format!(
            "INSERT INTO requests (started, finished, \"user\", groups, origin, origin_detail, action, reference,
                environment, target, version, digest, decision, classification, differences, violations, plan,
                verdict, exit_code, rolled_back, error, descriptor, engine, chain{id_column})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                ?21, ?22, ?23, ?24{id_place}) RETURNING id"
        ),
        &values,
    )?;
    Ok(row.map(|r| r.int(0)).unwrap_or_default())
}

fn approval_values(a: &Approval) -> Vec<Value> {
    vec![
        a.time.into(),
        a.approver.as_str().into(),
        a.reference.as_str().into(),
        a.version.as_str().into(),
        a.digest.as_str().into(),
        a.environment.as_str().into(),
        json(&a.differences).into(),
    ]
}

fn approval_of(row: &Row) -> Approval {
    Approval {
        time: row.int(0) as u64,
        approver: row.text(1),
        reference: row.text(2),
        version: row.text(3),
        digest: row.text(4),
        environment: row.text(5),
        differences: from_json(row.text(6)),
    }
}

/// One row as a record, in [`COLUMNS`]' order.
pub fn record_of(row: &Row) -> Record {
    Record {
        id: Some(row.int(0)),
        started: row.int(1) as u64,
        finished: row.int(2) as u64,
        user: row.text(3),
        groups: from_json(row.text(4)),
        origin: row.text(5),
        origin_detail: serde_json::from_str(&row.text(6)).unwrap_or_default(),
        action: row.text(7),
        reference: row.text(8),
        environment: row.text(9),
        target: row.opt_text(10),
        version: row.opt_text(11),
        digest: row.opt_text(12),
        decision: row.opt_text(13),
        classification: row.opt_text(14),
        differences: from_json(row.text(15)),
        violations: from_json(row.text(16)),
        plan: row.opt_text(17),
        verdict: row.text(18),
        exit_code: row.int(19) as i32,
        rolled_back: row.int(20) != 0,
        error: row.opt_text(21),
        descriptor: row.opt_text(22),
        engine: row.opt_text(23),
        chain: row.opt_text(24),
    }
}

/// Brings a SQLite trail written before versioned schemas up to today's
/// columns, so its version 1 matches. Columns are only ever added (an
/// append-only trail keeps its rows as they were written); old rows read
/// them as empty.
fn legacy_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('requests')")?;
    let columns: Vec<String> = stmt.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        return Ok(());
    }
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
        let conn = connect_durable(store.database().sqlite_path().unwrap(), BUSY).unwrap();
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
        let conn = connect_durable(store.database().sqlite_path().unwrap(), BUSY).unwrap();
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

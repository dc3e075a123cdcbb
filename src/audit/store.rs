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
";

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
        conn.execute_batch(SCHEMA).map_err(|e| unwritable(path, e))?;
        migrate(&conn).map_err(|e| unwritable(path, e))?;
        Ok(store)
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
        let conn = self.connect()?;
        conn.execute(
            "INSERT INTO requests (started, finished, user, groups, origin, origin_detail, action, reference,
                environment, target, version, digest, decision, classification, differences, violations, plan,
                verdict, exit_code, rolled_back, error, descriptor, engine)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                ?21, ?22, ?23)",
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
            ],
        )
        .map_err(|e| unwritable(&self.path, e))?;
        Ok(conn.last_insert_rowid())
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
        let mut sql = "SELECT id, started, finished, user, groups, origin, origin_detail, action, reference,
            environment, target, version, digest, decision, classification, differences, violations, plan, verdict,
            exit_code, rolled_back, error, descriptor, engine FROM requests WHERE started >= ?1"
            .to_string();
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
        let rows = stmt
            .query_map(params.as_slice(), |row| {
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
                })
            })
            .map_err(|e| unreadable(&self.path, e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| unreadable(&self.path, e))
    }
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

fn unreadable(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Usage(format!("audit trail {}: cannot read: {e}", path.display()))
}

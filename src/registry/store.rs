//! The registry's storage: one row per (application, release, version),
//! immutable once written, in the state backend (`registry.db`, or the
//! fleet's PostgreSQL database, where every registry replica sees the
//! same versions).
//!
//! Appends run in one transaction that holds the table's write side for
//! every pair a fragment names, so concurrent publishers queue: each gets
//! the next version, none is lost, and a rejected publish writes nothing
//! at all.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::lint::Warning;
use crate::error::{Error, Result};
use crate::state::sql::{Conn, DbError, Row, Sql, Value};
use crate::state::{Database, Schema};

/// The table as the first versioned schema found it, before
/// `published_by` and `warnings`: databases from then are brought up to
/// date by [`LEGACY`] before the versioned schema takes over.
const BASE: &str = "
CREATE TABLE IF NOT EXISTS versions (
    application TEXT NOT NULL,
    release TEXT NOT NULL,
    version INTEGER NOT NULL,
    created INTEGER NOT NULL,
    digest TEXT NOT NULL,
    services TEXT NOT NULL,
    fragment TEXT NOT NULL,
    descriptor TEXT NOT NULL,
    PRIMARY KEY (application, release, version)
);
";

/// The SQLite migrations of earlier releases, counted by `PRAGMA
/// user_version`; each adds a column and never rewrites a row.
const LEGACY: &[&str] = &[
    // 1: the name of the token that published each version (NULL for
    // versions from before it was recorded).
    "ALTER TABLE versions ADD COLUMN published_by TEXT",
    // 2: what each version references but no fragment defines (JSON; NULL
    // for versions from before it was recorded: read as none).
    "ALTER TABLE versions ADD COLUMN warnings TEXT",
];

/// The registry's table, the same on both backends.
pub const SCHEMA: Schema = Schema {
    name: "registry",
    sqlite: &[(
        "V1__versions",
        "CREATE TABLE IF NOT EXISTS versions (
            application TEXT NOT NULL,
            release TEXT NOT NULL,
            version INTEGER NOT NULL,
            created INTEGER NOT NULL,
            digest TEXT NOT NULL,
            services TEXT NOT NULL,
            fragment TEXT NOT NULL,
            descriptor TEXT NOT NULL,
            published_by TEXT,
            warnings TEXT,
            PRIMARY KEY (application, release, version)
        );
        CREATE TRIGGER IF NOT EXISTS versions_immutable_u BEFORE UPDATE ON versions
            BEGIN SELECT RAISE(ABORT, 'registry versions are immutable'); END;
        CREATE TRIGGER IF NOT EXISTS versions_immutable_d BEFORE DELETE ON versions
            BEGIN SELECT RAISE(ABORT, 'registry versions are immutable'); END;
        PRAGMA user_version = 2;",
    )],
    postgres: &[(
        "V1__versions",
        "CREATE TABLE IF NOT EXISTS versions (
            application TEXT NOT NULL,
            release TEXT NOT NULL,
            version BIGINT NOT NULL,
            created BIGINT NOT NULL,
            digest TEXT NOT NULL,
            services TEXT NOT NULL,
            fragment TEXT NOT NULL,
            descriptor TEXT NOT NULL,
            published_by TEXT,
            warnings TEXT,
            PRIMARY KEY (application, release, version)
        );
        CREATE OR REPLACE FUNCTION dockmaster_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'registry versions are immutable'; END $$;
        CREATE TRIGGER versions_immutable BEFORE UPDATE OR DELETE ON versions
            FOR EACH ROW EXECUTE FUNCTION dockmaster_versions_immutable();
        CREATE TRIGGER versions_no_truncate BEFORE TRUNCATE ON versions
            FOR EACH STATEMENT EXECUTE FUNCTION dockmaster_versions_immutable();",
    )],
};

/// How long a SQLite writer waits for another publisher.
const BUSY: Duration = Duration::from_secs(30);

/// One stored version, without its descriptor text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// The application.
    pub application: String,
    /// The release.
    pub release: String,
    /// The version number, from 1.
    pub version: i64,
    /// When it was published (Unix seconds).
    pub created: u64,
    /// `sha256:<hex>` of the assembled descriptor.
    pub digest: String,
    /// The services the fragment that made it added or replaced.
    pub services: Vec<String>,
    /// The name (never the secret) of the token that published it; `null`
    /// for versions published before this was recorded.
    #[serde(default)]
    pub published_by: Option<String>,
    /// What this version references but no fragment defines (the lint at
    /// publish); empty for versions published before it was recorded.
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

/// Makes a version from the one before it (`None` for the first): its
/// descriptor, and what it references but no fragment defines.
pub type Assemble<'a> = dyn Fn(Option<&str>) -> Result<(String, Vec<Warning>)> + Sync + 'a;

/// What [`Store::append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The versions were written.
    Stored(Vec<VersionInfo>),
    /// Strict, and some version had warnings: nothing was written; these
    /// are the versions it would have made, with their warnings.
    Refused(Vec<VersionInfo>),
}

/// The registry database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (creating when needed) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_in(Database::Sqlite(path.to_path_buf()))
    }

    /// Opens the registry the configuration names (`state.url`, else
    /// `registry.database`).
    pub fn for_config(config: &crate::config::Config) -> Result<Store> {
        Store::open_in(Database::for_store(config, super::server::database(config))?)
    }

    /// Opens (creating or upgrading) the registry in `db`.
    pub fn open_in(db: Database) -> Result<Store> {
        let store = Store { db };
        store.db.run(BUSY, |conn| {
            if let Conn::Sqlite(sqlite) = conn {
                legacy(sqlite).map_err(|e| store.failed(e))?;
            }
            SCHEMA.migrate(conn, &store.db)
        })?;
        Ok(store)
    }

    /// Appends, for every (application, release) pair, version N+1 made by
    /// `assemble(previous descriptor or None)` (the descriptor, and its
    /// warnings), all or nothing, recording the name of the token that
    /// `published_by` and the warnings, each attributed to the version
    /// whose fragment last defined its service. When `strict` and any
    /// version has a warning, nothing is written ([`Appended::Refused`]).
    pub fn append(
        &self,
        pairs: &[(String, String)],
        fragment: &str,
        services: &[String],
        published_by: &str,
        strict: bool,
        assemble: &Assemble<'_>,
    ) -> Result<Appended> {
        self.db.run(BUSY, |conn| {
            conn.transaction(&["versions"], |tx| -> Result<Appended> {
                let mut made = Vec::new();
                let created = crate::lock::now_secs();
                for (application, release) in pairs {
                    let key = [application.into(), release.into()];
                    let previous = tx
                        .query_opt(
                            "SELECT version, descriptor FROM versions WHERE application = ?1 AND release = ?2 \
                             ORDER BY version DESC LIMIT 1",
                            &key,
                        )
                        .map_err(|e| self.failed(e))?
                        .map(|r| (r.int(0), r.text(1)));
                    let version = previous.as_ref().map(|p| p.0).unwrap_or(0) + 1;
                    let (descriptor, mut warnings) = assemble(previous.as_ref().map(|p| p.1.as_str()))?;
                    if warnings.iter().any(|w| !services.contains(&w.service)) {
                        // Which earlier version's fragment defined each service.
                        let earlier: Vec<(i64, Vec<String>)> = tx
                            .query(
                                "SELECT version, services FROM versions WHERE application = ?1 AND release = ?2 \
                                 ORDER BY version DESC",
                                &key,
                            )
                            .map_err(|e| self.failed(e))?
                            .iter()
                            .map(|r| (r.int(0), serde_json::from_str(&r.text(1)).unwrap_or_default()))
                            .collect();
                        for warning in &mut warnings {
                            if !services.contains(&warning.service) {
                                if let Some((v, _)) = earlier.iter().find(|(_, s)| s.contains(&warning.service)) {
                                    warning.fragment = *v;
                                    continue;
                                }
                            }
                            warning.fragment = version;
                        }
                    } else {
                        warnings.iter_mut().for_each(|w| w.fragment = version);
                    }
                    let digest = super::digest(&descriptor);
                    let info = VersionInfo {
                        application: application.clone(),
                        release: release.clone(),
                        version,
                        created,
                        digest,
                        services: services.to_vec(),
                        published_by: Some(published_by.to_string()),
                        warnings,
                    };
                    made.push((info, descriptor));
                }
                if strict && made.iter().any(|(v, _)| !v.warnings.is_empty()) {
                    // Nothing was written: the transaction ends empty.
                    return Ok(Appended::Refused(made.into_iter().map(|(v, _)| v).collect()));
                }
                for (v, descriptor) in &made {
                    insert(tx, v, fragment, descriptor).map_err(|e| self.failed(e))?;
                }
                Ok(Appended::Stored(made.into_iter().map(|(v, _)| v).collect()))
            })
        })
    }

    /// Copies one stored version as it is (for `state migrate`).
    pub fn copy_in(
        tx: &mut dyn Sql,
        v: &VersionInfo,
        fragment: &str,
        descriptor: &str,
    ) -> std::result::Result<(), DbError> {
        insert(tx, v, fragment, descriptor)
    }

    /// Every stored version with its fragment and descriptor, in order
    /// (for `state migrate`).
    pub fn everything(&self) -> Result<Vec<(VersionInfo, String, String)>> {
        self.db.run(BUSY, |conn| {
            let rows = conn
                .query(
                    "SELECT version, created, digest, services, published_by, warnings, application, release, \
                     fragment, descriptor FROM versions ORDER BY application, release, version",
                    &[],
                )
                .map_err(|e| self.failed(e))?;
            Ok(rows.iter().map(|r| (version_of(r, &r.text(6), &r.text(7)), r.text(8), r.text(9))).collect())
        })
    }

    /// The applications, sorted.
    pub fn applications(&self) -> Result<Vec<String>> {
        self.strings("SELECT DISTINCT application FROM versions ORDER BY application", &[])
    }

    /// The releases of an application, sorted.
    pub fn releases(&self, application: &str) -> Result<Vec<String>> {
        self.strings(
            "SELECT DISTINCT release FROM versions WHERE application = ?1 ORDER BY release",
            &[application.into()],
        )
    }

    fn strings(&self, sql: &str, args: &[Value]) -> Result<Vec<String>> {
        self.db.run(BUSY, |conn| {
            Ok(conn.query(sql, args).map_err(|e| self.failed(e))?.iter().map(|r| r.text(0)).collect())
        })
    }

    /// The versions of a release, oldest first.
    pub fn versions(&self, application: &str, release: &str) -> Result<Vec<VersionInfo>> {
        self.db.run(BUSY, |conn| {
            let rows = conn
                .query(
                    "SELECT version, created, digest, services, published_by, warnings FROM versions \
                     WHERE application = ?1 AND release = ?2 ORDER BY version",
                    &[application.into(), release.into()],
                )
                .map_err(|e| self.failed(e))?;
            Ok(rows.iter().map(|r| version_of(r, application, release)).collect())
        })
    }

    /// Whether `application/release` has any version.
    pub fn has_release(&self, application: &str, release: &str) -> Result<bool> {
        self.db.run(BUSY, |conn| {
            let row = conn
                .query_opt(
                    "SELECT 1 FROM versions WHERE application = ?1 AND release = ?2 LIMIT 1",
                    &[application.into(), release.into()],
                )
                .map_err(|e| self.failed(e))?;
            Ok(row.is_some())
        })
    }

    /// One version's descriptor and digest (`None` version: the latest).
    pub fn descriptor(
        &self,
        application: &str,
        release: &str,
        version: Option<i64>,
    ) -> Result<Option<(i64, String, String)>> {
        self.db.run(BUSY, |conn| {
            let row = match version {
                Some(v) => conn.query_opt(
                    "SELECT version, descriptor, digest FROM versions WHERE application = ?1 AND release = ?2 \
                     AND version = ?3",
                    &[application.into(), release.into(), v.into()],
                ),
                None => conn.query_opt(
                    "SELECT version, descriptor, digest FROM versions WHERE application = ?1 AND release = ?2 \
                     ORDER BY version DESC LIMIT 1",
                    &[application.into(), release.into()],
                ),
            };
            Ok(row.map_err(|e| self.failed(e))?.map(|r| (r.int(0), r.text(1), r.text(2))))
        })
    }

    fn failed(&self, e: DbError) -> Error {
        if e.unreachable {
            return self.db.failed(e, "registry");
        }
        Error::Internal(format!("registry database {}: {e}", self.db.shown()))
    }
}

fn insert(tx: &mut dyn Sql, v: &VersionInfo, fragment: &str, descriptor: &str) -> std::result::Result<(), DbError> {
    tx.exec(
        "INSERT INTO versions (application, release, version, created, digest, services, fragment, descriptor, \
         published_by, warnings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        &[
            v.application.as_str().into(),
            v.release.as_str().into(),
            v.version.into(),
            v.created.into(),
            v.digest.as_str().into(),
            serde_json::to_string(&v.services).unwrap_or_default().into(),
            fragment.into(),
            descriptor.into(),
            v.published_by.clone().into(),
            serde_json::to_string(&v.warnings).unwrap_or_default().into(),
        ],
    )?;
    Ok(())
}

fn version_of(r: &Row, application: &str, release: &str) -> VersionInfo {
    VersionInfo {
        application: application.to_string(),
        release: release.to_string(),
        version: r.int(0),
        created: r.int(1) as u64,
        digest: r.text(2),
        services: serde_json::from_str(&r.text(3)).unwrap_or_default(),
        published_by: r.opt_text(4),
        warnings: r.opt_text(5).and_then(|w| serde_json::from_str(&w).ok()).unwrap_or_default(),
    }
}

/// Brings a SQLite registry from before versioned schemas up to what its
/// version 1 creates: the legacy migrations not yet applied (by `PRAGMA
/// user_version`), each in its own immediate transaction so two processes
/// opening one database at once do not both apply one.
fn legacy(conn: &mut Connection) -> std::result::Result<(), DbError> {
    let exists: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'versions'", [], |r| {
            r.get(0)
        })?;
    if exists == 0 {
        return Ok(());
    }
    conn.execute_batch(BASE)?;
    for (i, sql) in LEGACY.iter().enumerate() {
        let number = i as i64 + 1;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if applied >= number {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {number}"))?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migration_adds_published_by_without_touching_existing_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        // A database from before the migration, with a version in it.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(BASE).unwrap();
        conn.execute(
            "INSERT INTO versions (application, release, version, created, digest, services, fragment, descriptor)
             VALUES ('A', 'R', 1, 5, 'sha256:old', '[\"web\"]', 'web: {image: x}', 'web: {image: x}\n')",
            [],
        )
        .unwrap();
        drop(conn);

        let store = Store::open(&path).unwrap();
        Store::open(&path).expect("opening again applies nothing twice");
        let old = store.versions("A", "R").unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].digest, "sha256:old", "the old row is as it was");
        assert_eq!(old[0].published_by, None, "unknown for a version from before");
        assert_eq!(old[0].warnings, Vec::new(), "none recorded for a version from before");

        let made = store
            .append(&[("A".into(), "R".into())], "b: {image: y}", &["b".into()], "build-server", false, &|_| {
                Ok(("b: {image: y}\n".into(), Vec::new()))
            })
            .unwrap();
        let Appended::Stored(made) = made else { panic!("not strict: stored") };
        assert_eq!(made[0].published_by.as_deref(), Some("build-server"));
        let all = store.versions("A", "R").unwrap();
        assert_eq!(all[1].published_by.as_deref(), Some("build-server"));
        let json = serde_json::to_value(&all[1]).unwrap();
        assert_eq!(json["published_by"], "build-server");
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, LEGACY.len() as i64);
    }
}

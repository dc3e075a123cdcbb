//! The registry's SQLite storage: one row per (application, release,
//! version), immutable once written.
//!
//! Appends run in one `BEGIN IMMEDIATE` transaction for every pair a
//! fragment names, so concurrent publishers queue on SQLite's write lock:
//! each gets the next version, none is lost, and a rejected publish writes
//! nothing at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::lint::Warning;
use crate::error::{Error, Result};

const SCHEMA: &str = "
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
CREATE TRIGGER IF NOT EXISTS versions_immutable_u BEFORE UPDATE ON versions
    BEGIN SELECT RAISE(ABORT, 'registry versions are immutable'); END;
CREATE TRIGGER IF NOT EXISTS versions_immutable_d BEFORE DELETE ON versions
    BEGIN SELECT RAISE(ABORT, 'registry versions are immutable'); END;
";

/// Migrations, in order: each adds to the schema and never rewrites a row
/// (`ALTER TABLE ... ADD COLUMN` leaves existing rows as they are, the new
/// column NULL, and fires no trigger). `PRAGMA user_version` is the number
/// applied.
const MIGRATIONS: &[&str] = &[
    // 1: the name of the token that published each version (NULL for
    // versions from before it was recorded).
    "ALTER TABLE versions ADD COLUMN published_by TEXT",
    // 2: what each version references but no fragment defines (JSON; NULL
    // for versions from before it was recorded: read as none).
    "ALTER TABLE versions ADD COLUMN warnings TEXT",
];

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
pub type Assemble<'a> = dyn Fn(Option<&str>) -> Result<(String, Vec<Warning>)> + 'a;

/// What [`Store::append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The versions were written.
    Stored(Vec<VersionInfo>),
    /// Strict, and some version had warnings: nothing was written; these
    /// are the versions it would have made, with their warnings.
    Refused(Vec<VersionInfo>),
}

/// The registry database at one path.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// Opens (creating when needed) the database.
    pub fn open(path: &Path) -> Result<Store> {
        let store = Store { path: path.to_path_buf() };
        let mut conn = store.connect()?;
        conn.execute_batch(SCHEMA).map_err(|e| failed(path, e))?;
        store.migrate(&mut conn)?;
        Ok(store)
    }

    /// Applies the migrations not yet applied, each in its own immediate
    /// transaction, so two processes opening one database at once do not
    /// both apply one.
    fn migrate(&self, conn: &mut Connection) -> Result<()> {
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let number = i as i64 + 1;
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| failed(&self.path, e))?;
            let applied: i64 =
                tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| failed(&self.path, e))?;
            if applied >= number {
                continue;
            }
            tx.execute_batch(sql).map_err(|e| failed(&self.path, e))?;
            tx.execute_batch(&format!("PRAGMA user_version = {number}")).map_err(|e| failed(&self.path, e))?;
            tx.commit().map_err(|e| failed(&self.path, e))?;
        }
        Ok(())
    }

    fn connect(&self) -> Result<Connection> {
        crate::audit::store::connect_durable(&self.path, Duration::from_secs(30)).map_err(|e| failed(&self.path, e))
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
        let mut conn = self.connect()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| failed(&self.path, e))?;
        let mut made = Vec::new();
        let created = crate::lock::now_secs();
        for (application, release) in pairs {
            let previous: Option<(i64, String)> = tx
                .query_row(
                    "SELECT version, descriptor FROM versions WHERE application = ?1 AND release = ?2 \
                     ORDER BY version DESC LIMIT 1",
                    params![application, release],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| failed(&self.path, e))?;
            let version = previous.as_ref().map(|p| p.0).unwrap_or(0) + 1;
            let (descriptor, mut warnings) = assemble(previous.as_ref().map(|p| p.1.as_str()))?;
            if warnings.iter().any(|w| !services.contains(&w.service)) {
                // Which earlier version's fragment defined each service.
                let mut stmt = tx
                    .prepare(
                        "SELECT version, services FROM versions WHERE application = ?1 AND release = ?2 \
                         ORDER BY version DESC",
                    )
                    .map_err(|e| failed(&self.path, e))?;
                let earlier: Vec<(i64, Vec<String>)> = stmt
                    .query_map(params![application, release], |r| {
                        Ok((r.get(0)?, serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default()))
                    })
                    .map_err(|e| failed(&self.path, e))?
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| failed(&self.path, e))?;
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
            tx.execute(
                "INSERT INTO versions (application, release, version, created, digest, services, fragment, descriptor, \
                 published_by, warnings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    application,
                    release,
                    version,
                    created as i64,
                    digest,
                    serde_json::to_string(services).unwrap_or_default(),
                    fragment,
                    descriptor,
                    published_by,
                    serde_json::to_string(&warnings).unwrap_or_default()
                ],
            )
            .map_err(|e| failed(&self.path, e))?;
            made.push(VersionInfo {
                application: application.clone(),
                release: release.clone(),
                version,
                created,
                digest,
                services: services.to_vec(),
                published_by: Some(published_by.to_string()),
                warnings,
            });
        }
        if strict && made.iter().any(|v| !v.warnings.is_empty()) {
            // Dropping the transaction rolls every insert back.
            return Ok(Appended::Refused(made));
        }
        tx.commit().map_err(|e| failed(&self.path, e))?;
        Ok(Appended::Stored(made))
    }

    /// The applications, sorted.
    pub fn applications(&self) -> Result<Vec<String>> {
        self.strings("SELECT DISTINCT application FROM versions ORDER BY application", &[])
    }

    /// The releases of an application, sorted.
    pub fn releases(&self, application: &str) -> Result<Vec<String>> {
        self.strings("SELECT DISTINCT release FROM versions WHERE application = ?1 ORDER BY release", &[application])
    }

    fn strings(&self, sql: &str, args: &[&str]) -> Result<Vec<String>> {
        let conn = self.connect()?;
        let mut stmt = conn.prepare(sql).map_err(|e| failed(&self.path, e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(0))
            .map_err(|e| failed(&self.path, e))?;
        rows.collect::<std::result::Result<_, _>>().map_err(|e| failed(&self.path, e))
    }

    /// The versions of a release, oldest first.
    pub fn versions(&self, application: &str, release: &str) -> Result<Vec<VersionInfo>> {
        let conn = self.connect()?;
        let mut stmt = conn
            .prepare(
                "SELECT version, created, digest, services, published_by, warnings FROM versions \
                 WHERE application = ?1 AND release = ?2 ORDER BY version",
            )
            .map_err(|e| failed(&self.path, e))?;
        let rows = stmt
            .query_map(params![application, release], |r| {
                Ok(VersionInfo {
                    application: application.to_string(),
                    release: release.to_string(),
                    version: r.get(0)?,
                    created: r.get::<_, i64>(1)? as u64,
                    digest: r.get(2)?,
                    services: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                    published_by: r.get(4)?,
                    warnings: r
                        .get::<_, Option<String>>(5)?
                        .and_then(|w| serde_json::from_str(&w).ok())
                        .unwrap_or_default(),
                })
            })
            .map_err(|e| failed(&self.path, e))?;
        rows.collect::<std::result::Result<_, _>>().map_err(|e| failed(&self.path, e))
    }

    /// Whether `application/release` has any version.
    pub fn has_release(&self, application: &str, release: &str) -> Result<bool> {
        let conn = self.connect()?;
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE application = ?1 AND release = ?2)",
            params![application, release],
            |r| r.get(0),
        )
        .map_err(|e| failed(&self.path, e))
    }

    /// One version's descriptor and digest (`None` version: the latest).
    pub fn descriptor(
        &self,
        application: &str,
        release: &str,
        version: Option<i64>,
    ) -> Result<Option<(i64, String, String)>> {
        let conn = self.connect()?;
        let row = match version {
            Some(v) => conn.query_row(
                "SELECT version, descriptor, digest FROM versions WHERE application = ?1 AND release = ?2 AND version = ?3",
                params![application, release, v],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            ),
            None => conn.query_row(
                "SELECT version, descriptor, digest FROM versions WHERE application = ?1 AND release = ?2 \
                 ORDER BY version DESC LIMIT 1",
                params![application, release],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            ),
        };
        row.optional().map_err(|e| failed(&self.path, e))
    }
}

fn failed(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Engine(format!("registry database {}: {e}", path.display()))
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
        conn.execute_batch(SCHEMA).unwrap();
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
        assert_eq!(version, MIGRATIONS.len() as i64);
    }
}

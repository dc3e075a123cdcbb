//! `dockmaster state migrate`: copies a host's SQLite state into the
//! fleet's PostgreSQL database (or back), keeping every row and the audit
//! trail's hash chain.
//!
//! What is copied: every audit record (with its id and chain link, in id
//! order, so `history --verify` passes on the copy), every approval, and
//! every registry version. What is not: the replay cache (entries live
//! minutes; a restart re-opens nothing that matters), schedule claims (per
//! time, already past) and locks (held only by live sessions). The copy is
//! one transaction per store: it lands whole or not at all, and the
//! target must not already hold a trail (two trails cannot be merged
//! without breaking one chain).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::sql::Sql;
use super::{Database, Postgres};
use crate::config::Config;
use crate::error::{Error, Result};

/// Where state is read from or written to: the audit trail's database and
/// the registry's (the same database on PostgreSQL).
#[derive(Debug, Clone)]
pub struct Place {
    audit: Database,
    registry: Database,
}

impl Place {
    /// `sqlite:FOLDER` (a state folder with `audit.db` and `registry.db`),
    /// or `postgres://…` (the password from `state.password_env`). `None`:
    /// the configuration's own state.
    pub fn parse(spec: Option<&str>, config: &Config) -> Result<Place> {
        let Some(spec) = spec else {
            return Ok(Place {
                audit: Database::for_store(config, crate::audit::database(config))?,
                registry: Database::for_store(config, crate::registry::server::database(config))?,
            });
        };
        if let Some(folder) = spec.strip_prefix("sqlite:") {
            let folder = PathBuf::from(folder);
            return Ok(Place {
                audit: Database::Sqlite(folder.join("audit.db")),
                registry: Database::Sqlite(folder.join("registry.db")),
            });
        }
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            let ca_file = config.state.ca_file.as_deref();
            let pg = Postgres::parse(spec, config.state.password_env.as_deref(), ca_file, Duration::from_secs(10))?;
            let db = Database::Postgres(Arc::new(pg));
            return Ok(Place { audit: db.clone(), registry: db });
        }
        Err(Error::Usage(format!(
            "`{}`: name a state folder as sqlite:FOLDER or a database as postgres://USER@HOST:PORT/DATABASE",
            super::shown_url(spec)
        )))
    }

    /// The place as messages name it.
    pub fn shown(&self) -> String {
        let (audit, registry) = (self.audit.shown(), self.registry.shown());
        if audit == registry {
            audit
        } else {
            format!("{audit} and {registry}")
        }
    }
}

/// What a migration copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Audit records.
    pub records: usize,
    /// Of which chained (and verified on the target).
    pub chained: usize,
    /// Approvals.
    pub approvals: usize,
    /// Registry versions.
    pub versions: usize,
}

/// Copies `from` into `to`, printing progress on `out`. Refuses (exit 2,
/// nothing written) when `to` already holds audit records or registry
/// versions, or when the source's chain does not verify.
pub fn run(from: &Place, to: &Place, out: &mut dyn Write) -> Result<Copied> {
    if from.shown() == to.shown() {
        return Err(Error::Usage(format!("`--from` and `--to` are both {}: nothing to do", from.shown())));
    }
    let source = crate::audit::Store::open_in(from.audit.clone())?;
    let records = {
        let mut all = source.query(&crate::audit::Query::default())?;
        all.reverse(); // oldest first: the chain is copied in order
        all
    };
    let approvals = source.approvals()?;
    // A broken chain is not carried over as if it held.
    if let Err((id, why)) = source.verify()? {
        return Err(Error::Usage(format!(
            "the audit trail at {} is broken at record {id} ({why}); nothing was copied: run `history --verify` \
             there and restore the trail from a backup first",
            from.audit.shown()
        )));
    }
    let registry = crate::registry::store::Store::open_in(from.registry.clone())?.everything()?;
    let _ = writeln!(
        out,
        "read {} audit records, {} approvals and {} registry versions from {}",
        records.len(),
        approvals.len(),
        registry.len(),
        from.shown()
    );

    // The target: schemas first, then a check that it is empty (before
    // anything is written), then one transaction per store.
    let _ = writeln!(out, "copying to {} ...", to.shown());
    let target = crate::audit::Store::open_in(to.audit.clone())?;
    crate::registry::store::Store::open_in(to.registry.clone())?;
    let held = |db: &Database, sql: &str| -> Result<i64> {
        db.run(Duration::from_secs(30), |conn| {
            let rows = conn.query(sql, &[]).map_err(|e| db.failed(e, "cannot count what it holds"))?;
            Ok(rows.first().map(|r| r.int(0)).unwrap_or_default())
        })
    };
    if held(&to.audit, "SELECT (SELECT count(*) FROM requests) + (SELECT count(*) FROM approvals)")? > 0 {
        return Err(Error::Usage(format!(
            "{} already holds an audit trail; nothing was copied (two trails cannot be merged without breaking a \
             hash chain: migrate into an empty database)",
            to.audit.shown()
        )));
    }
    if !registry.is_empty() && held(&to.registry, "SELECT count(*) FROM versions")? > 0 {
        return Err(Error::Usage(format!(
            "{} already holds registry versions; nothing was copied (versions are numbered per release: migrate \
             into an empty database)",
            to.registry.shown()
        )));
    }
    let copy_audit = |tx: &mut dyn Sql| -> Result<()> {
        for record in &records {
            crate::audit::Store::copy_in(tx, record).map_err(|e| to.audit.failed(e, "cannot copy a record"))?;
        }
        for (id, approval) in &approvals {
            crate::audit::Store::copy_approval(tx, *id, approval)
                .map_err(|e| to.audit.failed(e, "cannot copy an approval"))?;
        }
        resume_ids(tx, &["requests", "approvals"]).map_err(|e| to.audit.failed(e, "cannot move its ids on"))
    };
    let copy_registry = |tx: &mut dyn Sql| -> Result<()> {
        for (version, fragment, descriptor) in &registry {
            crate::registry::store::Store::copy_in(tx, version, fragment, descriptor)
                .map_err(|e| to.registry.failed(e, "cannot copy a registry version"))?;
        }
        Ok(())
    };
    if to.audit.shown() == to.registry.shown() {
        // One database (PostgreSQL): one transaction, all or nothing.
        to.audit.run(Duration::from_secs(60), |conn| {
            conn.transaction(&["requests", "approvals", "versions"], |tx| -> Result<()> {
                copy_audit(tx)?;
                copy_registry(tx)
            })
        })?;
    } else {
        to.audit
            .run(Duration::from_secs(60), |conn| conn.transaction(&["requests", "approvals"], |tx| copy_audit(tx)))?;
        to.registry.run(Duration::from_secs(60), |conn| conn.transaction(&["versions"], |tx| copy_registry(tx)))?;
    }
    let _ = writeln!(
        out,
        "copied {} audit records, {} approvals and {} registry versions to {}",
        records.len(),
        approvals.len(),
        registry.len(),
        to.shown()
    );

    // The copy is checked, not assumed.
    let copied = target.query(&crate::audit::Query::default())?.len();
    let chained = match target.verify()? {
        Ok(n) => n,
        Err((id, why)) => {
            return Err(Error::Usage(format!(
                "the copy at {} does not verify at record {id} ({why}); report this as a bug",
                to.audit.shown()
            )))
        }
    };
    if copied != records.len() {
        return Err(Error::Usage(format!(
            "the copy at {} holds {copied} audit records, not {}; report this as a bug",
            to.audit.shown(),
            records.len()
        )));
    }
    let _ = writeln!(out, "verified: {chained} chained records on {}, every link holds", to.audit.shown());
    Ok(Copied { records: records.len(), chained, approvals: approvals.len(), versions: registry.len() })
}

/// After rows were copied with their ids, new rows must continue after
/// them: PostgreSQL's identity sequences are moved past the highest id
/// (SQLite's AUTOINCREMENT follows the table by itself).
fn resume_ids(tx: &mut dyn Sql, tables: &[&str]) -> std::result::Result<(), super::sql::DbError> {
    if tx.dialect() != super::sql::Dialect::Postgres {
        return Ok(());
    }
    for table in tables {
        tx.query(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table})) \
                 WHERE EXISTS (SELECT 1 FROM {table})"
            ),
            &[],
        )?;
    }
    Ok(())
}

//! Schedule runs claimed in the state backend, so a schedule fires once
//! per time however many `serve` replicas carry it.
//!
//! Every replica wakes at the schedule's time and tries to claim
//! `(schedule, time)`; the one insert that lands runs it, the others log
//! that another replica has it. On SQLite the claim is shared by the
//! processes on one host (`schedules.db` in the state folder); on
//! PostgreSQL by the whole fleet. When the backend cannot be reached the
//! run is skipped (fail closed): a run no one can account for is worse
//! than a late one.

use std::time::Duration;

use crate::config::Config;
use crate::error::Result;
use crate::state::sql::Sql;
use crate::state::{Database, Schema};

/// The claims table, the same on both backends.
pub const SCHEMA: Schema = Schema {
    name: "schedules",
    sqlite: &[(
        "V1__schedule_runs",
        "CREATE TABLE IF NOT EXISTS schedule_runs (schedule TEXT NOT NULL, due INTEGER NOT NULL, kind TEXT NOT NULL,
            claimed_by TEXT NOT NULL, claimed_at INTEGER NOT NULL, PRIMARY KEY (schedule, due, kind));",
    )],
    postgres: &[(
        "V1__schedule_runs",
        "CREATE TABLE IF NOT EXISTS schedule_runs (schedule TEXT NOT NULL, due BIGINT NOT NULL, kind TEXT NOT NULL,
            claimed_by TEXT NOT NULL, claimed_at BIGINT NOT NULL, PRIMARY KEY (schedule, due, kind));",
    )],
};

/// What a claim is for: a run at its time, or the one report of runs
/// missed while no replica was up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The run due at the time.
    Run,
    /// The `missed` record for runs from the time on.
    Missed,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Missed => "missed",
        }
    }
}

/// The claims database the configuration names.
pub fn database(config: &Config) -> Result<Database> {
    Database::for_store(config, config.state_dir().join("schedules.db"))
}

/// Claims `schedule`'s `kind` at `due` (Unix seconds) for this process:
/// `true` for the one claimant that gets it, `false` for every other.
pub fn claim(db: &Database, schedule: &str, due: i64, kind: Kind) -> Result<bool> {
    let by = format!("{} pid {}", crate::lock::host_name(), std::process::id());
    db.run(Duration::from_secs(10), |conn| {
        SCHEMA.migrate(conn, db)?;
        let changed = conn
            .exec(
                "INSERT INTO schedule_runs (schedule, due, kind, claimed_by, claimed_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (schedule, due, kind) DO NOTHING",
                &[
                    schedule.into(),
                    due.into(),
                    kind.as_str().into(),
                    by.as_str().into(),
                    crate::lock::now_secs().into(),
                ],
            )
            .map_err(|e| db.failed(e, "cannot claim the schedule's run"))?;
        Ok(changed == 1)
    })
}

/// Who claimed `schedule`'s `kind` at `due`, for the log line of the
/// replicas that did not.
pub fn claimant(db: &Database, schedule: &str, due: i64, kind: Kind) -> Option<String> {
    db.run(Duration::from_secs(10), |conn| {
        let row = conn
            .query_opt(
                "SELECT claimed_by FROM schedule_runs WHERE schedule = ?1 AND due = ?2 AND kind = ?3",
                &[schedule.into(), due.into(), kind.as_str().into()],
            )
            .map_err(|e| db.failed(e, "cannot read the schedule's claims"))?;
        Ok(row.map(|r| r.text(0)))
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::Sqlite(dir.path().join("schedules.db"));
        assert!(claim(&db, "nightly", 1_000, Kind::Run).unwrap());
        assert!(!claim(&db, "nightly", 1_000, Kind::Run).unwrap(), "a second claimant");
        assert!(claim(&db, "nightly", 1_000, Kind::Missed).unwrap(), "another kind");
        assert!(claim(&db, "nightly", 1_060, Kind::Run).unwrap(), "the next time");
        assert!(claimant(&db, "nightly", 1_000, Kind::Run).unwrap().contains("pid"));
    }
}

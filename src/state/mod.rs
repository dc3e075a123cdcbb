//! Where dockmaster's shared state lives: SQLite files on one host (the
//! default), or one PostgreSQL database for a fleet.
//!
//! A Rundeck cluster, bot replicas and cron hosts that deploy the same
//! targets must agree on who holds a target, what was deployed before,
//! who approved what, and which signed request was already acted on. With
//! `state.url: postgres://…` every store (the audit trail and deploy
//! history, approvals, the registry, the replay cache, schedule runs) and
//! every target lock lives in that one database; without it each store is
//! a SQLite file in `state_dir` and locks are flock files in `lock_dir`.
//!
//! The stores are written once against [`sql::Sql`]; each has versioned
//! migrations per backend ([`Schema`]) with the same tables and columns.
//! When PostgreSQL cannot be reached, requests fail closed: exit 5, nothing
//! done.

pub mod lock;
pub mod migrate;
pub mod sql;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};
use sql::{Conn, DbError};

/// Where one store lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file, private to this host.
    Sqlite(PathBuf),
    /// The fleet's PostgreSQL database.
    Postgres(Arc<Postgres>),
}

/// A PostgreSQL database to connect to, and how to name it without its
/// password.
#[derive(Clone)]
pub struct Postgres {
    config: postgres::Config,
    shown: String,
    /// TLS with a verified certificate, when the URL says
    /// `sslmode=require`; else plain (`disable`, or `prefer`, which
    /// dockmaster treats as plain rather than half-verified).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.write_str(&self.shown)
    }
}

impl Postgres {
    /// Parses `url` (`postgres://user@host:port/db`), with the password
    /// from the environment variable `password_env` when given, trusting
    /// `ca_file` (PEM) for `sslmode=require` instead of the system's trust
    /// store.
    pub fn parse(url: &str, password_env: Option<&str>, ca_file: Option<&Path>, timeout: Duration) -> Result<Postgres> {
        let bad = |e: String| {
            Error::Usage(format!(
                "`state.url`: {e}; write it as postgres://USER@HOST:PORT/DATABASE and give the password with \
                 `state.password_env`"
            ))
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(format!("`{}` is not a postgres:// URL", shown_url(url))));
        }
        let mut config: postgres::Config = url.parse().map_err(|e| bad(format!("{e}")))?;
        if let Some(var) = password_env {
            config.password(crate::secrets::read_secret(Some(var), None, "state.password_env")?);
        }
        config.connect_timeout(timeout);
        config.application_name("dockmaster");
        let shown = shown_config(&config);
        let tls = match config.get_ssl_mode() {
            postgres::config::SslMode::Require => {
                let client = crate::tls::client_config(ca_file, "state.ca_file")?;
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(client))
            }
            _ => None,
        };
        Ok(Postgres { config, shown, tls })
    }

    /// The database as it is named in messages: no password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A new session. Runs on the calling thread, which must not be inside
    /// the async runtime (see [`Database::run`]).
    pub fn connect(&self) -> Result<postgres::Client> {
        let connected = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        };
        connected.map_err(|e| {
            Error::Unreachable(format!(
                "state database {}: cannot connect: {} (dockmaster fails closed while its state database is \
                 unreachable: nothing was done; check `state.url` and that PostgreSQL is up)",
                self.shown,
                describe(&e)
            ))
        })
    }
}

/// A PostgreSQL error in words: the server's message, else the driver's
/// with its cause.
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn shown_config(config: &postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// A URL with any password replaced, for messages about a URL that did
/// not parse.
pub fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &credentials[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The state database's password, from the variable `state.password_env`
/// names (as `read_secret` reads it), when one is set.
pub fn password(config: &Config) -> Option<String> {
    crate::secrets::read_secret(Some(config.state.password_env.as_deref()?), None, "state.password_env").ok()
}

/// The backend the configuration names: `None` for SQLite (the default).
/// Parsed once per process and configuration (the TLS set-up reads the
/// trust store), then shared.
pub fn postgres(config: &Config) -> Result<Option<Arc<Postgres>>> {
    type Parsed = Option<(String, Arc<Postgres>)>;
    static PARSED: std::sync::Mutex<Parsed> = std::sync::Mutex::new(None);
    let Some(url) = config.state.url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let key = format!(
        "{url}\n{:?}\n{:?}\n{:?}\n{:?}",
        config.state.password_env,
        // The password's digest, so a changed password is parsed again
        // and the key itself holds no secret.
        password(config).map(|p| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(p.as_bytes()))
        }),
        config.state.ca_file,
        config.state.connect_timeout
    );
    if let Ok(parsed) = PARSED.lock() {
        if let Some((k, pg)) = parsed.as_ref() {
            if *k == key {
                return Ok(Some(pg.clone()));
            }
        }
    }
    let pg = parse_config(config, url)?;
    if let Ok(mut parsed) = PARSED.lock() {
        *parsed = Some((key, pg.clone()));
    }
    Ok(Some(pg))
}

fn parse_config(config: &Config, url: &str) -> Result<Arc<Postgres>> {
    let timeout = match &config.state.connect_timeout {
        Some(text) => {
            crate::config::parse_duration(text).map_err(|e| Error::Usage(format!("`state.connect_timeout`: {e}")))?
        }
        None => Duration::from_secs(5),
    };
    let password_env = config.state.password_env.as_deref();
    Ok(Arc::new(Postgres::parse(url, password_env, config.state.ca_file.as_deref(), timeout)?))
}

impl Database {
    /// The database of one store: `sqlite_file` unless the configuration
    /// names PostgreSQL.
    pub fn for_store(config: &Config, sqlite_file: PathBuf) -> Result<Database> {
        Ok(match postgres(config)? {
            Some(pg) => Database::Postgres(pg),
            None => Database::Sqlite(sqlite_file),
        })
    }

    /// The database as messages name it (a path, or a URL without its
    /// password).
    pub fn shown(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(pg) => pg.shown().to_string(),
        }
    }

    /// The SQLite file, when this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// Connects and runs `body` on the connection. PostgreSQL's blocking
    /// client runs its own small runtime, which must not be started from
    /// inside dockmaster's: its work goes to a plain thread for the
    /// call, so a store can be used from anywhere. SQLite runs here.
    pub fn run<T: Send>(&self, busy: Duration, body: impl FnOnce(&mut Conn) -> Result<T> + Send) -> Result<T> {
        match self {
            Database::Sqlite(path) => {
                let conn = crate::audit::store::connect_durable(path, busy).map_err(|e| {
                    Error::Usage(format!(
                        "state database {}: cannot open it: {e} (check `state_dir` and the folder's permissions)",
                        path.display()
                    ))
                })?;
                body(&mut Conn::Sqlite(conn))
            }
            Database::Postgres(pg) => off_runtime(|| {
                let client = pg.connect()?;
                let mut conn = Conn::Postgres(Box::new(client));
                body(&mut conn)
            }),
        }
    }

    /// Checks that the backend answers (`/readyz`, `state check`).
    pub fn ping(&self) -> Result<()> {
        self.run(Duration::from_secs(2), |conn| {
            use sql::Sql;
            conn.query("SELECT 1", &[]).map_err(|e| self.failed(e, "cannot query it"))?;
            Ok(())
        })
    }

    /// A statement failure as a dockmaster error: exit 5 when the
    /// database went away, else exit 2 naming the database and the step.
    pub fn failed(&self, e: DbError, doing: &str) -> Error {
        if e.unreachable {
            Error::Unreachable(format!(
                "state database {}: {doing}: {e} (dockmaster fails closed while its state database is unreachable)",
                self.shown()
            ))
        } else {
            Error::Usage(format!("state database {}: {doing}: {e}", self.shown()))
        }
    }
}

/// Runs `work` on a thread outside the async runtime when called from
/// inside it (the blocking PostgreSQL client may not run there); inline
/// otherwise.
pub fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// One store's versioned schema, the same tables and columns on both
/// backends. Versions only ever grow; each backend records the versions it
/// applied in `<name>_schema_history`.
pub struct Schema {
    /// The store, e.g. `audit`; names the history table.
    pub name: &'static str,
    /// `(V<n>__<what>, SQL)` for SQLite, oldest first.
    pub sqlite: &'static [(&'static str, &'static str)],
    /// The same versions for PostgreSQL.
    pub postgres: &'static [(&'static str, &'static str)],
}

impl Schema {
    /// Applies the versions `conn` lacks, once, even when several
    /// processes open the store at the same moment.
    pub fn migrate(&self, conn: &mut Conn, db: &Database) -> Result<()> {
        let versions = match conn {
            Conn::Sqlite(_) => self.sqlite,
            Conn::Postgres(_) => self.postgres,
        };
        let migrations = versions
            .iter()
            .map(|(name, sql)| refinery::Migration::unapplied(name, sql))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("the {} schema is malformed: {e}", self.name)))?;
        let mut runner = refinery::Runner::new(&migrations).set_grouped(true);
        runner.set_migration_table_name(format!("{}_schema_history", self.name));
        let failed = |e: refinery::Error| {
            Error::Usage(format!(
                "state database {}: cannot bring the {} schema up to date: {e}",
                db.shown(),
                self.name
            ))
        };
        match conn {
            Conn::Sqlite(sqlite) => {
                // Fast path: everything applied already (every open but the first).
                let applied = runner.get_last_applied_migration(sqlite).ok().flatten().map(|m| m.version());
                if applied == migrations.last().map(|m| m.version()) {
                    return Ok(());
                }
                // Two processes migrating one file at once would both
                // apply version 1: the file's own lock serialises them.
                let _guard = db.sqlite_path().map(sqlite_migration_lock).transpose()?;
                runner.run(sqlite).map_err(failed)?;
            }
            Conn::Postgres(client) => {
                // Fast path, without the lock every replica would queue on:
                // everything applied already (every open but the first).
                let applied = runner.get_last_applied_migration(client.as_mut()).ok().flatten().map(|m| m.version());
                if applied == migrations.last().map(|m| m.version()) {
                    return Ok(());
                }
                let key = lock::advisory_key(&format!("schema:{}", self.name));
                client
                    .execute("SELECT pg_advisory_lock($1)", &[&key])
                    .map_err(|e| db.failed(e.into(), "cannot lock the schema"))?;
                let result = runner.run(client.as_mut()).map_err(failed);
                let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&key]);
                result?;
            }
        }
        Ok(())
    }
}

/// An exclusive lock on `<file>.migrate`, held while a SQLite file's
/// schema is brought up to date.
fn sqlite_migration_lock(path: &Path) -> Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".migrate");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|e| Error::Usage(format!("{}: cannot open: {e}", PathBuf::from(&name).display())))?;
    file.lock().map_err(|e| Error::Usage(format!("{}: cannot lock: {e}", PathBuf::from(&name).display())))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        let pg =
            Postgres::parse("postgres://deployer:hunter22@db.example:6543/fleet", None, None, Duration::from_secs(1))
                .unwrap();
        assert_eq!(pg.shown(), "postgres://deployer@db.example:6543/fleet");
        assert!(!format!("{pg:?}").contains("hunter22"));
        assert_eq!(shown_url("mysql://u:hunter22@h/db"), "mysql://u:***@h/db");
        let err = Postgres::parse("mysql://u:hunter22@h/db", None, None, Duration::from_secs(1)).unwrap_err();
        assert!(!err.to_string().contains("hunter22"), "{err}");
    }

    #[test]
    fn an_unreachable_database_fails_closed_with_exit_5() {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let pg =
            Postgres::parse(&format!("postgres://u@127.0.0.1:{port}/db"), None, None, Duration::from_secs(1)).unwrap();
        let db = Database::Postgres(Arc::new(pg));
        let err = db.ping().unwrap_err();
        assert_eq!(err.exit_code(), 5, "{err}");
        assert!(err.to_string().contains("fails closed"), "{err}");
    }
}

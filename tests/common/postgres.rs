//! A throwaway PostgreSQL server for tests: its own cluster in a temporary
//! folder, on a free loopback port, stopped when dropped. Self-contained, so
//! any test file can include it:
//!
//! ```ignore
//! #[path = "common/postgres.rs"]
//! mod postgres;
//!
//! let Some(pg) = postgres::Postgres::start() else { return };
//! let url = pg.database("history"); // postgres://dockmaster@127.0.0.1:PORT/history
//! assert_eq!(pg.psql("history", "SELECT count(*) FROM runs"), "0");
//! ```
//!
//! When PostgreSQL is not installed, [`Postgres::start`] returns `None` after
//! a note, so the test can return; with `CI` set it panics instead, because a
//! skipped test in CI hides breakage.
//!
//! ## The cluster
//!
//! One superuser, [`USER`], with `trust` authentication (no password), UTF-8
//! and the `C` locale (the same on every machine). It listens on 127.0.0.1
//! only, and on a Unix socket inside its own folder, never in
//! `/var/run/postgresql`, so it cannot collide with a system server or with
//! another test's cluster: tests in one binary may start several at once.
//! Durability is off (`--no-sync`, `fsync=off`): a cluster lives for one test.
//!
//! PostgreSQL refuses to run as root, and CI runs tests as root: then
//! `initdb` and `pg_ctl` run as the `postgres` user (which Debian's package
//! creates) through `runuser`, and the folder is handed to that user.

// Each test file uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The cluster's superuser, the user in every URL.
pub const USER: &str = "dockmaster";

/// The user PostgreSQL runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// Port clashes (another process took the port between asking the kernel
/// for it and the server binding it) are retried this often.
const START_ATTEMPTS: usize = 5;

/// Whether tests run in CI: `CI` set to anything but empty, `0` or `false`.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// The PostgreSQL programs this harness uses.
struct Tools {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

impl Tools {
    /// Debian's `postgresql` package keeps the server programs out of `PATH`,
    /// in `/usr/lib/postgresql/N/bin` (newest major first); `/usr/local/bin`
    /// may hold links to them; other systems have them in `PATH`. `psql` is
    /// taken from the same folder as `initdb` when it is there, so client and
    /// server versions match.
    fn find() -> Option<Tools> {
        let mut dirs = versioned_bin_dirs();
        dirs.push(PathBuf::from("/usr/local/bin"));
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        let (dir, initdb, pg_ctl) = dirs.iter().find_map(|d| {
            let (initdb, pg_ctl) = (d.join("initdb"), d.join("pg_ctl"));
            (initdb.is_file() && pg_ctl.is_file()).then(|| (d.clone(), initdb, pg_ctl))
        })?;
        let psql = [dir.join("psql"), PathBuf::from("/usr/bin/psql")]
            .into_iter()
            .find(|p| p.is_file())
            .or_else(|| dirs.iter().map(|d| d.join("psql")).find(|p| p.is_file()))?;
        Some(Tools { initdb, pg_ctl, psql })
    }

    /// The tools, or `None` after a note (or, in CI, a panic).
    fn find_or_skip() -> Option<Tools> {
        if let Some(tools) = Tools::find() {
            return Some(tools);
        }
        if in_ci() {
            panic!(
                "CI is set but PostgreSQL (`initdb`, `pg_ctl`, `psql`) is missing: \
                 .ci/run must install postgresql"
            );
        }
        eprintln!("note: PostgreSQL is not installed; skipping this database test (apt-get install postgresql)");
        None
    }
}

/// `/usr/lib/postgresql/N/bin` folders, highest `N` first.
fn versioned_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") else { return Vec::new() };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // "15", or "9.6" for old majors; anything else is not a version.
            let key: Option<Vec<u32>> = name.split('.').map(|part| part.parse().ok()).collect();
            Some((key?, e.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// Whether this process runs as root (effective uid 0), from
/// `/proc/self/status`, else from `id -u`.
fn running_as_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            // Uid: real effective saved filesystem
            return line.split_whitespace().nth(2) == Some("0");
        }
    }
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A free port on 127.0.0.1 (asked of the kernel, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `command` and asserts it succeeded, showing its output if not.
fn run(mut command: Command, what: &str) -> Output {
    let out = command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what} does not run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running PostgreSQL cluster. Dropping it stops the server (immediate
/// shutdown: nothing needs to survive) and removes its folder.
pub struct Postgres {
    port: u16,
    tools: Tools,
    as_root: bool,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Makes a cluster and starts its server, waiting until it accepts
    /// connections. `None` when PostgreSQL is missing outside CI.
    pub fn start() -> Option<Postgres> {
        let tools = Tools::find_or_skip()?;
        let as_root = running_as_root();
        // As root the folder must be reachable by the server user: /tmp is,
        // whatever TMPDIR says (it might be under /root). It also keeps the
        // Unix socket path short (about 100 bytes at most).
        let dir = if as_root {
            tempfile::Builder::new().prefix("dockmaster-pg").tempdir_in("/tmp")
        } else {
            tempfile::Builder::new().prefix("dockmaster-pg").tempdir()
        }
        .expect("a temporary folder");
        std::fs::create_dir(dir.path().join("socket")).unwrap();
        if as_root {
            // tempfile makes folders 0700; the server user must get in.
            let mut chown = Command::new("chown");
            chown.args(["-R", &format!("{SERVER_USER}:")]).arg(dir.path());
            run(chown, "chown");
            let mut chmod = Command::new("chmod");
            chmod.arg("755").arg(dir.path());
            run(chmod, "chmod");
        }
        let mut pg = Postgres { port: 0, tools, as_root, dir };

        let mut initdb = pg.server_command(&pg.tools.initdb);
        initdb.arg("-D").arg(pg.data_dir()).args(["-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
        run(initdb, "initdb");

        for attempt in 1..=START_ATTEMPTS {
            pg.port = free_port();
            let out = pg.pg_ctl_start();
            if out.status.success() {
                return Some(pg);
            }
            let log = pg.log();
            // A failed start leaves no server, but make sure before retrying.
            pg.stop();
            let clash = log.contains("could not bind") || log.contains("already in use");
            if !clash || attempt == START_ATTEMPTS {
                panic!(
                    "pg_ctl start failed ({}) on port {}:\n{}{}\nserver log:\n{log}",
                    out.status,
                    pg.port,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // Start the next attempt's log afresh.
            let _ = std::fs::remove_file(pg.log_file());
        }
        unreachable!()
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://dockmaster@127.0.0.1:PORT/postgres`: the default database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// `postgres://dockmaster@127.0.0.1:PORT/NAME` (`name` is not escaped:
    /// keep it to letters, digits, `_` and `-`).
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates the database `name` and answers its URL.
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")));
        self.url_for(name)
    }

    /// Runs SQL in database `db` as [`USER`] and answers psql's unaligned,
    /// tuples-only output (`-At`: columns split by `|`, one row a line),
    /// trimmed. Panics with psql's errors when a statement fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut psql = Command::new(&self.tools.psql);
        // -X: no ~/.psqlrc; the PG* variables of the caller must not steer it.
        psql.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", USER, "-d", db, "-c", sql]);
        for var in ["PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGOPTIONS", "PGSSLMODE", "PGTZ"] {
            psql.env_remove(var);
        }
        let out = run(psql, &format!("psql -d {db} -c {sql:?}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Turns TLS on with the certificate `cert` and key `key` (PEM), and
    /// refuses every connection over TCP without it (`hostnossl … reject`),
    /// so a client that connects at all used TLS. Applied with a reload.
    pub fn require_tls(&self, cert: &Path, key: &Path) {
        let data = self.data_dir();
        std::fs::copy(cert, data.join("server.crt")).expect("copy the server certificate");
        std::fs::copy(key, data.join("server.key")).expect("copy the server key");
        let mut conf = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        use std::io::Write;
        writeln!(conf, "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'").unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostnossl all all 0.0.0.0/0 reject\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        if self.as_root {
            let mut chown = Command::new("chown");
            chown.args([&format!("{SERVER_USER}:")]).arg(data.join("server.crt")).arg(data.join("server.key"));
            run(chown, "chown");
        }
        let mut chmod = Command::new("chmod");
        chmod.arg("600").arg(data.join("server.key"));
        run(chmod, "chmod");
        let mut reload = self.server_command(&self.tools.pg_ctl);
        reload.arg("-D").arg(&data).arg("reload");
        run(reload, "pg_ctl reload");
        // The reload is asynchronous: wait until a plain connection is refused.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut plain = Command::new(&self.tools.psql);
            plain
                .args(["-X", "-q", "-At", "-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .args(["-U", USER, "-d", "postgres", "-c", "SELECT 1"])
                .env("PGSSLMODE", "disable");
            let refused = plain.output().map(|o| !o.status.success()).unwrap_or(false);
            if refused {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the server still takes plain connections:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// The cluster's folder (the data folder is `data` inside it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A command for a server program: as the server user when root. It
    /// runs in the cluster folder, as a current folder the server user may
    /// not be able to enter makes initdb complain.
    fn server_command(&self, program: &Path) -> Command {
        let mut command = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_USER, "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.current_dir(self.dir.path());
        command
    }

    /// `pg_ctl start -w` on [`Postgres::port`]. The server's output goes to
    /// the log file, so nothing holds this process's pipes open.
    fn pg_ctl_start(&self) -> Output {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().join("socket").display()
        );
        let mut pg_ctl = self.server_command(&self.tools.pg_ctl);
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "start"]);
        pg_ctl.stdin(Stdio::null()).output().expect("pg_ctl runs")
    }

    /// Stops the server at once (no checkpoint); quiet when none runs.
    fn stop(&self) {
        let mut pg_ctl = self.server_command(&self.tools.pg_ctl);
        pg_ctl.arg("-D").arg(self.data_dir()).args(["-m", "immediate", "-w", "stop"]);
        let _ = pg_ctl.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The server first: the folder goes after (TempDir's own drop).
        self.stop();
    }
}

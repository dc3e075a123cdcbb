//! Many dockmaster processes, one truth: the state backend in a real,
//! throwaway PostgreSQL, against the real engine and the real binary.
//!
//! Each "host" is a dockmaster process with its own state folder and lock
//! folder (`DOCKMASTER__STATE_DIR`, `DOCKMASTER__LOCK_DIR`): what they
//! share is only the database `state.url` names, as a Rundeck cluster's
//! members, a bot host and a cron host would.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/postgres.rs"]
mod postgres;
#[path = "common/slapd.rs"]
mod slapd;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{wait_until, TestRun, FIXTURE_IMAGE};
use hmac::{Hmac, Mac};
use http::Server;
use postgres::Postgres;
use sha2::Sha256;

const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// A cluster and a database of its own for one test; `state.url` in the
/// run's configuration names it.
fn shared_state(run: &TestRun, pg: &Postgres) -> String {
    let url = pg.database("fleet");
    run.add_config(&format!("state:\n  url: \"{url}\"\n"));
    url
}

/// The environment of another host: its own state and lock folders.
fn other_host(run: &TestRun, name: &str) -> Vec<(String, String)> {
    let state: PathBuf = run.dir().join(format!("{name}-state"));
    let locks: PathBuf = run.dir().join(format!("{name}-locks"));
    vec![
        ("DOCKMASTER__STATE_DIR".into(), state.display().to_string()),
        ("DOCKMASTER__LOCK_DIR".into(), locks.display().to_string()),
    ]
}

fn env(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn idle(version: &str) -> String {
    format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n    \
         environment:\n      VERSION: \"{version}\"\n"
    )
}

fn count(pg: &Postgres, sql: &str) -> i64 {
    pg.psql("fleet", sql).parse().unwrap_or_else(|e| panic!("{sql}: not a number ({e})"))
}

#[test]
fn two_hosts_deploying_one_target_serialise_through_postgres_the_waiter_names_the_holder_and_kill_9_frees_it() {
    let Some(run) = TestRun::start("fleet-lock") else { return };
    let Some(pg) = Postgres::start() else { return };
    shared_state(&run, &pg);
    let file = run.compose(&idle("1"));
    let host_a = other_host(&run, "a");
    let host_b = other_host(&run, "b");

    // Host A holds the target for a long stability window.
    let mut a = run.spawn_dockmaster(
        ["deploy", &file, "--timeout", "120s", "--stability-window", "60s", "--output", "json"],
        &env(&host_a),
    );
    let holds = wait_until(Duration::from_secs(60), || run.container_id("app").is_some() || !a.is_running());
    assert!(holds, "host A's container did not appear ({})", a.command());
    if !a.is_running() {
        panic!("host A's deploy ended before host B could race it:{}", a.finish().describe());
    }
    let before = run.container_id("app");

    // Host B, with other folders, is refused: the lock is in PostgreSQL.
    let busy = run.dockmaster_with_env(["deploy", &file, "--lock-wait", "1s", "--output", "json"], &env(&host_b));
    busy.assert_exit(6);
    busy.check(busy.stderr.contains("in progress by"), "B is told the target is in progress");
    busy.check(busy.stderr.contains(&format!("pid {}", a.pid())), "B is told A's pid");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    busy.check(busy.stderr.contains(&format!(" on {}", host.trim())), "B is told on which host A runs");
    busy.check(busy.stderr.contains("since "), "B is told since when");
    busy.check(run.container_id("app") == before, "B changed nothing on the engine");

    // A dies without a word: PostgreSQL ends its session and frees the lock.
    a.signal("KILL");
    let killed = a.finish();
    killed.check(killed.code.is_none(), "SIGKILL ended host A's deploy");
    let started = Instant::now();
    let after = run.dockmaster_with_env(["deploy", &file, "--lock-wait", "60s", "--output", "json"], &env(&host_b));
    after.assert_exit(0);
    after.check(started.elapsed() < Duration::from_secs(55), "B did not have to wait out its whole lock wait");
    // Both hosts' requests are in the one trail.
    assert!(count(&pg, "SELECT count(*) FROM requests WHERE exit_code = 6") >= 1, "B's refusal is recorded");
    assert!(count(&pg, "SELECT count(*) FROM requests WHERE verdict = 'healthy'") >= 1, "B's deploy is recorded");
    assert_eq!(count(&pg, "SELECT count(*) FROM lock_holders"), 0, "no holder is left once B finished");
}

#[test]
fn rollback_chooses_the_same_previous_version_from_either_host() {
    let Some(run) = TestRun::start_named("fleet-rb") else { return };
    let Some(pg) = Postgres::start() else { return };
    shared_state(&run, &pg);
    run.add_config("descriptors: descriptors\n");
    for v in ["1", "2"] {
        run.write(&run.named_file(v), &format!("name: {}\n{}", run.project, idle(v)));
    }
    let host_a = other_host(&run, "a");
    let host_b = other_host(&run, "b");
    for v in ["1", "2"] {
        let out =
            run.dockmaster_with_env(["deploy", &run.named(v), "--timeout", "60s", "--output", "json"], &env(&host_a));
        out.assert_exit(0);
    }

    // Host B never deployed anything, and has its own empty state folder.
    let out =
        run.dockmaster_with_env(["rollback", &run.named(""), "--timeout", "60s", "--output", "json"], &env(&host_b));
    out.assert_exit(0);
    let report = out.json();
    report.check(
        report.value.pointer("/descriptor/version").and_then(|v| v.as_str()) == Some("1"),
        "host B rolls back to version 1, the one before what host A deployed",
    );
    let env_now = common::inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default();
    out.check(env_now.contains("VERSION=1"), format!("version 1 runs ({env_now})"));
    // And host A's history shows host B's rollback.
    let history = run.dockmaster_with_env(["history", "--output", "json"], &env(&host_a));
    history.assert_exit(0);
    history.check(history.stdout.contains("\"rollback\""), "host A's history shows B's rollback");
    assert!(!run.dir().join("b-state/audit.db").exists(), "host B wrote no local trail: everything went to PostgreSQL");
}

#[test]
fn the_sqlite_state_migrates_into_postgres_with_every_row_and_a_chain_that_verifies() {
    let Some(run) = TestRun::start("fleet-migrate") else { return };
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("fleet");
    let file = run.compose(&idle("1"));
    // Some history on SQLite: two deploys, a plan, a down.
    run.deploy(&file, &[]).assert_exit(0);
    run.compose(&idle("2"));
    run.deploy(&file, &[]).assert_exit(0);
    run.dockmaster(["plan", &file]);
    run.dockmaster(["down", &file]).assert_exit(0);
    let local = run.dockmaster(["history", "--output", "json", "--limit", "1000"]);
    local.assert_exit(0);
    let local: serde_json::Value = serde_json::from_str(&local.stdout).unwrap();
    let rows = local.as_array().unwrap().len();
    assert!(rows >= 4, "{local}");

    let state = run.dir().join("state");
    let migrate = run.dockmaster(["state", "migrate", "--from", &format!("sqlite:{}", state.display()), "--to", &url]);
    migrate.assert_exit(0);
    migrate.check(migrate.stdout.contains("every link holds"), "the copy is verified");

    // Every row, with its id, chain and content.
    assert_eq!(count(&pg, "SELECT count(*) FROM requests") as usize, rows);
    run.add_config(&format!("state:\n  url: \"{url}\"\n"));
    let verify = run.dockmaster(["history", "--verify"]);
    verify.assert_exit(0);
    verify.check(verify.stdout.contains(&format!("{rows} chained records")), "history --verify passes on PostgreSQL");
    let copied = run.dockmaster(["history", "--output", "json", "--limit", "1000"]);
    copied.assert_exit(0);
    let copied: serde_json::Value = serde_json::from_str(&copied.stdout).unwrap();
    assert_eq!(copied, local, "history reads the same on PostgreSQL as it did on SQLite");

    // New records continue the chain after the copied ones.
    run.deploy(&file, &[]).assert_exit(0);
    let verify = run.dockmaster(["history", "--verify"]);
    verify.assert_exit(0);
    verify.check(verify.stdout.contains(&format!("{} chained records", rows + 1)), "the chain continues");

    // A second migration into the now non-empty database is refused and
    // writes nothing.
    let again = run.dockmaster(["state", "migrate", "--from", &format!("sqlite:{}", state.display()), "--to", &url]);
    again.assert_exit(2);
    again.check(again.stderr.contains("already holds an audit trail"), "the refusal says why");
    assert_eq!(count(&pg, "SELECT count(*) FROM requests") as usize, rows + 1, "nothing was written");
}

#[test]
fn a_tampered_trail_is_not_migrated_and_the_trail_in_postgres_is_append_only() {
    let Some(run) = TestRun::start("fleet-tamper") else { return };
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("fleet");
    let file = run.compose(&idle("1"));
    run.deploy(&file, &[]).assert_exit(0);
    run.dockmaster(["plan", &file]);
    run.dockmaster(["plan", &file]);
    // Someone with the file drops the triggers and rewrites a row.
    let db = run.dir().join("state/audit.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP TRIGGER requests_append_only_u; UPDATE requests SET user = 'mallory' WHERE id = 2;")
        .unwrap();
    drop(conn);
    let state = run.dir().join("state");
    let out = run.dockmaster(["state", "migrate", "--from", &format!("sqlite:{}", state.display()), "--to", &url]);
    out.assert_exit(2);
    out.check(out.stderr.contains("broken at record 2"), "the refusal names the broken record");
    // Nothing was copied (the schema may exist; no rows do).
    let rows = pg.psql("fleet", "SELECT count(*) FROM pg_tables WHERE tablename = 'requests'");
    if rows == "1" {
        assert_eq!(count(&pg, "SELECT count(*) FROM requests"), 0, "no record was copied");
    }

    // On PostgreSQL, too, the trail refuses UPDATE, DELETE and TRUNCATE.
    run.add_config(&format!("state:\n  url: \"{url}\"\n"));
    run.deploy(&file, &[]).assert_exit(0);
    for attack in
        ["UPDATE requests SET \"user\" = 'mallory'", "DELETE FROM requests", "TRUNCATE requests", "TRUNCATE approvals"]
    {
        let out = std::process::Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &pg.port().to_string()])
            .args(["-U", postgres::USER, "-d", "fleet", "-c", attack])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("append-only"), "{attack}: {stderr}");
    }
    assert_eq!(count(&pg, "SELECT count(*) FROM requests WHERE \"user\" = 'mallory'"), 0);
    run.dockmaster(["history", "--verify"]).assert_exit(0);
}

#[test]
fn an_unreachable_state_database_fails_closed_with_exit_5_and_changes_nothing() {
    let Some(run) = TestRun::start("fleet-down") else { return };
    let port = common::free_port();
    run.add_config(&format!(
        "state:\n  url: \"postgres://dockmaster:hunter2-secret@127.0.0.1:{port}/fleet\"\n  connect_timeout: 2s\n"
    ));
    let file = run.compose(&idle("1"));
    let out = run.deploy(&file, &[]);
    out.assert_exit(5);
    out.check(out.stderr.contains("fails closed"), "the error says dockmaster fails closed");
    out.check(!out.stderr.contains("hunter2-secret"), "the password in the URL is never shown");
    out.check(run.container_id("app").is_none(), "nothing was created on the engine");
    let check = run.dockmaster(["state", "check"]);
    check.assert_exit(5);
}

#[test]
fn a_state_database_that_requires_tls_is_reached_over_verified_tls_and_a_wrong_ca_fails_closed() {
    let Some(run) = TestRun::start("fleet-tls") else { return };
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("fleet");
    let certs = run.dir().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = slapd::make_ca(&certs, "ca", "dockmaster fleet test CA");
    slapd::make_server_cert(&certs, &ca, "server");
    let wrong = slapd::make_ca(&certs, "wrong", "somebody else's CA");
    // From here on the server refuses every connection without TLS.
    pg.require_tls(&certs.join("server.pem"), &certs.join("server.key"));
    let file = run.compose(&idle("1"));
    run.add_config(&format!("state:\n  url: \"{url}?sslmode=require\"\n  connect_timeout: 5s\n"));

    // A server whose certificate the configured CA did not sign: refused,
    // fail closed, nothing done.
    let wrong_ca = wrong.display().to_string();
    let out = run.dockmaster_with_env(
        ["deploy", &file, "--timeout", "60s", "--output", "json"],
        &[("DOCKMASTER__STATE__CA_FILE", wrong_ca.as_str())],
    );
    out.assert_exit(5);
    out.check(run.container_id("app").is_none(), "nothing was created on the engine");

    // The right CA: the deploy goes through, over TLS (the server takes
    // nothing else), and is recorded.
    let right_ca = ca.display().to_string();
    let out = run.dockmaster_with_env(
        ["deploy", &file, "--timeout", "60s", "--output", "json"],
        &[("DOCKMASTER__STATE__CA_FILE", right_ca.as_str())],
    );
    out.assert_exit(0);
    assert_eq!(count(&pg, "SELECT count(*) FROM requests WHERE verdict = 'healthy'"), 1);

    // Without sslmode=require dockmaster connects in plain text, which
    // this server refuses: exit 5 again, never a silent downgrade.
    let plain = run.dockmaster_with_env(["status", &file], &[("DOCKMASTER__STATE__URL", url.as_str())]);
    plain.assert_exit(5);
}

fn hook_headers(secret: &str, body: &str, delivery: &str) -> Vec<(&'static str, String)> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    vec![
        ("Content-Type", "application/json".to_string()),
        ("X-GitHub-Event", "push".to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hex::encode(mac.finalize().into_bytes()))),
        ("X-GitHub-Delivery", delivery.to_string()),
    ]
}

#[test]
fn two_serve_replicas_fire_a_schedule_once_per_time_share_the_replay_cache_and_check_the_backend() {
    let Some(run) = TestRun::start_named("fleet-serve") else { return };
    let Some(pg) = Postgres::start() else { return };
    shared_state(&run, &pg);
    let secret = "hook-secret-for-fleet-tests";
    run.add_config(&format!(
        "descriptors: descriptors\nschedules:\n  - name: often\n    cron: \"*/2 * * * * *\"\n    \
         descriptor: {0}\n    user: cron\n    policy: if-changed\nhooks:\n  - name: build\n    style: github\n    \
         secret_env: DM_HOOK_SECRET\n    descriptor: {0}\n    user: ci\n",
        run.named("")
    ));
    run.write(&run.named_file("1"), &format!("name: {}\n{}", run.project, idle("1")));
    let mut one_env = other_host(&run, "one");
    one_env.push(("DM_HOOK_SECRET".into(), secret.into()));
    let mut two_env = other_host(&run, "two");
    two_env.push(("DM_HOOK_SECRET".into(), secret.into()));
    let one = Server::start(&run, &env(&one_env));
    let two = Server::start(&run, &env(&two_env));

    // Both replicas are ready, and say the backend is.
    for server in [&one, &two] {
        let ready = common::http_get(&server.addr, "/readyz").unwrap_or_default();
        assert!(ready.contains("\"state\":\"ok\""), "{ready}");
    }

    // A signed delivery is acted on by the replica it reaches; the same
    // delivery sent to the other replica is a replay.
    let body = "{\"ref\": \"refs/heads/main\", \"after\": \"abc123\"}";
    let headers = hook_headers(secret, body, "5c1f0b9e-fleet-delivery");
    let (status, answer, _) = one.post("/hooks/build", &headers, body);
    assert_eq!(status, 202, "{answer}");
    let (status, again, _) = two.post("/hooks/build", &headers, body);
    assert_eq!(status, 409, "the replay reached the second replica and was refused: {again}");

    // Watch the schedule for a while: each time is run once, by one replica.
    let window = Instant::now();
    let runs = || count(&pg, "SELECT count(*) FROM requests WHERE origin = 'schedule'");
    assert!(wait_until(Duration::from_secs(60), || runs() >= 4), "the schedule runs");
    std::thread::sleep(Duration::from_secs(6));
    drop(one);
    drop(two);
    let elapsed = window.elapsed().as_secs() as i64;
    let records = runs();
    let claims = count(&pg, "SELECT count(*) FROM schedule_runs WHERE schedule = 'often' AND kind = 'run'");
    let times = elapsed / 2 + 2;
    assert!(
        records <= times,
        "{records} schedule runs in {elapsed}s of a schedule every 2s: a time ran on both replicas"
    );
    assert!(records <= claims, "every run was claimed ({records} runs, {claims} claims)");
    let duplicated = count(
        &pg,
        "SELECT count(*) FROM (SELECT due FROM schedule_runs WHERE schedule = 'often' GROUP BY due HAVING count(*) > 1) d",
    );
    assert_eq!(duplicated, 0);
}

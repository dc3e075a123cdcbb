//! Schedules and hooks in the real `dockmaster serve`, against the real
//! engine, a throwaway slapd, and a local webhook receiver.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/slapd.rs"]
mod slapd;

use std::time::Duration;

use common::{wait_until, TestRun, FIXTURE_IMAGE};
use hmac::{Hmac, Mac};
use http::{Server, Sink};
use serde_json::Value;
use sha2::Sha256;
use slapd::Slapd;

const HOOK_SECRET: &str = "hook-secret-for-tests";

/// Directory, access rules and a service account (`alice`, in
/// `deployers`), with a short lookup cache.
fn directory(run: &TestRun, slapd: &Slapd) {
    run.add_config(&format!(
        "{}  cacheDurationMillis: 1000\naccess:\n  rules:\n    - groups: [deployers]\n      \
         actions: [deploy, plan, status, down, rollback, approve, history]\n      descriptors: [\"**\"]\n",
        slapd.config_section()
    ));
}

fn version(run: &TestRun, v: u32, greeting: &str) {
    run.write(
        &run.named_file(&v.to_string()),
        &format!(
            "name: {}\nservices:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n    \
             environment: {{GREETING: {greeting}}}\n",
            run.project
        ),
    );
}

/// Audit rows (action, verdict, version) of a schedule or hook, oldest first.
fn runs(run: &TestRun, name: &str) -> Vec<(String, String, String)> {
    let Ok(conn) = rusqlite::Connection::open(run.dir().join("state/audit.db")) else { return vec![] };
    let Ok(mut stmt) = conn.prepare(
        "SELECT action, verdict, COALESCE(version, '') FROM requests \
         WHERE json_extract(origin_detail, '$.name') = ?1 ORDER BY id",
    ) else {
        return vec![];
    };
    let rows = stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

fn deploys(rows: &[(String, String, String)]) -> Vec<(String, String)> {
    rows.iter().filter(|r| r.0 == "deploy" && r.1 != "unchanged").map(|r| (r.1.clone(), r.2.clone())).collect()
}

#[test]
fn an_if_changed_schedule_deploys_new_versions_only_reports_and_stops_when_its_account_loses_its_group() {
    let Some(run) = TestRun::start_named("sched") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    directory(&run, &slapd);
    run.add_config(&format!(
        "descriptors: descriptors\nschedules:\n  - name: nightly\n    cron: \"*/2 * * * * *\"\n    \
         timezone: Europe/Berlin\n    descriptor: {}\n    user: alice\n    policy: if-changed\n    \
         notify: [{{name: relay, kind: json, url: \"{}\"}}]\n",
        run.named(""),
        sink.url("/reports")
    ));
    version(&run, 1, "one");
    let server = Server::start(&run, &[]);

    // The first run deploys version 1 and reports it.
    let first = sink.wait_for("/reports").json();
    assert_eq!(first["descriptor"]["version"], "1", "{first}");
    assert_eq!(first["verdict"], "healthy", "{first}");
    // Later runs find nothing changed: one record each, `unchanged`, and no
    // second request (no separate plan record).
    let unchanged = |rows: &[(String, String, String)]| rows.iter().filter(|r| r.1 == "unchanged").count();
    assert!(wait_until(Duration::from_secs(30), || unchanged(&runs(&run, "nightly")) >= 3));
    let rows = runs(&run, "nightly");
    assert!(rows.iter().all(|r| r.0 == "deploy"), "every run is one deploy request: {rows:?}");
    assert_eq!(deploys(&rows), [("healthy".to_string(), "1".to_string())]);
    assert_eq!(sink.count("/reports"), 1, "unchanged runs send no report");

    // A new version appears: the next run deploys it.
    version(&run, 2, "two");
    assert!(wait_until(Duration::from_secs(30), || deploys(&runs(&run, "nightly")).len() == 2));
    assert_eq!(deploys(&runs(&run, "nightly"))[1], ("healthy".to_string(), "2".to_string()));
    let env = common::inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default();
    assert!(env.contains("GREETING=two"), "{env}");

    // `dockmaster schedules` shows the next time in the zone, and the last run.
    let listed = run.dockmaster(["schedules", "--output", "json"]);
    listed.assert_exit(0);
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "nightly");
    assert!(listed[0]["next"][0].as_str().unwrap().ends_with("+01:00"), "Berlin in November: {listed}");
    assert!(listed[0]["last_verdict"].as_str().is_some(), "{listed}");

    // /metrics counts the schedule's requests and its last success.
    let metrics = http_get(&server, "/metrics");
    assert!(metrics.contains("dockmaster_requests_total{action=\"deploy\",origin=\"schedule\",verdict=\"healthy\"} 2"));
    assert!(metrics.contains("dockmaster_schedule_last_success_timestamp_seconds{schedule=\"nightly\"}"));

    // The account leaves its group: after the cache time, runs are denied.
    slapd.modify(&format!(
        "dn: cn=deployers,{}\nchangetype: modify\ndelete: member\nmember: uid=alice,{}\n",
        slapd::GROUPS,
        slapd::PEOPLE
    ));
    version(&run, 3, "three");
    assert!(
        wait_until(Duration::from_secs(30), || runs(&run, "nightly").iter().any(|r| r.1 == "denied")),
        "{:?}",
        runs(&run, "nightly")
    );
    assert!(!deploys(&runs(&run, "nightly")).iter().any(|d| d.1 == "3"), "version 3 was never deployed");
    drop(server);
}

fn http_get(server: &Server, path: &str) -> String {
    common::http_get(&server.addr, path).unwrap_or_default()
}

fn github(body: &str) -> Vec<(&'static str, String)> {
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    vec![
        ("Content-Type", "application/json".to_string()),
        ("X-GitHub-Event", "push".to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hex::encode(mac.finalize().into_bytes()))),
    ]
}

#[test]
fn hooks_check_their_secret_follow_their_branches_and_answer_with_an_id_then_report() {
    let Some(run) = TestRun::start_named("hooks") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    directory(&run, &slapd);
    run.add_config(&format!(
        "descriptors: descriptors\nhooks:\n  - name: build\n    style: github\n    secret_env: DM_HOOK_SECRET\n    \
         branches: [main]\n    descriptor: {1}\n    user: alice\n    \
         notify: [{{name: relay, kind: json, url: \"{0}\"}}]\n  - name: lab\n    style: gitlab\n    \
         secret_env: DM_HOOK_SECRET\n    descriptor: {1}\n    user: alice\n    on_busy: skip\n",
        sink.url("/reports"),
        run.named("")
    ));
    version(&run, 1, "one");
    let server = Server::start(&run, &[("DM_HOOK_SECRET", HOOK_SECRET)]);

    let push = |branch: &str| format!("{{\"ref\": \"refs/heads/{branch}\", \"after\": \"abc123\"}}");
    let (status, body, _) = server.post("/hooks/build", &github(&push("feature")), &push("feature"));
    assert_eq!(status, 200);
    assert!(body.contains("ignored"), "{body}");
    let mut forged = github(&push("main"));
    forged[2].1 = format!("sha256={}", "0".repeat(64));
    assert_eq!(server.post("/hooks/build", &forged, &push("main")).0, 401);
    assert_eq!(server.post("/hooks/nope", &github("{}"), "{}").0, 404);

    let mut delivered = github(&push("main"));
    delivered.push(("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string()));
    let (status, body, took) = server.post("/hooks/build", &delivered, &push("main"));
    assert_eq!(status, 202, "{body}");
    // The same delivery again (a replay, validly signed) is not acted on.
    let (status, again, _) = server.post("/hooks/build", &delivered, &push("main"));
    assert_eq!(status, 409, "{again}");
    assert!(took < Duration::from_secs(5), "the hook answers at once, not after the deploy");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
    let report = sink.wait_for("/reports").json();
    assert_eq!(report["verdict"], "healthy", "{report}");
    let rows = runs(&run, "build");
    assert_eq!(deploys(&rows), [("healthy".to_string(), "1".to_string())]);
    let conn = rusqlite::Connection::open(run.dir().join("state/audit.db")).unwrap();
    let (origin, user): (String, String) = conn
        .query_row("SELECT origin, user FROM requests WHERE json_extract(origin_detail, '$.id') = ?1", [&id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((origin.as_str(), user.as_str()), ("hook", "alice"));

    // GitLab's token; a wrong one is refused.
    let wrong = [("X-Gitlab-Token", "nope".to_string())];
    assert_eq!(server.post("/hooks/lab", &wrong, "{}").0, 401);
    let right = [("X-Gitlab-Token", HOOK_SECRET.to_string())];
    assert_eq!(server.post("/hooks/lab", &right, "{}").0, 202);
    assert!(wait_until(Duration::from_secs(60), || !deploys(&runs(&run, "lab")).is_empty()));
}

#[test]
fn a_busy_target_is_skipped_and_said_so_and_runs_missed_while_down_are_reported_once() {
    let Some(run) = TestRun::start_named("busy") else { return };
    let Some(slapd) = Slapd::start() else { return };
    directory(&run, &slapd);
    // A schedule that last ran an hour ago, every minute: 59 or 60 runs missed.
    run.add_config(&format!(
        "descriptors: descriptors\nschedules:\n  - name: minutely\n    cron: \"* * * * *\"\n    \
         descriptor: {}\n    user: alice\n    on_busy: skip\n",
        run.named("")
    ));
    version(&run, 1, "one");
    let store_path = run.dir().join("state/audit.db");
    std::fs::create_dir_all(store_path.parent().unwrap()).unwrap();
    let hour_ago = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 3600;
    let store = dockmaster::audit::Store::open(&store_path).unwrap();
    store
        .append(&dockmaster::audit::Record {
            started: hour_ago,
            finished: hour_ago,
            user: "alice".into(),
            origin: "schedule".into(),
            origin_detail: serde_json::json!({"name": "minutely", "user": "alice"}),
            action: "deploy".into(),
            verdict: "healthy".into(),
            ..Default::default()
        })
        .unwrap();
    let server = Server::start(&run, &[]);
    assert!(wait_until(Duration::from_secs(20), || runs(&run, "minutely").iter().any(|r| r.1 == "missed")));
    drop(server);
    let server = Server::start(&run, &[]);
    std::thread::sleep(Duration::from_secs(2));
    drop(server);
    let missed: Vec<_> = runs(&run, "minutely").into_iter().filter(|r| r.1 == "missed").collect();
    assert_eq!(missed.len(), 1, "reported once, not again by the restart a moment later");
    let conn = rusqlite::Connection::open(&store_path).unwrap();
    let message: String =
        conn.query_row("SELECT error FROM requests WHERE verdict = 'missed'", [], |r| r.get(0)).unwrap();
    assert!(message.contains("run(s) of schedule `minutely` were missed") && message.contains("not replayed"));

    // Busy: a person's deploy holds the target; the job skips, saying so.
    run.write(
        &run.named_file("2"),
        &format!(
            "name: {}\nservices:\n  slow:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n    \
             healthcheck: {{test: [\"CMD\", \"false\"], interval: 1s, retries: 1000}}\n",
            run.project
        ),
    );
    let held = run.spawn_dockmaster(
        ["--user", "alice", "deploy", &run.named("2"), "--timeout", "30s"],
        &[("DOCKMASTER_PASSWORD", slapd::USER_PASSWORD)],
    );
    assert!(wait_until(Duration::from_secs(30), || common::inspect(&run.container("slow"), "{{.State.Running}}")
        .as_deref()
        == Some("true")));
    let job = dockmaster::config::Config::load(Some(&run.config)).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = dockmaster::request::Origin::Schedule { name: "minutely".into(), user: "alice".into() };
    let skipped = runtime.block_on(dockmaster::schedule::run::run_once(
        &job,
        &job.schedules[0],
        origin,
        &dockmaster::shutdown::Shutdown::never(),
    ));
    let error = skipped.expect_err("the target is busy");
    assert_eq!(error.exit_code(), 6, "{error}");
    assert!(error.to_string().contains("in progress"), "{error}");
    held.signal("TERM");
    let _ = held.finish();
    assert!(runs(&run, "minutely").iter().any(|r| r.1 == "error"), "the skipped run is audited");
}

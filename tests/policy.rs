//! Descriptor policy, change approval and the audit trail, end to end: the
//! real binary, the real engine and a throwaway slapd.

mod common;
#[path = "common/slapd.rs"]
mod slapd;

use common::{CliOutput, TestRun, FIXTURE_IMAGE};
use serde_json::Value;
use slapd::{Slapd, USER_PASSWORD};

/// Access rules for the approval tests: `deployers` (alice) may deploy but
/// not approve; `reviewers` (bob) may approve.
const ACCESS: &str = "access:
  rules:
    - groups: [deployers]
      actions: [deploy, plan, status, rollback, history]
      descriptors: [\"**\"]
      environments: [\"*\"]
    - groups: [reviewers]
      actions: [approve, plan, status, history]
      descriptors: [\"**\"]
      environments: [\"*\"]
";

/// Writes version `version` of the run's named descriptor in the run's descriptor folder.
fn descriptor(run: &TestRun, version: u32, body: &str) {
    run.write(&run.named_file(&version.to_string()), &format!("name: {}\n{body}", run.project));
}

fn as_user(run: &TestRun, user: &str, args: &[&str]) -> CliOutput {
    let mut all = vec!["--user", user];
    all.extend_from_slice(args);
    run.dockmaster_with_env(all, &[("DOCKMASTER_PASSWORD", USER_PASSWORD)])
}

/// The run's audit records, newest first, as `history --output json` prints
/// them (as `user`, who must have the `history` right).
fn history(run: &TestRun, user: Option<&str>, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["history", "--output", "json"];
    args.extend_from_slice(extra);
    let out = match user {
        Some(user) => as_user(run, user, &args),
        None => run.dockmaster(args),
    };
    out.assert_exit(0);
    serde_json::from_str::<Value>(&out.stdout).expect("history JSON").as_array().cloned().unwrap_or_default()
}

/// Every byte of the audit database (WAL included): what a thief of the
/// file would read.
fn audit_bytes(run: &TestRun) -> String {
    let mut bytes = Vec::new();
    for name in ["audit.db", "audit.db-wal"] {
        bytes.extend(std::fs::read(run.dir().join("state").join(name)).unwrap_or_default());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn structural_changes_need_an_approval_image_changes_do_not_and_every_request_is_audited() {
    let Some(run) = TestRun::start_named("approval") else { return };
    let Some(slapd) = Slapd::start() else { return };
    run.add_config(&format!("descriptors: descriptors\n{}{ACCESS}", slapd.config_section()));
    let retagged = format!("dockmaster-fixture/busybox:approval-{}", std::process::id());
    common::docker(&["tag", FIXTURE_IMAGE, &retagged]);
    run.remove_image_on_drop(&retagged);
    let service = |image: &str, extra: &str| {
        format!(
            "services:\n  app:\n    image: {image}\n    command: [\"sleep\", \"1000\"]\n    \
             environment:\n      DB_PASSWORD: hunter2-very-secret\n      MODE: calm\n{extra}"
        )
    };
    descriptor(&run, 1, &service(FIXTURE_IMAGE, ""));
    descriptor(&run, 2, &service(&retagged, ""));
    descriptor(&run, 3, &service(&retagged, "    labels:\n      team: blue\n"));

    // A first deploy is structural (new services): alice may not.
    let first = as_user(&run, "alice", &["deploy", &run.named("1")]);
    first.assert_exit(4);
    first.check(first.stderr.contains("structural change"), "says it is structural");
    first.check(first.stderr.contains("service `app`: new service"), "lists the differences");
    first.check(
        first.stderr.contains(&format!("dockmaster approve '{}' --env default", run.named("1"))),
        "says how to approve",
    );
    first.check(common::containers_with_label(&run.label()).is_empty(), "nothing reached the engine");

    // alice may not approve; bob may.
    as_user(&run, "alice", &["approve", &run.named(""), "1"]).assert_exit(4);
    let approved = as_user(&run, "bob", &["approve", &run.named(""), "1"]);
    approved.assert_exit(0);
    approved.check(approved.stdout.contains("change: structural"), "shows what is approved");

    let deployed = as_user(&run, "alice", &["deploy", &run.named("1"), "--timeout", "60s"]);
    deployed.assert_exit(0);
    deployed.check(deployed.stderr.contains("approved by bob"), "names the approver");

    // Only the image changes: self-service.
    let bumped = as_user(&run, "alice", &["deploy", &run.named("2"), "--timeout", "60s"]);
    bumped.assert_exit(0);
    bumped.check(bumped.stderr.contains("image-only"), "an image bump is self-service");

    // A label is structural, and bob's approval of version 1 does not carry.
    let relabelled = as_user(&run, "alice", &["deploy", &run.named("3")]);
    relabelled.assert_exit(4);
    relabelled.check(relabelled.stderr.contains("service `app`: `labels` changed"), "names the field");
    relabelled.check(!relabelled.stderr.contains("calm"), "never a value");

    // The trail: one record per request, newest first.
    let records = history(&run, Some("alice"), &[]);
    let summary: Vec<(String, String, String, String)> = records
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            (s("user"), s("action"), s("classification"), s("verdict"))
        })
        .collect();
    let expected = [
        ("alice", "deploy", "structural", "denied"),
        ("alice", "deploy", "image-only", "healthy"),
        ("alice", "deploy", "structural", "healthy"),
        ("bob", "approve", "structural", "ok"),
        ("alice", "approve", "-", "denied"),
        ("alice", "deploy", "structural", "denied"),
    ];
    let expected: Vec<(String, String, String, String)> =
        expected.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string())).collect();
    assert_eq!(summary, expected, "{records:#?}");
    let healthy = &records[2];
    assert_eq!(healthy["groups"], serde_json::json!(["deployers", "ops"]));
    assert_eq!(healthy["origin"], "cli");
    assert_eq!(healthy["version"], "1");
    assert!(healthy["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(healthy["plan"].as_str().unwrap().contains("1 create"), "{healthy}");
    assert!(records[0]["exit_code"] == 4 && records[0]["differences"][0] == "service `app`: `labels` changed");

    // Secrets never enter the trail; the key names and the mask do.
    let raw = audit_bytes(&run);
    assert!(!raw.contains("hunter2-very-secret"), "a secret value reached the audit database");
    assert!(!raw.contains(USER_PASSWORD) && !raw.contains(slapd::ADMIN_PASSWORD), "a password reached the trail");
    assert!(raw.contains("DB_PASSWORD") && raw.contains("********"), "the masked descriptor is recorded");
    assert!(raw.contains("calm"), "values that are not secret are kept");

    // Rollback finds the last healthy version before the running one.
    let rolled = as_user(&run, "alice", &["rollback", &run.named(""), "--timeout", "60s", "--output", "json"]);
    rolled.assert_exit(0);
    let report: Value = serde_json::from_str(&rolled.stdout).expect("JSON report");
    assert_eq!(report["descriptor"]["version"], "1", "{report}");
    assert_eq!(report["action"], "rollback");
}

#[test]
fn every_policy_rule_is_checked_and_all_violations_are_listed_before_the_engine_is_touched() {
    let Some(run) = TestRun::start_named("policy") else { return };
    run.add_config(
        "environments:\n  prod: {}\n  qa: {}\n\
         policy:\n  rules:\n\
         \x20   - name: team-blue\n      volume_prefix: blue-\n      bind_roots: [/srv/blue]\n\
         \x20   - name: host-safety\n      privileges: [\"cap_add:NET_ADMIN\"]\n\
         \x20   - name: production\n      environments: [prod]\n      require_digest: true\n      \
         registries: [registry.example.com]\n      limits: {required: true, max_cpus: 1, max_memory: 256m}\n      \
         reserved_labels: [traefik.]\n",
    );
    let bad = run.compose(&format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n    privileged: true\n    \
         cap_add: [NET_ADMIN, SYS_ADMIN]\n    cpus: 2\n    labels:\n      traefik.http.routers.x.rule: Host(`x`)\n    \
         volumes:\n      - red-data:/data\n      - /etc:/host-etc:ro\n    volumes_from: [\"container:red-container\"]\n\
         volumes:\n  red-data:\n    external: true\n"
    ));
    let refused = run.dockmaster(["deploy", &bad, "--env", "prod"]);
    refused.assert_exit(4);
    for expected in [
        "service `app`, `volumes`: named volume `red-data` does not start with the team's prefix `blue-` (policy rule `team-blue`)",
        "service `app`, `volumes`: bind mount of `/etc` is outside the allowed host folders (allowed roots: /srv/blue) (policy rule `team-blue`)",
        "service `app`, `volumes_from`: container `red-container` does not start with the team's prefix `blue-`",
        "service `app`, `privileged`: privileged containers are not allowed",
        "service `app`, `cap_add`: capability `SYS_ADMIN` is not allowed",
        "service `app`, `cpus`: asks for 2 CPUs; at most 1 are allowed (policy rule `production`)",
        "service `app`, `mem_limit`: a memory limit is required",
        "service `app`, `image`: image `dockmaster-fixture/busybox:test` must be pinned by digest",
        "is not from an allowed registry (registry.example.com)",
        "service `app`, `labels`: label `traefik.http.routers.x.rule` uses the reserved prefix `traefik.`",
    ] {
        refused.check(refused.stderr.contains(expected), format!("lists: {expected}"));
    }
    refused.check(!refused.stderr.contains("NET_ADMIN` is not allowed"), "an allowed capability passes");
    refused.check(refused.stderr.contains("10 violations"), "counts them");
    refused.check(common::containers_with_label(&run.label()).is_empty(), "nothing reached the engine");

    // Rules are per environment: qa has only the team and host rules.
    let in_qa = run.dockmaster(["plan", &bad, "--env", "qa"]);
    in_qa.assert_exit(4);
    in_qa.check(!in_qa.stderr.contains("production"), "the production rule does not apply in qa");
    in_qa.check(in_qa.stderr.contains("5 violations"), "the team and host rules do");

    let good = run.compose(&format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n    \
         cap_add: [NET_ADMIN]\n    volumes:\n      - blue-data:/data\n      - /srv/blue/conf:/conf:ro\n\
         volumes:\n  blue-data:\n    name: blue-data-{}\n",
        run.id.replace(|c: char| !c.is_ascii_alphanumeric(), "")
    ));
    let planned = run.dockmaster(["plan", &good, "--env", "qa"]);
    planned.assert_exit(0);
    planned.check(planned.stdout.contains("change: structural"), "the plan shows the classification");
    let unknown = run.dockmaster(["plan", &good, "--env", "prdo"]);
    unknown.assert_exit(2);
    unknown.check(unknown.stderr.contains("known environments: default, prod, qa"), "a typo names the choices");

    let records = history(&run, None, &[]);
    let denied = records.iter().find(|r| r["environment"] == "prod").expect("the refused deploy is recorded");
    assert_eq!(denied["verdict"], "denied");
    assert_eq!(denied["violations"].as_array().map(Vec::len), Some(10), "{denied}");
    assert_eq!(denied["user"].as_str().map(str::is_empty), Some(false));
}

#[test]
fn review_exits_zero_only_for_self_service_changes() {
    let Some(run) = TestRun::start_named("review") else { return };
    run.add_config("descriptors: descriptors\npolicy:\n  rules:\n    - name: no-host\n      privileges: []\n");
    descriptor(&run, 1, "services:\n  web:\n    image: app:1\n    ports: ['8080:80']\n");
    let bump = run.write("bump.yml", "services:\n  web:\n    image: app:2\n    ports: ['8080:80']\n");
    let port = run.write("port.yml", "services:\n  web:\n    image: app:2\n    ports: ['9090:80']\n");
    let host = run.write("host.yml", "services:\n  web:\n    image: app:2\n    network_mode: host\n");

    let ok = run.dockmaster(["review", &bump, "--against", &run.named("")]);
    ok.assert_exit(0);
    ok.check(ok.stdout.contains("change: image-only") && ok.stdout.contains("`app:1` → `app:2`"), "names the bump");
    ok.check(ok.stdout.contains("VERDICT: SELF-SERVICE"), "self-service");

    let structural = run.dockmaster(["review", &port, "--against", &run.named("1"), "--output", "json"]);
    structural.assert_exit(4);
    let json: Value = serde_json::from_str(&structural.stdout).expect("JSON");
    assert_eq!(json["verdict"], "needs-approval");
    assert_eq!(json["differences"], serde_json::json!(["service `web`: `ports` changed"]));

    let refused = run.dockmaster(["review", &host, "--against", &run.named("")]);
    refused.assert_exit(4);
    refused.check(refused.stdout.contains("host networking is not allowed"), "lists the violation");
    refused.check(refused.stdout.contains("VERDICT: REFUSED"), "refused");
}

#[test]
fn a_directory_that_stops_fails_the_request_closed_and_the_failure_is_audited() {
    let Some(run) = TestRun::start_named("ldap-down") else { return };
    let Some(mut slapd) = Slapd::start() else { return };
    run.add_config(&format!("descriptors: descriptors\n{}{ACCESS}", slapd.config_section()));
    descriptor(&run, 1, &format!("services:\n  app:\n    image: {FIXTURE_IMAGE}\n"));
    as_user(&run, "alice", &["plan", &run.named("1")]).assert_exit(0);
    slapd.stop();
    let down = as_user(&run, "alice", &["deploy", &run.named("1")]);
    down.assert_exit(5);
    down.check(common::containers_with_label(&run.label()).is_empty(), "nothing reached the engine");
    // Without the directory nobody can read the trail through dockmaster
    // with access rules on; read the database directly.
    let rows = audit_rows(&run);
    // A directory that does not answer is recorded as `unavailable`: the
    // request was neither decided on nor failed by itself.
    let expected = [("alice", "plan", "ok", 0), ("alice", "deploy", "unavailable", 5)];
    let expected: Vec<(String, String, String, i64)> =
        expected.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), *d)).collect();
    assert_eq!(rows, expected);
    let out = run.dockmaster_with_env(["history", "--output", "json"], &[]);
    out.assert_exit(4);
}

/// The audit trail's rows (user, action, verdict, exit code), oldest
/// first, read straight from the database.
fn audit_rows(run: &TestRun) -> Vec<(String, String, String, i64)> {
    let conn = rusqlite::Connection::open(run.dir().join("state/audit.db")).expect("open the audit database");
    let mut stmt = conn.prepare("SELECT user, action, verdict, exit_code FROM requests ORDER BY id").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

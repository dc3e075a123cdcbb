//! One target from every way in: the CLI, the Rundeck step, a webhook
//! report, a schedule of `serve`, `history` and the option lists all name
//! (and act on) the same target for one named descriptor. The real binary
//! and the real engine.

mod common;
#[path = "common/http.rs"]
mod http;

use std::time::Duration;

use common::{wait_until, TestRun, FIXTURE_IMAGE};
use http::{Server, Sink};
use serde_json::Value;

/// The target column of every audit record, oldest first, with its origin.
fn recorded_targets(run: &TestRun) -> Vec<(String, String)> {
    let Ok(conn) = rusqlite::Connection::open(run.dir().join("state/audit.db")) else { return vec![] };
    let Ok(mut stmt) = conn.prepare("SELECT origin, COALESCE(target, '') FROM requests ORDER BY id") else {
        return vec![];
    };
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn every_way_in_names_the_same_target_for_a_named_descriptor() {
    let Some(run) = TestRun::start("targets") else { return };
    // Capitals and a space: the hashed form of the target.
    let application = format!("Team {}", run.application);
    let reference = format!("{application}/Milestone 3");
    run.write(
        &format!("descriptors/{application}/Milestone 3/1.yml"),
        &format!(
            "name: something-else\nservices:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n"
        ),
    );
    let sink = Sink::start();
    run.add_config(&format!(
        "descriptors: descriptors\nnotify:\n  webhooks:\n    - {{name: tool, kind: json, url: \"{}\"}}\n\
         schedules:\n  - name: often\n    cron: \"*/2 * * * * *\"\n    descriptor: \"{reference}\"\n    \
         user: cron\n    policy: if-changed\n",
        sink.url("/report")
    ));

    // The CLI's plan says the target.
    let plan = run.dockmaster(["plan", &reference, "--output", "json"]);
    plan.assert_exit(0);
    let target = plan.json().str("target").to_string();
    assert!(target.starts_with("team-") && target.contains('_'), "the hashed form: {target}");
    assert!(!target.contains("something-else"), "name: does not choose it");

    // The Rundeck step deploys it and says the same target.
    let step = run.dockmaster_with_env(
        ["rundeck"],
        &[
            ("RD_JOB_USERNAME", "alice"),
            ("RD_JOB_EXECID", "9"),
            ("RD_CONFIG_DESCRIPTOR", reference.as_str()),
            ("RD_CONFIG_TIMEOUT", "60s"),
        ],
    );
    step.assert_exit(0);
    step.check(step.stdout.contains(&format!("RUNDECK:DATA:target={target}\n")), "the step's data names the target");
    let running = common::docker_lines(&["ps", "--filter", &format!("label=dockmaster.target={target}"), "-q"]);
    assert_eq!(running.len(), 1, "the step's container runs on that target");

    // The webhook report of that deploy names it too.
    let report = sink.wait_for("/report").json();
    assert_eq!(report["target"], target.as_str(), "{report}");

    // A schedule of serve (if-changed: nothing to change) records it.
    let server = Server::start(&run, &[]);
    let scheduled = || recorded_targets(&run).into_iter().filter(|(origin, _)| origin == "schedule").count();
    assert!(wait_until(Duration::from_secs(30), || scheduled() >= 1), "{:?}", recorded_targets(&run));
    drop(server);

    // history by reference finds every record, and every record names the target.
    let history = run.dockmaster(["history", &reference, "--output", "json"]);
    history.assert_exit(0);
    let records: Value = serde_json::from_str(&history.stdout).unwrap();
    assert!(records.as_array().is_some_and(|r| r.len() >= 3), "{records}");
    for (origin, recorded) in recorded_targets(&run) {
        assert_eq!(recorded, target, "the {origin} record names the target");
    }

    // The option list selects the running version, found by that target.
    let versions = run.dockmaster(["options", "versions", &application, "Milestone 3"]);
    versions.assert_exit(0);
    let list: Value = serde_json::from_str(&versions.stdout).unwrap();
    assert_eq!(list[0]["selected"], true, "{list}");
}

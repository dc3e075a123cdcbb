//! What users coming from `docker compose up -d` expect, on the real engine:
//! a failed first deploy reported for what it is with nothing left behind,
//! a data container that keeps running watched like any service, `status`
//! describing what runs (not the newest file), `--force-recreate` and
//! `--renew-anon-volumes`, an empty `DOCKER_HOST`, and `${PWD}` without `PWD`.

mod common;

use std::process::Command;

use common::{
    containers_with_label, docker, networks_with_label, path_arg, volume_exists, volumes_with_label, Report, TestRun,
    FIXTURE_IMAGE,
};
use serde_json::Value;

/// A long-running busybox command that exits at once on `docker stop`.
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// The names of the anonymous volumes a report's log tail shows: the
/// failing service prints its own mount table, where a volume appears as
/// `/var/lib/docker/volumes/<name>/_data`.
fn volumes_in_log(report: &Report, service: &str) -> Vec<String> {
    let tail = report.service(service)["log_tail"].as_array().cloned().unwrap_or_default();
    let mut names = Vec::new();
    for line in tail.iter().filter_map(Value::as_str) {
        for part in line.split_whitespace() {
            if let Some(rest) = part.split("/volumes/").nth(1) {
                if let Some(name) = rest.strip_suffix("/_data") {
                    if name.len() == 64 && !names.contains(&name.to_string()) {
                        names.push(name.to_string());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn a_failed_first_deploy_says_there_was_no_previous_version_and_leaves_no_container_network_or_volume() {
    let Some(run) = TestRun::start("first-fail") else { return };
    // `app` prints where its anonymous volume lives, then crashes.
    let file = run.compose(&format!(
        r#"services:
  app:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "grep /scratch /proc/self/mountinfo; sleep 1; exit 3"]
    volumes:
      - /scratch
      - data:/data
volumes:
  data: {{}}
"#
    ));
    let out = run.deploy(&file, &[]);
    out.assert_exit(1);
    let report = out.json();
    report.check(report.value["rolled_back"] == true, "the failed first deploy was rolled back");
    report.check(report.value["rollback"]["previous"] == false, "the rollback says there was no previous version");
    report.check(
        report.value["rollback"].get("restored").is_none(),
        "no `restored` health is reported for a first deploy (it would read HEALTHY 0/0)",
    );
    let anonymous = volumes_in_log(&report, "app");
    report.check(!anonymous.is_empty(), "the failing container printed its anonymous volume");

    assert!(containers_with_label(&run.target_label()).is_empty(), "no container of the target is left");
    assert!(networks_with_label(&run.target_label()).is_empty(), "the target's default network was removed");
    assert!(
        volumes_with_label(&run.target_label()).is_empty() && !volume_exists(&run.volume("data")),
        "the named volume the failed deploy created was removed"
    );
    for name in &anonymous {
        assert!(!volume_exists(name), "the failed container's anonymous volume {name} is left dangling");
    }

    // The text report says so in words, never "HEALTHY 0/0".
    let text = run.dockmaster(["deploy", &file, "--timeout", "60s"]);
    text.assert_exit(1);
    text.check(text.stdout.contains("no previous version; the failed containers were removed"), "the text says so");
    text.check(!text.stdout.contains("0/0"), "no HEALTHY 0/0 line");
}

#[test]
fn a_data_container_that_keeps_running_is_watched_like_any_service_not_waited_on_to_exit() {
    let Some(run) = TestRun::start("data-runs") else { return };
    // `db` has no restart policy and lends its volumes to `backup`: it is
    // a long-running service, as `docker compose up --wait` treats it.
    let file = run.compose(&format!(
        r#"services:
  db:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    volumes:
      - /var/lib/db
  backup:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    volumes_from:
      - db
"#
    ));
    let out = run.deploy(&file, &[]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.status("db") == "running", format!("db is running, got {}", report.status("db")));
    report.check(report.status("backup") == "running", "backup is running");
}

#[test]
fn status_reports_the_version_that_runs_and_refuses_to_vouch_for_one_that_does_not() {
    let Some(run) = TestRun::start_named("status-runs") else { return };
    let v1 = format!("services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n");
    run.write(&run.named_file("1"), &v1);
    run.dockmaster(["deploy", &run.named("1"), "--timeout", "60s"]).assert_exit(0);
    // Version 2 crashes and is rolled back: version 1 runs again.
    let v2 = format!("services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"exit 4\"]\n");
    run.write(&run.named_file("2"), &v2);
    run.dockmaster(["deploy", &run.named("2"), "--timeout", "30s"]).assert_exit(1);

    let digest_of = |version: &str| {
        let out = run.dockmaster(["plan", &run.named(version), "--output", "json"]);
        out.json().value["descriptor"]["digest"].as_str().unwrap_or("").to_string()
    };
    let latest = run.dockmaster(["status", &run.named(""), "--output", "json"]);
    latest.assert_exit(0);
    let report = latest.json();
    report.check(report.value["descriptor"]["version"] == "1", "status names version 1, which runs, not the newest 2");
    report.check(
        report.value["descriptor"]["digest"].as_str() == Some(digest_of("1").as_str()),
        "status reports the digest of what runs",
    );

    let stale = run.dockmaster(["status", &run.named("2"), "--output", "json"]);
    stale.assert_exit(1);
    let report = stale.json();
    report.check(report.value["running_version"] == "1", "the report names the version that runs instead");
    report.check(report.value.get("verdict").is_none(), "no health verdict is given for a version that does not run");
    let text = run.dockmaster(["status", &run.named("2")]);
    text.assert_exit(1);
    text.check(text.stdout.contains("NOT RUNNING: version 2 is not running"), "the text says so");
    let history = run.dockmaster(["history", &run.named(""), "--output", "json"]);
    history.check(history.stdout.contains("\"not-running\""), "the audit record's verdict is not-running");
}

#[test]
fn force_recreate_replaces_unchanged_containers_and_renew_anon_volumes_starts_them_empty() {
    let Some(run) = TestRun::start("force-renew") else { return };
    let file = run.compose(&format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n    volumes:\n      - /scratch\n"
    ));
    run.deploy(&file, &[]).assert_exit(0);
    let first = run.container_id("app").expect("app exists");
    let exec = docker(&["exec", &run.container("app"), "sh", "-c", "echo kept > /scratch/f"]);
    assert!(exec.status.success(), "writing into the anonymous volume failed");
    let volume_of = |run: &TestRun| {
        common::inspect(
            &run.container("app"),
            "{{range .Mounts}}{{if eq .Destination \"/scratch\"}}{{.Name}}{{end}}{{end}}",
        )
        .unwrap_or_default()
    };
    let original = volume_of(&run);

    // Unchanged: a plain deploy keeps the container.
    let same = run.deploy(&file, &[]);
    same.assert_exit(0);
    assert_eq!(run.container_id("app").as_deref(), Some(first.as_str()), "nothing changed, nothing recreated");

    // --force-recreate: a new container, the same anonymous volume and data.
    let forced = run.deploy(&file, &["--force-recreate"]);
    forced.assert_exit(0);
    let report = forced.json();
    report.check(report.changed("recreated") == vec!["app".to_string()], "--force-recreate recreates app");
    let second = run.container_id("app").expect("app exists");
    assert_ne!(first, second, "the container was recreated");
    assert_eq!(volume_of(&run), original, "the recreated container mounts the same anonymous volume");
    let cat = docker(&["exec", &run.container("app"), "cat", "/scratch/f"]);
    assert_eq!(String::from_utf8_lossy(&cat.stdout).trim(), "kept", "the data survived the recreate");

    // --renew-anon-volumes: a fresh volume, the old one removed.
    run.deploy(&file, &["--force-recreate", "--renew-anon-volumes"]).assert_exit(0);
    let renewed = volume_of(&run);
    assert_ne!(renewed, original, "a new anonymous volume");
    assert!(!volume_exists(&original), "the old anonymous volume was removed, not left dangling");
    let cat = docker(&["exec", &run.container("app"), "sh", "-c", "cat /scratch/f 2>/dev/null || echo empty"]);
    assert_eq!(String::from_utf8_lossy(&cat.stdout).trim(), "empty", "the renewed volume starts empty");
}

#[test]
fn an_empty_docker_host_means_the_local_engine_and_pwd_defaults_to_the_working_folder() {
    let Some(run) = TestRun::start("empty-host") else { return };
    let file = run.compose(&format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n    volumes:\n      - ${{PWD}}/data:/data\n"
    ));
    let out = run.dockmaster_with_env(["plan", &file, "--output", "json"], &[("DOCKER_HOST", "")]);
    out.assert_exit(0);

    // Under cron or Rundeck PWD is often unset: ${PWD} is still the
    // working folder, as Compose resolves it.
    let output = Command::new(env!("CARGO_BIN_EXE_dockmaster"))
        .args(["config", &file, "--format", "json"])
        .current_dir(run.dir())
        .env("DOCKMASTER_CONFIG", &run.config)
        .env_remove("PWD")
        .output()
        .expect("run dockmaster config");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "config failed: {}", String::from_utf8_lossy(&output.stderr));
    let expected = format!("{}/data", path_arg(&run.dir().canonicalize().unwrap_or(run.dir().to_path_buf())));
    assert!(
        stdout.contains(&expected) || stdout.contains(&format!("{}/data", path_arg(run.dir()))),
        "${{PWD}}/data became the working folder's data, expected {expected} in:\n{stdout}"
    );
}

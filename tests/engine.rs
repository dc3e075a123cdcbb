//! The deploy engine against the real Docker engine: rollback of every kind
//! of failure, SIGTERM, one deploy at a time per target, parallel apply and
//! `dockmaster rollback`.
//!
//! Each test reads as the scenario it proves. Stacks run the fixture image
//! (static busybox, built locally: nothing is pulled). No test measures
//! wall-clock time: "within the deadline" is read from the report
//! (`timed_out`), and the order of things from the engine's own events.
//! Waits on the engine (for a container to appear) are bounded polls.

mod common;

use std::time::Duration;

use common::{
    describe_events, docker, docker_lines, free_port, inspect, path_arg, volume_exists, wait_until, Report, TestRun,
    FIXTURE_IMAGE,
};
use serde_json::Value;

/// A long-running busybox command that exits at once on `docker stop`
/// (PID 1 ignores SIGTERM unless it traps it).
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// How long a test waits for something it started to show up in the engine
/// (a bound on a poll, never an assertion on speed).
const APPEAR: Duration = Duration::from_secs(90);

/// The container ids of `services`, in that order; fails if one is missing.
#[track_caller]
fn ids(run: &TestRun, services: &[&str]) -> Vec<String> {
    services
        .iter()
        .map(|s| run.container_id(s).unwrap_or_else(|| panic!("container {} does not exist", run.container(s))))
        .collect()
}

/// Whether the engine says the container is running.
fn is_running(container: &str) -> bool {
    inspect(container, "{{.State.Running}}").as_deref() == Some("true")
}

/// The names of the project's containers that a replacement kept aside
/// (`<name>_dm_previous`).
fn kept_aside(run: &TestRun) -> Vec<String> {
    docker_lines(&["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("name={}", run.project)])
        .into_iter()
        .filter(|name| name.starts_with(&run.project) && name.contains("_dm_previous"))
        .collect()
}

/// `rollback.restored.verdict` of a report ("" when absent).
fn restored_verdict(report: &Report) -> &str {
    report.value.pointer("/rollback/restored/verdict").and_then(Value::as_str).unwrap_or("")
}

/// `rolled_back` of a report, `None` when absent.
fn rolled_back(report: &Report) -> Option<bool> {
    report.value.get("rolled_back").and_then(Value::as_bool)
}

/// A service's `log_tail` as lines.
fn log_tail(report: &Report, service: &str) -> Vec<String> {
    report.service(service)["log_tail"]
        .as_array()
        .map(|lines| lines.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// A one-service stack: `app` idles, keeps data in the named volume `data`
/// at `/data`, carries `VERSION=<version>` and probes health with `probe`
/// (a JSON list, e.g. `["CMD", "true"]`).
fn app_with_volume(version: &str, probe: &str) -> String {
    format!(
        r#"services:
  app:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    environment:
      VERSION: "{version}"
    volumes:
      - data:/data
    healthcheck:
      test: {probe}
      interval: 1s
      timeout: 2s
      retries: 2
volumes:
  data: {{}}
"#
    )
}

/// A plain idling service `name` with `VERSION=<version>` and no healthcheck.
fn idle_service(name: &str, version: &str) -> String {
    format!(
        r#"  {name}:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    environment:
      VERSION: "{version}"
"#
    )
}

// ---------------------------------------------------------------------------
// Rollback
// ---------------------------------------------------------------------------

#[test]
fn a_v2_whose_healthcheck_never_passes_is_rolled_back_to_the_same_healthy_v1_container_with_its_volume_data() {
    let Some(run) = TestRun::start("rb-unhealthy") else { return };
    let file = run.compose(&app_with_volume("1", r#"["CMD", "true"]"#));
    run.deploy(&file, &[]).assert_exit(0);
    let v1 = run.container_id("app").expect("v1's app container exists");

    // Data written into the named volume before the next deploy.
    let exec = docker(&["exec", &run.container("app"), "sh", "-c", "echo x > /data/f"]);
    assert!(exec.status.success(), "writing into the volume failed: {}", String::from_utf8_lossy(&exec.stderr));

    run.compose(&app_with_volume("2", r#"["CMD", "false"]"#));
    let out = run.deploy(&file, &[]);
    out.assert_exit(1);
    let report = out.json();
    report.check(report.verdict() == "failed", "a v2 that never becomes healthy fails the deploy");
    report.check(report.status("app") == "unhealthy", "v2's app is reported unhealthy");
    report.check(report.value.get("timed_out") == Some(&Value::Bool(false)), "unhealthy is seen before the deadline");
    report.check(rolled_back(&report) == Some(true), "the report says rolled_back: true");
    report.check(restored_verdict(&report) == "healthy", "rollback.restored.verdict is healthy");
    report.check(
        report.value.pointer("/rollback/reason").and_then(Value::as_str).is_some_and(|r| !r.is_empty()),
        "rollback.reason says why",
    );

    // What the engine says now: the very same v1 container, healthy, with
    // the data still in its volume, and nothing kept aside.
    let now = run.container_id("app");
    out.check(now.as_deref() == Some(v1.as_str()), format!("the app container is v1's again ({v1}), not {now:?}"));
    out.check(is_running(&run.container("app")), "v1's app container runs");
    let health = inspect(&run.container("app"), "{{.State.Health.Status}}");
    out.check(
        health.as_deref() == Some("healthy"),
        format!("v1's app container is healthy, the engine says {health:?}"),
    );
    let env = inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default();
    out.check(env.contains("VERSION=1"), format!("the running container is v1 (env {env})"));
    out.check(volume_exists(&run.volume("data")), "the named volume is still there");
    let data = docker(&["exec", &run.container("app"), "cat", "/data/f"]);
    out.check(
        data.status.success() && String::from_utf8_lossy(&data.stdout).trim() == "x",
        format!(
            "the file written before the deploy is still in the volume (cat: {:?} {:?})",
            String::from_utf8_lossy(&data.stdout),
            String::from_utf8_lossy(&data.stderr)
        ),
    );
    let leftovers = kept_aside(&run);
    out.check(leftovers.is_empty(), format!("no `_dm_previous` container remains: {leftovers:?}"));
}

#[test]
fn a_crash_looping_v2_is_reported_crashed_with_its_logs_not_at_the_deadline_and_rolled_back() {
    let Some(run) = TestRun::start("rb-crash") else { return };
    let file = run.compose(&format!("services:\n{}", idle_service("worker", "1")));
    run.deploy(&file, &[]).assert_exit(0);
    let v1 = run.container_id("worker").expect("v1's worker container exists");

    let marker = format!("dmt-crash-marker-{}", run.project);
    run.compose(&format!(
        r#"services:
  worker:
    image: {FIXTURE_IMAGE}
    restart: always
    command: ["sh", "-c", "echo {marker}; exit 1"]
    environment:
      VERSION: "2"
"#
    ));
    let out = run.deploy(&file, &[]);
    out.assert_exit(1);
    let report = out.json();
    report.check(report.verdict() == "failed", "a crash loop fails the deploy");
    report.check(report.status("worker") == "crashed", "the crash-looping worker is reported crashed");
    report.check(
        report.value.get("timed_out") == Some(&Value::Bool(false)),
        "the crash loop was recognised, not waited out to the deadline (timed_out: false)",
    );
    let cause = report.service("worker")["cause"].as_str().unwrap_or("").to_lowercase();
    report.check(!cause.is_empty(), "the crashed worker has a cause");
    report.check(
        !(cause.contains("deadline") || cause.contains("timed out") || cause.contains("timeout")),
        "the cause is the crash, not the deadline",
    );
    let tail = log_tail(&report, "worker");
    report.check(tail.iter().any(|l| l.contains(&marker)), "the crashed worker's log_tail holds its marker line");
    report.check(rolled_back(&report) == Some(true), "the report says rolled_back: true");
    report.check(restored_verdict(&report) == "healthy", "rollback.restored.verdict is healthy");

    let now = run.container_id("worker");
    out.check(now.as_deref() == Some(v1.as_str()), format!("the worker container is v1's again ({v1}), not {now:?}"));
    out.check(is_running(&run.container("worker")), "v1's worker runs again");
    let leftovers = kept_aside(&run);
    out.check(leftovers.is_empty(), format!("no `_dm_previous` container remains: {leftovers:?}"));
}

#[test]
fn a_host_port_taken_by_another_container_halfway_is_a_precise_error_and_v1_comes_back() {
    let Some(run) = TestRun::start("rb-port") else { return };
    let file = run.compose(&format!("services:\n{}", idle_service("web", "1")));
    run.deploy(&file, &[]).assert_exit(0);
    let v1 = run.container_id("web").expect("v1's web container exists");

    // Another container (not part of the target) holds the port first.
    let port = free_port();
    let blocker = format!("{}-blocker", run.project);
    let started = docker(&[
        "run",
        "-d",
        "--name",
        &blocker,
        "--label",
        &run.label(),
        "-p",
        &format!("127.0.0.1:{port}:80"),
        FIXTURE_IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    assert!(
        started.status.success(),
        "the blocking container did not start: {}",
        String::from_utf8_lossy(&started.stderr)
    );

    run.compose(&format!(
        r#"services:
  web:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    environment:
      VERSION: "2"
    ports:
      - "127.0.0.1:{port}:8080"
"#
    ));
    let out = run.deploy(&file, &[]);
    out.check(
        matches!(out.code, Some(7) | Some(1)),
        "an operation the engine refused halfway exits 7 (or 1, unhealthy)",
    );
    let report = out.json();
    // The error the engine gave, as the report (`error.message`) and the
    // progress lines on stderr quote it.
    let message = report.value.pointer("/error/message").and_then(Value::as_str).unwrap_or("").to_lowercase();
    let stderr = out.stderr.to_lowercase();
    let names_the_conflict = |text: &str| {
        text.contains(&port.to_string())
            || text.contains("already allocated")
            || text.contains("address already in use")
    };
    report.check(
        names_the_conflict(&message),
        format!("error.message names the port {port} or says it is already allocated / in use"),
    );
    report.check(names_the_conflict(&stderr), format!("stderr names the port {port} or the conflict"));
    report.check(rolled_back(&report) == Some(true), "the report says rolled_back: true");
    report.check(restored_verdict(&report) == "healthy", "rollback.restored.verdict is healthy");

    let now = run.container_id("web");
    out.check(now.as_deref() == Some(v1.as_str()), format!("the web container is v1's again ({v1}), not {now:?}"));
    out.check(is_running(&run.container("web")), "v1's web runs again");
    let leftovers = kept_aside(&run);
    out.check(leftovers.is_empty(), format!("no `_dm_previous` container remains: {leftovers:?}"));
    out.check(is_running(&blocker), "the container that held the port was not touched");
}

#[test]
fn a_missing_image_that_cannot_be_pulled_exits_5_and_changes_nothing() {
    let Some(run) = TestRun::start("rb-image") else { return };
    // As on an air-gapped site: never ask a registry (tests stay on this
    // machine; a pull would make the engine look the registry up).
    run.add_config("deploy:\n  pull: never\n");
    let file = run.compose(&format!("services:\n{}{}", idle_service("front", "1"), idle_service("back", "1")));
    run.deploy(&file, &[]).assert_exit(0);
    let before = ids(&run, &["back", "front"]);
    let mut all_before = common::containers_with_label(&run.target_label());
    all_before.sort();

    let missing = "dockmaster-fixture/does-not-exist:never";
    run.compose(&format!(
        r#"services:
{front}  back:
    image: {missing}
    command: ["sh", "-c", "{IDLE}"]
    environment:
      VERSION: "2"
"#,
        front = idle_service("front", "2"),
    ));
    let out = run.deploy(&file, &[]);
    out.assert_exit(5);
    let stderr = out.stderr.to_lowercase();
    out.check(stderr.contains(missing), "stderr names the missing image");
    out.check(
        stderr.contains("pulling is disabled") && stderr.contains("build or load it"),
        "stderr says the image is missing, pulling is off, and what to do",
    );

    // Nothing changed: the same containers, running, and no others.
    out.check(ids(&run, &["back", "front"]) == before, "the containers are the very same v1 ones");
    out.check(is_running(&run.container("front")), "front still runs");
    out.check(is_running(&run.container("back")), "back still runs");
    let mut all_after = common::containers_with_label(&run.target_label());
    all_after.sort();
    out.check(all_after == all_before, "no container was created or removed");
    let env = inspect(&run.container("front"), "{{json .Config.Env}}").unwrap_or_default();
    out.check(env.contains("VERSION=1"), format!("front was not replaced before the images were ready (env {env})"));
}

#[test]
fn sigterm_during_a_deploy_rolls_back_to_the_running_v1_and_says_so() {
    let Some(run) = TestRun::start("rb-sigterm") else { return };
    let file = run.compose(&app_with_volume("1", r#"["CMD", "true"]"#));
    run.deploy(&file, &[]).assert_exit(0);
    let v1 = run.container_id("app").expect("v1's app container exists");

    // v2 cannot settle before the deadline: nothing ever creates /ready, and
    // 200 failed probes a second apart keep it `starting` past the deadline.
    run.compose(&format!(
        r#"services:
  app:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    environment:
      VERSION: "2"
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "test", "-f", "/ready"]
      interval: 1s
      timeout: 2s
      retries: 200
volumes:
  data: {{}}
"#
    ));
    let mut deploy = run.spawn_deploy(&file, &[]);
    let replaced = wait_until(APPEAR, || run.container_id("app").is_some_and(|id| id != v1) || !deploy.is_running());
    assert!(replaced, "v2's container did not appear while `{}` ran", deploy.command());
    if !deploy.is_running() {
        panic!("the deploy ended before it could be interrupted:{}", deploy.finish().describe());
    }
    deploy.signal("TERM");
    let out = deploy.finish();

    out.assert_exit(1);
    let report = out.json();
    report.check(rolled_back(&report) == Some(true), "the report says rolled_back: true");
    let reason = report.value.pointer("/rollback/reason").and_then(Value::as_str).unwrap_or("");
    report
        .check(reason.contains("SIGTERM"), format!("rollback.reason says it was interrupted by SIGTERM ({reason:?})"));
    report.check(restored_verdict(&report) == "healthy", "rollback.restored.verdict is healthy");

    let now = run.container_id("app");
    out.check(now.as_deref() == Some(v1.as_str()), format!("the app container is v1's again ({v1}), not {now:?}"));
    out.check(is_running(&run.container("app")), "v1's app runs again");
    let env = inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default();
    out.check(env.contains("VERSION=1"), format!("the running container is v1 (env {env})"));
    let leftovers = kept_aside(&run);
    out.check(leftovers.is_empty(), format!("no `_dm_previous` container remains: {leftovers:?}"));
}

#[test]
fn no_rollback_leaves_the_failed_v2_in_place() {
    let Some(run) = TestRun::start("no-rollback") else { return };
    let file = run.compose(&app_with_volume("1", r#"["CMD", "true"]"#));
    run.deploy(&file, &[]).assert_exit(0);
    let v1 = run.container_id("app").expect("v1's app container exists");

    run.compose(&app_with_volume("2", r#"["CMD", "false"]"#));
    let out = run.deploy(&file, &["--no-rollback"]);
    out.assert_exit(1);
    let report = out.json();
    report.check(report.verdict() == "failed", "the failing v2 fails the deploy");
    report.check(report.status("app") == "unhealthy", "v2's app is reported unhealthy");
    report.check(rolled_back(&report) == Some(false), "the report says rolled_back: false");
    report.check(report.value.get("rollback").is_none_or(Value::is_null), "there is no rollback object");

    let now = run.container_id("app");
    out.check(
        now.is_some() && now.as_deref() != Some(v1.as_str()),
        format!("the app container is v2's, not v1's ({now:?})"),
    );
    let env = inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default();
    out.check(env.contains("VERSION=2"), format!("the container under the service's name is v2 (env {env})"));
    let state = inspect(&run.container("app"), "{{.State.Status}}").unwrap_or_default();
    out.check(matches!(state.as_str(), "running" | "exited"), format!("v2's container is left in place ({state})"));
    // The replaced v1 container is kept aside, not destroyed.
    out.check(inspect(&v1, "{{.Id}}").as_deref() == Some(v1.as_str()), "v1's container still exists (kept aside)");
}

#[test]
fn the_next_deploy_after_a_no_rollback_failure_replaces_the_failed_service_and_clears_the_kept_container() {
    let Some(run) = TestRun::start("after-no-rollback") else { return };
    let file = run.compose(&app_with_volume("1", r#"["CMD", "true"]"#));
    run.deploy(&file, &[]).assert_exit(0);
    run.compose(&app_with_volume("2", r#"["CMD", "false"]"#));
    run.deploy(&file, &["--no-rollback"]).assert_exit(1);
    let kept = kept_aside(&run);
    assert!(!kept.is_empty(), "--no-rollback keeps v1's container aside (docs/deploying.md)");

    // docs/deploying.md: the replaced containers stay under their
    // `_dm_previous` names "until the next successful deploy removes them".
    next_deploy_succeeds_and_clears_the_kept_containers(&run, &file);
}

#[test]
fn after_a_deploy_killed_with_sigkill_the_next_deploy_succeeds_and_removes_the_leftovers() {
    let Some(run) = TestRun::start("after-sigkill") else { return };
    let file = run.compose(&app_with_volume("1", r#"["CMD", "true"]"#));
    run.deploy(&file, &[]).assert_exit(0);
    let v1 = run.container_id("app").expect("v1's app container exists");

    // A v2 that never settles, killed (no rollback possible) once its
    // container exists beside the kept v1.
    run.compose(&app_with_volume("2", r#"["CMD", "false"]"#).replace("retries: 2", "retries: 200"));
    let mut deploy = run.spawn_deploy(&file, &[]);
    let replaced = wait_until(APPEAR, || run.container_id("app").is_some_and(|id| id != v1) || !deploy.is_running());
    assert!(replaced, "v2's container did not appear while `{}` ran", deploy.command());
    if !deploy.is_running() {
        panic!("the deploy ended before it could be killed:{}", deploy.finish().describe());
    }
    deploy.signal("KILL");
    let killed = deploy.finish();
    killed.check(killed.code.is_none(), "SIGKILL ended the process");
    assert!(!kept_aside(&run).is_empty(), "a killed deploy leaves v1 kept aside as `_dm_previous`");

    // docs/deploying.md: "the next successful deploy of the target removes
    // the `_dm_previous` leftovers".
    next_deploy_succeeds_and_clears_the_kept_containers(&run, &file);
}

/// Deploys a healthy v3 and checks it runs and no `_dm_previous` is left.
fn next_deploy_succeeds_and_clears_the_kept_containers(run: &TestRun, file: &str) {
    run.compose(&app_with_volume("3", r#"["CMD", "true"]"#));
    let out = run.deploy(file, &[]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.status("app") == "healthy", "the next deploy's app is healthy");
    let env = inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default();
    out.check(env.contains("VERSION=3"), format!("the next deploy's container runs (env {env})"));
    let leftovers = kept_aside(run);
    out.check(leftovers.is_empty(), format!("the next successful deploy removed the kept containers: {leftovers:?}"));
}

// ---------------------------------------------------------------------------
// One deploy at a time per target
// ---------------------------------------------------------------------------

#[test]
fn two_deploys_of_one_target_serialise_and_the_second_gives_up_with_exit_6_when_its_wait_runs_out() {
    let Some(run) = TestRun::start("lock") else { return };
    let file = run.compose(&format!("services:\n{}", idle_service("app", "1")));

    // A holds the target for a long stability window.
    let mut a = run.spawn_deploy(&file, &["--stability-window", "15s"]);
    let holds = wait_until(APPEAR, || run.container_id("app").is_some() || !a.is_running());
    assert!(holds, "deploy A's container did not appear ({})", a.command());
    if !a.is_running() {
        panic!("deploy A ended before B could race it:{}", a.finish().describe());
    }

    let busy = run.deploy(&file, &["--lock-wait", "1s"]);
    busy.assert_exit(6);
    busy.check(busy.stderr.contains("in progress by"), "B's stderr says the target is in progress by someone");
    busy.check(busy.stderr.contains(&run.project), "B's stderr names the target");
    busy.check(busy.stderr.contains(&a.pid().to_string()), "B's stderr names A's pid");

    // With a generous wait, B waits for A and then deploys.
    let b = run.deploy(&file, &["--lock-wait", "120s"]);
    let a_out = a.finish();
    a_out.assert_exit(0);
    b.assert_exit(0);
    let a_report = a_out.json();
    a_report.check(a_report.changed("created") == common::names(&["app"]), "A created the service");
    let b_report = b.json();
    b_report.check(
        b_report.changed("unchanged") == common::names(&["app"]),
        "B ran after A had finished: it found A's container up to date",
    );
    b_report.check(b_report.changed("created").is_empty(), "B created nothing: A already had");
}

#[test]
fn deploys_of_two_different_targets_run_at_the_same_time() {
    let Some(one) = TestRun::start("two-a") else { return };
    let Some(two) = TestRun::start("two-b") else { return };
    let file_one = one.compose(&format!("services:\n{}", idle_service("app", "1")));
    let file_two = two.compose(&format!("services:\n{}", idle_service("app", "1")));

    let mut a = one.spawn_deploy(&file_one, &["--stability-window", "15s", "--lock-wait", "0s"]);
    let mut b = two.spawn_deploy(&file_two, &["--stability-window", "15s", "--lock-wait", "0s"]);
    // Both targets have their container while both deploys are still
    // running: neither waited for the other.
    let mut both_running_with_containers = false;
    let settled = wait_until(APPEAR, || {
        let a_running = a.is_running();
        let b_running = b.is_running();
        if one.container_id("app").is_some() && two.container_id("app").is_some() && a_running && b_running {
            both_running_with_containers = true;
        }
        both_running_with_containers || !a_running || !b_running
    });
    let a_out = a.finish();
    let b_out = b.finish();
    a_out.assert_exit(0);
    b_out.assert_exit(0);
    assert!(settled, "neither deploy made progress");
    assert!(
        both_running_with_containers,
        "the two targets' deploys did not overlap: one finished before the other had its container{}{}",
        a_out.describe(),
        b_out.describe()
    );
}

// ---------------------------------------------------------------------------
// Parallel apply
// ---------------------------------------------------------------------------

#[test]
fn a_20_service_stack_of_independent_services_is_created_and_started_concurrently() {
    let Some(run) = TestRun::start("parallel") else { return };
    let services: Vec<String> = (1..=20).map(|i| format!("s{i:02}")).collect();
    let body: String = services.iter().map(|s| idle_service(s, "1")).collect();
    let file = run.compose(&format!("services:\n{body}"));

    let events = run.watch_events_of(&["create", "start"]);
    let out = run.deploy(&file, &["--parallelism", "8", "--stability-window", "1s"]);
    let events = events.collect();

    out.assert_exit(0);
    let report = out.json();
    report.check(report.verdict() == "healthy", "the stack is healthy");
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    report.check(report.service_names() == common::names(&names), "the report lists all 20 services");
    for s in &services {
        report.check(matches!(report.status(s), "running" | "healthy"), format!("{s} runs"));
        out.check(is_running(&run.container(s)), format!("the engine says {s} runs"));
    }

    // From the engine's own order of events: a sequential apply would give
    // create s_i, start s_i, create s_j, start s_j, ... Concurrency shows as
    // some service created after another's create and before its start.
    let time_of = |service: &str, action: &str| common::first_event(&events, &run.container(service), action);
    let mut missing = Vec::new();
    let mut spans = Vec::new();
    for s in &services {
        match (time_of(s, "create"), time_of(s, "start")) {
            (Some(create), Some(start)) => spans.push((s.as_str(), create, start)),
            _ => missing.push(s.as_str()),
        }
    }
    assert!(
        missing.is_empty(),
        "the engine's events lack a create or start of {missing:?}; events:\n{}",
        describe_events(&events)
    );
    let interleaved = spans
        .iter()
        .flat_map(|i| spans.iter().map(move |j| (i, j)))
        .find(|((i, ci, si), (j, cj, _))| i != j && ci < cj && cj < si);
    assert!(
        interleaved.is_some(),
        "no service was created while another was between its create and its start: the apply was sequential; \
         events:\n{}",
        describe_events(&events)
    );
    // And more than two at once: at some moment several services had been
    // created but not yet started.
    let max_in_flight =
        spans.iter().map(|(_, c, _)| spans.iter().filter(|(_, c2, s2)| c2 <= c && c < s2).count()).max().unwrap_or(0);
    assert!(
        max_in_flight >= 2,
        "at most {max_in_flight} service(s) were between create and start at once; events:\n{}",
        describe_events(&events)
    );
}

// ---------------------------------------------------------------------------
// dockmaster rollback
// ---------------------------------------------------------------------------

#[test]
fn rollback_goes_back_to_the_previous_version_and_to_a_named_one() {
    let Some(run) = TestRun::start_named("rollback-cmd") else { return };
    run.private_state_dir();
    let version = |v: &str| format!("name: {}\nservices:\n{}", run.project, idle_service("app", &format!("v{v}")));
    run.write(&run.named_file("1"), &version("1"));
    run.write(&run.named_file("2"), &version("2"));
    let root = path_arg(&run.dir().join("descriptors"));
    let env_now = || inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default();
    let with_root = |args: &[&str]| {
        let mut all = vec!["--descriptors", root.as_str()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--timeout", common::DEPLOY_TIMEOUT, "--output", "json", "--stability-window", "1s"]);
        run.dockmaster(all)
    };

    let out = with_root(&["deploy", &run.named("1")]);
    out.assert_exit(0);
    out.check(env_now().contains("VERSION=v1"), "version 1 runs");
    let out = with_root(&["deploy", &run.named("2")]);
    out.assert_exit(0);
    out.check(env_now().contains("VERSION=v2"), "version 2 runs");

    // Without --to: the version before the one running now.
    let out = with_root(&["rollback", &run.named("")]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.str("action") == "rollback", "the report's action is rollback");
    report.check(report.value["descriptor"]["version"] == "1", "the rollback deployed version 1");
    report.check(report.verdict() == "healthy", "version 1 came back healthy");
    let env = env_now();
    out.check(env.contains("VERSION=v1"), format!("the app runs version 1's environment again ({env})"));

    // With --to: the version named.
    let out = with_root(&["rollback", &run.named(""), "--to", "2"]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.str("action") == "rollback", "the report's action is rollback");
    report.check(report.value["descriptor"]["version"] == "2", "rollback --to 2 deployed version 2");
    let env = env_now();
    out.check(env.contains("VERSION=v2"), format!("the app runs version 2's environment ({env})"));
}

#[test]
fn a_rollback_command_whose_version_fails_is_itself_rolled_back_and_reports_it_like_a_deploy() {
    let Some(run) = TestRun::start_named("rollback-fails") else { return };
    run.private_state_dir();
    let healthy = format!("name: {}\n{}", run.project, app_with_volume("1", r#"["CMD", "true"]"#));
    let broken = format!("name: {}\n{}", run.project, app_with_volume("2", r#"["CMD", "false"]"#));
    run.write(&run.named_file("1"), &broken);
    run.write(&run.named_file("2"), &healthy);
    let root = path_arg(&run.dir().join("descriptors"));
    let args = |extra: &[&str]| {
        let mut all = vec!["--descriptors", root.as_str()];
        all.extend_from_slice(extra);
        all.extend_from_slice(&["--timeout", common::DEPLOY_TIMEOUT, "--output", "json"]);
        all.iter().map(|a| a.to_string()).collect::<Vec<String>>()
    };
    run.dockmaster(args(&["deploy", &run.named("2")])).assert_exit(0);
    let v2 = run.container_id("app").expect("version 2's container exists");

    // docs/commands.md: rollback has the "same flags, watch, rollback and
    // report as deploy".
    let out = run.dockmaster(args(&["rollback", &run.named(""), "--to", "1"]));
    out.assert_exit(1);
    let report = out.json();
    report.check(report.str("action") == "rollback", "the report's action is rollback");
    report.check(report.verdict() == "failed", "version 1 fails");
    report.check(report.value.get("rollback").is_some_and(Value::is_object), "the report has a rollback object");
    report.check(restored_verdict(&report) == "healthy", "rollback.restored.verdict is healthy");
    let now = run.container_id("app");
    out.check(now.as_deref() == Some(v2.as_str()), format!("version 2's container runs again ({v2}), not {now:?}"));
    out.check(is_running(&run.container("app")), "version 2's container runs");
    report.check(rolled_back(&report) == Some(true), "the report says rolled_back: true, as a deploy's does");
}

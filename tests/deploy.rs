//! The real `dockmaster` binary against the real Docker engine.
//!
//! Each test reads as the scenario it proves. Stacks run the fixture image
//! (static busybox, built locally: nothing is pulled), healthchecks probe
//! every second, and every deploy has a 60 s deadline that a healthy machine
//! never comes near. No test measures wall-clock time: the order of things is
//! read from the engine (`docker inspect`, `docker events`).

mod common;

use common::{
    container_labels, container_time, containers_with_label, describe_events, docker, first_event, fixture_context,
    inspect, label_of, names, network_exists, networks_with_label, path_arg, published_port, repo_root, volume_exists,
    volumes_with_label, TestRun, FIXTURE_IMAGE,
};

/// A long-running busybox command that exits at once on `docker stop`
/// (PID 1 ignores SIGTERM unless it traps it).
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// The three-tier stack: `web` waits for `db` to be healthy (and for `cache`
/// to have started); `db` takes two seconds to become ready, so a deploy
/// that does not wait would start `web` too early. `greeting` is `cache`'s
/// environment, for the recreate scenario.
fn three_tier(greeting: &str) -> String {
    format!(
        r#"services:
  db:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2; touch /ready; while true; do sleep 1; done"]
    healthcheck:
      test: ["CMD", "test", "-f", "/ready"]
      interval: 1s
      timeout: 2s
      retries: 30
  cache:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    environment:
      GREETING: {greeting}
  web:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "trap 'exit 0' TERM; httpd -p 8080 -h /www; while true; do sleep 1; done"]
    depends_on:
      db:
        condition: service_healthy
      cache:
        condition: service_started
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 30
"#
    )
}

/// The container ids of `services`, in that order; fails if one is missing.
#[track_caller]
fn ids(run: &TestRun, services: &[&str]) -> Vec<String> {
    services
        .iter()
        .map(|s| run.container_id(s).unwrap_or_else(|| panic!("container {} does not exist", run.container(s))))
        .collect()
}

// ---------------------------------------------------------------------------
// Deploy and watch
// ---------------------------------------------------------------------------

#[test]
fn a_stack_whose_web_waits_for_a_healthy_db_comes_up_healthy_and_in_order() {
    let Some(run) = TestRun::start("order") else { return };
    let file = run.compose(&three_tier("hello"));

    let events = run.watch_events();
    let out = run.deploy(&file, &[]);
    let events = events.collect();

    out.assert_exit(0);
    let report = out.json();
    report.check(report.str("action") == "deploy", "the report's action is deploy");
    report.check(report.str("target") == run.project, "the report's target is the project name from `name:`");
    report.check(report.verdict() == "healthy", "the verdict is healthy");
    report.check(report.service_names() == names(&["cache", "db", "web"]), "the report lists every service");
    report.check(report.status("db") == "healthy", "db has a healthcheck, so it must be reported healthy");
    report.check(report.status("web") == "healthy", "web has a healthcheck, so it must be reported healthy");
    report.check(report.status("cache") == "running", "cache has no healthcheck, so it must be reported running");
    report.check(report.changed("created") == names(&["cache", "db", "web"]), "a first deploy creates every service");

    // The report's shape, as scripts read it.
    let descriptor = &report.value["descriptor"];
    report.check(descriptor["reference"] == file.as_str(), "descriptor.reference is the path as given");
    report.check(descriptor["source"].is_string(), "descriptor.source is given");
    report
        .check(descriptor["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")), "descriptor.digest is sha256:");
    for kind in ["created", "recreated", "unchanged", "removed"] {
        report.check(report.value["changes"][kind].is_array(), format!("changes.{kind} is a list"));
    }
    for name in ["cache", "db", "web"] {
        let service = report.service(name);
        // (`cause` may be left out when there is nothing to explain.)
        for key in ["status", "restarts", "image", "exit_code", "ports", "settle_seconds", "log_tail"] {
            report.check(service.get(key).is_some(), format!("service {name} has `{key}`"));
        }
        report.check(service["image"] == FIXTURE_IMAGE, format!("service {name} names its image"));
        report.check(
            service["image_id"].as_str().is_some_and(|id| id.starts_with("sha256:")),
            format!("service {name} has the image id it runs"),
        );
        report.check(service["restarts"] == 0, format!("service {name} did not restart"));
        report.check(
            service["settle_seconds"].as_f64().is_some_and(|s| s >= 0.0),
            format!("service {name} says how long it took to settle"),
        );
    }
    report.check(report.service("db")["health"] == "healthy", "db's health is healthy");
    report.check(report.service("web")["health"] == "healthy", "web's health is healthy");

    // What the engine says now.
    assert_eq!(inspect(&run.container("db"), "{{.State.Health.Status}}").as_deref(), Some("healthy"));
    assert_eq!(inspect(&run.container("web"), "{{.State.Health.Status}}").as_deref(), Some("healthy"));
    assert_eq!(inspect(&run.container("cache"), "{{.State.Status}}").as_deref(), Some("running"));

    // The order, from the engine's own clock: db started before web ...
    let db_started = container_time(&run.container("db"), ".State.StartedAt");
    let web_started = container_time(&run.container("web"), ".State.StartedAt");
    assert!(db_started < web_started, "db must start before web (db {db_started}, web {web_started})");

    // ... and web started only after db had become healthy.
    let db_healthy = first_event(&events, &run.container("db"), "health_status: healthy");
    let web_start = first_event(&events, &run.container("web"), "start");
    match (db_healthy, web_start) {
        (Some(healthy), Some(start)) => assert!(
            healthy <= start,
            "web started before db was healthy (db healthy at {healthy}, web started at {start}); events:\n{}",
            describe_events(&events)
        ),
        _ => panic!(
            "the engine's events do not show db becoming healthy and web starting; events:\n{}",
            describe_events(&events)
        ),
    }
}

#[test]
fn a_second_deploy_of_the_same_stack_changes_nothing() {
    let Some(run) = TestRun::start("idempotent") else { return };
    let file = run.compose(&three_tier("hello"));
    run.deploy(&file, &[]).assert_exit(0);
    let before = ids(&run, &["cache", "db", "web"]);

    let again = run.deploy(&file, &[]);
    again.assert_exit(0);
    let report = again.json();
    report.check(report.verdict() == "healthy", "the stack is still healthy");
    report.check(report.changed("created").is_empty(), "a second identical deploy creates nothing");
    report.check(report.changed("recreated").is_empty(), "a second identical deploy recreates nothing");
    report.check(report.changed("removed").is_empty(), "a second identical deploy removes nothing");
    report.check(
        report.changed("unchanged") == names(&["cache", "db", "web"]),
        "a second identical deploy lists every service as unchanged",
    );
    assert_eq!(ids(&run, &["cache", "db", "web"]), before, "the containers must be the very same ones");

    // The text report of a third deploy works too (its wording is not fixed).
    let text = run.dockmaster(["deploy", file.as_str(), "--timeout", common::DEPLOY_TIMEOUT]);
    text.assert_exit(0);
    text.check(["cache", "db", "web"].iter().all(|s| text.stdout.contains(s)), "the text report names every service");
    assert_eq!(ids(&run, &["cache", "db", "web"]), before, "a text-mode deploy changes nothing either");
}

#[test]
fn changing_one_services_environment_recreates_only_that_service() {
    let Some(run) = TestRun::start("recreate") else { return };
    let file = run.compose(&three_tier("hello"));
    run.deploy(&file, &[]).assert_exit(0);
    let before = ids(&run, &["cache", "db", "web"]);

    run.compose(&three_tier("bonjour"));
    let out = run.deploy(&file, &[]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.verdict() == "healthy", "the stack is healthy after the change");
    report.check(report.changed("recreated") == names(&["cache"]), "only cache is recreated");
    report.check(report.changed("created").is_empty(), "nothing is created");
    report.check(report.changed("unchanged") == names(&["db", "web"]), "db and web are unchanged");
    let reasons = report.recreate_reasons("cache");
    report.check(
        reasons.iter().any(|r| r.to_lowercase().contains("environment")),
        format!("the reason for recreating cache mentions the environment (reasons: {reasons:?})"),
    );

    let after = ids(&run, &["cache", "db", "web"]);
    assert_ne!(after[0], before[0], "cache must be a new container");
    assert_eq!(after[1..], before[1..], "db and web must be the very same containers");
    let env = inspect(&run.container("cache"), "{{json .Config.Env}}").unwrap_or_default();
    assert!(env.contains("GREETING=bonjour"), "the new cache container has the new environment: {env}");
}

#[test]
fn a_crash_looping_service_is_reported_crashed_with_its_logs_before_the_deadline() {
    let Some(run) = TestRun::start("crash") else { return };
    let marker = format!("dmt-crash-marker-{}", run.project);
    let file = run.compose(&format!(
        r#"services:
  worker:
    image: {FIXTURE_IMAGE}
    restart: always
    command: ["sh", "-c", "echo {marker}; exit 1"]
  steady:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
"#
    ));

    let out = run.deploy(&file, &[]);
    out.assert_exit(1);
    let report = out.json();
    report.check(report.verdict() == "failed", "a stack with a crash loop is not healthy");
    report.check(report.status("worker") == "crashed", "the crash-looping worker is reported crashed");
    let worker = report.service("worker");
    report.check(worker["exit_code"] == 1, "the worker's exit code (1) is reported");
    let log_tail: Vec<&str> =
        worker["log_tail"].as_array().map(|l| l.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
    report.check(log_tail.iter().any(|line| line.contains(&marker)), "the worker's log_tail holds its last output");
    // Crashed, not timed out: the watch recognised the loop before the 60 s
    // deadline instead of waiting it out.
    let cause = worker["cause"].as_str().unwrap_or("").to_lowercase();
    report.check(!cause.is_empty(), "a crashed service says why (cause)");
    let blames_deadline = cause.contains("timed out") || cause.contains("timeout") || cause.contains("deadline");
    report.check(!blames_deadline, "the cause is the crash, not the deadline");
    report.check(report.value.get("timed_out") != Some(&true.into()), "the watch did not run into the deadline");
    report.check(
        !matches!(report.status("steady"), "crashed" | "exited" | "unhealthy" | "missing"),
        "the other service is not blamed for the crash",
    );
}

#[test]
fn a_one_shot_data_container_used_through_volumes_from_is_completed_not_failed() {
    let Some(run) = TestRun::start("volumes-from") else { return };
    let file = run.compose(&format!(
        r#"services:
  data:
    image: {FIXTURE_IMAGE}
    command: ["true"]
    volumes:
      - shared:/data
  app:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    volumes_from:
      - data
volumes:
  shared: {{}}
"#
    ));

    let out = run.deploy(&file, &["--stability-window", "2s"]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.verdict() == "healthy", "a stack whose data container did its job is healthy");
    report.check(report.status("data") == "completed", "the data container that exited 0 is completed");
    report.check(report.service("data")["exit_code"] == 0, "its exit code 0 is reported");
    report.check(report.status("app") == "running", "app runs");
    let mounts =
        inspect(&run.container("app"), "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}").unwrap_or_default();
    assert!(
        mounts.contains(&format!("{}:/data", run.volume("shared"))),
        "app has data's volume through volumes_from: {mounts}"
    );
}

#[test]
fn a_job_that_another_service_waits_to_complete_successfully_is_completed_and_ran_first() {
    let Some(run) = TestRun::start("completed") else { return };
    // app refuses to start (exit 3) unless migrate has written its mark.
    let file = run.compose(&format!(
        r#"services:
  migrate:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "echo migrated > /state/done"]
    volumes:
      - state:/state
  app:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "test -f /state/done || exit 3; {IDLE}"]
    volumes:
      - state:/state
    depends_on:
      migrate:
        condition: service_completed_successfully
    healthcheck:
      test: ["CMD", "test", "-f", "/state/done"]
      interval: 1s
      timeout: 2s
      retries: 30
volumes:
  state: {{}}
"#
    ));

    let out = run.deploy(&file, &[]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.verdict() == "healthy", "the stack is healthy");
    report.check(report.status("migrate") == "completed", "the job that exited 0 is completed");
    report.check(report.status("app") == "healthy", "app is healthy");
    let migrate_finished = container_time(&run.container("migrate"), ".State.FinishedAt");
    let app_started = container_time(&run.container("app"), ".State.StartedAt");
    assert!(migrate_finished <= app_started, "app must start only after migrate finished");
}

#[test]
fn a_service_labelled_one_shot_is_completed_when_it_exits_zero() {
    let Some(run) = TestRun::start("one-shot-label") else { return };
    let file = run.compose(&format!(
        r#"services:
  seed:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "echo seeded"]
    labels:
      dockmaster.one-shot: "true"
  app:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
"#
    ));
    let out = run.deploy(&file, &[]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.status("seed") == "completed", "the labelled one-shot service is completed");
    report.check(report.status("app") == "running", "app runs");
}

#[test]
fn a_service_that_exits_zero_without_being_a_one_shot_is_not_healthy() {
    let Some(run) = TestRun::start("not-one-shot") else { return };
    let file = run.compose(&format!(
        r#"services:
  quitter:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "echo bye"]
  app:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
"#
    ));
    let out = run.deploy(&file, &[]);
    out.assert_exit(1);
    let report = out.json();
    report.check(report.verdict() == "failed", "a long-running service that stopped fails the deploy");
    report.check(
        report.status("quitter") == "exited",
        "a service nobody marked one-shot that exits is `exited`, not `completed`",
    );
}

// ---------------------------------------------------------------------------
// plan, status, down
// ---------------------------------------------------------------------------

#[test]
fn plan_on_a_fresh_stack_lists_every_service_as_created_and_changes_nothing() {
    let Some(run) = TestRun::start("plan") else { return };
    let file = run.compose(&format!("{}volumes:\n  unused: {{}}\n", three_tier("hello")));

    let out = run.dockmaster(["plan", file.as_str(), "--output", "json"]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.str("action") == "plan", "the report's action is plan");
    report.check(report.str("target") == run.project, "the plan names the target");
    report.check(report.value.get("descriptor").is_some_and(|d| d.is_object()), "the plan names the descriptor");
    report.check(report.changed("created") == names(&["cache", "db", "web"]), "every service would be created");
    report.check(report.changed("recreated").is_empty(), "nothing would be recreated");

    assert!(containers_with_label(&run.target_label()).is_empty(), "plan must create no container");
    assert!(containers_with_label(&run.label()).is_empty(), "plan must create no container");
    assert!(!network_exists(&run.network()), "plan must create no network");
    assert!(!volume_exists(&run.volume("unused")), "plan must create no volume");

    // The text plan works too and names the services.
    let text = run.dockmaster(["plan", file.as_str()]);
    text.assert_exit(0);
    text.check(["cache", "db", "web"].iter().all(|s| text.stdout.contains(s)), "the text plan names every service");
}

#[test]
fn status_after_a_deploy_reports_the_stack_healthy() {
    let Some(run) = TestRun::start("status") else { return };
    let file = run.compose(&three_tier("hello"));
    run.deploy(&file, &[]).assert_exit(0);
    let ids_before = ids(&run, &["cache", "db", "web"]);

    let out = run.dockmaster(["status", file.as_str(), "--output", "json"]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.str("action") == "status", "the report's action is status");
    report.check(report.verdict() == "healthy", "the deployed stack's status is healthy");
    report.check(report.status("db") == "healthy", "db is healthy");
    report.check(report.status("web") == "healthy", "web is healthy");
    report.check(matches!(report.status("cache"), "running" | "healthy"), "cache runs");
    for kind in ["created", "recreated", "removed"] {
        report.check(report.changed(kind).is_empty(), format!("status changes nothing ({kind} is empty)"));
    }
    assert_eq!(ids(&run, &["cache", "db", "web"]), ids_before, "status must not touch the containers");

    let text = run.dockmaster(["status", file.as_str()]);
    text.assert_exit(0);
    text.check(["cache", "db", "web"].iter().all(|s| text.stdout.contains(s)), "the text status names every service");
}

/// A stack whose service keeps data in a named volume.
fn keeper() -> String {
    format!(
        r#"services:
  keeper:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "echo kept > /store/file; {IDLE}"]
    volumes:
      - store:/store
volumes:
  store: {{}}
"#
    )
}

#[test]
fn down_removes_the_containers_and_the_network_but_keeps_named_volumes() {
    let Some(run) = TestRun::start("down") else { return };
    let file = run.compose(&keeper());
    run.deploy(&file, &[]).assert_exit(0);
    assert!(network_exists(&run.network()), "deploy creates the project network");
    assert!(volume_exists(&run.volume("store")), "deploy creates the named volume");

    let out = run.dockmaster(["down", file.as_str()]);
    out.assert_exit(0);
    out.check(containers_with_label(&run.target_label()).is_empty(), "down removes every container of the target");
    out.check(run.container_id("keeper").is_none(), "down removes the keeper container");
    out.check(!network_exists(&run.network()), "down removes the project network");
    out.check(volume_exists(&run.volume("store")), "down keeps the named volume without --volumes");
}

#[test]
fn down_with_volumes_removes_the_named_volumes_too() {
    let Some(run) = TestRun::start("down-volumes") else { return };
    let file = run.compose(&keeper());
    run.deploy(&file, &[]).assert_exit(0);
    assert!(volume_exists(&run.volume("store")), "deploy creates the named volume");

    let out = run.dockmaster(["down", file.as_str(), "--volumes"]);
    out.assert_exit(0);
    out.check(run.container_id("keeper").is_none(), "down --volumes removes the containers");
    out.check(!network_exists(&run.network()), "down --volumes removes the project network");
    out.check(!volume_exists(&run.volume("store")), "down --volumes removes the named volume");
}

// ---------------------------------------------------------------------------
// Descriptor references
// ---------------------------------------------------------------------------

#[test]
fn a_named_reference_is_found_in_the_descriptor_folder() {
    let Some(run) = TestRun::start("named") else { return };
    let stack = |marker: &str| {
        format!(
            "name: {}\n# version {marker}\nservices:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n",
            run.project
        )
    };
    run.write("descriptors/shop/prod/1.yml", &stack("1"));
    run.write("descriptors/shop/prod/2.yml", &stack("2"));
    let root = path_arg(&run.dir().join("descriptors"));

    // An explicit version, through --descriptors.
    let out = run.dockmaster(["--descriptors", root.as_str(), "plan", "shop/prod/1", "--output", "json"]);
    out.assert_exit(0);
    let report = out.json();
    let descriptor = &report.value["descriptor"];
    report.check(descriptor["reference"] == "shop/prod/1", "the report keeps the reference as given");
    report.check(descriptor["version"] == "1", "version 1 was resolved");
    report.check(
        descriptor["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")),
        "the descriptor digest is sha256:",
    );
    report.check(
        report.str("target") == "shop--prod",
        "a named descriptor's target comes from its application and release, not from `name:`",
    );
    out.check(out.stderr.contains("does not choose the target"), "the ignored `name:` is pointed out");

    // No version means the latest, and DOCKMASTER_DESCRIPTORS works like the flag.
    let out = run.dockmaster_with_env(["plan", "shop/prod", "--output", "json"], &[("DOCKMASTER_DESCRIPTORS", &root)]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.value["descriptor"]["version"] == "2", "the latest version (2) was resolved");

    // A version that does not exist.
    let out = run.dockmaster(["--descriptors", root.as_str(), "plan", "shop/prod/7"]);
    out.assert_exit(3);
}

// ---------------------------------------------------------------------------
// Error paths
// ---------------------------------------------------------------------------

#[test]
fn a_missing_descriptor_file_exits_3() {
    let Some(run) = TestRun::start("missing") else { return };
    let missing = path_arg(&run.dir().join("no-such-stack").join("compose.yaml"));
    let out = run.dockmaster(["deploy", missing.as_str(), "--timeout", "60s"]);
    out.assert_exit(3);
    out.check(out.stderr.contains("no-such-stack"), "stderr names the missing file");
}

#[test]
fn a_malformed_compose_file_exits_3_names_the_file_and_changes_nothing() {
    let Some(run) = TestRun::start("malformed") else { return };
    let file = run.write(
        "broken/compose.yaml",
        &format!("name: {}\nservices:\n  web:\n    image: [unclosed\n    command: \"sh\n", run.project),
    );
    let out = run.dockmaster(["deploy", file.as_str(), "--timeout", "60s"]);
    out.assert_exit(3);
    out.check(out.stderr.contains(&file) || out.stderr.contains("broken/compose.yaml"), "stderr names the file");
    assert!(containers_with_label(&run.label()).is_empty(), "an invalid descriptor changes nothing");
    assert!(!network_exists(&run.network()), "an invalid descriptor creates no network");
}

#[test]
fn a_service_with_neither_image_nor_build_is_an_invalid_descriptor() {
    let Some(run) = TestRun::start("no-image") else { return };
    let file = run.compose("services:\n  web:\n    command: [\"true\"]\n");
    let out = run.dockmaster(["deploy", file.as_str(), "--timeout", "60s"]);
    out.assert_exit(3);
    out.check(out.stderr.contains("web"), "stderr names the service");
    assert!(containers_with_label(&run.label()).is_empty(), "an invalid descriptor changes nothing");
}

#[test]
fn bad_command_lines_exit_2() {
    let Some(run) = TestRun::start("usage") else { return };
    let file = run.compose(&three_tier("hello"));
    for args in [
        vec!["deploy", file.as_str(), "--no-such-flag"],
        vec!["deploy", file.as_str(), "--output", "xml"],
        vec!["deploy", file.as_str(), "--timeout", "soon"],
        vec!["no-such-command", file.as_str()],
        vec!["deploy"],
    ] {
        let out = run.dockmaster(&args);
        out.assert_exit(2);
        out.check(!out.stderr.trim().is_empty(), "a usage error says what is wrong on stderr");
    }
    assert!(containers_with_label(&run.label()).is_empty(), "a usage error changes nothing");
    // A reference that is neither a file nor APPLICATION/RELEASE is refused
    // before the pipeline, and still recorded.
    let out = run.dockmaster(["deploy", "not-a-reference"]);
    out.assert_exit(2);
    let history = run.dockmaster(["history", "--output", "json"]);
    history.assert_exit(0);
    history.check(history.stdout.contains("not-a-reference"), "the refused reference is in the audit trail");
}

#[test]
fn an_engine_that_does_not_answer_exits_5() {
    // Assumes dockmaster honours DOCKER_HOST, as the Docker tools do.
    let Some(run) = TestRun::start("unreachable") else { return };
    let file = run.compose(&three_tier("hello"));
    let socket = format!("unix://{}", run.dir().join("no-engine-here.sock").display());
    let out = run.dockmaster_with_env(["status", file.as_str()], &[("DOCKER_HOST", socket.as_str())]);
    out.assert_exit(5);
}

// ---------------------------------------------------------------------------
// Images built through the engine, and the bundled example
// ---------------------------------------------------------------------------

#[test]
fn a_service_with_a_build_section_gets_its_image_built_by_the_engine() {
    let Some(run) = TestRun::start("build") else { return };
    let image = format!("{}-built:1", run.project);
    run.remove_image_on_drop(&image);
    let file = run.compose(&format!(
        r#"services:
  app:
    build: {context}
    image: {image}
    command: ["sh", "-c", "{IDLE}"]
"#,
        context = path_arg(&fixture_context())
    ));
    assert!(inspect(&image, "{{.Id}}").is_none(), "the image must not exist before the deploy");

    let out = run.deploy(&file, &["--build"]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.status("app") == "running", "the service runs on the image dockmaster built");
    let built = inspect(&image, "{{.Id}}");
    out.check(built.is_some(), format!("the engine has the image {image} after the deploy"));
    let running = inspect(&run.container("app"), "{{.Image}}");
    out.check(running == built, "the container runs the built image");
}

#[test]
fn the_bundled_example_deploys_healthy_and_serves_its_page() {
    let Some(run) = TestRun::start("hello") else { return };
    // The example's own file, as the README deploys it; its project name is
    // fixed (`hello`), so --project gives this test its own target.
    let example = path_arg(&repo_root().join("examples").join("hello").join("compose.yaml"));
    let out = run.dockmaster([
        "deploy",
        example.as_str(),
        "--project",
        run.project.as_str(),
        "--timeout",
        "90s",
        "--output",
        "json",
    ]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.str("target") == run.project, "--project names the target");
    report.check(report.verdict() == "healthy", "the example comes up healthy");
    report.check(report.status("content") == "completed", "the content job completed");
    report.check(report.status("db") == "healthy", "db is healthy");
    report.check(report.status("web") == "healthy", "web is healthy");
    report.check(
        report.service("web")["ports"].as_array().is_some_and(|p| !p.is_empty()),
        "the report shows web's published port",
    );

    let address = published_port(&run.container("web"), "8080/tcp")
        .unwrap_or_else(|| panic!("web publishes 8080 on 127.0.0.1{}", out.describe()));
    let page = common::http_get(&address, "/").unwrap_or_else(|e| panic!("GET http://{address}/: {e}"));
    assert!(page.contains("Hello from dockmaster"), "web serves the example page: {page}");
    assert!(page.contains("deployed at"), "the content job wrote its line into the page: {page}");
}

// ---------------------------------------------------------------------------
// Labels and cleanup
// ---------------------------------------------------------------------------

#[test]
fn everything_dockmaster_creates_is_labelled_and_a_dropped_test_run_leaves_nothing_behind() {
    let Some(run) = TestRun::start("cleanup") else { return };
    let file = run.compose(&keeper());
    run.deploy(&file, &[]).assert_exit(0);

    // The contract's labels, and the config's extra label, on everything.
    let container = run.container("keeper");
    let labels = container_labels(&container);
    assert_eq!(labels.get("dockmaster.target").and_then(|v| v.as_str()), Some(run.project.as_str()), "{labels:?}");
    assert_eq!(labels.get("dockmaster.service").and_then(|v| v.as_str()), Some("keeper"), "{labels:?}");
    let hash = labels.get("dockmaster.config-hash").and_then(|v| v.as_str()).unwrap_or("");
    assert!(!hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()), "config-hash is hex: {labels:?}");
    assert_eq!(labels.get(common::TEST_RUN_LABEL).and_then(|v| v.as_str()), Some(run.id.as_str()), "{labels:?}");
    assert_eq!(label_of(&run.network(), common::TEST_RUN_LABEL).as_deref(), Some(run.id.as_str()), "network label");
    assert_eq!(
        label_of(&run.volume("store"), common::TEST_RUN_LABEL).as_deref(),
        Some(run.id.as_str()),
        "volume label"
    );

    let label = run.label();
    let (network, volume) = (run.network(), run.volume("store"));
    assert!(!containers_with_label(&label).is_empty());
    drop(run);

    assert!(containers_with_label(&label).is_empty(), "no container with {label} remains");
    assert!(networks_with_label(&label).is_empty(), "no network with {label} remains");
    assert!(volumes_with_label(&label).is_empty(), "no volume with {label} remains");
    assert!(inspect(&container, "{{.Id}}").is_none(), "the container {container} is gone");
    assert!(!network_exists(&network), "the network {network} is gone");
    assert!(!volume_exists(&volume), "the volume {volume} is gone");
}

#[test]
fn quiet_prints_nothing_on_success_and_the_report_on_failure_for_cron() {
    let Some(run) = TestRun::start("quiet") else { return };
    let file =
        run.compose(&format!("services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n"));
    let ok = run.dockmaster(["--quiet", "deploy", file.as_str(), "--stability-window", "1s"]);
    ok.assert_exit(0);
    ok.check(ok.stdout.is_empty() && ok.stderr.is_empty(), "a quiet success prints nothing at all");
    let bad = run.compose(&format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"exit 3\"]\n    restart: always\n"
    ));
    let failed = run.dockmaster(["--quiet", "deploy", bad.as_str()]);
    failed.assert_exit(1);
    failed.check(failed.stdout.contains("VERDICT: FAILED"), "a quiet failure prints its report");
}

#[test]
fn a_v1_descriptor_like_our_users_deploys_on_the_default_bridge_with_links_and_data_containers() {
    let Some(run) = TestRun::start("v1") else { return };
    let data_name = format!("{}-app-data", run.project);
    let app_name = format!("{}-app", run.project);
    // v1: services at the top level, no `name:` key (the project comes from --project).
    let file = run.write(
        "v1/compose.yml",
        &format!(
            "app-data:\n    image: {FIXTURE_IMAGE}\n    container_name: {data_name}\n    command: 'true'\n    volumes:\n    - /config\n\
             app:\n    image: {FIXTURE_IMAGE}\n    container_name: {app_name}\n    restart: always\n    command: sh -c \"echo hello > /config/hello; while true; do echo PONG | nc -l -p 7000; done\"\n    volumes_from:\n    - app-data\n\
             client:\n    image: {FIXTURE_IMAGE}\n    links:\n    - app:backend\n    command: sh -c \"until nc backend 7000; do sleep 0.2; done; sleep 100000\"\n"
        ),
    );
    let out = run.deploy(&file, &["--project", &run.project, "--stability-window", "2s"]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.status("app-data") == "completed", "the data container is completed");
    report.check(report.status("app") == "running", "app runs");
    let mode = inspect(&app_name, "{{.HostConfig.NetworkMode}}").unwrap_or_default();
    out.check(mode == "bridge", format!("v1 services use the default bridge, got {mode}"));
    let from = inspect(&app_name, "{{json .HostConfig.VolumesFrom}}").unwrap_or_default();
    out.check(from.contains(&data_name), format!("volumes_from names the data container, got {from}"));
    out.check(!network_exists(&format!("{}_default", run.project)), "no project network for v1");
    let logs = docker(&["logs", &format!("{}-client-1", run.project)]);
    out.check(String::from_utf8_lossy(&logs.stdout).contains("PONG"), "the legacy link `backend` reaches app");
}

#[test]
fn an_environment_layers_its_override_files_and_profiles_and_env_files_reach_the_deploy() {
    let Some(run) = TestRun::start("env-layers") else { return };
    // The qa environment adds a label and a port mapping to every descriptor.
    let overlay = run.write(
        "qa-override.yml",
        "services:\n  app:\n    labels:\n      layer: qa\n    environment:\n      FROM_LAYER: \"yes\"\n",
    );
    run.add_config(&format!("environments:\n  qa:\n    overrides: [\"{overlay}\"]\n"));
    let vars = run.write("qa.env", "GREETING=from-the-env-file\n");
    let file = run.compose(&format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n    \
         environment:\n      GREETING: ${{GREETING:-unset}}\n  \
         extra:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n    profiles: [debug]\n"
    ));
    let out = run.deploy(&file, &["--env", "qa", "--profile", "debug", "--env-file", &vars]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.str("target") == format!("{}-qa", run.project), "the environment names its own target");
    let app = format!("{}-qa-app-1", run.project);
    assert_eq!(label_of(&app, "layer").as_deref(), Some("qa"), "the environment's override file was merged");
    let env = inspect(&app, "{{json .Config.Env}}").unwrap_or_default();
    assert!(env.contains("FROM_LAYER=yes") && env.contains("GREETING=from-the-env-file"), "{env}");
    assert!(inspect(&format!("{}-qa-extra-1", run.project), "{{.State.Running}}").as_deref() == Some("true"));
    // The default environment is a different target: nothing of qa's there.
    let plan = run.dockmaster(["plan", &file, "--output", "json"]);
    plan.assert_exit(0);
    assert_eq!(plan.json().changed("created"), names(&["app"]), "default has its own target, without the profile");
}

#[test]
fn what_one_engine_cannot_run_is_shown_by_config_and_refused_by_plan_and_deploy_before_anything_changes() {
    let Some(run) = TestRun::start("cannot-run") else { return };
    // Three things Compose's `config` reads but one engine cannot run: an
    // external secret (only Swarm keeps them), a volume with a relative path
    // in the container, and two replicas. All three are named at once.
    let file = run.compose(&format!(
        "services:\n  web:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n    \
         volumes: [cache]\n    secrets: [tls]\n    deploy:\n      replicas: 2\n\
         secrets:\n  tls:\n    external: true\n    name: prod-tls\n"
    ));
    let config = run.dockmaster(["config", &file]);
    config.assert_exit(0);
    config.check(config.stdout.contains("external: true") && config.stdout.contains("prod-tls"), "config shows it");
    config.check(config.stderr.contains("must be absolute, found \"cache\""), "config warns of the relative path");
    for action in ["plan", "deploy"] {
        let out = match action {
            "plan" => run.dockmaster(["plan", &file, "--output", "json"]),
            _ => run.deploy(&file, &[]),
        };
        out.assert_exit(3);
        let needle =
            "service \"web\", key \"volumes[0]\": the path inside the container must be absolute, found \"cache\"";
        out.check(out.stderr.contains(needle), format!("{action} names the relative path: {needle}"));
        out.check(out.stderr.contains("deploy.replicas is 2"), format!("{action} names the replicas"));
        out.check(
            out.stderr.contains("secret `tls` is external (`prod-tls` on the engine)")
                && out.stderr.contains("kind: swarm"),
            format!("{action} names the external secret and the way to deploy it"),
        );
    }
    assert!(containers_with_label(&run.label()).is_empty(), "no container was created");
    assert!(networks_with_label(&run.label()).is_empty(), "no network was created");
    assert!(volumes_with_label(&run.label()).is_empty(), "no volume was created");
}

#[test]
fn the_reported_digest_changes_when_an_included_file_changes() {
    let Some(run) = TestRun::start("digest-include") else { return };
    let part = |greeting: &str| {
        format!(
            "services:\n  db:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n    \
             environment:\n      GREETING: {greeting}\n"
        )
    };
    run.write("stack/parts/db.yaml", &part("one"));
    let file = run.compose(&format!(
        "include: [parts/db.yaml]\nservices:\n  web:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n"
    ));
    let digest = || {
        let out = run.dockmaster(["plan", &file, "--output", "json"]);
        out.assert_exit(0);
        out.json().value["descriptor"]["digest"].as_str().unwrap_or_default().to_string()
    };
    let before = digest();
    assert!(before.starts_with("sha256:"), "{before}");
    assert_eq!(digest(), before, "the same files give the same digest");
    run.write("stack/parts/db.yaml", &part("two"));
    assert_ne!(digest(), before, "an edit to the included file is a new digest, so an old approval does not cover it");
}

#[test]
fn recreating_a_data_container_keeps_its_anonymous_volume_and_the_data_in_it() {
    let Some(run) = TestRun::start("anon-data") else { return };
    let bumped = format!("dockmaster-fixture/busybox:anon-{}", std::process::id());
    common::docker(&["tag", FIXTURE_IMAGE, &bumped]);
    run.remove_image_on_drop(&bumped);
    // The seed's v1 pattern: a data container with an anonymous volume, a
    // database that takes it with volumes_from.
    let stack = |data_image: &str, marker: &str| {
        format!(
            r#"services:
  db-data:
    image: {data_image}
    command: ["true"]
    volumes:
      - /var/lib/mysql
  db:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    environment: {{MARKER: "{marker}"}}
    volumes_from:
      - db-data
  cache:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    environment: {{MARKER: "{marker}"}}
    volumes:
      - /cache
"#
        )
    };
    let file = run.compose(&stack(FIXTURE_IMAGE, "1"));
    run.deploy(&file, &["--stability-window", "1s"]).assert_exit(0);
    let write = |container: &str, path: &str| {
        let out = common::docker(&["exec", container, "sh", "-c", &format!("echo precious > {path}/table")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    write(&run.container("db"), "/var/lib/mysql");
    write(&run.container("cache"), "/cache");
    let volume_at = |container: &str, path: &str| {
        inspect(
            container,
            &format!("{{{{range .Mounts}}}}{{{{if eq .Destination \"{path}\"}}}}{{{{.Name}}}}{{{{end}}}}{{{{end}}}}"),
        )
        .unwrap_or_default()
    };
    let data_volume = volume_at(&run.container("db-data"), "/var/lib/mysql");
    let cache_volume = volume_at(&run.container("cache"), "/cache");
    assert_eq!(data_volume.len(), 64, "an anonymous volume: {data_volume:?}");

    // An image-only bump of the data container and a change to the others:
    // every one is recreated, and every anonymous volume goes along.
    let file = run.compose(&stack(&bumped, "2"));
    let out = run.deploy(&file, &["--stability-window", "1s"]);
    out.assert_exit(0);
    assert_eq!(volume_at(&run.container("db-data"), "/var/lib/mysql"), data_volume, "the data container keeps it");
    assert_eq!(volume_at(&run.container("db"), "/var/lib/mysql"), data_volume, "the database sees the same data");
    assert_eq!(volume_at(&run.container("cache"), "/cache"), cache_volume, "a service's own anonymous volume too");
    for (container, path) in [(run.container("db"), "/var/lib/mysql"), (run.container("cache"), "/cache")] {
        let read = common::docker(&["exec", &container, "cat", &format!("{path}/table")]);
        assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), "precious", "{container}:{path} kept its data");
    }
    // down keeps them; down --volumes leaves none dangling.
    run.dockmaster(["down", &file]).assert_exit(0);
    assert!(common::volume_exists(&data_volume), "down without --volumes keeps the data");
    run.deploy(&file, &["--stability-window", "1s"]).assert_exit(0);
    let fresh = volume_at(&run.container("db-data"), "/var/lib/mysql");
    run.dockmaster(["down", &file, "--volumes"]).assert_exit(0);
    assert!(!common::volume_exists(&fresh), "down --volumes removes the anonymous volume {fresh}");
    let _ = common::docker(&["volume", "rm", &data_volume, &cache_volume]);
}

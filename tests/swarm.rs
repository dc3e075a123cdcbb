//! The Swarm engine against the machine's own engine turned into a
//! single-node swarm for the test, and left again afterwards.
//!
//! One test function drives the whole story (init, deploy, a failed
//! start-first update that Swarm rolls back, the same failure with
//! `--no-rollback` left in place, `docker stack ps`, down, leave), because
//! swarm mode is a property of the whole engine: two tests turning it on
//! and off at once would break each other.

mod common;

use common::{docker, docker_lines, TestRun, FIXTURE_IMAGE};

/// An idle command that exits at once on SIGTERM.
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// Three services of two replicas each; `api`'s healthcheck is `check`
/// and its rollout is start-first with Swarm's own rollback on failure.
fn stack(check: &str) -> String {
    let service = |name: &str, test: &str, extra: &str| {
        format!(
            r#"  {name}:
    image: {FIXTURE_IMAGE}
    command: ["sh", "-c", "{IDLE}"]
    healthcheck:
      test: ["CMD", "{test}"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 2
{extra}"#
        )
    };
    let rollout = "      update_config:\n        order: start-first\n        failure_action: rollback\n        monitor: 4s\n        parallelism: 1\n      rollback_config:\n        order: start-first\n";
    format!(
        "services:\n{}{}{}",
        service("api", check, rollout),
        service("worker", "true", ""),
        service("web", "true", "")
    )
}

/// Leaves swarm mode on drop when the test turned it on.
struct SwarmMode {
    initialised_here: bool,
}

impl SwarmMode {
    fn enter() -> SwarmMode {
        let state = docker_lines(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).join("");
        if state == "active" {
            return SwarmMode { initialised_here: false };
        }
        let init = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(
            init.status.success(),
            "the engine refused swarm mode (`docker swarm init --advertise-addr 127.0.0.1`): {}",
            String::from_utf8_lossy(&init.stderr)
        );
        SwarmMode { initialised_here: true }
    }

    fn leave(&mut self) {
        if std::mem::take(&mut self.initialised_here) {
            let left = docker(&["swarm", "leave", "--force"]);
            assert!(left.status.success(), "docker swarm leave: {}", String::from_utf8_lossy(&left.stderr));
        }
    }
}

impl Drop for SwarmMode {
    fn drop(&mut self) {
        if self.initialised_here {
            let _ = docker(&["swarm", "leave", "--force"]);
        }
    }
}

fn inspect_service(name: &str, format: &str) -> String {
    docker_lines(&["service", "inspect", name, "--format", format]).join("\n")
}

#[test]
fn a_stack_deploys_to_swarm_a_failed_update_is_rolled_back_by_swarm_and_down_removes_it() {
    let Some(run) = TestRun::start("swarm") else { return };
    let mut swarm = SwarmMode::enter();
    run.add_config("environments:\n  cluster:\n    engine:\n      kind: swarm\n");
    let target = format!("{}-cluster", run.project);

    // 1. Three services with two replicas each reach healthy.
    let file = run.compose(&stack("true"));
    let out = run.deploy(&file, &["--env", "cluster"]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.verdict() == "healthy", "the first deploy is healthy");
    report.check(report.str("engine").starts_with("swarm "), "the report names the swarm engine");
    for name in ["api", "worker", "web"] {
        report.check(report.status(name) == "healthy", format!("{name} is healthy"));
        let container = report.service(name)["container"].as_str().unwrap_or("");
        report.check(container.contains("(2/2 tasks)"), format!("{name} has 2 of 2 tasks: {container}"));
    }

    // 2. `docker stack ps` knows the stack: six running tasks.
    let tasks = docker_lines(&["stack", "ps", &target, "--format", "{{.Name}} {{.CurrentState}}"]);
    let running: Vec<&String> = tasks.iter().filter(|t| t.contains("Running")).collect();
    assert_eq!(running.len(), 6, "docker stack ps {target}: {tasks:#?}");
    let services = docker_lines(&["stack", "services", &target, "--format", "{{.Name}} {{.Replicas}}"]);
    assert_eq!(services.len(), 3, "docker stack services {target}: {services:#?}");

    // 3. A redeploy of the same descriptor changes nothing.
    let again = run.deploy(&file, &["--env", "cluster"]);
    again.assert_exit(0);
    let again = again.json();
    again.check(again.changed("recreated").is_empty() && again.changed("created").is_empty(), "nothing changes");

    // 4. A start-first update whose healthcheck fails: Swarm rolls it back,
    // and the report says so, with Swarm's reason.
    let file = run.compose(&stack("false"));
    let out = run.dockmaster(["deploy", &file, "--env", "cluster", "--timeout", "120s", "--output", "json"]);
    out.assert_exit(1);
    let report = out.json();
    report.check(report.verdict() == "failed", "the update is reported as failed");
    report.check(report.value["rolled_back"] == true, "the update is reported as rolled back");
    let cause = report.service("api")["cause"].as_str().unwrap_or("").to_string();
    report.check(cause.contains("Swarm rolled the update back"), format!("api's cause quotes Swarm: {cause}"));
    let api = format!("{target}_api");
    assert_eq!(inspect_service(&api, "{{.UpdateStatus.State}}"), "rollback_completed");
    assert_eq!(
        inspect_service(&api, "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck.Test}}"),
        r#"["CMD","true"]"#,
        "Swarm's rollback restored the previous spec"
    );
    let restored = report.value["rollback"]["restored"]["verdict"].as_str().unwrap_or("");
    report.check(restored == "healthy", "the rolled-back service is healthy again");

    // 4b. The same failing update, with a new environment, under
    // `--no-rollback`: neither Swarm (its failure action is `pause`, not the
    // descriptor's `rollback`) nor dockmaster undoes it. The report says
    // failed and not rolled back, as on one engine, and the service keeps
    // v2's spec.
    let api_v1 = format!("  api:\n    image: {FIXTURE_IMAGE}\n");
    let v2 = stack("false").replacen(&api_v1, &format!("{api_v1}    environment:\n      VERSION: \"2\"\n"), 1);
    assert!(v2.contains("VERSION"), "v2 gives api an environment: {v2}");
    let file = run.compose(&v2);
    let out = run.deploy(&file, &["--env", "cluster", "--no-rollback"]);
    out.assert_exit(1);
    let report = out.json();
    report.check(report.verdict() == "failed", "the update is reported as failed");
    report.check(report.value["rolled_back"] == false, "the report says rolled_back: false");
    report.check(report.value.get("rollback").is_none_or(|r| r.is_null()), "there is no rollback object");
    report.check(!report.status("api").is_empty() && report.status("api") != "healthy", "api is not healthy");
    let cause = report.service("api")["cause"].as_str().unwrap_or("").to_string();
    report.check(cause.contains("Swarm paused the update"), format!("api's cause quotes Swarm: {cause}"));
    assert_eq!(inspect_service(&api, "{{.UpdateStatus.State}}"), "paused", "Swarm did not roll back");
    assert_eq!(inspect_service(&api, "{{.Spec.UpdateConfig.FailureAction}}"), "pause");
    assert_eq!(
        inspect_service(&api, "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck.Test}}"),
        r#"["CMD","false"]"#,
        "the service keeps v2's spec"
    );
    let env = inspect_service(&api, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}");
    assert!(env.contains("VERSION=2"), "the service keeps v2's environment: {env}");
    let image = inspect_service(&api, "{{.Spec.TaskTemplate.ContainerSpec.Image}}");
    assert!(image.starts_with(FIXTURE_IMAGE), "the service keeps v2's image: {image}");

    // 4c. The next deploy replaces the update left in place: v1 again,
    // healthy, with the descriptor's rollback on failure back in the spec.
    let file = run.compose(&stack("true"));
    let out = run.deploy(&file, &["--env", "cluster"]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.verdict() == "healthy", "v1 replaces the failed v2");
    report
        .check(report.changed("recreated") == ["api"], format!("only api changes: {:?}", report.changed("recreated")));
    let env = inspect_service(&api, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}");
    assert!(!env.contains("VERSION=2"), "v1's spec is back: {env}");
    assert_eq!(inspect_service(&api, "{{.Spec.UpdateConfig.FailureAction}}"), "rollback");

    // 5. The audit trail names the engine and the rollback.
    let history = run.dockmaster(["history", "--output", "json"]);
    history.assert_exit(0);
    history.check(history.stdout.contains("swarm unix://"), "the audit trail names the swarm engine");

    // 6. Secrets and configs: an external secret must exist first; the
    // stack's own are created, given to the tasks, replaced when their
    // content changes, and removed when no longer used.
    let external = format!("{}-tls", run.project);
    run.write("stack/token.txt", "t0ken");
    let with_files = |motd: &str| {
        format!(
            "{}    secrets: [tls, token]\n    configs: [{{source: motd, target: /etc/motd}}]\n\
             secrets:\n  tls:\n    external: true\n    name: {external}\n  token:\n    file: ./token.txt\n\
             configs:\n  motd:\n    content: {motd}\n",
            stack("true")
        )
    };
    let file = run.compose(&with_files("hello"));
    let out = run.deploy(&file, &["--env", "cluster"]);
    out.assert_exit(3);
    out.check(out.stderr.contains(&format!("docker secret create {external}")), "the refusal says what to create");
    let own = |what: &str| {
        docker_lines(&[what, "ls", "--filter", &format!("label=dockmaster.target={target}"), "--format", "{{.Name}}"])
    };
    assert!(own("secret").is_empty() && own("config").is_empty(), "nothing was created before the refusal");
    let value = run.write("external-tls", "external-value");
    let created = docker(&["secret", "create", "--label", &run.label(), &external, &value]);
    assert!(created.status.success(), "docker secret create: {}", String::from_utf8_lossy(&created.stderr));
    let out = run.deploy(&file, &["--env", "cluster"]);
    out.assert_exit(0);
    let report = out.json();
    report
        .check(report.changed("recreated") == ["web"], format!("only web changes: {:?}", report.changed("recreated")));
    let web_task = || {
        docker_lines(&["ps", "-q", "--filter", &format!("label=com.docker.swarm.service.name={target}_web")])
            .into_iter()
            .next()
            .expect("a running web task")
    };
    let task = web_task();
    for (path, expected) in
        [("/run/secrets/tls", "external-value"), ("/run/secrets/token", "t0ken"), ("/etc/motd", "hello")]
    {
        assert_eq!(docker_lines(&["exec", &task, "cat", path]).join(""), expected, "{path} in the task");
    }
    let configs = own("config");
    assert!(configs.len() == 1 && configs[0].starts_with(&format!("{target}_motd_")), "{configs:?}");
    assert_eq!(own("secret").len(), 1, "the token secret is the stack's own; tls is not");
    let file = run.compose(&with_files("bye"));
    let out = run.deploy(&file, &["--env", "cluster"]);
    out.assert_exit(0);
    out.json().check(out.json().changed("recreated") == ["web"], "new content updates the service");
    let replaced = own("config");
    assert!(replaced.len() == 1 && replaced != configs, "the old config is removed: {configs:?} then {replaced:?}");
    let spec_configs = inspect_service(
        &format!("{target}_web"),
        "{{range .Spec.TaskTemplate.ContainerSpec.Configs}}{{.ConfigName}}{{end}}",
    );
    assert_eq!(spec_configs, replaced[0], "the service uses the new config");

    // 7. Down removes the services, the overlay network and the stack's own
    // secrets and configs; the external secret stays.
    let down = run.dockmaster(["down", &file, "--env", "cluster"]);
    down.assert_exit(0);
    let left = docker_lines(&["service", "ls", "--filter", &format!("label=dockmaster.target={target}"), "-q"]);
    assert!(left.is_empty(), "services left after down: {left:?}");
    assert!(own("secret").is_empty() && own("config").is_empty(), "own secrets or configs left after down");
    let kept = docker_lines(&["secret", "ls", "--filter", &format!("name={external}"), "--format", "{{.Name}}"]);
    assert_eq!(kept, std::slice::from_ref(&external), "the external secret is not the stack's to remove");
    let _ = docker(&["secret", "rm", &external]);

    // 8. Without swarm mode, a swarm environment is refused with what to do.
    if swarm.initialised_here {
        swarm.leave();
        let out = run.deploy(&file, &["--env", "cluster"]);
        out.assert_exit(5);
        out.check(out.stderr.contains("not a Swarm manager"), "the refusal says the engine is not a manager");
        out.check(out.stderr.contains("docker swarm init"), "the refusal says what to do");
    }
}

#[test]
fn one_engine_refuses_more_than_one_replica_and_names_the_swarm_way() {
    let Some(run) = TestRun::start("replicas") else { return };
    let file = run.compose(&format!(
        "services:\n  web:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"{IDLE}\"]\n    deploy:\n      replicas: 3\n"
    ));
    let out = run.deploy(&file, &[]);
    out.assert_exit(3);
    out.check(out.stderr.contains("deploy.replicas is 3"), "the error names the key and value");
    out.check(out.stderr.contains("kind: swarm"), "the error names the way to get replicas");
    let containers = docker_lines(&["ps", "-aq", "--filter", &format!("label={}", run.target_label())]);
    assert!(containers.is_empty(), "nothing was created: {containers:?}");
}

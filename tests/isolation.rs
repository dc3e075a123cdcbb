//! Team isolation under attack: two teams on one engine, a throwaway
//! slapd, the real binary. alice owns the application `<run>-tlo`, bob
//! owns `<run>-shop` (and the compose files under `files/shop`). Each test
//! first shows the legitimate request works, then that the attack is
//! refused with a clear message and exit 4 (or 3), and that nothing on the
//! engine changed: the victim's containers, networks and volumes are the
//! same objects, in the same state, before and after.

mod common;
#[path = "common/slapd.rs"]
mod slapd;

use common::{docker, docker_lines, CliOutput, TestRun, FIXTURE_IMAGE, TEST_RUN_LABEL};
use slapd::{Slapd, USER_PASSWORD};

/// Two teams in one run: their applications, targets and the directory.
struct Teams {
    run: TestRun,
    _slapd: Slapd,
    tlo: String,
    shop: String,
}

impl Teams {
    /// alice may do anything to TLO's descriptors (and, as the platform
    /// admin, everything: `admin`, approvals, prod); bob only Shop's, in
    /// `default`. `extra` is appended to the configuration (policy rules).
    fn start(scenario: &str, extra: &str) -> Option<Teams> {
        let run = TestRun::start(scenario)?;
        let slapd = Slapd::start()?;
        let tlo = format!("{}-tlo", run.application);
        let shop = format!("{}-shop", run.application);
        let files = run.dir().join("files");
        std::fs::create_dir_all(files.join("shop")).unwrap();
        std::fs::create_dir_all(files.join("tlo")).unwrap();
        let files = std::fs::canonicalize(files).unwrap();
        run.add_config(&format!(
            "descriptors: descriptors\n{ldap}environments:\n  prod: {{}}\naccess:\n  rules:\n    \
             - users: [alice]\n      actions: [\"*\"]\n      descriptors: [\"**\"]\n    \
             - users: [bob]\n      actions: [deploy, plan, status, down, rollback, history]\n      \
             descriptors: [\"{shop}/**\", \"{files}/shop/**\"]\n      environments: [default]\n{extra}",
            ldap = slapd.config_section(),
            files = files.display(),
        ));
        Some(Teams { run, _slapd: slapd, tlo, shop })
    }

    /// Writes version `version` of `application/rel` in the descriptor folder.
    fn descriptor(&self, application: &str, version: &str, body: &str) {
        self.run.write(&format!("descriptors/{application}/rel/{version}.yml"), body);
    }

    /// Runs dockmaster as `user`, logged in with the directory password.
    fn as_user(&self, user: &str, args: &[&str]) -> CliOutput {
        let mut all = vec!["--user", user];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--timeout", common::DEPLOY_TIMEOUT, "--stability-window", "1s"]);
        self.run.dockmaster_with_env(all, &[("DOCKMASTER_PASSWORD", USER_PASSWORD)])
    }

    /// Runs a read-only command (no deploy flags) as `user`.
    fn read_as(&self, user: &str, args: &[&str]) -> CliOutput {
        let mut all = vec!["--user", user];
        all.extend_from_slice(args);
        self.run.dockmaster_with_env(all, &[("DOCKMASTER_PASSWORD", USER_PASSWORD)])
    }

    /// The target dockmaster derives for `application/rel` in `default`.
    fn target(&self, application: &str) -> String {
        format!("{application}--rel")
    }
}

/// One idle service.
fn idle(extra: &str) -> String {
    format!("services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n{extra}")
}

/// Every container, network and volume of `application/rel` (by owner
/// label), with its ID and state: equal before and after means untouched.
fn state_of(application: &str) -> Vec<String> {
    let label = format!("label=dockmaster.scope={application}/rel");
    let mut all = docker_lines(&["ps", "-a", "--filter", &label, "--format", "{{.ID}} {{.Names}} {{.State}}"]);
    all.extend(docker_lines(&["network", "ls", "--filter", &label, "--format", "{{.ID}} {{.Name}}"]));
    all.extend(docker_lines(&["volume", "ls", "--filter", &label, "--format", "{{.Name}}"]));
    all.sort();
    all
}

/// Everything of the test run on the engine (by its label).
fn everything(run: &TestRun) -> Vec<String> {
    let label = format!("label={}", run.label());
    let mut all = docker_lines(&["ps", "-a", "--filter", &label, "--format", "{{.ID}} {{.Names}} {{.State}}"]);
    all.extend(docker_lines(&["network", "ls", "--filter", &label, "--format", "{{.ID}} {{.Name}}"]));
    all.extend(docker_lines(&["volume", "ls", "--filter", &label, "--format", "{{.Name}}"]));
    all.sort();
    all
}

#[test]
fn a_team_cannot_move_its_request_onto_another_teams_target() {
    let Some(t) = Teams::start("iso-target", "policy:\n  approval: {environments: []}\n") else { return };
    let (tlo, shop) = (t.tlo.clone(), t.shop.clone());
    let tlo_target = t.target(&tlo);
    t.descriptor(&tlo, "1", &idle(""));
    t.descriptor(&shop, "1", &idle(""));

    // The legitimate requests: each team deploys its own.
    let own = t.as_user("alice", &["deploy", &format!("{tlo}/rel/1"), "--output", "json"]);
    own.assert_exit(0);
    own.check(own.json().str("target") == tlo_target, "TLO deploys to its own target");
    let own = t.as_user("bob", &["deploy", &format!("{shop}/rel/1"), "--output", "json"]);
    own.assert_exit(0);
    own.check(own.json().str("target") == t.target(&shop), "Shop deploys to its own target");
    let before = state_of(&tlo);
    assert!(before.iter().any(|l| l.contains("running")), "TLO runs: {before:?}");

    // -p onto TLO's target.
    let down = t.read_as("bob", &["down", &format!("{shop}/rel/1"), "-p", &tlo_target]);
    down.assert_exit(4);
    down.check(down.stderr.contains("deploys only to its own target"), "says a named descriptor keeps its target");
    assert_eq!(state_of(&tlo), before, "TLO's objects are untouched after `down -p`");

    // `name:` naming TLO's project: it does not choose the target.
    t.descriptor(&shop, "2", &format!("name: {tlo_target}\n{}", idle("    environment: {V: \"2\"}\n")));
    let renamed = t.as_user("bob", &["deploy", &format!("{shop}/rel/2"), "--output", "json"]);
    renamed.assert_exit(0);
    renamed.check(renamed.json().str("target") == t.target(&shop), "name: does not move the deploy");
    assert_eq!(state_of(&tlo), before, "TLO's objects are untouched after a `name:` squat");

    // container_name taking TLO's container.
    let squat = format!("    container_name: {tlo_target}-app-1\n");
    t.descriptor(&shop, "3", &idle(&squat));
    let out = t.as_user("bob", &["deploy", &format!("{shop}/rel/3")]);
    out.assert_exit(4);
    out.check(out.stderr.contains("container_name") && out.stderr.contains("namespace"), "names the rule");
    assert_eq!(state_of(&tlo), before, "TLO's objects are untouched after a container_name squat");

    // Joining TLO's container's namespaces.
    for key in ["network_mode", "pid", "ipc"] {
        t.descriptor(&shop, "4", &idle(&format!("    {key}: \"container:{tlo_target}-app-1\"\n")));
        let out = t.as_user("bob", &["deploy", &format!("{shop}/rel/4")]);
        out.assert_exit(4);
        out.check(out.stderr.contains(key), format!("the {key} join is named"));
    }
    assert_eq!(state_of(&tlo), before, "TLO's objects are untouched after namespace joins");

    // A compose file of bob's whose name: is TLO's target: ownership refuses it.
    let file = t.run.write("files/shop/compose.yaml", &format!("name: {tlo_target}\n{}", idle("")));
    let out = t.as_user("bob", &["deploy", &file]);
    out.assert_exit(4);
    out.check(
        out.stderr.contains("belongs to") && out.stderr.contains(&format!("{tlo}/rel")),
        "the refusal names the owner",
    );
    assert_eq!(state_of(&tlo), before, "TLO's objects are untouched after a file squat");

    // A path that walks out of bob's folder into TLO's.
    t.run.write("files/tlo/compose.yaml", &idle(""));
    let sneaky = format!("{}/../tlo/compose.yaml", t.run.dir().join("files/shop").display());
    let out = t.read_as("bob", &["plan", &sneaky]);
    out.assert_exit(4);
    out.check(out.stderr.contains("no access rule allows"), "the canonical path is what access rules see");
    assert_eq!(state_of(&tlo), before, "nothing changed");
}

#[test]
fn a_release_or_environment_name_never_reaches_another_environments_target() {
    let Some(t) = Teams::start("iso-env", "policy:\n  approval: {environments: []}\n") else { return };
    let shop = t.shop.clone();
    t.descriptor(&shop, "1", &idle(""));
    t.run.write(&format!("descriptors/{shop}/rel prod/1.yml"), &idle(""));

    // The platform admin deploys Shop's release to prod.
    let prod = t.as_user("alice", &["deploy", &format!("{shop}/rel/1"), "--env", "prod", "--output", "json"]);
    prod.assert_exit(0);
    let prod_target = prod.json().str("target").to_string();
    let label = format!("label=dockmaster.target={prod_target}");
    let before = docker_lines(&["ps", "-a", "--filter", &label, "--format", "{{.ID}} {{.State}}"]);
    assert_eq!(before.len(), 1, "{before:?}");

    // bob may not deploy to prod…
    let out = t.as_user("bob", &["deploy", &format!("{shop}/rel/1"), "--env", "prod"]);
    out.assert_exit(4);
    // …and a release called `rel prod` in default is another target.
    let out = t.as_user("bob", &["deploy", &format!("{shop}/rel prod/1"), "--output", "json"]);
    out.assert_exit(0);
    let target = out.json().str("target").to_string();
    out.check(target != prod_target, format!("`rel prod` in default ({target}) is not prod's target"));
    let after = docker_lines(&["ps", "-a", "--filter", &label, "--format", "{{.ID}} {{.State}}"]);
    assert_eq!(after, before, "prod's container is the same, in the same state");
}

#[test]
fn version_patterns_allow_and_deny_what_actually_runs() {
    let deny =
        "    - effect: deny\n      users: [bob]\n      actions: [\"*\"]\n      descriptors: [\"SHOP/rel/666\"]\n";
    let Some(t) = Teams::start("iso-version", "") else { return };
    let shop = t.shop.clone();
    // The deny rule goes in the access rules: add it there.
    let config = std::fs::read_to_string(&t.run.config).unwrap();
    let config = config.replace("access:\n  rules:\n", &format!("access:\n  rules:\n{}", deny.replace("SHOP", &shop)));
    std::fs::write(&t.run.config, config).unwrap();
    t.descriptor(&shop, "1", &idle(""));
    t.descriptor(&shop, "666", &idle(""));

    t.read_as("bob", &["plan", &format!("{shop}/rel/1")]).assert_exit(0);
    let named = t.read_as("bob", &["plan", &format!("{shop}/rel/666")]);
    named.assert_exit(4);
    named.check(named.stderr.contains("denies"), "the version-naming deny rule decides");
    let latest = t.read_as("bob", &["plan", &format!("{shop}/rel")]);
    latest.assert_exit(4);
    latest.check(latest.stderr.contains("666"), "the latest version is the denied one, and the message says so");
    assert!(everything(&t.run).is_empty(), "plans changed nothing");
}

#[test]
fn host_paths_are_checked_after_resolving_links_and_files_stay_in_the_application_folder() {
    let Some(t) = Teams::start("iso-paths", "") else { return };
    let allowed = t.run.dir().join("allowed");
    std::fs::create_dir_all(allowed.join("data")).unwrap();
    std::os::unix::fs::symlink("/", allowed.join("root")).unwrap();
    let allowed = std::fs::canonicalize(&allowed).unwrap();
    let config = std::fs::read_to_string(&t.run.config).unwrap();
    std::fs::write(
        &t.run.config,
        format!(
            "{config}policy:\n  approval: {{environments: []}}\n  rules:\n    - name: team-folders\n      \
             bind_roots: [\"{}\"]\n",
            allowed.display()
        ),
    )
    .unwrap();
    let (tlo, shop) = (t.tlo.clone(), t.shop.clone());
    t.run.write(&format!("descriptors/{tlo}/rel/.env"), "TLO_DB_PASSWORD=tlo-secret-value-42\n");
    t.descriptor(&tlo, "1", &idle("    env_file: .env\n"));

    // Legitimate: a bind from inside the allowed folder; an env_file in its own folder.
    t.run.write(&format!("descriptors/{shop}/rel/shop.env"), "MODE=shop\n");
    let ok = format!("    env_file: shop.env\n    volumes: [\"{}/data:/data\"]\n", allowed.display());
    t.descriptor(&shop, "1", &idle(&ok));
    t.read_as("bob", &["plan", &format!("{shop}/rel/1")]).assert_exit(0);

    let attacks = [
        ("2", format!("    volumes: [\"{}/root/etc:/host-etc\"]\n", allowed.display()), 4, "outside the allowed"),
        ("3", "    secrets: [sock]\nsecrets:\n  sock: {file: /var/run/docker.sock}\n".to_string(), 4, "docker.sock"),
        (
            "4",
            "    volumes: [\"hostroot:/host\"]\nvolumes:\n  hostroot:\n    driver_opts: {type: none, o: bind, device: /}\n"
                .to_string(),
            4,
            "device",
        ),
        ("5", format!("    env_file: ../../{tlo}/rel/.env\n"), 3, "outside"),
        ("6", "    env_file: /etc/hostname\n".to_string(), 3, "outside"),
        ("7", "    configs: [shadow]\nconfigs:\n  shadow: {file: /etc/shadow}\n".to_string(), 4, "/etc/shadow"),
        ("8", format!("    extends: {{file: ../../{tlo}/rel/1.yml, service: app}}\n"), 3, "outside"),
        ("9", format!("include: [../../{tlo}/rel/1.yml]\n"), 3, "outside"),
        ("10", "    build: {context: /etc}\n".to_string(), 3, "outside"),
    ];
    for (version, extra, code, says) in attacks {
        t.descriptor(&shop, version, &idle(&extra));
        let out = t.as_user("bob", &["deploy", &format!("{shop}/rel/{version}")]);
        out.assert_exit(code);
        out.check(out.stderr.contains(says), format!("version {version}'s refusal says `{says}`"));
        out.check(!out.stderr.contains("tlo-secret-value-42"), "no value of another team's file is quoted");
        assert!(everything(&t.run).is_empty(), "version {version}: nothing was created: {:?}", everything(&t.run));
    }
}

#[test]
fn rundeck_job_options_choose_neither_the_target_nor_the_configuration() {
    let Some(t) = Teams::start("iso-rundeck", "policy:\n  approval: {environments: []}\n") else { return };
    let (tlo, shop) = (t.tlo.clone(), t.shop.clone());
    t.descriptor(&tlo, "1", &idle(""));
    t.descriptor(&shop, "1", &idle(""));
    t.as_user("alice", &["deploy", &format!("{tlo}/rel/1")]).assert_exit(0);
    let before = state_of(&tlo);
    // A configuration without access rules, as an attacker would point at.
    let open = t.run.write("open.yaml", &format!("descriptors: {}\n", t.run.dir().join("descriptors").display()));
    let tlo_target = t.target(&tlo);
    let step = |descriptor: &str| {
        t.run.dockmaster_with_env(
            ["rundeck"],
            &[
                ("RD_JOB_USERNAME", "bob"),
                ("RD_JOB_EXECID", "7"),
                ("RD_CONFIG_DESCRIPTOR", descriptor),
                ("RD_CONFIG_TIMEOUT", "60s"),
                ("RD_OPTION_PROJECT", tlo_target.as_str()),
                ("RD_OPTION_CONFIG", open.as_str()),
            ],
        )
    };
    let own = step(&format!("{shop}/rel/1"));
    own.assert_exit(0);
    assert_eq!(state_of(&tlo), before, "the `project` job option did not move bob's deploy onto TLO");
    let theirs = step(&format!("{tlo}/rel/1"));
    theirs.assert_exit(4);
    theirs.check(theirs.stderr.contains("no access rule allows"), "the `config` job option did not lift the rules");
    assert_eq!(state_of(&tlo), before, "TLO's objects are untouched");
}

#[test]
fn objects_dockmaster_did_not_create_are_taken_over_only_by_an_admin_with_adopt() {
    let Some(t) = Teams::start("iso-adopt", "policy:\n  approval: {environments: []}\n") else { return };
    let shop = t.shop.clone();
    t.descriptor(&shop, "1", &idle(""));
    let name = format!("{}-app-1", t.target(&shop));
    let made = docker(&[
        "create",
        "--name",
        &name,
        "--label",
        &format!("{TEST_RUN_LABEL}={}", t.run.id),
        FIXTURE_IMAGE,
        "sleep",
        "1000",
    ]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let id = common::inspect(&name, "{{.Id}}");

    let out = t.as_user("bob", &["deploy", &format!("{shop}/rel/1")]);
    out.assert_exit(4);
    out.check(out.stderr.contains("not made by dockmaster") && out.stderr.contains("--adopt"), "says how to adopt");
    assert_eq!(common::inspect(&name, "{{.Id}}"), id, "the hand-made container is untouched");
    let out = t.as_user("bob", &["deploy", &format!("{shop}/rel/1"), "--adopt"]);
    out.assert_exit(4);
    out.check(out.stderr.contains("admin"), "adopting needs the admin right");
    assert_eq!(common::inspect(&name, "{{.Id}}"), id, "still untouched");

    let adopted = t.as_user("alice", &["deploy", &format!("{shop}/rel/1"), "--adopt"]);
    adopted.assert_exit(0);
    adopted.check(adopted.stderr.contains("adopting"), "the adoption is announced");
    let labels = common::container_labels(&name);
    assert_eq!(labels.get("dockmaster.scope").and_then(|v| v.as_str()), Some(format!("{shop}/rel").as_str()));
    let kept = docker_lines(&[
        "ps",
        "-a",
        "--filter",
        &format!("id={}", id.unwrap_or_default()),
        "--format",
        "{{.Names}} {{.State}}",
    ]);
    assert!(
        kept.len() == 1 && kept[0].contains("_dm_adopted_") && !kept[0].ends_with("running"),
        "the adopted container is kept, stopped, under another name: {kept:?}"
    );
    // From now on the target is bob's own: no --adopt needed.
    t.as_user("bob", &["deploy", &format!("{shop}/rel/1")]).assert_exit(0);
}

#[test]
fn an_image_bump_with_a_network_change_and_other_variables_need_an_approval() {
    let Some(t) = Teams::start("iso-approval", "") else { return };
    let shop = t.shop.clone();
    let bumped = format!("dockmaster-fixture/busybox:iso-{}", std::process::id());
    docker(&["tag", FIXTURE_IMAGE, &bumped]);
    t.run.remove_image_on_drop(&bumped);
    let body = |image: &str, more: &str, top: &str| {
        format!("services:\n  app:\n    image: {image}\n    command: [\"sleep\", \"1000\"]\n{more}{top}")
    };
    t.descriptor(&shop, "1", &body(FIXTURE_IMAGE, "", ""));
    t.descriptor(&shop, "2", &body(&bumped, "", "networks:\n  extra: {}\n"));
    t.descriptor(&shop, "3", &body(FIXTURE_IMAGE, "    labels: {tier: \"${MODE}\"}\n", ""));
    t.descriptor(&shop, "4", &body(&bumped, "", ""));
    // The admin deploys version 1; an image-only bump is self-service for
    // bob (shown on plan: it changes nothing).
    t.as_user("alice", &["deploy", &format!("{shop}/rel/1")]).assert_exit(0);
    let before = state_of(&shop);
    let bump = t.read_as("bob", &["plan", &format!("{shop}/rel/4"), "--output", "json"]);
    bump.assert_exit(0);
    bump.check(bump.json().value["classification"]["class"] == "image-only", "an image bump alone is image-only");

    let mixed = t.as_user("bob", &["deploy", &format!("{shop}/rel/2")]);
    mixed.assert_exit(4);
    mixed.check(mixed.stderr.contains("network `extra`: new"), "the top-level network makes it structural");
    assert_eq!(state_of(&shop), before, "nothing changed");

    // An approval covers the interpolated descriptor: MODE=a is approved,
    // MODE=b is another descriptor.
    let approve = |mode: &str| {
        t.run.dockmaster_with_env(
            ["--user", "alice", "approve", &format!("{shop}/rel"), "3"],
            &[("DOCKMASTER_PASSWORD", USER_PASSWORD), ("MODE", mode)],
        )
    };
    let deploy = |mode: &str| {
        t.run.dockmaster_with_env(
            ["--user", "bob", "deploy", &format!("{shop}/rel/3"), "--timeout", "60s"],
            &[("DOCKMASTER_PASSWORD", USER_PASSWORD), ("MODE", mode)],
        )
    };
    // Version 3 adds a label whose value comes from MODE: structural.
    approve("a").assert_exit(0);
    let other = deploy("b");
    other.assert_exit(4);
    other.check(other.stderr.contains("structural"), "other variables are not what was approved");
    assert_eq!(state_of(&shop), before, "nothing changed");
    let ok = deploy("a");
    ok.assert_exit(0);
}

#[test]
fn unconfined_security_options_and_zero_limits_are_refused_by_the_policy() {
    let policy =
        "policy:\n  approval: {environments: []}\n  rules:\n    - name: hardened\n      privileges: []\n      \
                  limits: {required: true}\n";
    let Some(t) = Teams::start("iso-policy", policy) else { return };
    let shop = t.shop.clone();
    t.descriptor(&shop, "1", &idle("    cpus: 0.5\n    mem_limit: 64m\n"));
    t.read_as("bob", &["plan", &format!("{shop}/rel/1")]).assert_exit(0);
    let attacks = [
        ("2", "    cpus: 0.5\n    mem_limit: 64m\n    security_opt: [seccomp=unconfined]\n", "seccomp"),
        ("3", "    cpus: 0.5\n    mem_limit: 64m\n    security_opt: [\"apparmor:unconfined\"]\n", "apparmor"),
        ("4", "    cpus: 0.5\n    mem_limit: 64m\n    security_opt: [label=disable]\n", "label"),
        ("5", "    cpus: 0\n    mem_limit: 64m\n", "cpus"),
        ("6", "    cpus: 0.5\n    mem_limit: 0\n", "mem"),
        ("7", "    cpus: 0.5\n    mem_limit: 64m\n    devices: [/dev/mem]\n", "devices"),
    ];
    for (version, extra, says) in attacks {
        t.descriptor(&shop, version, &idle(extra));
        let out = t.as_user("bob", &["deploy", &format!("{shop}/rel/{version}")]);
        out.assert_exit(4);
        out.check(out.stderr.contains(says) && out.stderr.contains("hardened"), format!("names `{says}` and the rule"));
        assert!(everything(&t.run).is_empty(), "version {version}: nothing was created");
    }
}

//! The Rundeck way in: the plugin package Rundeck's loader accepts, and the
//! real binary run as a Rundeck script step (an `RD_*` environment) against
//! the real engine.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{repo_root, TestRun, FIXTURE_IMAGE};

/// Builds the plugin zip with the documented command and returns its path.
fn build_plugin() -> std::path::PathBuf {
    let out = Command::new("bash").arg(repo_root().join("plugin/build.sh")).current_dir(repo_root()).output().unwrap();
    assert!(
        out.status.success(),
        "plugin/build.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
    repo_root().join(path)
}

#[test]
fn the_plugin_zip_has_the_layout_and_keys_rundecks_loader_requires() {
    let zip_path = build_plugin();
    let file_name = zip_path.file_name().unwrap().to_string_lossy().into_owned();
    // Rundeck's libext scanner only loads files named *-plugin.zip.
    assert!(file_name.starts_with("dockmaster-rundeck-") && file_name.ends_with("-plugin.zip"), "{file_name}");
    // One top folder named after the zip's basename (up to its last `.`).
    let base = file_name.rsplit_once('.').unwrap().0.to_string();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    assert!(names.iter().all(|n| n.starts_with(&format!("{base}/"))), "entries outside {base}/: {names:?}");

    let mut yaml = String::new();
    archive.by_name(&format!("{base}/plugin.yaml")).expect("plugin.yaml").read_to_string(&mut yaml).unwrap();
    let meta: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("plugin.yaml parses");
    for key in ["name", "version", "rundeckPluginVersion"] {
        assert!(meta.get(key).is_some(), "plugin.yaml lacks `{key}`");
    }
    assert!(!yaml.contains("@VERSION@") && !yaml.contains("@DATE@"), "placeholders left in plugin.yaml");
    assert_eq!(
        meta["version"].as_str(),
        base.strip_prefix("dockmaster-rundeck-").and_then(|b| b.strip_suffix("-plugin"))
    );
    let providers = meta["providers"].as_sequence().expect("providers is a list");
    let services: Vec<&str> = providers.iter().filter_map(|p| p["service"].as_str()).collect();
    assert_eq!(services, vec!["WorkflowStep", "WorkflowNodeStep"]);
    for p in providers {
        assert_eq!(p["plugin-type"].as_str(), Some("script"));
        let script = p["script-file"].as_str().expect("script-file");
        let entry = archive.by_name(&format!("{base}/contents/{script}")).expect("script-file exists in contents/");
        let mode = entry.unix_mode().expect("the zip records a mode");
        assert!(mode & 0o111 != 0, "script-file is not executable (mode {mode:o})");
        let config: Vec<&str> = p["config"].as_sequence().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
        for wanted in ["descriptor", "environment", "timeout", "rollback", "config"] {
            assert!(config.contains(&wanted), "provider {:?} lacks config property {wanted}", p["name"]);
        }
    }
    assert!(archive.by_name(&format!("{base}/resources/icon.png")).is_ok(), "no icon");
    // Secrets come through Rundeck's value conversions, never inline.
    for p in providers {
        let property = |name: &str| {
            p["config"].as_sequence().unwrap().iter().find(|c| c["name"].as_str() == Some(name)).cloned().unwrap()
        };
        let conversion =
            |name: &str| property(name)["renderingOptions"]["valueConversion"].as_str().map(str::to_string);
        assert_eq!(conversion("secret_key").as_deref(), Some("STORAGE_PATH_AUTOMATIC_READ"));
        assert_eq!(conversion("secret_option").as_deref(), Some("PRIVATE_DATA_CONTEXT"));
        assert_eq!(property("secret_key")["renderingOptions"]["selectionAccessor"].as_str(), Some("STORAGE_PATH"));
    }

    // The packaged binary is the real one and runs.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("dockmaster");
    let mut bytes = Vec::new();
    archive.by_name(&format!("{base}/contents/dockmaster")).unwrap().read_to_end(&mut bytes).unwrap();
    std::fs::write(&binary, bytes).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let version = Command::new(&binary).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("dockmaster "));
}

/// The environment Rundeck gives a workflow step of job "Deploy" run by alice.
fn rundeck_env(descriptor: &str) -> Vec<(&'static str, String)> {
    vec![
        ("RD_JOB_USERNAME", "alice".to_string()),
        ("RD_JOB_USER_NAME", "alice".to_string()),
        ("RD_JOB_ID", "5c1f0e3a".to_string()),
        ("RD_JOB_EXECID", "4711".to_string()),
        ("RD_JOB_NAME", "Deploy".to_string()),
        ("RD_JOB_GROUP", "ops".to_string()),
        ("RD_JOB_PROJECT", "shop".to_string()),
        ("RD_JOB_URL", "http://127.0.0.1:4440/project/shop/execution/show/4711".to_string()),
        ("RD_JOB_LOGLEVEL", "INFO".to_string()),
        ("RD_JOB_EXECUTIONTYPE", "user".to_string()),
        ("RD_CONFIG_DESCRIPTOR", descriptor.to_string()),
        ("RD_CONFIG_ENVIRONMENT", "default".to_string()),
        ("RD_CONFIG_TIMEOUT", "60s".to_string()),
        ("RD_CONFIG_ROLLBACK", "true".to_string()),
    ]
}

fn step(run: &TestRun, descriptor: &str, secret: &str) -> common::CliOutput {
    let env = rundeck_env(descriptor);
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // A secret from Key Storage reaches the step as a private option.
    pairs.push(("RD_OPTION_DB_PASSWORD", secret));
    run.dockmaster_with_env(["rundeck"], &pairs)
}

fn data(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RUNDECK:DATA:"))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect()
}

#[test]
fn a_healthy_deploy_exits_0_and_prints_the_data_lines_without_secrets() {
    let Some(run) = TestRun::start("rd-ok") else { return };
    let secret = "s3cr3t-Value-91";
    let file = run.compose(&format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n    environment:\n      DB_PASSWORD: {secret}\n"
    ));
    let out = step(&run, &file, secret);
    out.assert_exit(0);
    let d = data(&out.stdout);
    out.check(d.get("verdict").map(String::as_str) == Some("healthy"), "verdict=healthy data line");
    out.check(d.get("services_healthy").map(String::as_str) == Some("1"), "services_healthy=1");
    out.check(d.get("services_total").map(String::as_str) == Some("1"), "services_total=1");
    out.check(d.get("rolled_back").map(String::as_str) == Some("false"), "rolled_back=false");
    out.check(d.get("digest").is_some_and(|v| v.starts_with("sha256:")), "digest data line");
    out.check(out.stdout.contains("[dockmaster]"), "progress lines on stdout");
    out.check(!out.stdout.contains('\u{1b}') && !out.stderr.contains('\u{1b}'), "no terminal escape codes");
    out.check(!out.stdout.contains(secret) && !out.stderr.contains(secret), "the secret never appears");
}

#[test]
fn an_unhealthy_deploy_exits_1_and_names_the_failing_service_on_stdout() {
    let Some(run) = TestRun::start("rd-bad") else { return };
    let file = run.compose(&format!(
        "services:\n  ok:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n  broken:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"echo cannot-start; exit 4\"]\n    restart: always\n"
    ));
    let out = step(&run, &file, "unused-secret");
    out.assert_exit(1);
    out.check(out.stdout.contains("broken is crashed"), "the failing service is named on stdout");
    out.check(out.stdout.contains("cannot-start"), "its log lines are on stdout");
    let d = data(&out.stdout);
    out.check(d.get("verdict").map(String::as_str) == Some("failed"), "verdict=failed");
    out.check(d.get("services_failing").map(String::as_str) == Some("broken"), "services_failing=broken");
    out.check(!out.stderr.trim().is_empty(), "stderr says it failed (Rundeck logs it at ERROR)");
}

#[test]
fn a_step_outside_a_rundeck_execution_is_refused() {
    let Some(run) = TestRun::start("rd-nouser") else { return };
    let file = run.compose(&format!("services:\n  app:\n    image: {FIXTURE_IMAGE}\n"));
    let out = run.dockmaster_with_env(["rundeck"], &[("RD_CONFIG_DESCRIPTOR", file.as_str())]);
    out.assert_exit(4);
    out.check(out.stderr.contains("RD_JOB_USERNAME"), "the message names the missing variable");
    out.check(common::containers_with_label(&run.label()).is_empty(), "nothing was deployed");
    out.check(out.stdout.contains("RUNDECK:DATA:verdict=denied\n"), "later steps can read the refusal");
    let records = history(&run);
    assert_eq!(records.len(), 1, "the refusal is audited: {records:?}");
    assert_eq!(records[0]["verdict"], "denied");
    assert_eq!(records[0]["origin"], "rundeck");
}

/// The audit trail's records (newest first) as `history --output json`
/// prints them.
fn history(run: &TestRun) -> Vec<serde_json::Value> {
    let out = run.dockmaster(["history", "--output", "json"]);
    out.assert_exit(0);
    serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap().as_array().cloned().unwrap()
}

#[test]
fn secrets_from_key_storage_and_private_options_reach_the_descriptor_and_nothing_else() {
    let Some(run) = TestRun::start("rd-secret") else { return };
    // The value reaches the container through interpolation, under a key
    // that does not look secret, and a failing service prints it.
    let file = run.compose(&format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n    environment:\n      \
         CONNECTION: \"mysql://app:${{DB_PASSWORD}}@db/app\"\n  \
         chatty:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"echo connecting with $$CONNECTION; exit 3\"]\n    \
         environment:\n      CONNECTION: \"mysql://app:${{DB_PASSWORD}}@db/app\"\n"
    ));
    for (property, value, secret) in [
        // STORAGE_PATH_AUTOMATIC_READ: Rundeck replaced the path with the key's content.
        ("RD_CONFIG_SECRET_KEY", "Key-Storage-Secret-7731", "Key-Storage-Secret-7731"),
        // PRIVATE_DATA_CONTEXT: `option.db_password` became the secure option's value.
        ("RD_CONFIG_SECRET_OPTION", "Private-Option-Secret-4242", "Private-Option-Secret-4242"),
    ] {
        let env = rundeck_env(&file);
        let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.push(("RD_CONFIG_SECRET_VARIABLE", "DB_PASSWORD"));
        pairs.push((property, value));
        let out = run.dockmaster_with_env(["rundeck"], &pairs);
        out.assert_exit(1);
        out.check(out.stdout.contains("chatty"), "the failing service is named");
        out.check(out.stdout.contains("connecting with mysql://app:********@db/app"), "its log tail is masked");
        out.check(!out.stdout.contains(secret) && !out.stderr.contains(secret), "the secret never appears");
        // The previous containers came back (or none existed): look at what ran.
        let _ = common::docker(&["rm", "-f", &run.container("chatty")]);
    }
    // The value did reach the container: deploy the healthy service alone.
    let healthy = run.compose(&format!(
        "services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n    environment:\n      \
         CONNECTION: \"mysql://app:${{DB_PASSWORD}}@db/app\"\n"
    ));
    let env = rundeck_env(&healthy);
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("RD_CONFIG_SECRET_VARIABLE", "DB_PASSWORD"));
    pairs.push(("RD_CONFIG_SECRET_OPTION", "Private-Option-Secret-4242"));
    let out = run.dockmaster_with_env(["rundeck"], &pairs);
    out.assert_exit(0);
    out.check(!out.stdout.contains("Private-Option-Secret-4242"), "not in the log");
    let env = common::inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default();
    assert!(env.contains("CONNECTION=mysql://app:Private-Option-Secret-4242@db/app"), "{env}");

    // A conversion Rundeck could not do leaves the reference: refused, clearly.
    let env = rundeck_env(&healthy);
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("RD_CONFIG_SECRET_VARIABLE", "DB_PASSWORD"));
    pairs.push(("RD_CONFIG_SECRET_OPTION", "option.db_password"));
    let out = run.dockmaster_with_env(["rundeck"], &pairs);
    out.assert_exit(2);
    out.check(out.stderr.contains("neither secret_key nor secret_option gave a value"), "says what is missing");

    // The audit trail names the execution and never holds the secrets.
    let records = history(&run);
    let last = records.iter().find(|r| r["verdict"] == "healthy").expect("the healthy deploy is recorded");
    assert_eq!(last["origin"], "rundeck");
    assert_eq!(last["user"], "alice");
    assert_eq!(last["origin_detail"]["execution"], "4711");
    assert_eq!(last["origin_detail"]["url"], "http://127.0.0.1:4440/project/shop/execution/show/4711");
    assert_eq!(last["origin_detail"]["project"], "shop");
    assert_eq!(last["origin_detail"]["job"], "Deploy");
    let mut raw = Vec::new();
    for name in ["audit.db", "audit.db-wal"] {
        raw.extend(std::fs::read(run.dir().join("state").join(name)).unwrap_or_default());
    }
    let raw = String::from_utf8_lossy(&raw);
    assert!(!raw.contains("Private-Option-Secret-4242") && !raw.contains("Key-Storage-Secret-7731"));
    assert!(raw.contains("mysql://app:********@db/app"), "the masked descriptor is recorded");
}

#[test]
fn a_configuration_override_behaves_the_same_with_the_plugins_config_setting_as_with_dash_dash_config() {
    let Some(run) = TestRun::start("rd-override") else { return };
    let file =
        run.compose(&format!("services:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n"));
    // A directory section whose required keys live in the file: an
    // override of one of its keys is only valid over the file.
    let config = run.write(
        "step-config.yaml",
        &format!(
            "labels:\n  dockmaster.test-run: rd-override\nstate_dir: {}\nldap:\n  providerUrl: ldaps://127.0.0.1:1\n  bindDn: cn=reader,dc=example,dc=org\n  bindPasswordEnv: DM_TEST_BIND_PASSWORD\n  userBaseDn: ou=people,dc=example,dc=org\n",
            common::path_arg(&run.private_state_dir())
        ),
    );
    let env = rundeck_env(&file);
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("DOCKMASTER__ldap__userRdnAttribute", "uid"));
    pairs.push(("DM_TEST_BIND_PASSWORD", "not-used"));
    let mut with_setting = pairs.clone();
    with_setting.push(("RD_CONFIG_CONFIG", config.as_str()));
    let from_setting = run.dockmaster_with_env(["rundeck"], &with_setting);
    let from_flag = run.dockmaster_with_env(["--config", config.as_str(), "rundeck"], &pairs);
    for out in [&from_setting, &from_flag] {
        out.check(!out.stderr.contains("missing field"), "the override is applied over the step's configuration file");
        out.check(out.code != Some(2), "the configuration is valid: the step gets as far as the directory");
        out.check(data(&out.stdout).contains_key("exit_code"), "the step prints its RUNDECK:DATA lines");
    }
    assert_eq!(from_setting.code, from_flag.code, "the plugin's config setting and --config behave the same");
}

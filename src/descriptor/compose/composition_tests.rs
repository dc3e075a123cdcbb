//! Scenarios for descriptors made of several files: override files,
//! `include`, `extends` across files, the `!reset`/`!override` tags,
//! profiles and `--env-file`.

use std::path::Path;

use super::*;
use crate::descriptor::DescriptorRef;

/// Writes `files` (relative path, text) under a new folder.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp folder");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
        std::fs::write(path, text).expect("a file");
    }
    dir
}

fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/op".into()),
        "TAG" => Some("from-env".into()),
        _ => None,
    }
}

fn load_in(dir: &Path, main: &str, options: &LoadOptions) -> Result<Stack> {
    let path = dir.join(main);
    let descriptor = Descriptor::read(DescriptorRef::File(path.clone()), None, &path)?;
    load_with_options(&descriptor, "proj", options, &env)
}

#[test]
fn override_files_merge_in_order_with_compose_rules() {
    let dir = folder(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: web:1\n    ports: ['8080:80']\n    environment: [A=1, B=2]\n    command: [serve, --all]\n    logging: {driver: json-file, options: {max-size: 1m}}\n",
        ),
        (
            "site/ports.yaml",
            "services:\n  web:\n    ports: ['9090:80']\n    environment: {B: three}\n    command: [serve]\n    volumes: ['./data:/data']\n",
        ),
        ("site/logs.yaml", "services:\n  web:\n    logging: {driver: syslog}\n    environment: {A: !reset null}\n"),
    ]);
    let options =
        LoadOptions { overrides: vec!["site/ports.yaml".into(), "site/logs.yaml".into()], ..Default::default() };
    let stack = load_in(dir.path(), "compose.yaml", &options).unwrap();
    let web = &stack.services["web"];
    let published: Vec<Option<u16>> = web.ports.iter().map(|p| p.published).collect();
    assert_eq!(published, vec![Some(8080), Some(9090)], "ports append");
    assert_eq!(web.environment.get("A"), None, "!reset removes a variable");
    assert_eq!(web.environment["B"].as_deref(), Some("three"));
    assert_eq!(web.command.as_deref(), Some(&["serve".to_string()][..]), "command is replaced");
    let logging = web.logging.as_ref().unwrap();
    assert_eq!(logging.driver.as_deref(), Some("syslog"));
    assert!(logging.options.is_empty(), "a new driver drops the old driver's options");
    let data = dir.path().canonicalize().unwrap().join("data");
    let source = web.volumes[0].source.clone().unwrap();
    assert_eq!(Path::new(&source).file_name(), data.file_name(), "override paths start at the project folder");
    assert!(!source.contains("/site/"), "{source}");

    let missing = LoadOptions { overrides: vec!["nope.yaml".into()], ..Default::default() };
    let err = load_in(dir.path(), "compose.yaml", &missing).unwrap_err().to_string();
    assert!(err.contains("cannot read override file") && err.contains("nope.yaml"), "{err}");
}

#[test]
fn include_pulls_in_a_project_with_its_own_folder_and_variables() {
    let dir = folder(&[
        (
            "compose.yaml",
            "include:\n  - path: lib/compose.yaml\n    env_file: lib/lib.env\nservices:\n  web:\n    image: web\n    depends_on: [db]\n",
        ),
        (
            "lib/compose.yaml",
            "services:\n  db:\n    image: db:${DB_TAG}\n    volumes: ['./init:/docker-entrypoint-initdb.d:ro']\n    secrets: [pw]\nsecrets:\n  pw:\n    environment: DB_PASSWORD\n",
        ),
        ("lib/lib.env", "DB_TAG=16\nDB_PASSWORD=hunter2\n"),
    ]);
    let stack = load_in(dir.path(), "compose.yaml", &LoadOptions::default()).unwrap();
    let db = &stack.services["db"];
    assert_eq!(db.image, "db:16", "the included file's own variables");
    assert!(db.volumes[0].source.as_deref().unwrap().ends_with("/lib/init"), "{:?}", db.volumes[0]);
    assert_eq!(db.secrets[0].source.inline_text(), Some("hunter2"));

    let dir = folder(&[
        ("compose.yaml", "include: [other.yaml]\nservices:\n  web:\n    image: a\n"),
        ("other.yaml", "include: [compose.yaml]\nservices:\n  db:\n    image: b\n"),
    ]);
    let err = load_in(dir.path(), "compose.yaml", &LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("other.yaml:1: key \"include[0]\": include cycle"), "{err}");
    assert!(err.contains("compose.yaml → ") && err.contains("other.yaml → "), "the cycle is named: {err}");

    let dir = folder(&[
        ("compose.yaml", "include: [lib/other.yaml]\nservices:\n  web:\n    image: a\n"),
        ("lib/other.yaml", "services:\n  db:\n    image: b\n    portz: [80]\n"),
    ]);
    let err = load_in(dir.path(), "compose.yaml", &LoadOptions::default()).unwrap_err().to_string();
    assert!(
        err.contains("lib/other.yaml:4: service \"db\": unknown key \"portz\""),
        "the included file is named: {err}"
    );

    let dir = folder(&[
        ("compose.yaml", "include: [other.yaml]\nservices:\n  web:\n    image: a\n"),
        ("other.yaml", "services:\n  web:\n    image: b\n"),
    ]);
    let err = load_in(dir.path(), "compose.yaml", &LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("service \"web\" is defined both here and in the included file"), "{err}");
}

#[test]
fn extends_reads_another_file_relative_to_itself() {
    let dir = folder(&[
        (
            "app/compose.yaml",
            "services:\n  web:\n    extends: {file: ../common/base.yaml, service: base}\n    environment: [MODE=prod]\n",
        ),
        (
            "common/base.yaml",
            "services:\n  base:\n    image: base:${TAG}\n    env_file: base.env\n    environment: [MODE=dev, LEVEL=1]\n    command: !override [run]\n",
        ),
        ("common/base.env", "FROM_FILE=yes\n"),
    ]);
    let stack = load_in(dir.path(), "app/compose.yaml", &LoadOptions::default()).unwrap();
    let web = &stack.services["web"];
    assert_eq!(web.image, "base:from-env");
    assert_eq!(web.environment["MODE"].as_deref(), Some("prod"));
    assert_eq!(web.environment["LEVEL"].as_deref(), Some("1"));
    assert_eq!(web.environment["FROM_FILE"].as_deref(), Some("yes"), "env_file relative to the base's file");
    assert_eq!(web.command.as_deref(), Some(&["run".to_string()][..]));
}

#[test]
fn v1_extends_keeps_the_base_network_mode_unless_the_service_says_otherwise() {
    let dir = folder(&[
        ("common.yml", "web:\n  image: busybox\n  net: host\n"),
        (
            "compose.yml",
            "inherits:\n  extends: {file: common.yml, service: web}\nown:\n  extends: {file: common.yml, service: web}\n  net: bridge\nplain:\n  image: busybox\n  links: [own]\n",
        ),
    ]);
    let stack = load_in(dir.path(), "compose.yml", &LoadOptions::default()).unwrap();
    assert_eq!(stack.format, Format::V1);
    assert_eq!(stack.services["inherits"].network_mode.as_deref(), Some("host"));
    assert_eq!(stack.services["own"].network_mode.as_deref(), Some("bridge"));
    assert_eq!(stack.services["plain"].network_mode.as_deref(), Some("bridge"), "v1 default: the default bridge");
}

#[test]
fn profiles_come_from_options_or_compose_profiles() {
    let dir = folder(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: a\n  debug:\n    image: b\n    profiles: [debug]\n  all:\n    image: c\n    profiles: [debug, ci]\n",
        ),
        (".env", "COMPOSE_PROFILES=ci\n"),
    ]);
    let names = |stack: Stack| stack.services.into_keys().collect::<Vec<_>>();
    let stack = load_in(dir.path(), "compose.yaml", &LoadOptions::default()).unwrap();
    assert_eq!(names(stack), ["all", "web"], "COMPOSE_PROFILES from .env");
    let options = LoadOptions { profiles: vec!["debug".into()], ..Default::default() };
    let stack = load_in(dir.path(), "compose.yaml", &options).unwrap();
    assert_eq!(stack.services["debug"].profiles, vec!["debug"]);
    assert_eq!(names(stack), ["all", "debug", "web"], "--profile wins over COMPOSE_PROFILES");
}

#[test]
fn an_env_file_replaces_dot_env() {
    let dir = folder(&[
        ("compose.yaml", "services:\n  web:\n    image: web:${VERSION}\n"),
        (".env", "VERSION=dotenv\n"),
        ("prod.env", "VERSION=prod\n"),
    ]);
    let options = LoadOptions { env_file: Some(dir.path().join("prod.env")), ..Default::default() };
    assert_eq!(load_in(dir.path(), "compose.yaml", &options).unwrap().services["web"].image, "web:prod");
    let missing = LoadOptions { env_file: Some(dir.path().join("missing.env")), ..Default::default() };
    let err = load_in(dir.path(), "compose.yaml", &missing).unwrap_err().to_string();
    assert!(err.contains("cannot read") && err.contains("missing.env"), "{err}");
}

#[test]
fn the_digest_covers_every_file_the_load_read() {
    let dir = folder(&[
        ("compose.yaml", "include: [parts/db.yaml]\nservices:\n  web:\n    image: web:1\n    env_file: web.env\n"),
        ("parts/db.yaml", "services:\n  db:\n    image: db:1\n    extends: {file: base.yaml, service: base}\n"),
        ("parts/base.yaml", "services:\n  base:\n    environment: [A=1]\n"),
        ("web.env", "GREETING=hello\n"),
        ("solo.yaml", "services:\n  one:\n    image: one:1\n"),
    ]);
    let digest = |dir: &Path| {
        let path = dir.join("compose.yaml");
        let descriptor = Descriptor::read(DescriptorRef::File(path.clone()), None, &path).unwrap();
        let stack = load_with_options(&descriptor, "proj", &LoadOptions::default(), &env).unwrap();
        (descriptor.digest.clone(), descriptor.digest_with(&stack.inputs), stack.inputs)
    };
    let (main, whole, inputs) = digest(dir.path());
    let read: Vec<String> =
        inputs.keys().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    for file in ["db.yaml", "base.yaml", "web.env"] {
        assert!(read.iter().any(|r| r == file), "{file} not recorded in {read:?}");
    }
    assert_ne!(main, whole, "other files change the digest");
    // Edit a file two steps away (extended by an included file).
    std::fs::write(dir.path().join("parts/base.yaml"), "services:\n  base:\n    environment: [A=2]\n").unwrap();
    let (main_after, whole_after, _) = digest(dir.path());
    assert_eq!(main, main_after, "the main file did not change");
    assert_ne!(whole, whole_after, "an edit to an extended file changes the digest");
    // The same folder elsewhere gives the same digest.
    let copy = folder(&[
        ("compose.yaml", "include: [parts/db.yaml]\nservices:\n  web:\n    image: web:1\n    env_file: web.env\n"),
        ("parts/db.yaml", "services:\n  db:\n    image: db:1\n    extends: {file: base.yaml, service: base}\n"),
        ("parts/base.yaml", "services:\n  base:\n    environment: [A=2]\n"),
        ("web.env", "GREETING=hello\n"),
    ]);
    assert_eq!(digest(copy.path()).1, whole_after);
    // A descriptor that reads nothing else keeps the digest of its bytes.
    let solo = dir.path().join("solo.yaml");
    let descriptor = Descriptor::read(DescriptorRef::File(solo.clone()), None, &solo).unwrap();
    let stack = load_with_options(&descriptor, "proj", &LoadOptions::default(), &env).unwrap();
    assert_eq!(descriptor.digest_with(&stack.inputs), descriptor.digest);
}

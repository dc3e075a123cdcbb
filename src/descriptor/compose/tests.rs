//! Scenarios for the whole loader: descriptors in, stacks or errors out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::descriptor::DescriptorRef;
use crate::stack::{Condition, Mount, MountKind, Port, VolumesFromSource};

/// A descriptor at `path` (which need not exist) with `text`.
fn descriptor_at(path: &Path, text: &str) -> Descriptor {
    Descriptor {
        reference: DescriptorRef::File(path.to_path_buf()),
        version: None,
        path: path.to_path_buf(),
        text: text.to_string(),
        digest: String::new(),
    }
}

/// A folder that has no `.env` and no other files.
const NOWHERE: &str = "/nonexistent-dockmaster-test/app/compose.yaml";

fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/op".into()),
        "TAG" => Some("1.2".into()),
        "FROM_HOST" => Some("host-value".into()),
        _ => None,
    }
}

pub(super) fn load_text(text: &str) -> Result<Stack> {
    load_with_env(&descriptor_at(Path::new(NOWHERE), text), "proj", &env)
}

fn loaded(text: &str) -> Stack {
    match load_text(text) {
        Ok(stack) => stack,
        Err(e) => panic!("descriptor must load: {e}\n{text}"),
    }
}

fn error(text: &str) -> String {
    match load_text(text) {
        Ok(stack) => panic!("descriptor must be refused, loaded {stack:#?}\n{text}"),
        Err(Error::Descriptor(msg)) => msg,
        Err(other) => panic!("expected a descriptor error, got {other:?}"),
    }
}

#[test]
fn the_bundled_example_loads_into_the_expected_stack() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/compose.yaml");
    let descriptor = Descriptor::read(DescriptorRef::File(path.clone()), None, &path).unwrap();
    let stack = load_with_env(&descriptor, "ignored", &env).unwrap();
    assert_eq!(stack.name, "hello");
    assert_eq!(stack.format, Format::Spec);
    assert_eq!(stack.services.keys().collect::<Vec<_>>(), ["content", "db", "web"]);
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
    assert!(stack.volumes.contains_key("site"));

    let content = &stack.services["content"];
    assert_eq!(content.image, "dockmaster-example/hello:1");
    let build = content.build.as_ref().unwrap();
    assert_eq!(build.context, path.parent().unwrap().join("image"));
    assert_eq!(build.dockerfile, "Dockerfile");
    let command = content.command.as_ref().unwrap();
    assert!(command[2].contains("deployed at $(date)"), "`$$` is a literal `$`: {command:?}");
    assert_eq!(content.volumes, vec![Mount::new(MountKind::Volume, Some("site".into()), "/site", false)]);

    let web = &stack.services["web"];
    assert_eq!(
        web.ports,
        vec![Port { target: 8080, published: None, host_ip: Some("127.0.0.1".into()), protocol: "tcp".into() }]
    );
    assert!(web.volumes[0].read_only);
    assert_eq!(web.depends_on["content"].condition, Condition::ServiceCompletedSuccessfully);
    assert_eq!(web.depends_on["db"].condition, Condition::ServiceHealthy);
    let check = stack.services["db"].healthcheck.as_ref().unwrap();
    assert_eq!(check.test, vec!["CMD-SHELL", "netstat -ltn | grep -q :6379"]);
    assert_eq!(check.interval, Some(Duration::from_secs(1)));
    assert_eq!(check.timeout, Some(Duration::from_secs(2)));
    assert_eq!(check.retries, Some(10));

    assert!(stack.is_one_shot("content"));
    assert_eq!(stack.start_levels().unwrap(), vec![vec!["content".to_string(), "db".into()], vec!["web".into()]]);
}

pub(super) const KITCHEN_SINK: &str = r#"
name: shop
x-common: &common
  restart: unless-stopped
  logging:
    driver: json-file
    options: {max-size: 10m, max-file: 3}
services:
  web:
    <<: *common
    image: registry.local/web:${TAG}
    command: nginx -g "daemon off;"
    entrypoint: ["/docker-entrypoint.sh"]
    environment:
      PLAIN: value
      NUMBER: 5
      FLAG: true
      FROM_HOST:
      NOT_SET:
    labels:
      - com.example.team=shop
      - dockmaster.one-shot=false
      - bare
    ports:
      - 80
      - "8080:80"
      - "127.0.0.1::443"
      - "9000-9001:9000-9001/udp"
      - target: 53
        published: 5353
        protocol: udp
    volumes:
      - data:/data
      - ./html:/usr/share/nginx/html:ro
      - /var/log/web:/var/log/nginx
      - ~/certs:/certs:ro
      - /cache
      - type: bind
        source: ../conf
        target: /etc/nginx/conf.d
        read_only: true
      - type: tmpfs
        target: /tmp
    tmpfs: /run
    networks:
      front:
        aliases: [www]
        ipv4_address: 172.30.0.10
      back:
    depends_on:
      api:
        condition: service_healthy
        restart: true
      migrate:
        condition: service_completed_successfully
    healthcheck:
      test: curl -fsS http://localhost/ || exit 1
      interval: 1m30s
      timeout: 500ms
      start_period: 1h
      start_interval: 2s
      retries: 5
    container_name: shop-web
    hostname: web
    user: "101:101"
    working_dir: /srv
    privileged: false
    tty: true
    stdin_open: "true"
    stop_signal: SIGQUIT
    stop_grace_period: 1m
    extra_hosts:
      - "db.local:10.0.0.5"
      - "v6.local=::1"
    mem_limit: 512m
    mem_reservation: 256MB
    cpus: 1.5
    pids_limit: 200
    init: false
    scale: 1
  api:
    build:
      context: ./api
      dockerfile: Dockerfile.prod
      args:
        - VERSION=${TAG}
        - FROM_HOST
        - MISSING
      target: runtime
    environment:
      - A=1
      - B=with=equals
      - FROM_HOST
      - NOT_SET
    networks: [back]
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 1g, pids: 50}
        reservations: {memory: 128m}
      restart_policy:
        condition: on-failure
        max_attempts: 3
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://localhost:8080/health"]
    links: ["cache:redis"]
  cache:
    image: redis:7
  migrate:
    build: ./api
    command: ["migrate", "up"]
    labels: {dockmaster.one-shot: "true"}
    volumes_from: ["api:ro", "container:legacy-data"]
    network_mode: "service:api"
    healthcheck:
      disable: true
networks:
  front:
    ipam:
      config: [{subnet: 172.30.0.0/24}]
  back:
    internal: true
volumes:
  data:
"#;

#[test]
fn every_supported_syntax_form_lands_in_the_model() {
    let stack = loaded(KITCHEN_SINK);
    assert_eq!(stack.name, "shop");
    let web = &stack.services["web"];
    assert_eq!(web.image, "registry.local/web:1.2");
    assert_eq!(web.restart.as_deref(), Some("unless-stopped"), "merged from the anchor");
    let logging = web.logging.as_ref().unwrap();
    assert_eq!(logging.driver.as_deref(), Some("json-file"));
    assert_eq!(logging.options["max-file"], "3");
    assert_eq!(web.command.as_deref().unwrap(), ["nginx", "-g", "daemon off;"]);
    assert_eq!(web.entrypoint.as_deref().unwrap(), ["/docker-entrypoint.sh"]);
    assert_eq!(web.environment["PLAIN"].as_deref(), Some("value"));
    assert_eq!(web.environment["NUMBER"].as_deref(), Some("5"));
    assert_eq!(web.environment["FLAG"].as_deref(), Some("true"));
    assert_eq!(web.environment["FROM_HOST"].as_deref(), Some("host-value"));
    assert_eq!(web.environment["NOT_SET"], None);
    assert_eq!(web.labels["com.example.team"], "shop");
    assert_eq!(web.labels["bare"], "");
    assert!(!web.one_shot);

    let port = |target, published, ip: Option<&str>, protocol: &str| Port {
        target,
        published,
        host_ip: ip.map(String::from),
        protocol: protocol.into(),
    };
    assert_eq!(
        web.ports,
        vec![
            port(80, None, None, "tcp"),
            port(80, Some(8080), None, "tcp"),
            port(443, None, Some("127.0.0.1"), "tcp"),
            port(9000, Some(9000), None, "udp"),
            port(9001, Some(9001), None, "udp"),
            port(53, Some(5353), None, "udp"),
        ]
    );

    let mount = |kind, source: Option<&str>, target: &str, read_only| {
        Mount::new(kind, source.map(String::from), target, read_only)
    };
    let app = "/nonexistent-dockmaster-test/app";
    assert_eq!(
        web.volumes,
        vec![
            mount(MountKind::Volume, Some("data"), "/data", false),
            mount(MountKind::Bind, Some(&format!("{app}/html")), "/usr/share/nginx/html", true),
            mount(MountKind::Bind, Some("/var/log/web"), "/var/log/nginx", false),
            mount(MountKind::Bind, Some("/home/op/certs"), "/certs", true),
            mount(MountKind::Volume, None, "/cache", false),
            mount(MountKind::Bind, Some("/nonexistent-dockmaster-test/conf"), "/etc/nginx/conf.d", true),
            mount(MountKind::Tmpfs, None, "/tmp", false),
            mount(MountKind::Tmpfs, None, "/run", false),
        ]
    );

    assert_eq!(web.networks["front"].aliases, vec!["www"]);
    assert_eq!(web.networks["front"].ipv4_address.as_deref(), Some("172.30.0.10"));
    assert!(web.networks.contains_key("back"));
    assert_eq!(web.depends_on["api"].condition, Condition::ServiceHealthy);
    assert!(web.depends_on["api"].restart && web.depends_on["api"].required);

    let check = web.healthcheck.as_ref().unwrap();
    assert_eq!(check.test, vec!["CMD-SHELL", "curl -fsS http://localhost/ || exit 1"]);
    assert_eq!(check.interval, Some(Duration::from_secs(90)));
    assert_eq!(check.timeout, Some(Duration::from_millis(500)));
    assert_eq!(check.start_period, Some(Duration::from_secs(3600)));
    assert_eq!(check.start_interval, Some(Duration::from_secs(2)));
    assert_eq!(check.retries, Some(5));

    assert_eq!(web.container_name.as_deref(), Some("shop-web"));
    assert_eq!(web.hostname.as_deref(), Some("web"));
    assert_eq!(web.user.as_deref(), Some("101:101"));
    assert_eq!(web.working_dir.as_deref(), Some("/srv"));
    assert!(!web.privileged && web.tty && web.stdin_open);
    assert_eq!(web.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(web.stop_grace_period, Some(Duration::from_secs(60)));
    assert_eq!(web.extra_hosts, vec!["db.local:10.0.0.5", "v6.local:::1"]);
    assert_eq!(web.resources.memory, Some(512 << 20));
    assert_eq!(web.resources.memory_reservation, Some(256 << 20));
    assert_eq!(web.resources.cpus, Some(1.5));
    assert_eq!(web.resources.pids_limit, Some(200));

    let api = &stack.services["api"];
    assert_eq!(api.image, "shop-api", "a built image is named after project and service");
    let build = api.build.as_ref().unwrap();
    assert_eq!(build.context, PathBuf::from(format!("{app}/api")));
    assert_eq!(build.dockerfile, "Dockerfile.prod");
    assert_eq!(build.target.as_deref(), Some("runtime"));
    assert_eq!(build.args.get("VERSION").map(String::as_str), Some("1.2"));
    assert_eq!(build.args.get("FROM_HOST").map(String::as_str), Some("host-value"));
    assert!(!build.args.contains_key("MISSING"));
    assert_eq!(api.environment["B"].as_deref(), Some("with=equals"));
    assert_eq!(api.environment["FROM_HOST"].as_deref(), Some("host-value"));
    assert_eq!(api.environment["NOT_SET"], None);
    assert_eq!(api.resources.cpus, Some(0.5));
    assert_eq!(api.resources.memory, Some(1 << 30));
    assert_eq!(api.resources.memory_reservation, Some(128 << 20));
    assert_eq!(api.resources.pids_limit, Some(50));
    assert_eq!(api.restart.as_deref(), Some("on-failure:3"));
    assert_eq!(api.healthcheck.as_ref().unwrap().test[0], "CMD");
    assert_eq!(api.links, vec!["cache:redis"]);

    let migrate = &stack.services["migrate"];
    assert!(migrate.one_shot, "the label marks it one-shot");
    assert_eq!(migrate.image, "shop-migrate");
    assert_eq!(migrate.volumes_from[0].source, VolumesFromSource::Service("api".into()));
    assert!(migrate.volumes_from[0].read_only);
    assert_eq!(migrate.volumes_from[1].source, VolumesFromSource::Container("legacy-data".into()));
    assert_eq!(migrate.network_mode.as_deref(), Some("service:api"));
    assert!(migrate.healthcheck.as_ref().unwrap().disable);

    assert_eq!(stack.networks["front"].subnets[0].subnet, "172.30.0.0/24");
    assert!(stack.networks["back"].internal);
    assert!(stack.volumes.contains_key("data"));
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
}

#[test]
fn versioned_files_load_with_a_warning() {
    let v2 = loaded("version: '2.4'\nservices:\n  a:\n    image: x\n");
    assert_eq!(v2.format, Format::V2);
    assert!(v2.warnings.iter().any(|w| w.contains("\"version\"")), "{:?}", v2.warnings);
    assert_eq!(loaded("version: 3.8\nservices:\n  a:\n    image: x\n").format, Format::V3);
    assert_eq!(loaded("version: \"3\"\nservices:\n  a:\n    image: x\n").format, Format::V3);
    let spec = loaded("services:\n  a:\n    image: x\n");
    assert_eq!(spec.format, Format::Spec);
    assert_eq!(spec.name, "proj", "the default project applies without `name:`");
}

#[test]
fn keys_without_runtime_meaning_warn_and_extensions_are_ignored() {
    let stack = loaded(
        "x-note: {anything: [goes]}\nservices:\n  a:\n    image: x\n    develop: {watch: [{path: ., action: rebuild}]}\n    x-owner: me\n    isolation: ''\n",
    );
    assert_eq!(stack.warnings.len(), 1, "{:?}", stack.warnings);
    assert!(stack.warnings[0].contains("service \"a\": key \"develop\" is ignored"));
}

#[test]
fn unset_variables_warn_once_and_defaults_apply() {
    let stack = loaded("services:\n  a:\n    image: x:${NOPE}\n    environment: [\"B=${NOPE}\", \"C=${D:-dflt}\"]\n");
    assert_eq!(stack.services["a"].image, "x:");
    assert_eq!(stack.services["a"].environment["C"].as_deref(), Some("dflt"));
    let unset: Vec<_> = stack.warnings.iter().filter(|w| w.contains("\"NOPE\" is not set")).collect();
    assert_eq!(unset.len(), 1, "{:?}", stack.warnings);
    assert!(unset[0].contains("service \"a\", key \"image\""));
}

#[test]
fn the_process_environment_wins_over_dot_env_and_files_resolve_next_to_the_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "TAG=from-dotenv\nONLY_DOTENV=yes\nQUOTED=\"a b\"\n").unwrap();
    std::fs::write(dir.path().join("common.env"), "A=file\nB=file\n# comment\nC=${ONLY_DOTENV}\n").unwrap();
    let text = "\
services:
  a:
    image: x:${TAG}
    env_file:
      - common.env
      - path: ./missing.env
        required: false
    environment:
      B: explicit
      D: ${QUOTED}
      ONLY_DOTENV:
";
    let stack = load_with_env(&descriptor_at(&dir.path().join("compose.yaml"), text), "p", &env).unwrap();
    let a = &stack.services["a"];
    assert_eq!(a.image, "x:1.2", "the process environment wins over .env");
    assert_eq!(a.environment["A"].as_deref(), Some("file"));
    assert_eq!(a.environment["B"].as_deref(), Some("explicit"), "environment wins over env_file");
    assert_eq!(a.environment["C"].as_deref(), Some("yes"));
    assert_eq!(a.environment["D"].as_deref(), Some("a b"));
    assert_eq!(a.environment["ONLY_DOTENV"].as_deref(), Some("yes"));

    let missing = "services:\n  a:\n    image: x\n    env_file: nope.env\n";
    let err = load_with_env(&descriptor_at(&dir.path().join("compose.yaml"), missing), "p", &env).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("service \"a\", key \"env_file\": cannot read env file"), "{msg}");
    assert!(msg.contains(":4:"), "the line of env_file: {msg}");

    std::fs::write(dir.path().join(".env"), "BROKEN LINE\n").unwrap();
    let err = load_with_env(&descriptor_at(&dir.path().join("compose.yaml"), "services: {}"), "p", &env).unwrap_err();
    assert!(err.to_string().contains(".env:1:"), "{err}");
}

#[test]
fn errors_name_the_file_the_line_the_place_and_the_fix() {
    let table: &[(&str, &[&str])] = &[
        (
            "services:\n  web:\n    image: x\n    imagee: y\n",
            &[":4: service \"web\": unknown key \"imagee\"", "did you mean \"image\""],
        ),
        (
            "services:\n  web:\n    command: [a]\n",
            &[":2: service \"web\": the service has neither `image` nor `build`"],
        ),
        ("services:\n  web:\n", &["service \"web\": the service is empty"]),
        (
            "services:\n  web:\n    image: x\n    networks: [front]\n",
            &["service \"web\", key \"networks\": network \"front\" is not declared"],
        ),
        (
            "services:\n  web:\n    image: x\n    volumes: [\"data:/data\"]\n",
            &["service \"web\", key \"volumes[0]\": volume \"data\" is not declared"],
        ),
        (
            "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    links: [a]\n",
            &["wait for each other in a circle: a → b → a"],
        ),
        ("services:\n  a:\n    image: x\n    depends_on: [a]\n", &["in a circle: a → a"]),
        ("services:\n  a:\n    image: x\n    depends_on: [ghost]\n", &["service \"ghost\" is not defined"]),
        ("services:\n  a:\n    image: x\n    volumes_from: [ghost]\n", &["container:ghost"]),
        ("services:\n  a:\n    image: x\n    network_mode: service:ghost\n", &["service \"ghost\" is not defined"]),
        (
            "services:\n  a:\n    image: x\n    ipc: service:ghost\n",
            &[":4: service \"a\", key \"ipc\": service \"ghost\""],
        ),
        (
            "services:\n  web:\n    image: x\n    ports:\n      - 80\n      - \"80:abc\"\n",
            &[":6: service \"web\", key \"ports[1]\": invalid port \"80:abc\""],
        ),
        (
            "services:\n  web:\n    image: x\n    healthcheck:\n      interval: 10\n",
            &[":5: service \"web\", key \"healthcheck.interval\": invalid duration \"10\"", "no unit"],
        ),
        ("services:\n  web:\n    image: x\n    stop_grace_period: soon\n", &["invalid duration \"soon\""]),
        ("services:\n  web:\n    image: [x\n", &[":4:1: invalid YAML"]),
        ("services:\n  web:\n  image: x\n   bad: indent\n", &["invalid YAML", ":4:"]),
        (
            "services:\n  web:\n    image: x\n    isolation: hyperv\n",
            &[":4: service \"web\": key \"isolation\" is refused: it applies to Windows containers only"],
        ),
        ("services:\n  web:\n    image: x\n    deploy:\n      replicas: -2\n", &["replicas cannot be negative"]),
        (
            "services:\n  web:\n    image: x\n    extends: base\n",
            &[":4: service \"web\", key \"extends\": cannot extend service \"base\"", "no such service"],
        ),
        ("web:\n  image: x\n  net: [host]\ndb:\n  image: y\n", &[":3: key \"web.net\"", "`net` must be a string"]),
        (
            "services:\n  a:\n    image: x\nservice:\n  b: {}\n",
            &[":4: unknown key \"service\"", "did you mean \"services\""],
        ),
        (
            "services:\n  a:\n    image: x\n    secrets: [s]\n",
            &[":4: service \"a\", key \"secrets[0]\": secret \"s\" is not declared"],
        ),
        (
            "services:\n  a:\n    image: x:${MUST:?give a tag}\n",
            &[":3: service \"a\", key \"image\": required variable \"MUST\" is missing a value: give a tag"],
        ),
        ("services:\n  a:\n    image: x$1\n", &["invalid interpolation", "$$"]),
        ("name: My App\nservices:\n  a:\n    image: x\n", &[":1: key \"name\": invalid project name \"My App\""]),
        ("", &["the descriptor is empty"]),
        ("services: {}\n", &["defines no service"]),
        ("- a\n- b\n", &["expected a mapping at the top"]),
        ("services:\n  a:\n    image: x\n    network_mode: host\n    networks: [default]\n", &["cannot be combined"]),
        (
            "services:\n  a:\n    image: x\n    labels:\n      dockmaster.one-shot: maybe\n",
            &["must be \"true\" or \"false\""],
        ),
        (
            "services:\n  a:\n    image: x\n    mem_limit: 1g\n    deploy: {resources: {limits: {memory: 2g}}}\n",
            &["disagree"],
        ),
        ("services:\n  a:\n    image: x\n    build: https://github.com/x/y.git\n", &["remote build context"]),
        ("a: &a [*a]\n", &["invalid YAML"]),
        ("services:\n  a:\n    <<: 1\n    image: x\n", &["merge key"]),
        ("services:\n  'bad name':\n    image: x\n", &["service name \"bad name\" is not valid"]),
        ("services:\n  a:\n    image: x\n    image: y\n", &["duplicate entry", "only once"]),
        ("services:\n\ta:\n    image: x\n", &[":2:1: invalid YAML", "YAML does not allow tabs"]),
        ("services:\n  a:\n    image: x\n---\nb: 1\n", &["one YAML document"]),
        ("services:\n  a:\n    image: x\n    container_name: -x\n", &[":4: service \"a\", key \"container_name\""]),
        ("services:\n  a:\n    image: x\n    environment: [\"=v\"]\n", &["without a name"]),
    ];
    for (text, needles) in table {
        let msg = error(text);
        assert!(msg.starts_with(NOWHERE), "{msg}");
        for needle in *needles {
            assert!(msg.contains(needle), "{text:?}\n  gave: {msg}\n  missing: {needle}");
        }
    }
}

#[test]
fn merge_keys_and_anchors_build_services() {
    let stack = loaded(
        "x-base: &base\n  image: base:1\n  environment: {A: 1}\nx-extra: &extra\n  tty: true\n  image: other\nservices:\n  a:\n    <<: [*base, *extra]\n  b:\n    <<: *base\n    image: own\n",
    );
    assert_eq!(stack.services["a"].image, "base:1", "earlier merge sources win");
    assert!(stack.services["a"].tty);
    assert_eq!(stack.services["b"].image, "own", "written keys win");
    assert_eq!(stack.services["b"].environment["A"].as_deref(), Some("1"));
}

#[test]
fn optional_dependencies_on_missing_services_only_warn() {
    let stack = loaded("services:\n  a:\n    image: x\n    depends_on:\n      ghost:\n        condition: service_started\n        required: false\n");
    assert!(stack.warnings.iter().any(|w| w.contains("optional dependency \"ghost\"")), "{:?}", stack.warnings);
}

#[test]
fn pull_policy_is_read_and_unknown_forms_are_refused_by_place() {
    let s = loaded(
        "services:\n  a:\n    image: x\n    pull_policy: always\n  b:\n    image: y\n    pull_policy: if_not_present\n",
    );
    assert_eq!(s.services["a"].pull_policy, Some(crate::stack::PullPolicy::Always));
    assert_eq!(s.services["b"].pull_policy, Some(crate::stack::PullPolicy::Missing));
    let err = load_text("services:\n  a:\n    image: x\n    pull_policy: daily\n").unwrap_err().to_string();
    assert!(err.contains("pull_policy") && err.contains("daily"), "{err}");
}

#[test]
fn the_registry_fragments_in_v1_load_with_their_data_containers_and_host_networking() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/examples/registry/plex.yml"))
        .unwrap_or_else(|_| "plex-data:\n  image: busybox\n  command: 'true'\n  volumes: [/config]\nplex:\n  image: timhaak/plex\n  net: host\n  ports: ['32400:32400']\n  volumes_from: [plex-data, bittorrent-sync-data]\n".into());
    let s = loaded(&text);
    assert_eq!(s.format, crate::stack::Format::V1);
    let plex = &s.services["plex"];
    assert_eq!(plex.network_mode.as_deref(), Some("host"));
    assert_eq!(plex.volumes_from[0].source, VolumesFromSource::Service("plex-data".into()));
    assert_eq!(plex.volumes_from[1].source, VolumesFromSource::Container("bittorrent-sync-data".into()));
    assert!(s.is_one_shot("plex-data"), "a data container is one-shot");
    assert_eq!(s.services["plex-data"].network_mode.as_deref(), Some("bridge"));
}

#[test]
fn every_refused_key_is_listed_at_once_naming_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extra.yaml"),
        "services:\n  legacy:\n    image: y\n    credential_spec: {file: spec.json}\n    use_api_socket: true\n",
    )
    .unwrap();
    let text = "include: [extra.yaml]\nservices:\n  web:\n    image: x\n    isolation: hyperv\n    cpu_count: 2\n    \
                build: {context: ., ssh: [default]}\n  db:\n    image: y\n    provider: {type: model}\n";
    let err = load_with_env(&descriptor_at(&dir.path().join("compose.yaml"), text), "p", &env).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("(6 problems; nothing was changed)"), "{msg}");
    for needle in [
        "compose.yaml:5: service \"web\": key \"isolation\" is refused: it applies to Windows containers only",
        "compose.yaml:6: service \"web\": key \"cpu_count\" is refused",
        "service \"web\", key \"build\": key \"ssh\" is not supported yet",
        "compose.yaml:10: service \"db\": key \"provider\" is refused",
        "extra.yaml:4: service \"legacy\": key \"credential_spec\" is refused",
        "extra.yaml:5: service \"legacy\": key \"use_api_socket\" is refused: it mounts the engine's own API socket",
    ] {
        assert!(msg.contains(needle), "{needle} not in:\n{msg}");
    }
}

#[test]
fn compose_host_keys_load_and_label_files_merge_under_labels() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("team.labels"), "team=shop\ntier=web\n").unwrap();
    let text = "services:\n  web:\n    image: x\n    label_file: team.labels\n    labels: {tier: front}\n    \
                volumes: ['data:/data:Z']\n    platform: linux/amd64\n    expose: ['8080']\n    \
                deploy: {mode: global, resources: {reservations: {devices: [{capabilities: [gpu], count: 1}]}}}\n\
                volumes:\n  data: {}\n";
    let stack = load_with_env(&descriptor_at(&dir.path().join("compose.yaml"), text), "p", &env).unwrap();
    let web = &stack.services["web"];
    assert_eq!((web.labels["team"].as_str(), web.labels["tier"].as_str()), ("shop", "front"), "labels win");
    assert_eq!(web.volumes[0].selinux.as_deref(), Some("Z"));
    assert!(stack.warnings.iter().any(|w| w.contains("a single engine runs one container")));
    assert_eq!(web.swarm.as_ref().and_then(|s| s.mode.as_deref()), Some("global"));
    assert_eq!(web.device_requests[0].count, Some(1));
    assert_eq!((web.platform.as_deref(), web.expose.as_slice()), (Some("linux/amd64"), &["8080".to_string()][..]));
    let missing = "services:\n  web:\n    image: x\n    label_file: nope.labels\n";
    let err = load_with_env(&descriptor_at(&dir.path().join("compose.yaml"), missing), "p", &env).unwrap_err();
    assert!(err.to_string().contains("key \"label_file\": cannot read label file"), "{err}");
}

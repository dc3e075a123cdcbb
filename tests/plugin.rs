//! The Rundeck plugin as Rundeck reads it, without a Rundeck server:
//!
//! - `plugin/plugin.yaml` checked with the rules of Rundeck's script-plugin
//!   loader (the metadata keys and types, each provider, each config
//!   property), its `required` flags against the step's real fallback and
//!   against docs/rundeck.md;
//! - the portable zip `plugin/build.sh --portable` produces, at
//!   [`PORTABLE_ZIP`]: the layout the loader requires, and a binary that needs
//!   at most glibc 2.17, is stripped and runs.
//!
//! With `CI` set, a missing portable zip (or `readelf`) fails the test;
//! otherwise it is skipped with a note. `.ci/run` builds the zip before
//! `cargo test`.
//!
//! The rules come from rundeck/rundeck, `core/src/main/java/com/dtolabs/rundeck/core/plugins/`:
//! - `ScriptPluginScanner.java`: libext files are considered only if their
//!   name ends in `-plugin.zip` (`FILENAME_FILTER`);
//! - `ScriptPluginProviderLoader.java`: `loadMeta` (the zip's basename up to
//!   its last `.` is the top folder, `<basename>/plugin.yaml` must be a file,
//!   `<basename>/contents/` or the resources folder must exist),
//!   `loadMetadataYaml` (SnakeYAML `loadAs(stream, PluginMeta.class)`),
//!   `validatePluginMeta` (name, version, a supported rundeckPluginVersion,
//!   2.0's compatibility fields, every provider valid), `validateProviderDef`
//!   and `validateScriptProviderDef` (plugin-type `script` or `ui`; name,
//!   service and script-file non-empty), `getPlugin` (the script file is
//!   `contents/<script-file>`), `getPluginDate` (`yyyy-MM-dd'T'HH:mm:ssX`);
//! - `metadata/PluginMeta.java` (the bean SnakeYAML fills: its properties are
//!   the only top-level keys allowed) and `metadata/ProviderDef.java`
//!   (`getString` returns a value only if it is a YAML string);
//! - `AbstractDescribableScriptPlugin.java` `createProperties` (each config
//!   entry: `type` through `Property.Type.valueOf`, `name`, `title`,
//!   `description`, `values` and `scope` read only when strings, `required`
//!   a boolean or the string "true"), `configuration/Property.java`
//!   (`Property.Type`), `configuration/PropertyScope.java`, and
//!   `plugins/util/PropertyBuilder.java` (`build`: type and name required);
//! - `JarPluginProviderLoader.java`: `RESOURCES_DIR_DEFAULT = "resources"`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{in_ci, repo_root};
use serde_yaml::Value;

/// Where `plugin/build.sh --portable` writes the zip (relative to the
/// repository root): the same name and layout as the normal build, in
/// `target/portable/`.
const PORTABLE_ZIP: &str = concat!("target/portable/dockmaster-rundeck-", env!("CARGO_PKG_VERSION"), "-plugin.zip");

/// The highest glibc symbol version the portable binary may need.
const MAX_GLIBC: [u32; 2] = [2, 17];

/// Fails under CI; otherwise prints why the test is skipped.
fn required_or_skip(what: &str) {
    assert!(!in_ci(), "{what} (CI is set, so this fails instead of skipping)");
    eprintln!("SKIPPED: {what}");
}

/// The portable zip, if built.
fn portable_zip() -> Option<PathBuf> {
    let path = repo_root().join(PORTABLE_ZIP);
    if path.is_file() {
        return Some(path);
    }
    required_or_skip(&format!("{} is missing: build it with `plugin/build.sh --portable`", path.display()));
    None
}

/// `plugin/plugin.yaml` with the placeholders filled in as `plugin/build.sh` does.
fn source_plugin_yaml() -> String {
    std::fs::read_to_string(repo_root().join("plugin/plugin.yaml"))
        .unwrap()
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace("@DATE@", "2026-01-01T00:00:00Z")
}

// ---------------------------------------------------------------------------
// plugin.yaml, by the rules of Rundeck's loader

/// The writable properties of `PluginMeta` (getter and setter), the only
/// top-level keys SnakeYAML's `loadAs(…, PluginMeta.class)` accepts: any
/// other key throws, and the plugin is not loaded.
const PLUGIN_META_PROPERTIES: [&str; 18] = [
    "name",
    "author",
    "date",
    "version",
    "rundeckPluginVersion",
    "url",
    "resourcesList",
    "resourcesDir",
    "providers",
    "id",
    "description",
    "rundeckCompatibilityVersion",
    "license",
    "tags",
    "thirdPartyDependencies",
    "sourceLink",
    "docsLink",
    "targetHostCompatibility",
];
/// `PluginMeta` properties typed `List<String>`; `providers` is
/// `List<Map<String, Object>>`; the rest are `String`.
const PLUGIN_META_LISTS: [&str; 2] = ["resourcesList", "tags"];
/// `ScriptPluginProviderLoader.SUPPORTED_PLUGIN_VERSIONS`.
const SUPPORTED_PLUGIN_VERSIONS: [&str; 4] = ["1.0", "1.1", "1.2", "2.0"];
/// `Property.Type` (matched by `Property.Type.valueOf`, case-sensitive).
const PROPERTY_TYPES: [&str; 8] =
    ["String", "Boolean", "Integer", "Long", "Select", "FreeSelect", "Options", "AutogenInstanceId"];
/// `PropertyScope` (matched by `PropertyScope.valueOf` after trimming).
const PROPERTY_SCOPES: [&str; 7] =
    ["Framework", "ProjectOnly", "Project", "InstanceOnly", "Instance", "Unspecified", "FeatureFlag"];
/// Services a script plugin may provide (the `ScriptPluginProviderLoadable`
/// services documented for script plugins).
const SCRIPT_SERVICES: [&str; 6] =
    ["WorkflowStep", "WorkflowNodeStep", "RemoteScriptNodeStep", "NodeExecutor", "FileCopier", "ResourceModelSource"];
/// The keys a config entry may carry (`AbstractDescribableScriptPlugin`'s
/// `CONFIG_*` constants); others are ignored silently, so a typo would be lost.
const CONFIG_KEYS: [&str; 8] = ["name", "type", "title", "description", "required", "default", "values", "scope"];
const CONFIG_RENDERING_OPTIONS: &str = "renderingOptions";

/// The text SnakeYAML gives a `String` bean property for a plain scalar
/// (`1.2` becomes "1.2"); None for a list or map, which it cannot convert.
fn bean_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(serde_yaml::to_string(value).unwrap().trim().to_string()),
        _ => None,
    }
}

fn string_keyed(map: &serde_yaml::Mapping, what: &str) -> BTreeMap<String, Value> {
    map.iter()
        .map(|(k, v)| {
            (k.as_str().unwrap_or_else(|| panic!("{what}: key {k:?} is not a string")).to_string(), v.clone())
        })
        .collect()
}

/// What `ProviderDef.getString` returns: the value only when it is a string.
fn provider_string<'a>(provider: &'a BTreeMap<String, Value>, key: &str) -> Option<&'a str> {
    provider.get(key).and_then(Value::as_str)
}

/// One config property as `createProperties` builds it.
#[derive(Debug)]
struct ConfigProperty {
    name: String,
    kind: String,
    required: bool,
    default: Option<String>,
    values: Option<Vec<String>>,
}

/// Checks `plugin.yaml` text with the loader's rules and returns, per
/// provider name, its service and config properties.
fn check_plugin_yaml(yaml: &str) -> BTreeMap<String, (String, Vec<ConfigProperty>)> {
    let meta: Value = serde_yaml::from_str(yaml).expect("plugin.yaml parses");
    let meta = string_keyed(meta.as_mapping().expect("plugin.yaml is a mapping"), "plugin.yaml");

    // loadMetadataYaml: SnakeYAML fills a PluginMeta bean.
    for (key, value) in &meta {
        assert!(
            PLUGIN_META_PROPERTIES.contains(&key.as_str()),
            "`{key}` is no PluginMeta property: Rundeck would refuse plugin.yaml"
        );
        match key.as_str() {
            "providers" => {}
            k if PLUGIN_META_LISTS.contains(&k) => {
                let list = value.as_sequence().unwrap_or_else(|| panic!("`{k}` must be a list"));
                assert!(list.iter().all(|v| bean_string(v).is_some()), "`{k}` must be a list of strings");
            }
            k => assert!(bean_string(value).is_some(), "`{k}` must be a plain scalar (a String property)"),
        }
    }
    // validatePluginMeta, plus author and date, which Rundeck shows in the
    // plugin list (date parsed with yyyy-MM-dd'T'HH:mm:ssX).
    for key in ["name", "version", "rundeckPluginVersion", "author", "date", "providers"] {
        assert!(meta.get(key).is_some_and(|v| !v.is_null()), "plugin.yaml lacks `{key}`");
    }
    let plugin_version = bean_string(&meta["rundeckPluginVersion"]).unwrap();
    assert!(
        SUPPORTED_PLUGIN_VERSIONS.contains(&plugin_version.as_str()),
        "rundeckPluginVersion {plugin_version} is not one of {SUPPORTED_PLUGIN_VERSIONS:?}"
    );
    if plugin_version == "2.0" {
        for key in ["rundeckCompatibilityVersion", "targetHostCompatibility"] {
            assert!(meta.contains_key(key), "rundeckPluginVersion 2.0 requires `{key}`");
        }
    } else {
        // Resources (the icon) need 1.2 or later (SUPPORTS_RESOURCES_PLUGIN_VERSION).
        assert_eq!(plugin_version, "1.2", "resources/icon.png needs rundeckPluginVersion >= 1.2");
    }
    let date = bean_string(&meta["date"]).unwrap();
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    assert!(
        b.len() == 20
            && digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19)
            && b[19] == b'Z',
        "date {date:?} does not parse as yyyy-MM-dd'T'HH:mm:ssX"
    );
    for key in ["name", "version", "author"] {
        assert!(!bean_string(&meta[key]).unwrap().trim().is_empty(), "`{key}` is empty");
    }

    let providers = meta["providers"].as_sequence().expect("providers is a list (List<Map<String, Object>>)");
    assert!(!providers.is_empty(), "no providers");
    let mut out = BTreeMap::new();
    let mut idents = BTreeSet::new();
    for provider in providers {
        let provider = string_keyed(provider.as_mapping().expect("each provider is a mapping"), "provider");
        // validateProviderDef / validateScriptProviderDef, through ProviderDef.getString.
        assert_eq!(
            provider_string(&provider, "plugin-type"),
            Some("script"),
            "plugin-type must be the string `script`"
        );
        let non_empty = |key: &str| {
            provider_string(&provider, key)
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| panic!("provider {provider:?}: `{key}` must be a non-empty string"))
                .to_string()
        };
        let name = non_empty("name");
        let service = non_empty("service");
        let script_file = non_empty("script-file");
        assert!(
            !script_file.contains('/') && script_file != "..",
            "script-file {script_file:?} names a file in contents/"
        );
        assert!(SCRIPT_SERVICES.contains(&service.as_str()), "{name}: service {service} takes no script plugins");
        // matchesProvider picks the first (service, name): no duplicates.
        assert!(idents.insert((service.clone(), name.clone())), "provider {service}/{name} twice");
        // Optional keys: strings when present (script-args may be a list).
        for key in ["script-interpreter", "title", "description"] {
            if let Some(v) = provider.get(key) {
                assert!(v.is_string(), "{name}: `{key}` must be a string");
            }
        }
        if let Some(args) = provider.get("script-args") {
            let list_of_strings = args.as_sequence().is_some_and(|l| l.iter().all(Value::is_string));
            assert!(args.is_string() || list_of_strings, "{name}: script-args must be a string or a list of strings");
        }
        if let Some(quoted) = provider.get("interpreter-args-quoted") {
            assert!(
                quoted.is_bool() || matches!(quoted.as_str(), Some("true" | "false")),
                "{name}: interpreter-args-quoted must be a boolean"
            );
        }
        if let Some(pm) = provider.get("plugin-meta") {
            assert!(pm.is_mapping(), "{name}: plugin-meta must be a mapping");
        }
        let properties = check_config(&name, provider.get("config"));
        out.insert(name, (service, properties));
    }
    out
}

/// `createProperties`: the config list of one provider.
fn check_config(provider: &str, config: Option<&Value>) -> Vec<ConfigProperty> {
    let Some(config) = config else { return Vec::new() };
    let entries =
        config.as_sequence().unwrap_or_else(|| panic!("{provider}: config must be a list (anything else is ignored)"));
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for entry in entries {
        let entry = string_keyed(entry.as_mapping().expect("each config entry is a mapping"), provider);
        let name = entry.get("name").and_then(Value::as_str).unwrap_or_else(|| {
            panic!("{provider}: a config entry without a string `name` ({entry:?}): 'name is required'")
        });
        let at = format!("{provider}.{name}");
        assert!(names.insert(name.to_string()), "{at}: config property twice");
        for key in entry.keys() {
            assert!(
                CONFIG_KEYS.contains(&key.as_str()) || key == CONFIG_RENDERING_OPTIONS,
                "{at}: `{key}` is not a config key Rundeck reads"
            );
        }
        // metaStringProp: type, title, description, values and scope count only as strings.
        let kind = entry.get("type").and_then(Value::as_str).unwrap_or_else(|| panic!("{at}: `type` must be a string"));
        assert!(PROPERTY_TYPES.contains(&kind), "{at}: `{kind}` is no Property.Type: 'Invalid property type'");
        for key in ["title", "description", "scope"] {
            if let Some(v) = entry.get(key) {
                assert!(v.is_string(), "{at}: `{key}` must be a string (otherwise dropped)");
            }
        }
        assert!(entry.get("title").and_then(Value::as_str).is_some_and(|t| !t.is_empty()), "{at}: no title");
        if let Some(scope) = entry.get("scope").and_then(Value::as_str) {
            assert!(PROPERTY_SCOPES.contains(&scope.trim()), "{at}: 'Invalid property scope: {scope}'");
        }
        let required = match entry.get("required") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                s.eq_ignore_ascii_case("true")
            }
            Some(other) => panic!("{at}: `required` must be a boolean (Rundeck reads {other:?} as false)"),
        };
        let default =
            entry.get("default").map(|d| bean_string(d).unwrap_or_else(|| panic!("{at}: `default` must be a scalar")));
        let values = match entry.get("values") {
            None => None,
            Some(Value::String(s)) => Some(s.split(',').map(|v| v.trim().to_string()).collect::<Vec<_>>()),
            Some(Value::Sequence(list)) => Some(
                list.iter()
                    .map(|v| {
                        v.as_str().unwrap_or_else(|| panic!("{at}: `values` must hold strings")).trim().to_string()
                    })
                    .collect(),
            ),
            Some(other) => panic!("{at}: `values` must be a comma-separated string or a list, not {other:?}"),
        };
        match kind {
            "Select" | "FreeSelect" | "Options" => {
                let values = values.as_ref().unwrap_or_else(|| panic!("{at}: a {kind} needs `values`"));
                assert!(!values.is_empty() && values.iter().all(|v| !v.is_empty()), "{at}: empty value in {values:?}");
                if kind == "Select" {
                    if let Some(d) = &default {
                        assert!(values.contains(d), "{at}: default {d:?} is not one of {values:?}");
                    }
                }
            }
            "Boolean" => {
                if let Some(d) = &default {
                    assert!(d == "true" || d == "false", "{at}: a Boolean's default must be true or false, not {d:?}");
                }
            }
            "Integer" | "Long" => {
                if let Some(d) = &default {
                    assert!(d.parse::<i64>().is_ok(), "{at}: default {d:?} is not a number");
                }
            }
            _ => {}
        }
        if let Some(r) = entry.get(CONFIG_RENDERING_OPTIONS) {
            assert!(r.is_mapping(), "{at}: renderingOptions must be a mapping (otherwise ignored)");
        }
        out.push(ConfigProperty { name: name.to_string(), kind: kind.to_string(), required, default, values });
    }
    out
}

/// The step configuration table of docs/rundeck.md: property name (from its
/// `RD_CONFIG_*` variable) → documented as required (default `(required)`).
fn documented_properties() -> BTreeMap<String, bool> {
    let doc = std::fs::read_to_string(repo_root().join("docs/rundeck.md")).unwrap();
    let section = doc.split("## Step configuration").nth(1).expect("docs/rundeck.md has a Step configuration section");
    let mut out = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(var) = cells.get(2).and_then(|c| c.strip_prefix("`RD_CONFIG_")).and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        out.insert(var.to_ascii_lowercase(), cells[3] == "(required)");
    }
    assert!(!out.is_empty(), "no RD_CONFIG_ rows in docs/rundeck.md's Step configuration table");
    out
}

#[test]
fn plugin_yaml_follows_rundecks_script_plugin_rules_and_the_docs() {
    let providers = check_plugin_yaml(&source_plugin_yaml());
    let services: BTreeSet<&str> = providers.values().map(|(s, _)| s.as_str()).collect();
    assert_eq!(services, BTreeSet::from(["WorkflowStep", "WorkflowNodeStep"]));

    let documented = documented_properties();
    for (provider, (_, properties)) in &providers {
        // Every documented property is there (a property plugin.yaml does not
        // declare never reaches the step: Rundeck exports only described
        // properties as RD_CONFIG_*), and nothing undocumented.
        let declared: BTreeMap<String, bool> = properties.iter().map(|p| (p.name.clone(), p.required)).collect();
        assert_eq!(
            declared.keys().collect::<Vec<_>>(),
            documented.keys().collect::<Vec<_>>(),
            "{provider}: plugin.yaml's config and docs/rundeck.md's Step configuration table differ"
        );
        for (name, required) in &declared {
            assert_eq!(
                *required, documented[name],
                "{provider}.{name}: plugin.yaml says required: {required}, docs/rundeck.md says otherwise"
            );
        }
        // The defaults plugin.yaml fills in are the binary's own defaults.
        for p in properties {
            let expected = match p.name.as_str() {
                "environment" => Some("default"),
                "action" => Some("deploy"),
                "timeout" => Some("120s"),
                "rollback" => Some("true"),
                _ => None,
            };
            assert_eq!(p.default.as_deref(), expected, "{provider}.{}: default", p.name);
        }
        let action = properties.iter().find(|p| p.name == "action").unwrap();
        assert_eq!(action.kind, "Select");
        assert_eq!(action.values.as_deref().unwrap(), ["deploy", "plan", "status", "rollback", "down"]);
    }
}

/// The step needs no property at all: with none set, the job options
/// `application` and `release` make the descriptor (src/callers/rundeck.rs,
/// `step_request`). So no property may be `required: true`: Rundeck would
/// refuse to save a step relying on the job options.
#[test]
fn no_property_is_required_because_the_step_falls_back_on_job_options() {
    let env: BTreeMap<&str, &str> = BTreeMap::from([
        ("RD_JOB_USERNAME", "alice"),
        ("RD_OPTION_APPLICATION", "shop"),
        ("RD_OPTION_RELEASE", "main"),
    ]);
    let lookup = |name: &str| env.get(name).map(|v| v.to_string());
    let step = dockmaster::callers::rundeck::step_request(&lookup, None)
        .expect("a step without RD_CONFIG_DESCRIPTOR builds the descriptor from job options");
    assert_eq!(step.request.descriptor.to_string(), "shop/main");

    for (provider, (_, properties)) in check_plugin_yaml(&source_plugin_yaml()) {
        for p in properties {
            assert!(!p.required, "{provider}.{}: required: true, but the step runs without it", p.name);
        }
    }
}

// ---------------------------------------------------------------------------
// The portable zip

/// Checks the zip's name and layout as `ScriptPluginScanner` and
/// `ScriptPluginProviderLoader.loadMeta` / `getPlugin` do; returns the
/// packaged plugin.yaml and the basename.
fn check_zip_layout(zip_path: &Path, archive: &mut zip::ZipArchive<std::fs::File>) -> (String, String) {
    let file_name = zip_path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(file_name.ends_with("-plugin.zip"), "{file_name}: Rundeck's libext scanner only loads *-plugin.zip");
    let base = file_name.rsplit_once('.').unwrap().0.to_string();
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    assert!(names.iter().all(|n| n.starts_with(&format!("{base}/"))), "entries outside {base}/: {names:?}");
    assert!(names.iter().any(|n| n.starts_with(&format!("{base}/contents/"))), "no {base}/contents/");

    let mut yaml = String::new();
    let mut entry = archive.by_name(&format!("{base}/plugin.yaml")).expect("<basename>/plugin.yaml");
    assert!(entry.is_file());
    entry.read_to_string(&mut yaml).unwrap();
    drop(entry);
    assert!(!yaml.contains("@VERSION@") && !yaml.contains("@DATE@"), "placeholders left in plugin.yaml");

    let meta: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(bean_string(&meta["version"]).as_deref(), Some(env!("CARGO_PKG_VERSION")));
    let resources = meta.get("resourcesDir").and_then(bean_string).unwrap_or_else(|| "resources".into());
    assert!(archive.by_name(&format!("{base}/{resources}/icon.png")).is_ok(), "no {resources}/icon.png");
    for (provider, _) in check_plugin_yaml(&yaml) {
        let p =
            meta["providers"].as_sequence().unwrap().iter().find(|p| p["name"].as_str() == Some(&provider)).unwrap();
        let script = p["script-file"].as_str().unwrap();
        let entry = archive.by_name(&format!("{base}/contents/{script}")).expect("script-file exists in contents/");
        assert!(entry.is_file(), "{script} is not a file");
        let mode = entry.unix_mode().expect("the zip records a mode");
        assert!(mode & 0o111 != 0, "{script} is not executable (mode {mode:o})");
    }
    (yaml, base)
}

/// The `GLIBC_x.y[.z]` versions named in `readelf -V` output.
fn glibc_versions(readelf_v: &str) -> BTreeSet<Vec<u32>> {
    let mut out = BTreeSet::new();
    for (i, _) in readelf_v.match_indices("GLIBC_") {
        let rest = &readelf_v[i + "GLIBC_".len()..];
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let parts: Option<Vec<u32>> = rest[..end].trim_end_matches('.').split('.').map(|p| p.parse().ok()).collect();
        if let Some(parts) = parts.filter(|p| p.len() >= 2) {
            out.insert(parts);
        }
    }
    out
}

fn readelf(args: &[&str], binary: &Path) -> Option<String> {
    match Command::new("readelf").args(args).arg(binary).output() {
        Ok(out) => {
            assert!(out.status.success(), "readelf {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) => {
            required_or_skip(&format!("readelf is not available ({e}): install binutils"));
            None
        }
    }
}

#[test]
fn the_portable_zip_has_rundecks_layout_and_a_stripped_binary_for_glibc_2_17() {
    let Some(zip_path) = portable_zip() else { return };
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let (_, base) = check_zip_layout(&zip_path, &mut archive);

    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("dockmaster");
    let mut bytes = Vec::new();
    archive.by_name(&format!("{base}/contents/dockmaster")).unwrap().read_to_end(&mut bytes).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "contents/dockmaster is not an ELF binary");
    std::fs::write(&binary, &bytes).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();

    let Some(versions) = readelf(&["-V", "--wide"], &binary) else { return };
    let glibc = glibc_versions(&versions);
    let highest = glibc.iter().max().expect("the binary names no GLIBC_ version: not a glibc binary?");
    println!(
        "{}: {} bytes, needs GLIBC_{}",
        zip_path.display(),
        bytes.len(),
        highest.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
    );
    assert!(
        highest.as_slice() <= MAX_GLIBC.as_slice(),
        "the portable binary needs GLIBC_{highest:?}, more than {MAX_GLIBC:?}: it would not start on RHEL/CentOS 7 (all versions: {glibc:?})"
    );

    // Stripped: no symbol table, no debug info.
    let Some(sections) = readelf(&["-S", "--wide"], &binary) else { return };
    for unwanted in [".symtab", ".strtab", ".debug_info", ".debug_line"] {
        assert!(
            !sections.split_whitespace().any(|w| w == unwanted),
            "the portable binary is not stripped: it has {unwanted}"
        );
    }

    let version = Command::new(&binary).arg("--version").output().unwrap();
    assert!(version.status.success(), "{}", String::from_utf8_lossy(&version.stderr));
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("dockmaster {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn glibc_versions_are_read_from_readelf_output() {
    let sample = "  000000: Version: 1  File: libc.so.6  Cnt: 3\n  0x0010:   Name: GLIBC_2.2.5  Flags: none  Version: 4\n  0x0020:   Name: GLIBC_2.17  Flags: none  Version: 3\n   004:   2 (GLIBC_2.3)  3 (GLIBC_2.17)  0 (*local*)\n";
    let found = glibc_versions(sample);
    assert_eq!(found, BTreeSet::from([vec![2, 2, 5], vec![2, 3], vec![2, 17]]));
    assert_eq!(found.iter().max().unwrap(), &vec![2, 17]);
    assert!(vec![2, 34] > MAX_GLIBC.to_vec() && vec![2, 9] < MAX_GLIBC.to_vec());
}

/// The checker is not vacuous: each thing Rundeck's loader refuses (or
/// silently drops) makes it fail.
#[test]
fn the_plugin_yaml_checker_rejects_what_rundecks_loader_rejects() {
    let good = source_plugin_yaml();
    let mutations: [(&str, &str, &str); 9] = [
        ("unknown top-level key", "license: Apache-2.0", "licence: Apache-2.0"),
        ("unsupported rundeckPluginVersion", "rundeckPluginVersion: 1.2", "rundeckPluginVersion: 3.0"),
        ("no author", "author: dockmaster\n", ""),
        ("a date Rundeck cannot parse", "date: \"2026-01-01T00:00:00Z\"", "date: \"1 Jan 2026\""),
        ("plugin-type not script", "plugin-type: script", "plugin-type: shell"),
        ("an empty script-file", "script-file: dockmaster", "script-file: \"\""),
        ("a lower-case property type", "type: Boolean", "type: boolean"),
        ("a Select default outside its values", "default: deploy", "default: apply"),
        ("required as a word", "required: false", "required: \"no\""),
    ];
    for (what, from, to) in mutations {
        assert!(good.contains(from), "{what}: `{from}` not in plugin.yaml");
        let bad = good.replacen(from, to, 1);
        let result = std::panic::catch_unwind(|| check_plugin_yaml(&bad));
        assert!(result.is_err(), "the checker accepts plugin.yaml with {what}");
    }
}

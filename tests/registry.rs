//! The fragment registry in the real `dockmaster serve` over loopback, and
//! dockmaster resolving and deploying descriptors from it on the real
//! engine.

mod common;
#[path = "common/http.rs"]
mod http;

use std::sync::Arc;

use base64::Engine as _;
use common::{repo_root, TestRun, FIXTURE_IMAGE};
use http::Server;
use serde_json::{json, Value};

const TOKEN: &str = "publish-token-for-tests";
const TLO_TOKEN: &str = "tlo-only-token-for-tests";
const ENV: &[(&str, &str)] = &[("DM_REG_TOKEN", TOKEN), ("DM_REG_TLO", TLO_TOKEN)];

fn registry_config(run: &TestRun) {
    run.add_config(
        "registry:\n  serve: true\n  tokens:\n    - {name: build, token_env: DM_REG_TOKEN}\n    \
         - {name: tlo, token_env: DM_REG_TLO, applications: [\"TLO *\"]}\n",
    );
}

fn put(server: &Server, token: &str, fragment: &str, apps: &[&str], releases: &[&str]) -> (u16, Value) {
    put_to(server, "/fragment", token, fragment, apps, releases)
}

/// [`put`] to `path` (`/fragment?strict=true`).
fn put_to(server: &Server, path: &str, token: &str, fragment: &str, apps: &[&str], releases: &[&str]) -> (u16, Value) {
    let body = json!({
        "fragment": base64::engine::general_purpose::STANDARD.encode(fragment),
        "applications": apps,
        "releases": releases,
    })
    .to_string();
    let headers = [("Authorization", format!("Bearer {token}")), ("Content-Type", "application/json".into())];
    let (status, body, _) = server.send("PUT", path, &headers, &body);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn get(server: &Server, path: &str) -> (u16, String) {
    let (status, body, _) = server.send("GET", path, &[], "");
    (status, body)
}

fn services_of(yaml: &str) -> Vec<String> {
    let doc: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
    doc.keys().filter_map(|k| k.as_str().map(str::to_string)).collect()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("../shared/examples/registry").join(name))
        .unwrap_or_else(|e| panic!("../shared/examples/registry/{name}: {e}"))
}

#[test]
fn the_three_example_fragments_make_versions_one_to_three_that_survive_a_restart() {
    let Some(run) = TestRun::start("registry") else { return };
    registry_config(&run);
    let mut server = Server::start(&run, ENV);
    for (i, file) in ["transmission.yml", "plex.yml", "mysql.yml"].iter().enumerate() {
        let (status, answer) = put(&server, TOKEN, &example(file), &["TLO GE", "TLO EE"], &["Milestone"]);
        assert_eq!(status, 201, "{file}: {answer}");
        let versions = answer["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 2);
        assert!(versions.iter().all(|v| v["version"] == i as i64 + 1), "{answer}");
    }
    let expected = [
        vec!["transmission-data", "transmission"],
        vec!["transmission-data", "transmission", "plex-data", "plex"],
        vec!["transmission-data", "transmission", "plex-data", "plex", "mysql-data", "mysql"],
    ];
    let mut etags = Vec::new();
    for app in ["TLO%20GE", "TLO%20EE"] {
        for (i, services) in expected.iter().enumerate() {
            let path = format!("/descriptor/application/{app}/Milestone/{}", i + 1);
            let (status, headers, body, _) = server.exchange("GET", &path, &[], "");
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(services_of(&body), *services, "{path}");
            let etag = headers.iter().find(|(k, _)| k == "etag").map(|(_, v)| v.clone()).expect("an ETag");
            assert_eq!(etag, format!("\"{}\"", dockmaster::registry::digest(&body)));
            etags.push((path, etag, body));
        }
    }
    assert_eq!(get(&server, "/descriptor/application/TLO%20GE/Milestone/latest").1, etags[2].2);
    let (status, _, _, _) = server.exchange("GET", &etags[0].0, &[("If-None-Match", etags[0].1.clone())], "");
    assert_eq!(status, 304, "an unchanged version is not sent again");

    // Lists: plain JSON for tools, Rundeck's shape for valuesUrl.
    assert_eq!(
        serde_json::from_str::<Value>(&get(&server, "/descriptor/application").1).unwrap(),
        json!(["TLO EE", "TLO GE"])
    );
    let releases = get(&server, "/descriptor/application/TLO%20GE?format=rundeck").1;
    assert_eq!(serde_json::from_str::<Value>(&releases).unwrap(), json!([{"name": "Milestone", "value": "Milestone"}]));
    let versions: Value = serde_json::from_str(&get(&server, "/descriptor/application/TLO%20GE/Milestone").1).unwrap();
    assert_eq!(versions[2]["services"], json!(["mysql-data", "mysql"]), "the fragment that made each version");
    assert!(versions[2]["digest"].as_str().unwrap().starts_with("sha256:"));
    let rundeck: Value =
        serde_json::from_str(&get(&server, "/descriptor/application/TLO%20GE/Milestone?format=rundeck").1).unwrap();
    assert_eq!(rundeck[0], json!({"name": "3", "value": "3", "selected": true}), "newest first, selected");

    // Refused: an invalid fragment, a bad token, a token for another
    // application. Nothing is written.
    let (status, answer) =
        put(&server, TOKEN, "web:\n  image: x\n  ports: [\"not-a-port\"]\n", &["TLO GE"], &["Milestone"]);
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("ports"), "{answer}");
    assert_eq!(put(&server, "wrong", &example("mysql.yml"), &["TLO GE"], &["Milestone"]).0, 401);
    let (status, answer) = put(&server, TLO_TOKEN, &example("mysql.yml"), &["TLO GE", "Shop"], &["Milestone"]);
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("`Shop`"));
    assert_eq!(put(&server, TLO_TOKEN, "{not: [yaml", &["TLO GE"], &["Milestone"]).0, 422);
    // A fragment that would read a file on the registry's host is refused
    // alike whether the file exists or not, quoting nothing of it.
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let mut answers = Vec::new();
    for path in ["/etc/hostname", "/etc/passwd", "/nonexistent/secret.env"] {
        let fragment = format!("web:\n  image: x\n  env_file: {path}\n");
        let (status, answer) = put(&server, TOKEN, &fragment, &["TLO GE"], &["Milestone"]);
        assert_eq!(status, 422, "{path}: {answer}");
        let text = answer["error"].as_str().unwrap_or_default().replace(path, "PATH");
        assert!(!text.contains("root:") && (hostname.trim().is_empty() || !text.contains(hostname.trim())), "{text}");
        answers.push(text);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "the same answer for every path: {answers:#?}");
    let after: Value = serde_json::from_str(&get(&server, "/descriptor/application/TLO%20GE/Milestone").1).unwrap();
    assert_eq!(after.as_array().unwrap().len(), 3, "nothing was written");
    assert_eq!(get(&server, "/descriptor/application").1, "[\"TLO EE\",\"TLO GE\"]", "no `Shop` appeared");

    // A restart keeps every version, byte for byte.
    let _ = server.child.kill();
    let _ = server.child.wait();
    server = Server::start(&run, ENV);
    for (path, etag, body) in &etags {
        let (status, headers, again, _) = server.exchange("GET", path, &[], "");
        assert_eq!(status, 200);
        assert_eq!(&again, body, "{path} changed across a restart");
        assert!(headers.contains(&("etag".to_string(), etag.clone())));
    }
}

#[test]
fn a_hundred_concurrent_publishes_to_one_release_get_versions_one_to_a_hundred() {
    let Some(run) = TestRun::start("registry-burst") else { return };
    registry_config(&run);
    let server = Arc::new(Server::start(&run, ENV));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let server = server.clone();
            std::thread::spawn(move || {
                let fragment = format!("svc-{i}:\n  image: busybox\n  command: \"true\"\n");
                put(&server, TOKEN, &fragment, &["Büro App ü"], &["R 1"])
            })
        })
        .collect();
    let mut numbers: Vec<i64> = Vec::new();
    for h in handles {
        let (status, answer) = h.join().unwrap();
        assert_eq!(status, 201, "{answer}");
        numbers.push(answer["versions"][0]["version"].as_i64().unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=100).collect::<Vec<_>>(), "distinct consecutive versions, none lost");
    let (status, latest) = get(&server, "/descriptor/application/B%C3%BCro%20App%20%C3%BC/R%201/100");
    assert_eq!(status, 200, "names with spaces and non-ASCII round-trip: {latest}");
    assert_eq!(services_of(&latest).len(), 100, "every fragment's service is in the last version");
}

#[test]
fn a_deploy_by_reference_through_the_registry_is_healthy_and_the_cache_serves_known_versions_when_it_is_down() {
    let Some(run) = TestRun::start_named("registry-deploy") else { return };
    registry_config(&run);
    let mut server = Server::start(&run, ENV);
    let fragment = run.write(
        "fragment.yml",
        &format!("web:\n  image: {FIXTURE_IMAGE}\n  command: [\"sleep\", \"1000\"]\n  environment:\n    ROLE: web\n"),
    );
    let url = format!("http://{}", server.addr);
    let published = run.dockmaster_with_env(
        ["publish", &fragment, "--application", &run.application, "--release", "rel", "--registry", &url],
        &[("DOCKMASTER_REGISTRY_TOKEN", TOKEN)],
    );
    published.assert_exit(0);
    published.check(published.stdout.starts_with(&format!("{} sha256:", run.named("1"))), "prints the new version");
    let refused = run.dockmaster_with_env(
        ["publish", &fragment, "--application", &run.application, "--release", "rel", "--registry", &url],
        &[("DOCKMASTER_REGISTRY_TOKEN", "wrong")],
    );
    refused.assert_exit(4);

    // The deploying dockmaster reads from the registry.
    let client_config = run.write(
        "client.yaml",
        &format!(
            "labels: {{dockmaster.test-run: \"{}\"}}\nstate_dir: \"{}\"\nregistry:\n  url: \"{url}\"\n",
            run.id,
            run.dir().join("client-state").display()
        ),
    );
    let deploy = |reference: &str| {
        run.dockmaster_with_env(
            ["deploy", reference, "--timeout", "60s", "--output", "json"],
            &[("DOCKMASTER_CONFIG", client_config.as_str())],
        )
    };
    let out = deploy(&run.named("1"));
    out.assert_exit(0);
    let report: Value = serde_json::from_str(&out.stdout).expect("a JSON report");
    assert_eq!(report["verdict"], "healthy", "{report}");
    assert_eq!(report["descriptor"]["version"], "1", "{report}");

    // The registry goes away: a version fetched before still deploys; the
    // latest cannot be known: exit 5.
    let _ = server.child.kill();
    let _ = server.child.wait();
    deploy(&run.named("1")).assert_exit(0);
    let unknown = deploy(&run.named(""));
    unknown.assert_exit(5);
    unknown.check(unknown.stderr.contains("unreachable") && unknown.stderr.contains("not in the cache"), "says why");
    server = Server::start(&run, ENV);
    drop(server);
}

#[test]
fn config_review_history_and_option_lists_resolve_from_the_registry_when_one_is_configured() {
    let Some(run) = TestRun::start_named("registry-read") else { return };
    registry_config(&run);
    let server = Server::start(&run, ENV);
    let url = format!("http://{}", server.addr);
    let app = run.application.clone();
    for (i, marker) in ["first-marker", "second-marker"].iter().enumerate() {
        let fragment = format!(
            "web:\n  image: {FIXTURE_IMAGE}\n  command: [\"sleep\", \"1000\"]\n  environment: {{MARK: {marker}}}\n"
        );
        let file = run.write(&format!("fragment{i}.yml"), &fragment);
        run.dockmaster_with_env(
            ["publish", &file, "--application", &app, "--release", "rel", "--registry", &url],
            &[("DOCKMASTER_REGISTRY_TOKEN", TOKEN)],
        )
        .assert_exit(0);
    }
    // A client whose descriptor folder does not exist: everything must come
    // from the registry.
    let client = run.write(
        "client.yaml",
        &format!(
            "labels: {{dockmaster.test-run: \"{}\"}}\nstate_dir: \"{}\"\ndescriptors: \"{}\"\nregistry:\n  url: \"{url}\"\n",
            run.id,
            run.dir().join("client-state").display(),
            run.dir().join("no-such-folder").display()
        ),
    );
    let with_client = |args: &[&str]| run.dockmaster_with_env(args.to_vec(), &[("DOCKMASTER_CONFIG", client.as_str())]);

    let apps = with_client(&["options", "applications"]);
    apps.assert_exit(0);
    apps.check(apps.stdout.contains(&app), "the registry's applications are listed");
    let releases = with_client(&["options", "releases", &app]);
    releases.assert_exit(0);
    releases.check(releases.stdout.contains("\"rel\""), "the registry's releases are listed");
    let versions = with_client(&["options", "versions", &app, "rel"]);
    versions.assert_exit(0);
    let list: Value = serde_json::from_str(&versions.stdout).unwrap();
    assert_eq!(list[0]["value"], "2", "newest first: {list}");
    assert_eq!(list[1]["value"], "1", "{list}");

    let config = with_client(&["config", &run.named("1")]);
    config.assert_exit(0);
    config.check(config.stdout.contains("first-marker"), "config prints version 1 from the registry");

    let proposed = run.write(
        "proposed.yml",
        &format!(
            "web:\n  image: {FIXTURE_IMAGE}\n  command: [\"sleep\", \"1000\"]\n  environment: {{MARK: second-marker}}\n"
        ),
    );
    let review = with_client(&["review", &proposed, "--against", &run.named("")]);
    review.check(review.stdout.contains("version 2"), "review compares with the registry's latest version");

    review.assert_exit(0);

    // A deploy from the registry, then its history by reference.
    with_client(&["deploy", &run.named("1"), "--timeout", "60s"]).assert_exit(0);
    let history = with_client(&["history", &run.named(""), "--output", "json"]);
    history.assert_exit(0);
    let records: Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(records.as_array().map(Vec::len), Some(1), "the deploy is found by its reference: {records}");
    let versions = with_client(&["options", "versions", &app, "rel"]);
    let list: Value = serde_json::from_str(&versions.stdout).unwrap();
    assert_eq!(list[1]["selected"], true, "the running version 1 is selected: {list}");

    // serve's option lists for Rundeck, from the registry too.
    let options = Server::start(&run, &[("DOCKMASTER_CONFIG", client.as_str())]);
    let (status, body) = get(&options, "/options/applications");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&app), "{body}");
    let (status, body) = get(&options, &format!("/options/versions?application={app}&release=rel"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"2\""), "{body}");

    // A version that is not a number (an option Rundeck left as text) is
    // the request's fault, exit 3 with a hint, never "unreachable" (5).
    let bad = with_client(&["plan", &format!("{app}/rel/abc")]);
    bad.assert_exit(3);
    bad.check(bad.stderr.contains("versions are numbers"), "the error hints at an unexpanded option");
}

const READ_TOKEN: &str = "read-token-for-tests";
const TLO_READ_TOKEN: &str = "tlo-read-token-for-tests";

/// Sends a request whose body the server may stop reading (a 413): write
/// errors are ignored and a reset after the answer is tolerated. Returns
/// the status and body.
fn send_tolerant(server: &Server, method: &str, path: &str, headers: &[(&str, String)], body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    stream.set_write_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", server.addr);
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let _ = stream.write_all(request.as_bytes()).and_then(|_| stream.write_all(body.as_bytes()));
    let mut response = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
        }
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn the_registry_is_bounded_and_closed_records_who_published_and_counts_refusals() {
    let Some(run) = TestRun::start("registry-bounds") else { return };
    run.add_config(
        "registry:\n  serve: true\n  tokens:\n    - {name: build, token_env: DM_REG_TOKEN}\n    \
         - {name: tlo, token_env: DM_REG_TLO, applications: [\"TLO *\"]}\n  read_tokens:\n    \
         - {name: reader, token_env: DM_REG_READ}\n    \
         - {name: tlo-reader, token_env: DM_REG_TLO_READ, applications: [\"TLO *\"]}\n",
    );
    let env = [
        ("DM_REG_TOKEN", TOKEN),
        ("DM_REG_TLO", TLO_TOKEN),
        ("DM_REG_READ", READ_TOKEN),
        ("DM_REG_TLO_READ", TLO_READ_TOKEN),
    ];
    let mut server = Server::start(&run, &env);
    let bearer = |token: &str| vec![("Authorization", format!("Bearer {token}"))];
    let read = |server: &Server, path: &str, token: Option<&str>| {
        let headers = token.map(bearer).unwrap_or_default();
        let (status, body, _) = server.send("GET", path, &headers, "");
        (status, body)
    };
    let app = run.application.clone();
    let app_path = app.replace(' ', "%20");
    let listed = |server: &Server| read(server, "/descriptor/application", Some(READ_TOKEN)).1;

    // A 300 KiB fragment: 413 before it is decoded, nothing written.
    let big = |size: usize| {
        let head = "web:\n  image: busybox\n  environment:\n    BIG: \"";
        let tail = "\"\n";
        format!("{head}{}{tail}", "a".repeat(size - head.len() - tail.len()))
    };
    let body = |fragment: &str| {
        json!({
            "fragment": base64::engine::general_purpose::STANDARD.encode(fragment),
            "applications": [&app],
            "releases": ["rel"],
        })
        .to_string()
    };
    let mut headers = bearer(TOKEN);
    headers.push(("Content-Type", "application/json".into()));
    let (status, answer) = send_tolerant(&server, "PUT", "/fragment", &headers, &body(&big(300 * 1024)));
    assert_eq!(status, 413, "{answer}");
    // Just over the cap, inside the body's allowance for the JSON around it:
    // 413 too, from the fragment's size.
    let (status, answer) = send_tolerant(&server, "PUT", "/fragment", &headers, &body(&big(256 * 1024 + 1)));
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("registry.max_fragment_bytes"), "{answer}");
    // At the cap exactly: accepted (in another application, to keep this
    // one empty for now).
    let (status, answer) = put(&server, TOKEN, &big(256 * 1024), &["TLO big"], &["rel"]);
    assert_eq!(status, 201, "{answer}");

    // 51 services: 422 naming the cap and its key; nothing written.
    let many: String = (0..51).map(|i| format!("s{i}:\n  image: busybox\n")).collect();
    let (status, answer) = put(&server, TOKEN, &many, &[&app], &["rel"]);
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(message.contains("51") && message.contains("50") && message.contains("registry.max_services"), "{answer}");
    assert_eq!(listed(&server), "[\"TLO big\"]", "nothing was written for the refused fragments");
    let fifty: String = (0..50).map(|i| format!("s{i}:\n  image: busybox\n")).collect();
    assert_eq!(put(&server, TOKEN, &fifty, &["TLO fifty"], &["rel"]).0, 201, "50 services are fine");

    // A version published by `build`, then one by `tlo`: each names its
    // token in the versions list.
    let fragment = format!("web:\n  image: {FIXTURE_IMAGE}\n  environment: {{MARK: read-marker}}\n");
    assert_eq!(put(&server, TOKEN, &fragment, &[&app, "TLO GE"], &["rel"]).0, 201);
    assert_eq!(put(&server, TLO_TOKEN, "other:\n  image: busybox\n", &["TLO GE"], &["rel"]).0, 201);
    let versions: Value =
        serde_json::from_str(&read(&server, "/descriptor/application/TLO%20GE/rel", Some(READ_TOKEN)).1).unwrap();
    assert_eq!(versions[0]["published_by"], "build", "{versions}");
    assert_eq!(versions[1]["published_by"], "tlo", "{versions}");
    assert!(!versions.to_string().contains(TOKEN) && !versions.to_string().contains(TLO_TOKEN), "names, not tokens");

    // Reads need a read or publishing token.
    let descriptor = format!("/descriptor/application/{app_path}/rel/1");
    for path in ["/descriptor/application", &format!("/descriptor/application/{app_path}"), &descriptor] {
        let (status, body) = read(&server, path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(!body.contains("read-marker"), "{body}");
        assert_eq!(read(&server, path, Some("wrong")).0, 401, "{path}");
        assert_eq!(read(&server, path, Some(READ_TOKEN)).0, 200, "{path}");
        assert_eq!(read(&server, path, Some(TOKEN)).0, 200, "a publishing token reads too: {path}");
    }
    let (status, body) = read(&server, &descriptor, Some(READ_TOKEN));
    assert_eq!(status, 200);
    assert!(body.contains("read-marker"), "{body}");
    // A token limited to `TLO *` reads only those, and lists only those.
    assert_eq!(read(&server, &descriptor, Some(TLO_READ_TOKEN)).0, 403);
    assert_eq!(read(&server, "/descriptor/application/TLO%20GE/rel/1", Some(TLO_READ_TOKEN)).0, 200);
    let visible: Value =
        serde_json::from_str(&read(&server, "/descriptor/application", Some(TLO_READ_TOKEN)).1).unwrap();
    assert_eq!(visible, json!(["TLO GE", "TLO big", "TLO fifty"]));

    // If-None-Match: a weak tag, a list, `*` match; another tag does not.
    let (_, got, _, _) = server.exchange("GET", &descriptor, &bearer(READ_TOKEN), "");
    let etag = got.iter().find(|(k, _)| k == "etag").map(|(_, v)| v.clone()).expect("an ETag");
    for (field, expected) in [
        (etag.clone(), 304),
        (format!("W/{etag}"), 304),
        (format!("\"sha256:0000\", W/\"x\", {etag}"), 304),
        ("*".to_string(), 304),
        ("\"sha256:0000\", W/\"x\"".to_string(), 200),
    ] {
        let mut headers = bearer(READ_TOKEN);
        headers.push(("If-None-Match", field.clone()));
        let (status, answer, _) = server.send("GET", &descriptor, &headers, "");
        assert_eq!(status, expected, "If-None-Match: {field}: {answer}");
    }
    let mut headers = bearer(READ_TOKEN);
    headers.push(("If-None-Match", "*".into()));
    let missing = format!("/descriptor/application/{app_path}/rel/9");
    assert_eq!(server.send("GET", &missing, &headers, "").0, 404, "`*` matches only what exists");

    // The client resolves with a read token, from the config or the
    // environment; without one it is refused (exit 4).
    let url = format!("http://{}", server.addr);
    let client = run.write(
        "client.yaml",
        &format!(
            "labels: {{dockmaster.test-run: \"{}\"}}\nstate_dir: \"{}\"\nregistry:\n  url: \"{url}\"\n  \
             read_token_env: DM_CLIENT_READ\n",
            run.id,
            run.dir().join("client-state").display()
        ),
    );
    let reference = format!("{app}/rel/1");
    let out = run.dockmaster_with_env(
        ["config", &reference],
        &[("DOCKMASTER_CONFIG", client.as_str()), ("DM_CLIENT_READ", READ_TOKEN)],
    );
    out.assert_exit(0);
    out.check(out.stdout.contains("read-marker"), "the descriptor came from the registry with the token");
    let bare = run.write(
        "bare.yaml",
        &format!(
            "labels: {{dockmaster.test-run: \"{}\"}}\nstate_dir: \"{}\"\nregistry:\n  url: \"{url}\"\n",
            run.id,
            run.dir().join("bare-state").display()
        ),
    );
    let out = run.dockmaster_with_env(["config", &reference], &[("DOCKMASTER_CONFIG", bare.as_str())]);
    out.assert_exit(4);
    out.check(out.stderr.contains("DOCKMASTER_REGISTRY_READ_TOKEN"), "says which token to set");
    let out = run.dockmaster_with_env(
        ["config", &reference],
        &[("DOCKMASTER_CONFIG", bare.as_str()), ("DOCKMASTER_REGISTRY_READ_TOKEN", READ_TOKEN)],
    );
    out.assert_exit(0);
    out.check(out.stdout.contains("read-marker"), "DOCKMASTER_REGISTRY_READ_TOKEN is sent");
    let options = run.dockmaster_with_env(
        ["options", "applications"],
        &[("DOCKMASTER_CONFIG", client.as_str()), ("DM_CLIENT_READ", READ_TOKEN)],
    );
    options.assert_exit(0);
    options.check(options.stdout.contains(&app), "the lists are read with the token too");

    // Every refused publish is counted by status.
    assert_eq!(put(&server, "wrong", &fragment, &[&app], &["rel"]).0, 401);
    assert_eq!(put(&server, TLO_TOKEN, &fragment, &["Shop"], &["rel"]).0, 403);
    let (_, metrics) = get(&server, "/metrics");
    for line in [
        "dockmaster_registry_refused_total{status=\"401\"} 1",
        "dockmaster_registry_refused_total{status=\"403\"} 1",
        "dockmaster_registry_refused_total{status=\"413\"} 2",
        "dockmaster_registry_refused_total{status=\"422\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // The assembled descriptor's cap: a fragment that would make it too
    // large is refused with 422 naming the key, and nothing is written.
    let _ = server.child.kill();
    let _ = server.child.wait();
    let mut capped = env.to_vec();
    capped.push(("DOCKMASTER__registry__max_descriptor_bytes", "400"));
    server = Server::start(&run, &capped);
    let wide = format!("wide:\n  image: busybox\n  environment: {{PAD: \"{}\"}}\n", "p".repeat(400));
    let (status, answer) = put(&server, TOKEN, &wide, &[&app], &["rel"]);
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("registry.max_descriptor_bytes"), "{answer}");
    let versions: Value =
        serde_json::from_str(&read(&server, &format!("/descriptor/application/{app_path}/rel"), Some(READ_TOKEN)).1)
            .unwrap();
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "nothing was written: {versions}");
    let (_, metrics) = get(&server, "/metrics");
    assert!(metrics.contains("dockmaster_registry_refused_total{status=\"422\"} 1"), "{metrics}");
}

#[test]
fn an_unknown_application_is_not_found_and_a_missing_token_stops_serve_before_it_listens() {
    let Some(run) = TestRun::start("registry-edges") else { return };
    registry_config(&run);
    let server = Server::start(&run, ENV);
    let (status, body) = get(&server, "/descriptor/application/No%20Such%20App");
    assert_eq!(status, 404, "an unknown application, as an unknown release: {body}");
    drop(server);

    // Without DM_REG_TOKEN the configuration is refused before `listening`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dockmaster"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DOCKMASTER_CONFIG", &run.config)
        .env("DM_REG_TLO", TLO_TOKEN)
        .env_remove("DM_REG_TOKEN")
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("listening"), "nothing claimed to listen: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("DM_REG_TOKEN"), "the missing variable is named");
}

/// `(application, version, fragment, service, key, reference)` of each
/// warning in a `warnings` list.
fn warnings_of(list: &Value) -> Vec<(String, i64, i64, String, String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list of warnings: {list}"))
        .iter()
        .map(|w| {
            let text = |k: &str| w[k].as_str().unwrap_or_else(|| panic!("{k} in {w}")).to_string();
            assert!(!text("message").is_empty(), "{w}");
            let number = |k: &str| w[k].as_i64().unwrap_or_else(|| panic!("{k} in {w}"));
            (
                text("application"),
                number("version"),
                number("fragment"),
                text("service"),
                text("key"),
                text("reference"),
            )
        })
        .collect()
}

fn versions_json(server: &Server, app_path: &str) -> Value {
    let (status, body) = get(server, &format!("/descriptor/application/{app_path}/Milestone"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn publish_warns_of_references_no_fragment_defines_and_strict_refuses_them_writing_nothing() {
    let Some(run) = TestRun::start("registry-lint") else { return };
    registry_config(&run);
    let server = Server::start(&run, ENV);
    let apps = ["TLO GE", "TLO EE"];
    let (status, answer) = put(&server, TOKEN, &example("transmission.yml"), &apps, &["Milestone"]);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["warnings"], json!([]), "transmission references only its own services");
    assert_eq!(answer["versions"][0]["warnings"], json!([]));

    // plex's `volumes_from: [plex-data, bittorrent-sync-data]`: no fragment
    // defines the second. Strict: refused with every warning, nothing
    // stored for either application.
    let (status, refused) =
        put_to(&server, "/fragment?strict=true", TOKEN, &example("plex.yml"), &apps, &["Milestone"]);
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("nothing was published"), "{refused}");
    let seed = |app: &str, version: i64, fragment: i64| {
        (
            app.to_string(),
            version,
            fragment,
            "plex".to_string(),
            "volumes_from[1]".to_string(),
            "bittorrent-sync-data".to_string(),
        )
    };
    assert_eq!(warnings_of(&refused["warnings"]), vec![seed("TLO GE", 2, 2), seed("TLO EE", 2, 2)]);
    for app in ["TLO%20GE", "TLO%20EE"] {
        let versions = versions_json(&server, app);
        assert_eq!(versions.as_array().map(Vec::len), Some(1), "the store is unchanged: {versions}");
        assert_eq!(get(&server, &format!("/descriptor/application/{app}/Milestone/2")).0, 404);
    }
    let (status, answer) =
        put_to(&server, "/fragment?strict=maybe", TOKEN, &example("plex.yml"), &apps, &["Milestone"]);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(versions_json(&server, "TLO%20GE").as_array().map(Vec::len), Some(1));

    // By default: published, with the warning in the answer and the list.
    let (status, answer) = put(&server, TOKEN, &example("plex.yml"), &apps, &["Milestone"]);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(warnings_of(&answer["warnings"]), vec![seed("TLO GE", 2, 2), seed("TLO EE", 2, 2)]);
    let message = answer["warnings"][0]["message"].as_str().unwrap();
    assert!(message.contains("must exist on the engine"), "{message}");
    assert_eq!(answer["versions"][0]["warnings"][0]["reference"], "bittorrent-sync-data", "{answer}");
    // mysql's own references resolve; version 3 still carries plex's,
    // attributed to the fragment of version 2.
    let (status, answer) = put(&server, TOKEN, &example("mysql.yml"), &apps, &["Milestone"]);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(warnings_of(&answer["warnings"]), vec![seed("TLO GE", 3, 2), seed("TLO EE", 3, 2)]);
    // A fragment may reference what an earlier fragment defines (refused
    // before, as the fragment alone was checked); what none defines is a
    // warning.
    let (status, answer) =
        put(&server, TOKEN, "web:\n  image: busybox\n  links: [mysql, ghost]\n", &["TLO GE"], &["Milestone"]);
    assert_eq!(status, 201, "{answer}");
    let mut expected = vec![seed("TLO GE", 4, 2)];
    expected.push(("TLO GE".into(), 4, 4, "web".into(), "links[1]".into(), "ghost".into()));
    assert_eq!(warnings_of(&answer["warnings"]), expected);

    let versions = versions_json(&server, "TLO%20GE");
    let count = |i: usize| versions[i]["warnings"].as_array().map(Vec::len);
    assert_eq!((count(0), count(1), count(2), count(3)), (Some(0), Some(1), Some(1), Some(2)), "{versions}");
    assert_eq!(versions[1]["warnings"][0]["fragment"], 2, "{versions}");

    // `dockmaster publish` prints them on stderr and exits 0; `--strict`
    // exits 3 listing them, and publishes nothing.
    let url = format!("http://{}", server.addr);
    let fragment = run.write("api.yml", "api:\n  image: busybox\n  volumes_from: [shared-data]\n");
    let publish = |extra: &[&str]| {
        let mut args =
            vec!["publish", &fragment, "--application", "TLO EE", "--release", "Milestone", "--registry", &url];
        args.extend_from_slice(extra);
        run.dockmaster_with_env(args, &[("DOCKMASTER_REGISTRY_TOKEN", TOKEN)])
    };
    let strict = publish(&["--strict"]);
    strict.assert_exit(3);
    strict.check(strict.stderr.contains("\"shared-data\""), "names the reference");
    strict.check(strict.stderr.contains("bittorrent-sync-data"), "lists every warning");
    assert_eq!(versions_json(&server, "TLO%20EE").as_array().map(Vec::len), Some(3), "nothing published");
    let out = publish(&[]);
    out.assert_exit(0);
    out.check(out.stdout.starts_with("TLO EE/Milestone/4 sha256:"), "prints the new version");
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("dockmaster: warning: ")).collect();
    out.check(lines.len() == 2, "one line per warning");
    out.check(lines.iter().any(|l| l.contains("service \"api\"") && l.contains("volumes_from[0]")), "api's");
}

#[test]
fn a_refused_fragment_names_its_line_and_every_get_route_answers_404_for_an_unknown_application_or_release() {
    let Some(run) = TestRun::start("registry-lines") else { return };
    registry_config(&run);
    let server = Server::start(&run, ENV);
    // The loader's refusal names the line, in v1 as in the Specification;
    // a YAML syntax error the line and column.
    for (fragment, line, column) in [
        ("plex:\n  image: x\n  restart: always\n  imagee: y\n", 4, None),
        ("services:\n  web:\n    image: x\n    imagee: y\n", 4, None),
        ("web:\n  image: x\n  ports:\n    - \"not-a-port\"\n", 4, None),
        ("web:\n  image: x\n  ports: [80\n", 4, Some(1)),
    ] {
        let (status, answer) = put(&server, TOKEN, fragment, &["TLO GE"], &["Milestone"]);
        assert_eq!(status, 422, "{fragment}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("the fragment:{line}:")), "{fragment}: {error}");
        assert_eq!(answer["line"], line, "{answer}");
        assert_eq!(answer["column"].as_i64(), column, "{answer}");
    }
    assert_eq!(get(&server, "/descriptor/application").1, "[]", "nothing was written");

    let (status, answer) = put(&server, TOKEN, "web: {image: busybox}\n", &["TLO GE"], &["Milestone"]);
    assert_eq!(status, 201, "{answer}");
    for path in [
        "/descriptor/application/No%20App",
        "/descriptor/application/No%20App?format=rundeck",
        "/descriptor/application/No%20App/Milestone",
        "/descriptor/application/No%20App/Milestone?format=rundeck&env=default",
        "/descriptor/application/No%20App/Milestone/1",
        "/descriptor/application/No%20App/Milestone/latest",
        "/descriptor/application/No%20App/Milestone/not-a-number",
        "/descriptor/application/TLO%20GE/Nope",
        "/descriptor/application/TLO%20GE/Nope?format=rundeck",
        "/descriptor/application/TLO%20GE/Nope?format=rundeck&env=no-such-env",
        "/descriptor/application/TLO%20GE/Nope/1",
        "/descriptor/application/TLO%20GE/Nope/latest",
        "/descriptor/application/TLO%20GE/Nope/not-a-number",
        "/descriptor/application/TLO%20GE/Milestone/2",
    ] {
        let (status, body) = get(&server, path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string(), "{path}: {body}");
    }
    let (status, body) = get(&server, "/descriptor/application/TLO%20GE/Milestone/not-a-number");
    assert_eq!(status, 400, "a known release, a version that is no number: {body}");
    let (status, body) = get(&server, "/descriptor/application/TLO%20GE/Milestone?format=rundeck&env=no-such-env");
    assert_eq!(status, 400, "an environment the configuration does not name: {body}");
    assert!(body.contains("no-such-env"), "{body}");
}

#[test]
fn the_rundeck_version_list_selects_the_version_running_in_the_environment_asked_for() {
    let Some(run) = TestRun::start_named("registry-env") else { return };
    registry_config(&run);
    let server = Server::start(&run, ENV);
    let app = run.application.clone();
    for marker in ["one", "two"] {
        let fragment = format!(
            "web:\n  image: {FIXTURE_IMAGE}\n  command: [\"sleep\", \"1000\"]\n  environment: {{MARK: {marker}}}\n"
        );
        assert_eq!(put(&server, TOKEN, &fragment, &[&app], &["rel"]).0, 201);
    }
    let list = |query: &str| -> Vec<(String, bool)> {
        let (status, body) = get(&server, &format!("/descriptor/application/{app}/rel?format=rundeck{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| (c["value"].as_str().unwrap().to_string(), c["selected"].as_bool().unwrap()))
            .collect()
    };
    let pair = |v: &str, selected: bool| (v.to_string(), selected);
    assert_eq!(list(""), vec![pair("2", true), pair("1", false)], "without env: the newest");
    assert_eq!(list("&env=default"), vec![pair("2", false), pair("1", false)], "nothing runs: none");

    // Deploy version 1 from the registry, recording in the trail `serve`
    // reads (the same state_dir).
    let client = run.write(
        "client.yaml",
        &format!(
            "labels: {{dockmaster.test-run: \"{}\"}}\nstate_dir: \"{}\"\nregistry:\n  url: \"http://{}\"\n",
            run.id,
            run.dir().join("state").display(),
            server.addr
        ),
    );
    run.dockmaster_with_env(
        ["deploy", &run.named("1"), "--timeout", common::DEPLOY_TIMEOUT],
        &[("DOCKMASTER_CONFIG", client.as_str())],
    )
    .assert_exit(0);
    assert_eq!(list("&env=default"), vec![pair("2", false), pair("1", true)], "the running version");
    assert_eq!(list(""), vec![pair("2", true), pair("1", false)], "without env, still the newest");
}

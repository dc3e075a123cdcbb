//! `dockmaster serve` over loopback: health, readiness against the real
//! engine, and Rundeck's option lists in a shape Rundeck accepts, cascading
//! by application and release.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The real binary serving on a free loopback port; killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(descriptors: &std::path::Path, state: &std::path::Path) -> Server {
        let config = state.join("config.yml");
        std::fs::write(&config, format!("descriptors: {}\nstate_dir: {}\n", descriptors.display(), state.display()))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dockmaster"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DOCKMASTER_CONFIG", &config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dockmaster serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_string();
        Server { child, addr }
    }

    /// GET a path; returns the status code and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rundeck accepts `["a"]`, `{"Label":"value"}` or
/// `[{"name":…, "value":…, "selected"?: bool}]`; we promise the last.
fn names_in_rundeck_shape(body: &str) -> Vec<(String, bool)> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name is a string");
            assert_eq!(c["value"].as_str(), Some(name), "value mirrors name: {c}");
            (name.to_string(), c.get("selected").and_then(Value::as_bool).unwrap_or(false))
        })
        .collect()
}

#[test]
fn option_lists_cascade_by_application_and_release_and_names_with_spaces_round_trip() {
    if !common::engine_or_skip("serve-options") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    for (app, rel, versions) in [("TLO GE", "Milestone", &["1", "2", "10"][..]), ("TLO EE", "Hotfix", &["1"][..])] {
        let dir = root.path().join(app).join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        for v in versions {
            std::fs::write(dir.join(format!("{v}.yml")), "services:\n  a:\n    image: busybox\n").unwrap();
        }
    }
    let server = Server::start(root.path(), state.path());

    let (status, body) = server.get("/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/readyz");
    assert_eq!(status, 200, "the real engine answers: {body}");

    let (status, body) = server.get("/options/applications");
    assert_eq!(status, 200);
    assert_eq!(names_in_rundeck_shape(&body), vec![("TLO EE".into(), false), ("TLO GE".into(), false)]);

    let (status, body) = server.get("/options/releases?application=TLO%20GE");
    assert_eq!(status, 200, "{body}");
    assert_eq!(names_in_rundeck_shape(&body), vec![("Milestone".into(), false)]);

    let (status, body) = server.get("/options/versions?application=TLO+GE&release=Milestone");
    assert_eq!(status, 200, "{body}");
    let versions: Vec<String> = names_in_rundeck_shape(&body).into_iter().map(|(n, _)| n).collect();
    assert_eq!(versions, vec!["10", "2", "1"], "newest first");

    let (status, body) = server.get("/options/versions?application=TLO%20GE");
    assert_eq!(status, 400, "a missing release is a client error: {body}");
    assert!(body.contains("release"));
    let (status, _) = server.get("/options/releases?application=Nope");
    assert_eq!(status, 404);

    // SIGTERM stops it cleanly.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = server.child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = exited.expect("serve stops within 10 s of SIGTERM");
    assert!(status.success(), "serve exits 0 on SIGTERM, got {status:?}");
}

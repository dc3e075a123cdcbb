//! What dockmaster asks the engine, counted at the engine's socket by the
//! benchmark's counting proxy (`bench/engine_proxy.py`, run with python3):
//! a deploy looks at its target once, and a no-op redeploy of a settled
//! stack reads it from that one look, inspecting no container.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TestRun, FIXTURE_IMAGE};

/// The counting proxy in front of the engine's socket, for one test.
struct Proxy {
    child: Child,
    socket: PathBuf,
}

impl Proxy {
    fn start(dir: &Path) -> Proxy {
        let socket = dir.join("engine.sock");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/engine_proxy.py");
        let child = Command::new("python3")
            .arg(&script)
            .arg("--listen")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs bench/engine_proxy.py (install python3)");
        assert!(
            common::wait_until(Duration::from_secs(20), || socket.exists()),
            "the counting proxy did not open {}",
            socket.display()
        );
        Proxy { child, socket }
    }

    /// `DOCKER_HOST` for a peer that talks through the proxy.
    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The requests counted since the last reset, by method and path
    /// (ids folded to `{id}`), and zeroes the counts.
    fn take(&self) -> BTreeMap<String, u64> {
        let mut stream = UnixStream::connect(&self.socket).expect("connect to the counting proxy");
        stream.write_all(b"POST /_proxy/reset HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let counts: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
        serde_json::from_value(counts["by_request"].clone()).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_no_op_redeploy_lists_the_target_once_and_inspects_no_container() {
    let Some(run) = TestRun::start("requests") else { return };
    let service = |name: &str| {
        format!(
            "  {name}:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; touch /ready; \
             while true; do sleep 1; done\"]\n    healthcheck:\n      test: [\"CMD\", \"test\", \"-f\", \"/ready\"]\n      \
             interval: 1s\n      timeout: 2s\n      retries: 30\n"
        )
    };
    let file = run.compose(&format!("services:\n{}{}{}", service("a"), service("b"), service("c")));
    let proxy = Proxy::start(run.dir());
    let through_proxy = [("DOCKER_HOST", proxy.host())];
    let env: Vec<(&str, &str)> = through_proxy.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // The first deploy, counted too: one look at the target (the list
    // calls), however many stages ask about it.
    let first = run.dockmaster_with_env(["deploy", file.as_str(), "--timeout", common::DEPLOY_TIMEOUT], &env);
    first.assert_exit(0);
    let cold = proxy.take();
    assert_eq!(cold.get("GET /containers/json"), Some(&1), "one container list per deploy: {cold:#?}");
    assert_eq!(cold.get("GET /networks"), Some(&1), "one network list per deploy: {cold:#?}");

    // The same stack again: nothing changes, and the verdict comes from
    // the list the deploy made anyway.
    let again = run
        .dockmaster_with_env(["deploy", file.as_str(), "--timeout", common::DEPLOY_TIMEOUT, "--output", "json"], &env);
    again.assert_exit(0);
    let report = again.json();
    report.check(report.verdict() == "healthy", "the settled stack is reported healthy");
    let noop = proxy.take();
    assert_eq!(noop.get("GET /containers/json"), Some(&1), "{noop:#?}");
    assert_eq!(noop.get("GET /containers/{id}/json"), None, "no container is inspected: {noop:#?}");
    assert_eq!(noop.get("GET /events"), None, "a settled stack needs no event stream: {noop:#?}");
    let total: u64 = noop.values().sum();
    assert!(total <= 6, "a no-op of three services asks at most 6 things, not one per service: {noop:#?}");
}

//! One redaction at the boundary: canary secrets placed wherever a secret
//! can enter (a Rundeck secret in `entrypoint` and `healthcheck`, a
//! secret-looking environment value a failing service prints, a secret in
//! a loader error) never appear in the step's output, the webhook posts or
//! the audit database. The real binary, the real engine.

mod common;
#[path = "common/http.rs"]
mod http;

use common::{TestRun, FIXTURE_IMAGE};
use http::Sink;

const RUNDECK_CANARY: &str = "Rundeck-Canary-Secret-8812";
const ENV_CANARY: &str = "Env-Canary-Root-5150";

/// Every byte a thief of the audit database would read.
fn audit_bytes(run: &TestRun) -> String {
    let mut bytes = Vec::new();
    for name in ["audit.db", "audit.db-wal"] {
        bytes.extend(std::fs::read(run.dir().join("state").join(name)).unwrap_or_default());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A Rundeck step of `file` with the Rundeck canary as its secret variable.
fn step(run: &TestRun, file: &str) -> common::CliOutput {
    run.dockmaster_with_env(
        ["rundeck"],
        &[
            ("RD_JOB_USERNAME", "alice"),
            ("RD_JOB_EXECID", "31"),
            ("RD_CONFIG_DESCRIPTOR", file),
            ("RD_CONFIG_TIMEOUT", "30s"),
            ("RD_CONFIG_SECRET_VARIABLE", "DB_PASSWORD"),
            ("RD_CONFIG_SECRET_OPTION", RUNDECK_CANARY),
        ],
    )
}

#[test]
fn canary_secrets_never_leave_through_logs_errors_webhooks_or_the_audit_trail() {
    let Some(run) = TestRun::start("redact") else { return };
    let sink = Sink::start();
    run.add_config(&format!(
        "notify:\n  webhooks:\n    - {{name: tool, kind: json, url: \"{}\"}}\n    - {{name: chat, kind: slack, url: \"{}\"}}\n",
        sink.url("/json"),
        sink.url("/slack")
    ));

    // A failing service that prints a secret-looking environment value and
    // carries the Rundeck secret in its entrypoint and healthcheck.
    let failing = run.compose(&format!(
        "services:\n  db:\n    image: {FIXTURE_IMAGE}\n    entrypoint: [\"sh\", \"-c\", \"echo root=$$MYSQL_ROOT_PASSWORD \
         db=${{DB_PASSWORD}}; exit 3\"]\n    environment:\n      MYSQL_ROOT_PASSWORD: {ENV_CANARY}\n    \
         healthcheck: {{test: [\"CMD\", \"sh\", \"-c\", \"test ${{DB_PASSWORD}} = x\"], interval: 1s}}\n"
    ));
    let out = step(&run, &failing);
    out.assert_exit(1);
    out.check(out.stdout.contains("root=********"), "the log tail shows the masked value");
    let _ = common::docker(&["rm", "-f", &run.container("db")]);

    // A secret in a loader error: the interpolated port is invalid.
    let broken =
        run.compose(&format!("services:\n  web:\n    image: {FIXTURE_IMAGE}\n    ports: [\"${{DB_PASSWORD}}:80\"]\n"));
    let refused = step(&run, &broken);
    refused.assert_exit(3);
    refused.check(refused.stderr.contains("********"), "the error names the place with the value masked");

    // Both requests posted to both webhooks.
    assert!(common::wait_until(std::time::Duration::from_secs(30), || sink.count("/") >= 4), "4 webhook posts");
    let posts: Vec<String> = sink.seen.lock().unwrap().iter().map(|s| s.body.clone()).collect();
    let audit = audit_bytes(&run);
    for canary in [RUNDECK_CANARY, ENV_CANARY] {
        for (what, text) in [
            ("the failing step's stdout", &out.stdout),
            ("the failing step's stderr", &out.stderr),
            ("the refused step's stdout", &refused.stdout),
            ("the refused step's stderr", &refused.stderr),
            ("the audit database", &audit),
        ] {
            assert!(!text.contains(canary), "{canary} leaked into {what}:\n{text}");
        }
        for post in &posts {
            assert!(!post.contains(canary), "{canary} leaked into a webhook post: {post}");
        }
    }
}

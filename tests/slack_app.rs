//! Slack in app mode, end to end: the real `dockmaster serve`, the real
//! engine, a throwaway slapd, and a local server playing Slack (the Web
//! API's chat.postMessage and chat.update, `response_url`) as Slack
//! documents it: a command's message in the channel that shows progress
//! and ends with buttons, the report in its thread, and buttons that come
//! back signed and run through identity, access and audit.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/slapd.rs"]
mod slapd;

use std::time::Duration;

use common::{wait_until, TestRun, FIXTURE_IMAGE};
use hmac::{Hmac, Mac};
use http::{Seen, Server, Sink, SLACK_BOT};
use serde_json::Value;
use sha2::Sha256;
use slapd::Slapd;

const SECRET: &str = "slack-signing-secret-for-app-tests";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn signed(body: String, ts: i64) -> (Vec<(&'static str, String)>, String) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded".to_string()),
        ("X-Slack-Request-Timestamp", ts.to_string()),
        ("X-Slack-Signature", format!("v0={}", hex::encode(mac.finalize().into_bytes()))),
    ];
    (headers, body)
}

fn slash(user: &str, text: &str, response_url: &str) -> (Vec<(&'static str, String)>, String) {
    let body = serde_urlencoded::to_string([
        ("channel_id", "C2147483705"),
        ("channel_name", "ops"),
        ("user_id", &format!("U-{user}")),
        ("user_name", user),
        ("command", "/dockmaster"),
        ("text", text),
        ("response_url", response_url),
    ])
    .unwrap();
    signed(body, now())
}

/// A button press as Slack sends it (`block_actions`).
fn press(user: &str, ts: &str, button: &Value, response_url: &str) -> (Vec<(&'static str, String)>, String) {
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": format!("U-{user}"), "username": user},
        "channel": {"id": "C2147483705", "name": "ops"},
        "container": {"type": "message", "message_ts": ts, "channel_id": "C2147483705"},
        "message": {"ts": ts},
        "response_url": response_url,
        "actions": [{"action_id": button["action_id"], "value": button["value"], "type": "button"}],
    });
    signed(serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap(), now())
}

fn version(run: &TestRun, v: &str, command: &str) {
    run.write(
        &run.named_file(v),
        &format!(
            "name: {}\nservices:\n  app:\n    image: {FIXTURE_IMAGE}\n    restart: always\n    \
             command: [\"sh\", \"-c\", \"{command}\"]\n    environment: {{VERSION: \"{v}\"}}\n",
            run.project
        ),
    );
}

/// Every Web API call so far, in order.
fn calls(sink: &Sink, method: &str) -> Vec<Value> {
    let path = format!("/slack-api/{method}");
    sink.seen.lock().unwrap().iter().filter(|s| s.path == path).map(Seen::json).collect()
}

/// The last `chat.update` of message `ts` whose text contains `word`.
fn wait_for_update(sink: &Sink, ts: &str, word: &str) -> Value {
    let found = |sink: &Sink| {
        calls(sink, "chat.update").into_iter().rev().find(|u| u["ts"] == ts && u.to_string().contains(word))
    };
    assert!(
        wait_until(Duration::from_secs(90), || found(sink).is_some()),
        "no chat.update of {ts} says {word:?}: {:#?}",
        calls(sink, "chat.update")
    );
    found(sink).unwrap()
}

/// The message a command posted at the top level (no thread), the n-th.
fn top_message(sink: &Sink, n: usize) -> (String, Value) {
    assert!(
        wait_until(Duration::from_secs(90), || {
            calls(sink, "chat.postMessage").iter().filter(|m| m.get("thread_ts").is_none()).count() > n
        }),
        "no top-level message #{n}: {:#?}",
        sink.seen.lock().unwrap()
    );
    let posts = calls(sink, "chat.postMessage");
    let message = posts.into_iter().filter(|m| m.get("thread_ts").is_none()).nth(n).unwrap();
    // The stand-in numbers its answers; find this post's ts from the log.
    let seen = sink.seen.lock().unwrap().clone();
    let index = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.path == "/slack-api/chat.postMessage" && s.json().get("thread_ts").is_none())
        .nth(n)
        .map(|(i, _)| i)
        .unwrap();
    (format!("1700000000.{:06}", index + 1), message)
}

/// The message `ts` as last posted or updated with `word` in it (a plan
/// posts its message once, at the end).
fn wait_for_update_or_post(sink: &Sink, ts: &str, word: &str) -> Value {
    let seen = || -> Option<Value> {
        let log = sink.seen.lock().unwrap().clone();
        log.iter().enumerate().rev().find_map(|(i, s)| {
            let body = s.json();
            let own = (s.path == "/slack-api/chat.update" && body["ts"] == ts)
                || (s.path == "/slack-api/chat.postMessage" && format!("1700000000.{:06}", i + 1) == ts);
            (own && body.to_string().contains(word)).then_some(body)
        })
    };
    assert!(wait_until(Duration::from_secs(90), || seen().is_some()), "{ts} never said {word:?}");
    seen().unwrap()
}

fn button(update: &Value, action: &str) -> Option<Value> {
    update["blocks"]
        .as_array()?
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["action_id"] == action)
}

#[test]
fn app_mode_shows_progress_threads_the_report_and_its_buttons_run_through_access_and_audit() {
    let Some(run) = TestRun::start_named("slack-app") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    run.add_config(&format!(
        "descriptors: descriptors\n{}access:\n  rules:\n    - groups: [deployers]\n      \
         actions: [deploy, plan, status, rollback, history, approve]\n      descriptors: [\"**\"]\n\
         chat:\n  slack:\n    signing_secret_env: DM_SLACK_SECRET\n    bot_token_env: DM_SLACK_BOT\n    \
         api_base: \"{}\"\n  users:\n    table: {{\"slack:U-alice\": alice, \"slack:U-bob\": bob}}\n",
        slapd.config_section(),
        sink.url("/slack-api")
    ));
    let idle = "trap 'exit 0' TERM; while true; do sleep 1; done";
    version(&run, "1", idle);
    version(&run, "2", idle);
    version(&run, "3", "echo app-three-is-broken; exit 3");
    let server = Server::start(&run, &[("DM_SLACK_SECRET", SECRET), ("DM_SLACK_BOT", SLACK_BOT)]);
    let command = |user: &str, text: &str, path: &str| {
        let (headers, body) = slash(user, text, &sink.url(path));
        let (status, ack, took) = server.post("/chat/slack", &headers, &body);
        assert_eq!(status, 200, "{ack}");
        assert!(took < Duration::from_secs(3), "acknowledged within Slack's 3 s: {took:?}");
        assert!(ack.contains("ephemeral"), "{ack}");
    };

    // Version 1: the command's message appears, moves through its phases,
    // ends healthy; the report is in its thread.
    command("alice", &format!("deploy {}", run.named("1")), "/response/one");
    let (ts, first) = top_message(&sink, 0);
    let first = first.to_string();
    assert!(
        ["planned", "applying", "watching"].iter().any(|p| first.contains(p)),
        "the message appears once the deploy is planned, with its phase: {first}"
    );
    assert!(first.contains("asked by") && first.contains("alice"), "{first}");
    let done = wait_for_update(&sink, &ts, "HEALTHY");
    assert!(button(&done, "dockmaster.logs").is_some(), "{done}");
    assert!(button(&done, "dockmaster.rollback").is_none(), "no roll back on success: {done}");
    let phases: Vec<String> = calls(&sink, "chat.update").iter().map(|u| u["text"].to_string()).collect();
    assert!(phases.iter().any(|p| p.contains("applying") || p.contains("watching")), "progress: {phases:?}");
    assert!(wait_until(Duration::from_secs(30), || {
        calls(&sink, "chat.postMessage").iter().any(|m| m["thread_ts"] == ts.as_str() && m["attachments"].is_array())
    }));
    assert_eq!(sink.count("/response/one"), 0, "app mode answers in the channel, not at response_url");

    command("alice", &format!("deploy {}", run.named("2")), "/response/two");
    let (ts2, _) = top_message(&sink, 1);
    wait_for_update(&sink, &ts2, "HEALTHY");

    // Version 3 crashes: rolled back to 2, and the message offers Roll back.
    command("alice", &format!("deploy {}", run.named("3")), "/response/three");
    let (ts3, _) = top_message(&sink, 2);
    let failed = wait_for_update(&sink, &ts3, "FAILED");
    let rollback = button(&failed, "dockmaster.rollback").expect("a Roll back button on a failure");
    let logs = button(&failed, "dockmaster.logs").expect("a Show logs button");
    let running = run.container_id("app");
    assert!(common::inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default().contains("VERSION=2"));

    // Bob may not roll back: refused privately, audited, nothing changes.
    let (headers, body) = press("bob", &ts3, &rollback, &sink.url("/response/bob"));
    assert_eq!(server.post("/chat/slack/actions", &headers, &body).0, 200);
    let refused = sink.wait_for("/response/bob").json();
    assert_eq!(refused["response_type"], "ephemeral", "{refused}");
    assert!(refused["text"].as_str().unwrap_or("").contains("no access rule allows `rollback`"), "{refused}");
    // A replay of his press, and a forged one, are refused outright.
    assert_eq!(server.post("/chat/slack/actions", &headers, &body).0, 401, "a replayed press");
    let (mut forged, body) = press("alice", &ts3, &rollback, &sink.url("/response/forged"));
    forged[2].1 = format!("v0={}", "0".repeat(64));
    assert_eq!(server.post("/chat/slack/actions", &forged, &body).0, 401, "a forged press");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(run.container_id("app"), running, "the refused and forged presses changed nothing");
    assert_eq!(sink.count("/response/forged"), 0);

    // Show logs: the crashed service's lines, to the presser alone.
    let (headers, body) = press("alice", &ts3, &logs, &sink.url("/response/logs"));
    assert_eq!(server.post("/chat/slack/actions", &headers, &body).0, 200);
    let shown = sink.wait_for("/response/logs").json();
    assert_eq!(shown["response_type"], "ephemeral", "{shown}");

    // Alice may: the rollback runs as a typed one would, in the thread.
    let (headers, body) = press("alice", &ts3, &rollback, &sink.url("/response/alice"));
    assert_eq!(server.post("/chat/slack/actions", &headers, &body).0, 200);
    assert!(
        wait_until(Duration::from_secs(90), || {
            calls(&sink, "chat.postMessage")
                .iter()
                .any(|m| m["thread_ts"] == ts3.as_str() && m.to_string().contains("rollback"))
        }),
        "the rollback's report is in the failed deploy's thread: {:#?}",
        calls(&sink, "chat.postMessage")
    );
    assert!(wait_until(Duration::from_secs(30), || {
        common::inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default().contains("VERSION=1")
    }));

    // The trail: bob's refused press and alice's rollback, both from Slack
    // (the rollback's record lands when its watch has ended).
    let records = || -> Vec<Value> {
        let history = run.dockmaster_with_env(
            ["--user", "alice", "history", "--output", "json"],
            &[("DOCKMASTER_PASSWORD", slapd::USER_PASSWORD)],
        );
        history.assert_exit(0);
        serde_json::from_str(&history.stdout).unwrap()
    };
    let has = |records: &[Value], user: &str, action: &str, verdict: &str| {
        records
            .iter()
            .any(|r| r["user"] == user && r["action"] == action && r["verdict"] == verdict && r["origin"] == "slack")
    };
    assert!(
        wait_until(Duration::from_secs(60), || has(&records(), "alice", "rollback", "healthy")),
        "{:#?}",
        records()
    );
    assert!(has(&records(), "bob", "rollback", "denied"), "{:#?}", records());

    // A plan of a structural change that needs an approval offers Approve;
    // bob's press is refused, alice's records the approval.
    run.write(
        &run.named_file("4"),
        &format!(
            "name: {}\nservices:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n  \
             extra:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n",
            run.project
        ),
    );
    command("alice", &format!("plan {}", run.named("4")), "/response/plan");
    let (ts4, _) = top_message(&sink, 3);
    let planned = wait_for_update_or_post(&sink, &ts4, "services change");
    let approve = button(&planned, "dockmaster.approve").unwrap_or_else(|| panic!("an Approve button: {planned}"));
    let (headers, body) = press("bob", &ts4, &approve, &sink.url("/response/bob-approve"));
    assert_eq!(server.post("/chat/slack/actions", &headers, &body).0, 200);
    let refused = sink.wait_for("/response/bob-approve").json();
    assert_eq!(refused["response_type"], "ephemeral", "{refused}");
    let (headers, body) = press("alice", &ts4, &approve, &sink.url("/response/alice-approve"));
    assert_eq!(server.post("/chat/slack/actions", &headers, &body).0, 200);
    assert!(
        wait_until(Duration::from_secs(60), || has(&records(), "alice", "approve", "approved")
            || records().iter().any(|r| r["user"] == "alice" && r["action"] == "approve" && r["exit_code"] == 0)),
        "{:#?}",
        records()
    );
    assert!(records().iter().any(|r| r["user"] == "bob" && r["action"] == "approve" && r["verdict"] == "denied"));
    drop(server);
}

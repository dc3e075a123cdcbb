//! Chat ways in, end to end: the real `dockmaster serve` on loopback, the
//! real engine, a throwaway slapd, and a local HTTP server playing Slack's
//! `response_url`, Mattermost's and Discord's REST API.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/slapd.rs"]
mod slapd;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{TestRun, FIXTURE_IMAGE};
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use http::{Server, Sink};
use serde_json::Value;
use sha2::Sha256;
use slapd::Slapd;

const SLACK_SECRET: &str = "slack-signing-secret-for-tests";
const MATTERMOST_TOKEN: &str = "mattermost-token-for-tests";
const SERVE_ENV: &[(&str, &str)] =
    &[("DM_SLACK_SECRET", SLACK_SECRET), ("DM_MM_TOKEN", MATTERMOST_TOKEN), ("DM_DISCORD_BOT", "bot-token-for-tests")];

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A Slack slash command form, signed as Slack signs it.
fn slack_request(user: &str, text: &str, response_url: &str, ts: i64) -> (Vec<(&'static str, String)>, String) {
    slack_request_as(&format!("U-{user}"), user, text, response_url, ts)
}

/// [`slack_request`] with the user id and the user name given apart.
fn slack_request_as(
    user_id: &str,
    user: &str,
    text: &str,
    response_url: &str,
    ts: i64,
) -> (Vec<(&'static str, String)>, String) {
    let body = serde_urlencoded::to_string([
        ("team_id", "T0001"),
        ("team_domain", "example"),
        ("channel_id", "C2147483705"),
        ("channel_name", "ops"),
        ("user_id", user_id),
        ("user_name", user),
        ("command", "/dockmaster"),
        ("text", text),
        ("response_url", response_url),
        ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
        ("api_app_id", "A123456"),
    ])
    .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    let headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded".to_string()),
        ("X-Slack-Request-Timestamp", ts.to_string()),
        ("X-Slack-Signature", signature),
    ];
    (headers, body)
}

fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn discord_request(body: &Value, ts: i64) -> (Vec<(&'static str, String)>, String) {
    let body = body.to_string();
    let signature = discord_key().sign(format!("{ts}{body}").as_bytes());
    let headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("X-Signature-Timestamp", ts.to_string()),
        ("X-Signature-Ed25519", hex::encode(signature.to_bytes())),
    ];
    (headers, body)
}

/// A run with slapd, access rules, every chat platform, and descriptors
/// `<application>/rel/1` (healthy).
fn setup(run: &TestRun, slapd: &Slapd, sink: &Sink) {
    setup_with(run, slapd, sink, "");
}

/// [`setup`] with more lines for the `chat:` section.
fn setup_with(run: &TestRun, slapd: &Slapd, sink: &Sink, chat: &str) {
    let public_key = hex::encode(discord_key().verifying_key().to_bytes());
    run.add_config(&format!(
        "descriptors: descriptors\n{}access:\n  rules:\n    - groups: [deployers]\n      \
         actions: [deploy, plan, status, rollback, history, approve]\n      descriptors: [\"**\"]\n\
         chat:\n  slack: {{signing_secret_env: DM_SLACK_SECRET}}\n  mattermost: {{token_env: DM_MM_TOKEN}}\n  \
         discord:\n    application_id: \"4242\"\n    public_key: \"{public_key}\"\n    api_base: \"{}\"\n    bot_token_env: DM_DISCORD_BOT\n    guilds: [\"777\"]\n  \
         users:\n    table: {{\"discord:111\": alice, \"discord:333\": bob, \"slack:U-alice\": alice, \"slack:U-bob\": bob, \"slack:U-mallory\": mallory, \"mattermost:mm1\": alice}}\n{chat}",
        slapd.config_section(),
        sink.url("/api")
    ));
    let body = format!(
        "name: {}\nservices:\n  app:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n    \
         environment: {{DB_PASSWORD: chat-secret-value}}\n",
        run.project
    );
    run.write(&run.named_file("1"), &body);
}

#[test]
fn a_signed_slack_command_is_acknowledged_at_once_and_the_report_arrives_at_response_url() {
    let Some(run) = TestRun::start_named("chat-slack") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    setup(&run, &slapd, &sink);
    let server = Server::start(&run, SERVE_ENV);

    let (headers, body) =
        slack_request("alice", &format!("deploy {}", run.named("1")), &sink.url("/response/ok"), now());
    let (status, ack, took) = server.post("/chat/slack", &headers, &body);
    assert_eq!(status, 200, "{ack}");
    assert!(took < Duration::from_secs(3), "Slack waits 3000 ms for the acknowledgement; took {took:?}");
    let ack: Value = serde_json::from_str(&ack).unwrap();
    assert_eq!(ack["response_type"], "ephemeral");
    assert!(ack["text"].as_str().unwrap().contains(&format!("Working on `deploy {}`", run.named("1"))), "{ack}");

    let report = sink.wait_for("/response/ok");
    assert_eq!(report.method, "POST");
    let json = report.json();
    assert_eq!(json["response_type"], "in_channel", "{json}");
    let text = json.to_string();
    assert!(text.contains("app") && text.to_lowercase().contains("healthy"), "the report names the service: {text}");
    assert!(!text.contains("chat-secret-value"), "no secret in the report");
    assert_eq!(common::inspect(&run.container("app"), "{{.State.Running}}").as_deref(), Some("true"));

    // A replay of the same signed request is refused, and so are a bad
    // signature and a stale timestamp: nothing runs for any of them.
    let (status, _, _) = server.post("/chat/slack", &headers, &body);
    assert_eq!(status, 401, "a replayed request");
    // The same signature spelled in capitals is the same request.
    let mut shouted = headers.clone();
    shouted[2].1 = shouted[2].1.replace("v0=", "").to_uppercase();
    shouted[2].1 = format!("v0={}", shouted[2].1);
    assert_eq!(server.post("/chat/slack", &shouted, &body).0, 401, "a replay with upper-case hex digits");
    // A restart does not forget what was acted on.
    drop(server);
    let server = Server::start(&run, SERVE_ENV);
    assert_eq!(server.post("/chat/slack", &headers, &body).0, 401, "a replay after a restart");
    let (mut forged, body2) =
        slack_request("alice", &format!("deploy {}", run.named("1")), &sink.url("/response/forged"), now());
    forged[2].1 = format!("v0={}", "0".repeat(64));
    assert_eq!(server.post("/chat/slack", &forged, &body2).0, 401, "a bad signature");
    let (stale, body3) =
        slack_request("alice", &format!("deploy {}", run.named("1")), &sink.url("/response/stale"), now() - 600);
    assert_eq!(server.post("/chat/slack", &stale, &body3).0, 401, "a stale timestamp");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sink.count("/response/forged") + sink.count("/response/stale"), 0, "nothing ran");

    // A user the rules do not allow, and one the directory does not know,
    // are told why; both are audited.
    let (headers, body) =
        slack_request("bob", &format!("deploy {}", run.named("1")), &sink.url("/response/bob"), now());
    assert_eq!(server.post("/chat/slack", &headers, &body).0, 200);
    let bob = sink.wait_for("/response/bob").json();
    assert_eq!(bob["response_type"], "ephemeral");
    assert!(bob["text"].as_str().unwrap().contains("no access rule allows `deploy`"), "{bob}");
    let (headers, body) =
        slack_request("mallory", &format!("status {}", run.named("")), &sink.url("/response/mallory"), now());
    assert_eq!(server.post("/chat/slack", &headers, &body).0, 200);
    let mallory = sink.wait_for("/response/mallory").json();
    assert!(mallory["text"].as_str().unwrap().contains("not in the directory"), "{mallory}");

    // Chat takes references only: a file path on the serve host is refused
    // before anything reads it, and nothing of the file is quoted.
    let secret_file = run.write("secret/compose.yaml", "services:\n  leak:\n    image: top-secret-line-77\n");
    for (i, path) in ["/etc/passwd", secret_file.as_str(), "../../etc/hostname"].iter().enumerate() {
        let url = sink.url(&format!("/response/path{i}"));
        let (headers, body) = slack_request("alice", &format!("plan {path}"), &url, now());
        assert_eq!(server.post("/chat/slack", &headers, &body).0, 200);
        let answer = sink.wait_for(&format!("/response/path{i}")).json().to_string();
        assert!(answer.contains("only APPLICATION/RELEASE"), "{path}: {answer}");
        assert!(!answer.contains("root:") && !answer.contains("top-secret-line-77"), "{path}: {answer}");
    }

    let history = run.dockmaster_with_env(
        ["--user", "alice", "history", "--output", "json"],
        &[("DOCKMASTER_PASSWORD", slapd::USER_PASSWORD)],
    );
    history.assert_exit(0);
    let records: Vec<Value> = serde_json::from_str(&history.stdout).unwrap();
    let rows: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("user"), s("origin"), s("verdict"))
        })
        .collect();
    for expected in [("alice", "slack", "healthy"), ("bob", "slack", "denied"), ("mallory", "slack", "denied")] {
        let expected = (expected.0.to_string(), expected.1.to_string(), expected.2.to_string());
        assert!(rows.contains(&expected), "{expected:?} not in {rows:?}");
    }
    assert_eq!(records.iter().find(|r| r["user"] == "alice").unwrap()["origin_detail"]["channel"], "ops");
}

#[test]
fn a_signed_discord_interaction_is_deferred_then_edited_with_the_report_embed() {
    let Some(run) = TestRun::start_named("chat-discord") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    setup(&run, &slapd, &sink);
    let server = Server::start(&run, SERVE_ENV);

    let (headers, body) = discord_request(&serde_json::json!({"type": 1, "id": "1", "application_id": "4242"}), now());
    let (status, pong, _) = server.post("/chat/discord", &headers, &body);
    assert_eq!((status, pong.as_str()), (200, r#"{"type":1}"#), "a PING gets a PONG");
    let (mut bad, body) = discord_request(&serde_json::json!({"type": 1}), now());
    bad[2].1 = hex::encode([0u8; 64]);
    assert_eq!(server.post("/chat/discord", &bad, &body).0, 401, "Discord checks that bad signatures get 401");

    let interaction = |user: &str, token: &str| {
        serde_json::json!({
            "type": 2, "id": "9", "application_id": "4242", "token": token, "channel_id": "555",
            "member": {"user": {"id": user, "username": format!("discord-{user}")}},
            "data": {"name": "deploy", "options": [{"name": "ref", "type": 3, "value": run.named("1")}]},
        })
    };
    let (headers, body) = discord_request(&interaction("111", "tok-alice"), now());
    let (status, deferred, took) = server.post("/chat/discord", &headers, &body);
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(3), "Discord waits 3 s for the first answer; took {took:?}");
    assert_eq!(serde_json::from_str::<Value>(&deferred).unwrap()["type"], 5, "a deferred response: {deferred}");

    let edit = sink.wait_for("/api/webhooks/4242/tok-alice/messages/@original");
    assert_eq!(edit.method, "PATCH");
    let embed = &edit.json()["embeds"][0];
    let fields = embed["fields"].as_array().expect("one field per service");
    assert_eq!(fields.len(), 1, "{embed}");
    assert_eq!(fields[0]["name"], "app", "{embed}");
    // The service has no healthcheck: "running" is its settled state.
    assert!(fields[0]["value"].as_str().unwrap().starts_with("running"), "{embed}");
    assert!(embed["title"].as_str().unwrap().contains("HEALTHY: 1/1 services healthy"), "{embed}");
    assert_eq!(embed["color"], 0x2e_b8_86, "green");
    let author = embed["author"]["name"].as_str().unwrap_or_default();
    assert!(author.contains("asked by alice") && author.contains("discord-111"), "the report names who asked: {embed}");

    // A Discord user nobody mapped is told how to get mapped, and audited.
    let (headers, body) = discord_request(&interaction("222", "tok-stranger"), now());
    assert_eq!(server.post("/chat/discord", &headers, &body).0, 200);
    // Privately: the public "thinking" answer is deleted and the refusal
    // goes to the asker alone (an ephemeral follow-up), never into the
    // message the channel sees.
    let refusal = sink.wait_for("/api/webhooks/4242/tok-stranger");
    assert_eq!(refusal.method, "POST");
    let refusal = refusal.json();
    assert_eq!(refusal["flags"], 64, "ephemeral: {refusal}");
    let content = refusal["content"].as_str().unwrap();
    assert!(content.contains("not mapped to a directory user") && content.contains("discord:222"), "{content}");
    let seen = sink.seen.lock().unwrap().clone();
    let original: Vec<&str> = seen
        .iter()
        .filter(|s| s.path == "/api/webhooks/4242/tok-stranger/messages/@original")
        .map(|s| s.method.as_str())
        .collect();
    assert_eq!(original, ["DELETE"], "the refusal never edits the channel's message");
    let conn = rusqlite::Connection::open(run.dir().join("state/audit.db")).unwrap();
    let stranger: (String, String) = conn
        .query_row("SELECT origin, verdict FROM requests WHERE user = 'discord-222'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(stranger, ("discord".to_string(), "denied".to_string()));
    assert!(edit.headers.iter().any(|(k, v)| k == "content-type" && v.contains("json")));

    // The interaction token is gone (Discord answers 404 "Unknown Webhook"):
    // the report is not lost, the bot posts it to the channel.
    let (headers, body) = discord_request(&interaction("111", "expired-alice"), now());
    assert_eq!(server.post("/chat/discord", &headers, &body).0, 200);
    let posted = sink.wait_for("/api/channels/555/messages");
    assert_eq!(posted.method, "POST");
    assert!(posted.headers.contains(&("authorization".into(), "Bot bot-token-for-tests".into())));
    assert!(posted.json()["embeds"][0]["title"].as_str().unwrap_or("").contains("HEALTHY"), "{}", posted.body);

    // At start-up the commands were registered in the configured guild.
    let registered = sink.wait_for("/api/applications/4242/guilds/777/commands");
    assert_eq!(registered.method, "PUT");
    assert!(registered.headers.contains(&("authorization".into(), "Bot bot-token-for-tests".into())));
    let names: Vec<String> =
        registered.json().as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["deploy", "plan", "status", "rollback", "history", "approve", "help"]);
}

#[test]
fn sigterm_rolls_running_chat_deploys_back_and_reports_to_the_channel() {
    let Some(run) = TestRun::start_named("chat-stop") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    setup(&run, &slapd, &sink);
    // A service that never becomes healthy: the deploy waits for it.
    run.write(
        &run.named_file("2"),
        &format!(
            "name: {}\nservices:\n  slow:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n    \
             healthcheck: {{test: [\"CMD\", \"false\"], interval: 1s, retries: 1000}}\n",
            run.project
        ),
    );
    let mut server = Server::start(&run, SERVE_ENV);
    let (headers, body) =
        slack_request("alice", &format!("deploy {}", run.named("2")), &sink.url("/response/slow"), now());
    assert_eq!(server.post("/chat/slack", &headers, &body).0, 200);
    let started = common::wait_until(Duration::from_secs(60), || {
        common::inspect(&run.container("slow"), "{{.State.Running}}").as_deref() == Some("true")
    });
    assert!(started, "the slow service never started");
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // While it drains (the slow container takes its stop timeout to go),
    // serve still answers: a new command is told to try again, and /readyz
    // sends load balancers elsewhere. Nothing of the late command runs.
    std::thread::sleep(Duration::from_millis(300));
    let (headers, body) =
        slack_request("alice", &format!("deploy {}", run.named("1")), &sink.url("/response/late"), now());
    let (status, ack, _) = server.post("/chat/slack", &headers, &body);
    assert_eq!(status, 200, "a command during the drain is answered, not refused: {ack}");
    assert!(ack.contains("try again"), "{ack}");
    let (status, ready, _) = server.send("GET", "/readyz", &[], "");
    assert_eq!(status, 503, "{ready}");
    let report = sink.wait_for("/response/slow").json().to_string();
    assert!(report.contains("SIGTERM"), "the channel is told the deploy was interrupted: {report}");
    let exited = common::wait_until(Duration::from_secs(60), || matches!(server.child.try_wait(), Ok(Some(_))));
    assert!(exited, "serve did not stop after SIGTERM");
    assert_eq!(server.child.try_wait().unwrap().and_then(|s| s.code()), Some(0));
    assert!(common::inspect(&run.container("slow"), "{{.State.Running}}").is_none(), "the new container was removed");
    assert_eq!(sink.count("/response/late"), 0, "the late command never ran");
}

#[test]
fn fifty_concurrent_slash_commands_are_all_acknowledged_in_time_and_all_answered() {
    let Some(run) = TestRun::start("chat-burst") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    setup(&run, &slapd, &sink);
    let server = Arc::new(Server::start(&run, SERVE_ENV));

    let handles: Vec<_> = (0..50)
        .map(|i| {
            let server = server.clone();
            let url = sink.url(&format!("/burst/{i}"));
            std::thread::spawn(move || {
                let (headers, body) = slack_request("alice", &format!("status App/Target{i}"), &url, now());
                server.post("/chat/slack", &headers, &body)
            })
        })
        .collect();
    let answers: Vec<(u16, String, Duration)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, (status, body, took)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "command {i}: {body}");
        assert!(*took < Duration::from_secs(3), "command {i} was acknowledged after {took:?}");
    }
    let all = common::wait_until(Duration::from_secs(120), || sink.count("/burst/") == 50);
    assert!(all, "only {} of 50 follow-ups arrived", sink.count("/burst/"));

    // Mattermost: its token, not a signature.
    let form = serde_urlencoded::to_string([
        ("channel_name", "town-square"),
        ("user_id", "mm1"),
        ("user_name", "alice"),
        ("command", "/dockmaster"),
        ("text", "help"),
        ("response_url", &sink.url("/mm/help")),
    ])
    .unwrap();
    let wrong = [("Authorization", "Token nope".to_string())];
    assert_eq!(server.post("/chat/mattermost", &wrong, &form).0, 401);
    let right = [("Authorization", format!("Token {MATTERMOST_TOKEN}"))];
    assert_eq!(server.post("/chat/mattermost", &right, &form).0, 200);
    let help = sink.wait_for("/mm/help").json();
    let text = help["text"].as_str().unwrap();
    assert!(text.contains("You are `alice`") && text.contains("deploy <") && text.contains("approve <"), "{text}");
}

#[test]
fn a_user_name_never_maps_a_user_only_the_platform_id_does() {
    let Some(run) = TestRun::start_named("chat-names") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    setup(&run, &slapd, &sink);
    let server = Server::start(&run, SERVE_ENV);
    // A stranger calls themselves alice, and another picks alice's id as
    // a name: neither is alice. Both are refused privately, audited, and
    // nothing is deployed.
    for (i, (id, name)) in [("U-stranger", "alice"), ("U-other", "U-alice")].iter().enumerate() {
        let url = sink.url(&format!("/response/name{i}"));
        let (headers, body) = slack_request_as(id, name, &format!("deploy {}", run.named("1")), &url, now());
        assert_eq!(server.post("/chat/slack", &headers, &body).0, 200);
        let answer = sink.wait_for(&format!("/response/name{i}")).json();
        assert_eq!(answer["response_type"], "ephemeral", "{answer}");
        assert!(answer["text"].as_str().unwrap_or("").contains("not mapped to a directory user"), "{answer}");
    }
    assert!(run.container_id("app").is_none(), "nothing was deployed for a name");
    let history = run.dockmaster_with_env(
        ["--user", "alice", "history", "--output", "json"],
        &[("DOCKMASTER_PASSWORD", slapd::USER_PASSWORD)],
    );
    history.assert_exit(0);
    let records: Value = serde_json::from_str(&history.stdout).unwrap_or(Value::Null);
    let denied = records.as_array().map(|r| r.iter().filter(|r| r["verdict"] == "denied").count()).unwrap_or(0);
    assert_eq!(denied, 2, "both refusals are audited: {records}");

    // A configuration that still maps by name is refused with the way out.
    let old = run.write("old.yaml", "chat:\n  users:\n    same_name: [mattermost]\n");
    let out = run.dockmaster_with_env(["schedules"], &[("DOCKMASTER_CONFIG", old.as_str())]);
    out.assert_exit(2);
    out.check(out.stderr.contains("Migrating from name mapping"), "the refusal points at the migration");
}

/// A Discord autocomplete interaction for `command` from user `user`.
fn autocomplete(user: &str, command: &str, typed: &str) -> Value {
    serde_json::json!({
        "type": 4, "id": "10", "application_id": "4242", "token": "tok-auto", "channel_id": "555",
        "member": {"user": {"id": user, "username": format!("discord-{user}")}},
        "data": {"name": command, "options": [{"name": "ref", "type": 3, "value": typed, "focused": true}]},
    })
}

#[test]
fn chat_answers_privately_names_who_asked_lists_plans_and_speaks_to_chat_users() {
    let Some(run) = TestRun::start_named("chat-useful") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    setup(&run, &slapd, &sink);
    let server = Server::start(&run, SERVE_ENV);
    let ask = |user: &str, text: &str, path: &str| -> Value {
        let (headers, body) = slack_request(user, text, &sink.url(path), now());
        let (status, ack, _) = server.post("/chat/slack", &headers, &body);
        assert_eq!(status, 200, "{ack}");
        sink.wait_for(path).json()
    };

    // Help is for the asker only.
    let help = ask("alice", "help", "/response/help");
    assert_eq!(help["response_type"], "ephemeral", "{help}");

    // A plan lists what would change, service by service, and the report
    // names who asked and from where.
    let plan = ask("alice", &format!("plan {}", run.named("1")), "/response/plan");
    assert_eq!(plan["response_type"], "in_channel", "{plan}");
    let text = plan.to_string();
    assert!(text.contains("app: create"), "the plan lists the service and its change: {text}");
    assert!(text.contains("1 of 1 services change"), "{text}");
    let author = plan["attachments"][0]["author_name"].as_str().unwrap_or_default();
    assert!(author.contains("asked by alice") && author.contains("#ops"), "{plan}");
    assert!(run.container_id("app").is_none(), "a plan changes nothing");

    // An environment nobody configured is called that, not "not found".
    let typo = ask("alice", &format!("deploy {} prdo", run.named("1")), "/response/typo");
    let said = typo["text"].as_str().unwrap_or_default();
    assert!(said.contains("`prdo` is not an environment"), "{typo}");
    assert_eq!(typo["response_type"], "ephemeral");
    assert!(run.container_id("app").is_none(), "nothing was deployed");

    // A reference that does not exist: no server path, no CLI advice.
    let missing = ask("alice", &format!("deploy {}-nope/rel", run.application), "/response/missing");
    let said = missing["text"].as_str().unwrap_or_default();
    assert_eq!(missing["response_type"], "ephemeral", "{missing}");
    assert!(said.contains("not found"), "{said}");
    assert!(!said.contains(&run.dir().display().to_string()), "no server path: {said}");
    assert!(!said.contains("--"), "no command-line flags: {said}");
    assert!(!said.contains("descriptors:"), "no configuration keys: {said}");

    // Discord autocomplete shows references only to mapped users with
    // rights on them: alice sees the run's application, bob (mapped, no
    // rule for him) and a stranger see nothing.
    let choices = |user: &str| -> Vec<String> {
        let (headers, body) = discord_request(&autocomplete(user, "deploy", &run.application), now());
        let (status, answer, _) = server.post("/chat/discord", &headers, &body);
        assert_eq!(status, 200, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["type"], 8, "{answer}");
        answer["data"]["choices"]
            .as_array()
            .map(|c| c.iter().map(|c| c["value"].as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(choices("111"), [run.named("")], "alice sees what she may deploy");
    assert!(choices("333").is_empty(), "bob may not deploy it: he sees nothing");
    assert!(choices("222").is_empty(), "a user nobody mapped sees nothing");
}

/// A Discord interaction for a slash command `name` on `reference`.
fn discord_command(user: &str, token: &str, name: &str, reference: &str) -> Value {
    serde_json::json!({
        "type": 2, "id": "9", "application_id": "4242", "token": token, "channel_id": "555",
        "member": {"user": {"id": user, "username": format!("discord-{user}")}},
        "data": {"name": name, "options": [{"name": "ref", "type": 3, "value": reference}]},
    })
}

/// A press of the button `custom_id` on a message, as Discord sends it.
fn discord_press(user: &str, token: &str, custom_id: &str) -> Value {
    serde_json::json!({
        "type": 3, "id": "11", "application_id": "4242", "token": token, "channel_id": "555",
        "member": {"user": {"id": user, "username": format!("discord-{user}")}},
        "message": {"id": "777000"},
        "data": {"component_type": 2, "custom_id": custom_id},
    })
}

#[test]
fn discord_buttons_run_as_the_presser_refusals_stay_private_and_everything_is_audited() {
    let Some(run) = TestRun::start_named("chat-buttons") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    setup(&run, &slapd, &sink);
    for (v, command) in [("2", "sleep 1000"), ("3", "echo three-is-broken; exit 3")] {
        run.write(
            &run.named_file(v),
            &format!(
                "name: {}\nservices:\n  app:\n    image: {FIXTURE_IMAGE}\n    restart: always\n    \
                 command: [\"sh\", \"-c\", \"{command}\"]\n    environment: {{DB_PASSWORD: chat-secret-value}}\n",
                run.project
            ),
        );
    }
    let server = Server::start(&run, SERVE_ENV);
    let send = |interaction: &Value| {
        let (headers, body) = discord_request(interaction, now());
        let (status, answer, _) = server.post("/chat/discord", &headers, &body);
        assert_eq!(status, 200, "{answer}");
        serde_json::from_str::<Value>(&answer).unwrap()
    };
    for v in ["1", "2", "3"] {
        send(&discord_command("111", &format!("tok-v{v}"), "deploy", &run.named(v)));
        sink.wait_for(&format!("/api/webhooks/4242/tok-v{v}/messages/@original"));
    }
    let failed = sink.wait_for("/api/webhooks/4242/tok-v3/messages/@original").json();
    assert!(failed["embeds"][0]["title"].as_str().unwrap_or("").contains("FAILED"), "{failed}");
    let ids: Vec<String> = failed["components"][0]["components"]
        .as_array()
        .map(|b| b.iter().map(|b| b["custom_id"].as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    let rollback = format!("dockmaster:rollback:default:{}", run.named(""));
    assert!(ids.contains(&rollback), "a Roll back button on the failure: {ids:?}");
    assert!(ids.iter().any(|i| i.starts_with("dockmaster:logs:")), "{ids:?}");
    let running = run.container_id("app");

    // Bob is mapped but has no right: refused privately and audited, and
    // nothing changes.
    let answer = send(&discord_press("333", "tok-press-bob", &rollback));
    assert_eq!(answer["type"], 5, "{answer}");
    let refusal = sink.wait_for("/api/webhooks/4242/tok-press-bob");
    let refusal = refusal.json();
    assert_eq!(refusal["flags"], 64, "{refusal}");
    assert!(refusal["content"].as_str().unwrap_or("").contains("no access rule allows `rollback`"), "{refusal}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(run.container_id("app"), running, "the refused press changed nothing");
    // A forged button press (custom_id not ours) does nothing either.
    let answer = send(&discord_press("111", "tok-forged", "dockmaster:shell:default:rm -rf"));
    assert_eq!(answer["type"], 4, "{answer}");
    assert_eq!(answer["data"]["flags"], 64);

    // Alice may: the rollback runs and its report replaces the answer.
    let answer = send(&discord_press("111", "tok-press-alice", &rollback));
    assert_eq!(answer["type"], 5);
    assert_eq!(answer["data"]["flags"], 0, "a rollback's report is for the channel");
    let report = sink.wait_for("/api/webhooks/4242/tok-press-alice/messages/@original").json();
    assert!(report["embeds"][0]["title"].as_str().unwrap_or("").contains("rollback"), "{report}");
    let env = common::inspect(&run.container("app"), "{{json .Config.Env}}").unwrap_or_default();
    assert!(!env.is_empty());

    let history = run.dockmaster_with_env(
        ["--user", "alice", "history", "--output", "json"],
        &[("DOCKMASTER_PASSWORD", slapd::USER_PASSWORD)],
    );
    history.assert_exit(0);
    let records: Vec<Value> = serde_json::from_str(&history.stdout).unwrap();
    let by = |user: &str, verdict: &str| {
        records.iter().any(|r| r["user"] == user && r["action"] == "rollback" && r["verdict"] == verdict)
    };
    assert!(by("bob", "denied"), "{records:#?}");
    assert!(by("alice", "healthy"), "{records:#?}");
}

/// alice's Mattermost slash command form, from town-square (id mm-channel).
fn mattermost_command(text: &str, response_url: &str) -> String {
    serde_urlencoded::to_string([
        ("channel_id", "mm-channel"),
        ("channel_name", "town-square"),
        ("user_id", "mm1"),
        ("user_name", "alice"),
        ("command", "/dockmaster"),
        ("text", text),
        ("response_url", response_url),
    ])
    .unwrap()
}

#[test]
fn mattermost_buttons_only_work_with_contexts_dockmaster_wrote_once_and_as_the_presser() {
    let Some(run) = TestRun::start_named("chat-mm-buttons") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    setup(&run, &slapd, &sink);
    let mut env = SERVE_ENV.to_vec();
    env.push(("DOCKMASTER__CHAT__MATTERMOST__ACTIONS_URL", "https://dockmaster.test"));
    let server = Server::start(&run, &env);
    let right = [("Authorization", format!("Token {MATTERMOST_TOKEN}"))];
    let form = mattermost_command(&format!("deploy {}", run.named("1")), &sink.url("/mm/deploy"));
    assert_eq!(server.post("/chat/mattermost", &right, &form).0, 200);
    let report = sink.wait_for("/mm/deploy").json();
    let actions = report["attachments"][0]["actions"].as_array().cloned().unwrap_or_default();
    let logs = actions.iter().find(|a| a["id"] == "logs").cloned().unwrap_or_else(|| panic!("{report}"));
    assert_eq!(logs["integration"]["url"], "https://dockmaster.test/chat/mattermost/actions");
    let context = logs["integration"]["context"].clone();

    let press = |user: &str, trigger: &str, context: &Value| {
        let body = serde_json::json!({
            "user_id": user, "user_name": format!("mm-{user}"), "channel_id": "mm-channel",
            "channel_name": "town-square", "team_id": "t1", "post_id": "p1", "trigger_id": trigger,
            "type": "button", "context": context,
        });
        let headers = [("Content-Type", "application/json".to_string())];
        server.post("/chat/mattermost/actions", &headers, &body.to_string())
    };
    // A context dockmaster did not write (another reference, the same
    // seal) is refused, and so is a made-up one.
    let mut tampered = context.clone();
    tampered["ref"] = serde_json::json!("Other/app");
    assert_eq!(press("mm1", "trig-1", &tampered).0, 401);
    let mut made_up = context.clone();
    made_up["mac"] = serde_json::json!("0".repeat(64));
    assert_eq!(press("mm1", "trig-2", &made_up).0, 401);

    // A Mattermost user nobody mapped presses: refused privately, audited.
    let (status, body, _) = press("mm-stranger", "trig-3", &context);
    assert_eq!(status, 200, "{body}");
    assert!(common::wait_until(Duration::from_secs(30), || sink.count("/mm/deploy") >= 2));
    let answers: Vec<Value> =
        sink.seen.lock().unwrap().iter().filter(|s| s.path == "/mm/deploy").map(|s| s.json()).collect();
    let refused = &answers[1];
    assert_eq!(refused["response_type"], "ephemeral", "{refused}");
    assert!(refused["text"].as_str().unwrap_or("").contains("not mapped"), "{refused}");

    // Alice's press works once: the logs, to her alone; the same press
    // again is a replay.
    let (status, ack, _) = press("mm1", "trig-4", &context);
    assert_eq!(status, 200, "{ack}");
    assert!(ack.contains("ephemeral_text"), "{ack}");
    assert!(common::wait_until(Duration::from_secs(30), || sink.count("/mm/deploy") >= 3));
    let answers: Vec<Value> =
        sink.seen.lock().unwrap().iter().filter(|s| s.path == "/mm/deploy").map(|s| s.json()).collect();
    assert_eq!(answers[2]["response_type"], "ephemeral", "{}", answers[2]);
    assert_eq!(press("mm1", "trig-4", &context).0, 401, "a replayed press");

    let history = run.dockmaster_with_env(
        ["--user", "alice", "history", "--output", "json"],
        &[("DOCKMASTER_PASSWORD", slapd::USER_PASSWORD)],
    );
    history.assert_exit(0);
    let records: Vec<Value> = serde_json::from_str(&history.stdout).unwrap();
    assert!(
        records.iter().any(|r| r["origin"] == "mattermost" && r["verdict"] == "denied"),
        "the stranger's press is audited: {records:#?}"
    );
    assert!(records.iter().any(|r| r["origin"] == "mattermost" && r["action"] == "status" && r["user"] == "alice"));
}

#[test]
fn channel_rules_refuse_commands_from_other_channels_in_the_pipeline_and_audit_them() {
    let Some(run) = TestRun::start_named("chat-channels") else { return };
    let Some(slapd) = Slapd::start() else { return };
    let sink = Sink::start();
    // Commands for every environment only in #deploys, or in the channel
    // whose id is mm-channel (Mattermost's town-square).
    setup_with(
        &run,
        &slapd,
        &sink,
        "  channels:\n    - environments: [\"*\"]\n      channels: [\"#deploys\", mm-channel]\n",
    );
    let server = Server::start(&run, SERVE_ENV);

    // alice may deploy, but not from #ops: refused privately, nothing
    // runs, and the refusal is in the audit trail with the channel.
    let (headers, body) = slack_request("alice", &format!("deploy {}", run.named("1")), &sink.url("/r/ops"), now());
    assert_eq!(server.post("/chat/slack", &headers, &body).0, 200);
    let answer = sink.wait_for("/r/ops").json();
    assert_eq!(answer["response_type"], "ephemeral", "{answer}");
    assert!(answer["text"].as_str().unwrap_or("").contains("only taken in #deploys, #mm-channel"), "{answer}");
    assert!(run.container_id("app").is_none(), "nothing was deployed from the wrong channel");
    // History from the wrong channel is refused too.
    let (headers, body) = slack_request("alice", &format!("history {}", run.named("1")), &sink.url("/r/h"), now());
    assert_eq!(server.post("/chat/slack", &headers, &body).0, 200);
    assert!(sink.wait_for("/r/h").json()["text"].as_str().unwrap_or("").contains("only taken in"));

    // The same command from the channel the rule names by id runs.
    let right = [("Authorization", format!("Token {MATTERMOST_TOKEN}"))];
    let form = mattermost_command(&format!("deploy {}", run.named("1")), &sink.url("/r/mm"));
    assert_eq!(server.post("/chat/mattermost", &right, &form).0, 200);
    let report = sink.wait_for("/r/mm").json();
    assert!(report.to_string().contains("HEALTHY"), "{report}");
    assert!(run.container_id("app").is_some());

    let history = run.dockmaster_with_env(
        ["--user", "alice", "history", "--output", "json"],
        &[("DOCKMASTER_PASSWORD", slapd::USER_PASSWORD)],
    );
    history.assert_exit(0);
    let records: Vec<Value> = serde_json::from_str(&history.stdout).unwrap();
    let refused: Vec<&Value> = records.iter().filter(|r| r["verdict"] == "denied").collect();
    assert_eq!(refused.len(), 2, "both refusals are audited once: {records:#?}");
    assert!(refused.iter().any(|r| r["action"] == "deploy" && r["origin_detail"]["channel"] == "ops"), "{refused:#?}");
}

//! Webhook reports: local HTTP servers play Slack's, Mattermost's and
//! Discord's incoming webhooks and a JSON receiver, and record what the
//! real binary posts after a deploy against the real engine.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestRun, FIXTURE_IMAGE};
use serde_json::Value;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    body: Value,
}

/// A loopback HTTP receiver that answers with the given statuses in turn
/// (the last one repeats) and records every request.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(statuses: Vec<u16>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let record = got.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate().take(50) {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = header.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                record
                    .lock()
                    .unwrap()
                    .push(Received { path, body: serde_json::from_slice(&body).unwrap_or(Value::Null) });
                let status = *statuses.get(n).or(statuses.last()).unwrap_or(&200);
                let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            }
        });
        Receiver { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits (bounded) until `n` requests arrived, and returns them.
    fn received(&self, n: usize) -> Vec<Received> {
        let until = Instant::now() + Duration::from_secs(10);
        while self.got.lock().unwrap().len() < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.got.lock().unwrap().clone()
    }
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn every_platform_gets_the_report_a_flaky_hook_is_retried_and_a_dead_one_changes_nothing() {
    let Some(run) = TestRun::start("hooks-ok") else { return };
    let slack = Receiver::start(vec![200]);
    let discord = Receiver::start(vec![200]);
    let json = Receiver::start(vec![500, 200]);
    run.add_config(&format!(
        "notify:\n  webhooks:\n    - {{name: ops-slack, kind: slack, url: \"{}\"}}\n    - {{name: ops-discord, kind: discord, url: \"{}\"}}\n    - {{name: tool, kind: json, url: \"{}\"}}\n    - {{name: dead, kind: mattermost, url: \"http://127.0.0.1:{}/hooks/x\"}}\n",
        slack.url("/services/T/B/tok"),
        discord.url("/api/webhooks/1/tok"),
        json.url("/report"),
        dead_port()
    ));
    let file = run.compose(&format!(
        "services:\n  web:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n  worker:\n    image: {FIXTURE_IMAGE}\n    command: [\"sleep\", \"1000\"]\n"
    ));
    let out = run.deploy(&file, &["--stability-window", "1s"]);
    out.assert_exit(0);
    out.check(out.stderr.contains("webhook `dead`"), "the dead webhook is reported as a warning");
    out.check(!out.stderr.contains("/hooks/x"), "the webhook URL's path (its token) is not printed");

    let s = slack.received(1);
    let a = &s[0].body["attachments"][0];
    out.check(a["color"] == "#2eb886", format!("slack: green attachment, got {}", a["color"]));
    let titles: Vec<&str> = a["fields"].as_array().unwrap().iter().filter_map(|f| f["title"].as_str()).collect();
    out.check(titles == ["web", "worker"], format!("slack: one field per service, got {titles:?}"));

    let d = discord.received(1);
    out.check(d[0].path.ends_with("?wait=true"), format!("discord: ?wait=true, got {}", d[0].path));
    let embed = &d[0].body["embeds"][0];
    let names: Vec<&str> = embed["fields"].as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    out.check(names == ["web", "worker"], format!("discord: fields match the report, got {names:?}"));
    out.check(d[0].body["allowed_mentions"]["parse"] == serde_json::json!([]), "discord: no mentions");

    let j = json.received(2);
    out.check(j.len() == 2, "the JSON hook answered 500 once and was retried");
    out.check(j[1].body["verdict"] == "healthy", "the JSON hook got the report");
}

#[test]
fn a_failed_deploy_posts_a_red_report_with_the_failing_logs() {
    let Some(run) = TestRun::start("hooks-bad") else { return };
    let slack = Receiver::start(vec![200]);
    run.add_config(&format!(
        "notify:\n  webhooks:\n    - {{name: ops, kind: slack, url: \"{}\", when: failure}}\n",
        slack.url("/x")
    ));
    let file = run.compose(&format!(
        "services:\n  broken:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"echo boom-marker; exit 2\"]\n    restart: always\n"
    ));
    let out = run.deploy(&file, &[]);
    out.assert_exit(1);
    let got = slack.received(1);
    out.check(got.len() == 1, "the failure was posted");
    let a = &got[0].body["attachments"][0];
    out.check(a["color"] == "#a30200", format!("red, got {}", a["color"]));
    out.check(a["text"].as_str().unwrap_or_default().contains("boom-marker"), "the log tail is in the message");
}

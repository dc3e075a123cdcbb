//! Loopback HTTP for tests of `dockmaster serve`: the real binary as a
//! server, and a stand-in that records what dockmaster sends (Slack's
//! `response_url`, Discord's API, webhooks).
// Each test file uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, TestRun};

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A local HTTP server that answers `200 {}` to everything and remembers
/// what it was sent: Slack's `response_url`, Discord's API.
pub struct Sink {
    pub addr: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve_one(stream, &log));
            }
        });
        Sink { addr, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits (up to 90 s) for a request to `path` and returns it.
    pub fn wait_for(&self, path: &str) -> Seen {
        let found =
            common::wait_until(Duration::from_secs(90), || self.seen.lock().unwrap().iter().any(|s| s.path == path));
        assert!(found, "nothing arrived at {path}; got {:#?}", self.seen.lock().unwrap());
        self.seen.lock().unwrap().iter().find(|s| s.path == path).cloned().unwrap()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|s| s.path.starts_with(prefix)).count()
    }
}

fn serve_one(stream: TcpStream, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let expired = path.contains("/webhooks/") && path.contains("/expired-");
    // Its place in the log, taken with the push: Slack's stand-in numbers
    // message timestamps by it.
    let n = {
        let mut log = log.lock().unwrap();
        log.push(Seen { method, path: path.clone(), headers, body: String::from_utf8_lossy(&body).into_owned() });
        log.len()
    };
    let mut stream = stream;
    // As Discord answers an interaction token that expired or was revoked:
    // 404 "Unknown Webhook" (any token named `expired-…` plays one).
    if expired {
        let body = br#"{"message": "Unknown Webhook", "code": 10015}"#;
        let head = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
        return;
    }
    // As Slack's Web API answers (under `/slack-api/`): 200 with `ok`, a
    // message's `ts` for chat.postMessage, `invalid_auth` without the bot
    // token the tests configure.
    if let Some(method) = path.strip_prefix("/slack-api/") {
        let seen = log.lock().unwrap()[n - 1].clone();
        let authorized = seen.headers.iter().any(|(k, v)| k == "authorization" && v == &format!("Bearer {SLACK_BOT}"));
        let body = if !authorized {
            r#"{"ok": false, "error": "invalid_auth"}"#.to_string()
        } else {
            let channel = seen.json().get("channel").cloned().unwrap_or(Value::Null);
            match method {
                "chat.postMessage" => format!(r#"{{"ok": true, "channel": {channel}, "ts": "1700000000.{n:06}"}}"#),
                "chat.update" => format!(r#"{{"ok": true, "channel": {channel}, "ts": {}}}"#, seen.json()["ts"]),
                _ => r#"{"ok": false, "error": "unknown_method"}"#.to_string(),
            }
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
        return;
    }
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
}

/// The bot token Slack's stand-in accepts.
pub const SLACK_BOT: &str = "xoxb-bot-token-for-tests";

/// The real binary serving on a free loopback port; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// Starts `dockmaster serve` with the run's configuration and `env`.
    pub fn start(run: &TestRun, env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dockmaster"));
        command.args(["serve", "--listen", "127.0.0.1:0"]).env("DOCKMASTER_CONFIG", &run.config);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .current_dir(run.dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dockmaster serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ").map(str::to_string) else {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("serve did not start: {line:?}\n{err}");
        };
        Server { child, addr }
    }

    /// POSTs `body` with `headers`; returns status, body and how long the
    /// answer took.
    pub fn post(&self, path: &str, headers: &[(&str, String)], body: &str) -> (u16, String, Duration) {
        self.send("POST", path, headers, body)
    }

    /// Any method; returns status, body and time taken.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, String)], body: &str) -> (u16, String, Duration) {
        let (status, _, body, took) = self.exchange(method, path, headers, body);
        (status, body, took)
    }

    /// Any method; returns status, response headers (lower-case names), body
    /// and time taken.
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> (u16, Vec<(String, String)>, String, Duration) {
        let started = Instant::now();
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response.as_str(), ""));
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, body.to_string(), started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

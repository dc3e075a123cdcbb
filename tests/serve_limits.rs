//! `dockmaster serve` under clients that hold on: a flood of idle
//! connections over `serve.max_connections` does not keep `/healthz` from
//! answering, a client that never finishes its headers is closed after
//! `serve.header_timeout`, a stalled body gets `408` after
//! `serve.request_timeout`, and a body over `serve.max_body` gets `413`.
//!
//! No engine needed: `/healthz` and the hook endpoint answer without one.
//! Loopback only; every wait is bounded, and no assertion is tighter than
//! several seconds (a shared, noisy machine).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real binary serving on a free loopback port with small limits;
/// killed on drop.
struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

const LIMITS: &str = "serve:\n  max_connections: 20\n  header_timeout: 1s\n  request_timeout: 2s\n  \
                      idle_timeout: 20s\n  max_body: 4k\n";

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("descriptors")).unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "descriptors: {0}/descriptors\nstate_dir: {0}/state\n{LIMITS}hooks:\n  - name: build\n    \
                 style: github\n    secret_env: DM_LIMITS_HOOK_SECRET\n    descriptor: app/rel\n    user: alice\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dockmaster"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DOCKMASTER_CONFIG", &config)
            .env("DM_LIMITS_HOOK_SECRET", "s3cret")
            .stdin(Stdio::null())
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
        Server { child, addr, _dir: dir }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
        stream
    }

    /// Sends `request` on a new connection and reads until the server
    /// closes it (or 15 s pass). A reset after the answer keeps what came.
    fn exchange(&self, request: &[u8]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_write_timeout(Some(Duration::from_secs(15)))?;
        stream.write_all(request)?;
        Ok(read_until_closed(&mut stream))
    }

    fn healthz(&self) -> std::io::Result<String> {
        self.exchange(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr).as_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the peer sends until it closes, resets or goes quiet for the
/// stream's read timeout.
fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn status(response: &str) -> u16 {
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Whether the server has closed `stream` (EOF or reset), without waiting.
fn closed_by_server(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let closed = match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

#[test]
fn idle_connections_over_the_cap_do_not_stall_healthz_and_are_closed() {
    let server = Server::start();
    assert_eq!(status(&server.healthz().unwrap()), 200);

    // Three times max_connections, each sending nothing at all.
    let idle: Vec<TcpStream> = (0..60).map(|_| server.connect()).collect();

    // /healthz answers within a few seconds: at once if a slot is free,
    // else once header_timeout (1 s) has closed the idle holders.
    let started = Instant::now();
    let mut attempts = 0;
    let answered = loop {
        attempts += 1;
        match server.healthz() {
            Ok(response) if status(&response) == 200 => break true,
            _ if attempts >= 200 || started.elapsed() > Duration::from_secs(20) => break false,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    eprintln!("/healthz answered after {:?} ({attempts} attempts)", started.elapsed());
    assert!(answered, "/healthz did not answer 200 within {:?} ({attempts} attempts)", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "/healthz took {:?} to answer behind 60 idle connections",
        started.elapsed()
    );

    // Every idle connection is closed by the server: over the cap at once,
    // the others after header_timeout.
    let started = Instant::now();
    let mut open = idle.len();
    while started.elapsed() < Duration::from_secs(15) {
        open = idle.iter().filter(|s| !closed_by_server(s)).count();
        if open == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(open, 0, "{open} of 60 idle connections were still open after {:?}", started.elapsed());

    // And the server still serves.
    assert_eq!(status(&server.healthz().unwrap()), 200);
}

#[test]
fn a_client_that_sends_half_a_header_is_closed_after_header_timeout() {
    let server = Server::start();
    let mut slow = server.connect();
    let started = Instant::now();
    slow.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Slow: ", server.addr).as_bytes()).unwrap();
    // The server closes it (read timeout 15 s: a server that waits forever
    // leaves the read timed out, which the assertion below catches).
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    let outcome = loop {
        match slow.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break "still open",
            Err(_) => break "reset",
        }
    };
    let took = started.elapsed();
    eprintln!("half-header connection {outcome} after {took:?}: {:?}", String::from_utf8_lossy(&got));
    assert_ne!(outcome, "still open", "the half-header connection was still open after {took:?}");
    assert!(took < Duration::from_secs(12), "closed only after {took:?}");
    let answer = String::from_utf8_lossy(&got);
    assert_ne!(status(&answer), 200, "a request with half a header was answered: {answer}");
    // Others are served meanwhile and after.
    assert_eq!(status(&server.healthz().unwrap()), 200);
}

#[test]
fn a_body_over_max_body_gets_413_and_a_stalled_body_gets_408() {
    let server = Server::start();
    let post = |body_len: usize, sent: usize| {
        let mut request = format!(
            "POST /hooks/build HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n\
             X-GitHub-Event: push\r\nContent-Length: {body_len}\r\n\r\n",
            server.addr
        )
        .into_bytes();
        request.extend(std::iter::repeat_n(b'x', sent));
        server.exchange(&request).unwrap()
    };
    // Under max_body (4 KiB) the hook reads it and refuses the signature.
    let small = post(1000, 1000);
    assert_eq!(status(&small), 401, "{small}");
    // Just over it: 413, before any signature check.
    let large = post(4096 + 100, 4096 + 100);
    assert_eq!(status(&large), 413, "{large}");
    // A body that stops halfway: 408 after request_timeout (2 s).
    let started = Instant::now();
    let stalled = post(1000, 10);
    assert_eq!(status(&stalled), 408, "{stalled}");
    assert!(started.elapsed() < Duration::from_secs(12), "408 only after {:?}", started.elapsed());
}

#[test]
fn bad_limits_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(&config, "serve:\n  request_timeout: 60s\n  idle_timeout: 30s\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dockmaster"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DOCKMASTER_CONFIG", &config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("serve.idle_timeout"), "{stderr}");
}

//! A `tcp://` environment with TLS client certificates, reached through a
//! TLS-terminating proxy (`tests/fixtures/tls_proxy.py`) in front of the local engine on loopback,
//! with a CA made for the test by openssl. A client holding another CA is
//! refused before anything happens.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_until, TestRun, FIXTURE_IMAGE};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (Debian package openssl): {e}"));
    assert!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A CA (`NAME-ca.pem`) and a certificate it signed (`NAME-LEAF.pem`,
/// `NAME-LEAF.key`) for 127.0.0.1.
fn certificates(dir: &Path, name: &str, leaves: &[&str]) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
        ],
    );
    for leaf in leaves {
        let key = format!("{name}-{leaf}.key");
        let csr = format!("{name}-{leaf}.csr");
        let cert = format!("{name}-{leaf}.pem");
        let ext = format!("{name}-{leaf}.ext");
        std::fs::write(
            dir.join(&ext),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &format!("/CN={leaf}")],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

/// The TLS-terminating proxy (`tests/fixtures/tls_proxy.py`, client
/// certificates required) in front of the local engine's socket; killed
/// on drop.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_proxy(dir: &Path, port: u16) -> Proxy {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".into());
    let script = common::repo_root().join("tests/fixtures/tls_proxy.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(dir.join("good-server.pem"))
        .arg(dir.join("good-server.key"))
        .arg(dir.join("good-ca.pem"))
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 for the TLS proxy: {e}"));
    let proxy = Proxy(child);
    let up = wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(up, "the TLS proxy did not listen on 127.0.0.1:{port}");
    proxy
}

#[test]
fn a_tls_engine_deploys_with_the_right_ca_and_is_refused_with_another() {
    let Some(run) = TestRun::start("remote") else { return };
    let dir = run.dir().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir, "good", &["server", "client"]);
    certificates(&dir, "other", &[]);
    let port = free_port();
    let _proxy = start_proxy(&dir, port);
    let tls = |ca: &str| {
        format!(
            "      host: tcp://127.0.0.1:{port}\n      tls:\n        ca: tls/{ca}-ca.pem\n        cert: tls/good-client.pem\n        key: tls/good-client.key\n"
        )
    };
    run.add_config(&format!(
        "environments:\n  remote:\n    engine:\n{}  wrongca:\n    engine:\n{}",
        tls("good"),
        tls("other")
    ));
    let file = run.compose(&format!(
        "services:\n  web:\n    image: {FIXTURE_IMAGE}\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n"
    ));

    // Through TLS with the right CA: deployed, and the report names the engine.
    let out = run.deploy(&file, &["--env", "remote"]);
    out.assert_exit(0);
    let report = out.json();
    report.check(report.verdict() == "healthy", "the deploy through the TLS engine is healthy");
    report.check(report.str("engine") == format!("tcp://127.0.0.1:{port}"), "the report names the TLS engine");
    let history = run.dockmaster(["history", "--output", "json"]);
    history.check(history.stdout.contains(&format!("tcp://127.0.0.1:{port}")), "the audit trail names the engine");

    // Another CA: the engine's certificate is not trusted; nothing runs.
    let out = run.deploy(&file, &["--env", "wrongca"]);
    out.assert_exit(5);
    out.check(out.stderr.contains("environment `wrongca`"), "the error names the environment");
    out.check(out.stderr.contains(&format!("tcp://127.0.0.1:{port}")), "the error names the engine");
    let lower = out.stderr.to_lowercase();
    out.check(
        lower.contains("certificate") || lower.contains("unknownissuer"),
        "the error says the certificate is not trusted",
    );
    let containers =
        common::docker_lines(&["ps", "-aq", "--filter", &format!("label=dockmaster.target={}-wrongca", run.project)]);
    assert!(containers.is_empty(), "nothing was created through the untrusted engine: {containers:?}");

    let down = run.dockmaster(["down", &file, "--env", "remote"]);
    down.assert_exit(0);
}

#[test]
fn a_tcp_engine_without_tls_is_refused_when_the_configuration_loads() {
    let Some(run) = TestRun::start("plaintcp") else { return };
    run.add_config("environments:\n  open:\n    engine:\n      host: tcp://127.0.0.1:2375\n");
    let file = run.compose(&format!("services:\n  web:\n    image: {FIXTURE_IMAGE}\n"));
    let out = run.deploy(&file, &["--env", "open"]);
    out.assert_exit(2);
    out.check(out.stderr.contains("environments.open.engine"), "the error names the key");
    out.check(out.stderr.contains("without `tls`"), "the error says why");
}

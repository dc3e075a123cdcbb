//! The `Dockerfile` builds and its image works: `--version`, and `serve`
//! becoming healthy through the image's own HEALTHCHECK.
//!
//! No base image can be pulled here, so `scripts/offline-base-image.sh`
//! makes one from this machine's libraries and the repository's busybox,
//! and the build uses the binary the tests just built (`prebuilt/`). The
//! Dockerfile itself stays the conventional one users build with a
//! registry.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{docker, repo_root, wait_until, TestRun};

#[test]
fn the_dockerfile_builds_an_image_that_reports_its_version_and_serves_healthz() {
    let Some(run) = TestRun::start("image") else { return };
    let base = format!("dockmaster-test/base:{}", run.project);
    let image = format!("dockmaster-test/dockmaster:{}", run.project);
    run.remove_image_on_drop(&image);
    run.remove_image_on_drop(&base);
    let made = Command::new(repo_root().join("scripts/offline-base-image.sh"))
        .args([&base, env!("CARGO_BIN_EXE_dockmaster")])
        .output()
        .expect("run scripts/offline-base-image.sh");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    let context = run.dir().join("context");
    std::fs::create_dir_all(context.join("prebuilt")).unwrap();
    std::fs::copy(repo_root().join("Dockerfile"), context.join("Dockerfile")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_dockmaster"), context.join("prebuilt/dockmaster")).unwrap();
    let built = Command::new("docker")
        .args(["build", "-q", "-t", &image, "--build-arg"])
        .arg(format!("RUST_IMAGE={base}"))
        .arg("--build-arg")
        .arg(format!("RUNTIME_IMAGE={base}"))
        .arg(&context)
        .output()
        .expect("docker build");
    assert!(built.status.success(), "docker build failed:\n{}", String::from_utf8_lossy(&built.stderr));

    let version = docker(&["run", "--rm", "--label", &run.label(), &image, "--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("dockmaster "), "{version:?}");
    let user = docker(&["image", "inspect", "--format", "{{.Config.User}}", &image]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "10001:10001", "not root");

    let name = format!("{}-serve", run.project);
    let started = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &run.label(),
        "-p",
        "127.0.0.1::8080",
        "--health-interval",
        "1s",
        "--health-retries",
        "30",
        &image,
    ]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let healthy = wait_until(Duration::from_secs(60), || {
        common::inspect(&name, "{{.State.Health.Status}}").as_deref() == Some("healthy")
    });
    let logs = docker(&["logs", &name]);
    assert!(healthy, "the image's HEALTHCHECK never passed:\n{}", String::from_utf8_lossy(&logs.stderr));
    let port = common::published_port(&name, "8080/tcp").expect("a published port");
    let answer = common::http_get(&port, "/healthz").unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
}

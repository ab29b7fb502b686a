#!/usr/bin/env python3
"""What clients see during a deploy: littleboss reloads side by side with plain supervisord.

    python bench/reload.py [--reloads N] [--concurrency C] [--rate R] [--modes new,keepalive]
                           [--scenarios NAME,...] [--json FILE] [--cost-programs N]
                           [--sighup-programs N,...] [--event-programs N,...]

Each scenario starts one program in a fresh supervisord (temporary directory, 127.0.0.1
ports chosen free), puts a bounded load on it (C clients, each as fast as it can or at
most R requests a second; a new connection per request, or keep-alive connections),
swaps or restarts it N times, and reports failed requests by kind, latency inside and
outside the reload windows, the longest stretch without a successful request, reload
durations and READY=1 -> promotion, and which version answered after each reload.
A baseline run without reloads, as long as the reload runs, gives the longest stretch
to compare with (and, for gunicorn and the Node.js and Go recipes' servers, a run of the
same server bound to its own port, without littleboss, as long); a control run starts
and stops the same binary beside the program as often, to show what that costs the
machine without a reload. The myblog scenarios also run as a pool of 4 processes on one
socket (numprocs = 4, the ``-pool`` scenarios). The ``-sighup`` scenarios send supervisord's own
reload (``supervisorctl reload``) instead, the ``-upgrade`` ones its in-place upgrade
(``littleboss.upgrade``: the same pid re-executes itself), the ``-update`` ones change the
program's environment and run ``supervisorctl update``. Then supervisord's own CPU and memory, idle
and during reloads, and how long it takes to start and to stop N programs (--cost-programs),
with waits that grow with N and no process of its left running; its CPU for one SIGHUP with
N programs (--sighup-programs), and for one reload and one exit of one program among N
(--event-programs).
"""
from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness import (  # noqa: E402
    GUNICORN,
    HTTPAPP,
    Supervisord,
    free_port,
    http_get,
    make_asgi_release,
    make_go_release,
    make_gunicorn_release,
    make_myblog_release,
    make_node_release,
    make_release,
    require,
    served_alone,
    wait_for,
)
from load import Load, LoadResult, Sample  # noqa: E402


class LoadProcess:
    """A recording ``Load`` in a process of its own: in the benchmark's process, its own
    work (XML-RPC calls, parsing their answers) would hold the clients' GIL and pass for
    gaps. Its samples and result are here once it is stopped."""

    def __init__(self, **options) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_run_load, args=(child, options), daemon=True)
        self.samples: list[Sample] = []
        self.result = LoadResult()
        self.started = self.stopped = 0.0
        self._child = child

    def __enter__(self) -> LoadProcess:
        self.process.start()
        self._child.close()  # the child's end is the child's: a child that dies ends recv() here
        self.started = self.conn.recv()
        return self

    def wait_for_requests(self, count: int, timeout: float) -> None:
        self.conn.send(("wait", count, timeout))
        error = self.conn.recv()
        if error:
            raise AssertionError(error)

    def __exit__(self, exc_type, *exc) -> None:
        self.stopped = time.monotonic()  # the load's length leaves out handing the samples over
        if exc_type is not None:  # the run is given up: nothing to hand over
            self.process.terminate()
            self.process.join(timeout=60)
            return
        self.conn.send(("stop",))
        self.samples, self.result = self.conn.recv()
        self.process.join(timeout=60)


def _run_load(conn, options: dict) -> None:
    """The load process: start the load, answer waits, hand everything back at "stop"."""
    with Load(**options) as load:
        conn.send(load.started)
        while (message := conn.recv())[0] == "wait":
            try:
                load.wait_for_requests(*message[1:])
                conn.send("")
            except AssertionError as exc:
                conn.send(str(exc))
    conn.send((load.samples, load.result))


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command (the state first); None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot); None if it is gone or a zombie."""
    stat = proc_stat(pid)
    return None if stat is None or stat[0] == "Z" else int(stat[19])


def reaped(pid: int, ticks: int) -> bool:
    """Whether the process ``pid`` that started at ``ticks`` is gone, not even a zombie: its
    parent has reaped it."""
    stat = proc_stat(pid)
    return stat is None or int(stat[19]) != ticks


def descendants(pid: int) -> dict[int, int]:
    """Every living descendant of process ``pid``: its start time by pid."""
    found: dict[int, int] = {}
    parents = [pid]
    while parents:
        parent = parents.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            if (ticks := start_ticks(child)) is not None:
                found[child] = ticks
                parents.append(child)
    return found


class BenchSupervisord(Supervisord):
    """The tests' supervisord, with waits that grow with its number of programs, and a stop
    that leaves nothing behind: SIGTERM by pid, SIGKILL if it has not exited in time; then
    every process it had (its descendants, as last seen while it ran) must exit, and any
    that does not is killed by pid (the same process: its start time is checked, so a
    reused pid is never hit) and listed in ``left_running``."""

    def __init__(self, root: Path, programs: int) -> None:
        super().__init__(root)
        self.programs = programs
        self.seen: dict[int, int] = {}  # start time by pid of every process seen under supervisord
        self.left_running: list[int] = []
        self.stop_seconds = 0.0

    def allow(self, per_program: float) -> float:
        """A timeout: 30 s, and ``per_program`` seconds more for each program."""
        return 30 + per_program * self.programs

    def track(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.seen.update(descendants(self.proc.pid))

    def start(self, wait: bool = True) -> subprocess.Popen:
        super().start(wait=False)  # the tests wait 15 s: supervisord spawns every program first
        if wait:
            wait_for(lambda: self.proc.poll() is not None or self.rpc.supervisor.getState()["statename"] == "RUNNING",
                     timeout=self.allow(0.1), what="supervisord to run")
            assert self.proc.poll() is None, self.output.read_text()
        return self.proc

    def wait_all_running(self, group: str = "") -> None:
        """Every process (of program ``group``, or of every program) RUNNING. Each poll asks
        supervisord about every process (70 ms of its CPU with 500 programs): the more
        programs, the longer between polls (1 s with 500)."""
        def running() -> bool:
            time.sleep(0.002 * self.programs)
            return all(i["statename"] == "RUNNING" for i in self.rpc.supervisor.getAllProcessInfo()
                       if group in ("", i["group"]))
        wait_for(running, timeout=self.allow(0.5), what=f"every process of {group or 'every program'} to run")
        self.track()

    def stop(self) -> None:
        if self.proc is None:
            return
        started = time.monotonic()
        self.track()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:  # it stops its programs one after another, and may sleep up to 1 s in between
                self.proc.wait(timeout=self.allow(1.5))
            except subprocess.TimeoutExpired:
                self.track()
                self.proc.kill()
                self.proc.wait()

        def running() -> list[int]:
            return [pid for pid, ticks in self.seen.items() if start_ticks(pid) == ticks]
        try:
            wait_for(lambda: not running(), timeout=self.allow(0.05), what="every process of supervisord's to exit")
        except AssertionError:
            self.left_running = running()
            print(f"supervisord (pid {self.proc.pid}) left {len(self.left_running)} processes running: "
                  f"killing pids {self.left_running}", file=sys.stderr, flush=True)
            for pid in self.left_running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not running(), what="the processes left running to exit once killed")
        self.stop_seconds = round(time.monotonic() - started, 2)


def version_of(body: bytes) -> str:
    """The version a response names: myblog's "version N," or the test apps' first word."""
    text = body.decode(errors="replace")
    return text.split("version ", 1)[1].split(",")[0] if "version " in text else text.split(" ", 1)[0]


@dataclass
class Result:
    scenario: str
    mode: str
    app: str
    seconds: float = 0.0  # how long the load ran
    requests: int = 0
    failed: dict = field(default_factory=dict)
    broken_keepalive: int = 0
    latency_ms: dict = field(default_factory=dict)  # p50/p99/max, overall and in reload windows
    longest_gap_ms: float = 0.0
    longest_gap_in_reloads_ms: float = 0.0  # of the gaps that overlap a reload window
    reload_seconds: list = field(default_factory=list)
    ready_to_promotion_ms: list = field(default_factory=list)
    versions: list = field(default_factory=list)  # (before, after) per reload
    old_answers_after_return: int = 0
    pids_kept: list = field(default_factory=list)  # per supervisord reload: every pid of the program kept
    pids_replaced: list = field(default_factory=list)  # per update: every process of the program a new one
    call_seconds: list = field(default_factory=list)  # per update: how long supervisorctl update took
    swap_seconds: list = field(default_factory=list)  # per littleboss update: its config rollout's own time
    update_outputs: dict = field(default_factory=dict)  # what supervisorctl update printed (pids as N): how often


def versions_around(result: Result, answers: list[Sample], windows: list[tuple[float, float]],
                    count_old: bool) -> None:
    """Which version answered last before each swap and first after it; with ``count_old``,
    how many requests sent after a reload returned (until the next one) the old one answered.
    ``answers``: the successful requests, in the order they ended."""
    ends = [s.end for s in answers]
    starts = [start for start, _ in windows[1:]] + [float("inf")]
    for (started, ended), following in zip(windows, starts, strict=True):
        last = bisect.bisect_right(ends, started) - 1
        before = answers[last].version if last >= 0 else ""
        after = [s.version for s in answers[bisect.bisect_right(ends, ended):] if ended < s.start < following]
        result.versions.append((before, after[0] if after else ""))
        if count_old:
            result.old_answers_after_return += after.count(before)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered) * 1000, 2),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            "max": round(ordered[-1] * 1000, 2)}


def longest_gaps(ends: list[float], windows: list[tuple[float, float]]) -> tuple[float, float]:
    """The longest times in which no request succeeded, from the successes' sorted ``ends``:
    of all such stretches, and of those that overlap a reload window."""
    overall = inside = 0.0
    for a, b in zip(ends, ends[1:], strict=False):
        if b - a > overall:
            overall = b - a
        if b - a > inside and any(a < stop and b > start for start, stop in windows):
            inside = b - a
    return overall, inside


def summarize(result: Result, load: LoadProcess, windows: list[tuple[float, float]]) -> list[Sample]:
    """Fill in what clients saw; return the successful requests in the order they ended."""
    result.requests, result.failed = load.result.ok + load.result.failed, dict(load.result.failures)
    answers = sorted((s for s in load.samples if s.kind == "ok"), key=lambda s: s.end)
    inside = [s.end - s.start for s in answers if any(a <= s.start <= b for a, b in windows)]
    result.latency_ms = {"overall": percentiles([s.end - s.start for s in answers]), "in_reloads": percentiles(inside)}
    overall, inside = longest_gaps([s.end for s in answers], windows)
    result.longest_gap_ms, result.longest_gap_in_reloads_ms = round(overall * 1000, 2), round(inside * 1000, 2)
    return answers


Versions = tuple[str, str] | Callable[[], tuple[str, str]]


class Scenario:
    """One program and how it is swapped: ``reload`` (littleboss), ``restart`` (supervisorctl),
    ``sighup`` (``supervisorctl reload``: supervisord's own reload), ``upgrade`` (supervisord
    upgraded in place, ``littleboss.upgrade``) or ``update`` (its section's
    ``environment`` changed, then ``supervisorctl update``); or ``start-stop``, the
    control: the program is left alone while the second binary is
    started beside it on a port of its own, answers, and is stopped, as often as the
    reloads run. It costs the machine what a reload costs, without a reload."""

    def __init__(self, name: str, app: str, action: str, versions: Versions, ready: str = "notify",
                 littleboss: bool = True, settle: float = 0, own_port: str = "", **settings: object) -> None:
        """``versions``: the two binaries (or a function that makes them when the scenario
        first runs); ``own_port``: the command of the same server bound to ``{port}`` by
        itself (``{v1}`` stands for the first binary), for a run without littleboss beside
        the baseline; ``settings``: more keys for the ``[program:x]`` section."""
        self.name, self.app, self.action, self._versions = name, app, action, versions
        self.ready, self.littleboss, self.settle = ready, littleboss, settle
        self.own_port, self.settings = own_port, settings
        # a pool (numprocs > 1) is restarted as a group (``supervisorctl restart app:*``), and
        # its control starts and stops the side binary once per process, as its reload does
        self.processes = int(settings.get("numprocs", 1))
        self.spec = "app:*" if self.processes > 1 else "app"

    @property
    def versions(self) -> tuple[str, str]:
        if callable(self._versions):
            self._versions = self._versions()
        return self._versions

    def alone(self) -> Scenario:
        """The same server on a port of its own, without littleboss."""
        command = self.own_port.replace("{v1}", self.versions[0])
        return Scenario(self.name, self.app, "restart", (command, command), littleboss=False)

    def configure(self, sv: Supervisord, port: int) -> None:
        if self.action == "start-stop":
            self.side_port = free_port()
            sv.program("side", command=f"{self.versions[1]} --http=127.0.0.1:{self.side_port}", autostart="false")
        self.port = port
        self.write_program(sv, UPDATE_TAGS[0])

    def write_program(self, sv: Supervisord, tag: str) -> None:
        """``[program:app]``; an update scenario's has ``environment = APP_VERSION=tag`` (the
        test server answers it as its version)."""
        v1 = self.versions[0]
        env = {"environment": f"APP_VERSION={tag}"} if self.action == "update" else {}
        if not self.littleboss:
            sv.program("app", command=v1.replace("{port}", str(self.port)), **env)
            return
        # an update changes the section, not the binary: the test server itself, nothing to allow
        allow = {} if self.action == "update" else {"littleboss_allow": f"{Path(v1).parent.parent}/*/*"}
        sv.program("app", command=v1, littleboss_sockets=f"http=tcp://127.0.0.1:{self.port}",
                   littleboss_ready=self.ready, littleboss_settle=self.settle, **allow, **self.settings, **env)

    @staticmethod
    def pids(sv: Supervisord) -> list[int]:
        return [info["pid"] for info in sv.rpc.supervisor.getAllProcessInfo() if info["group"] == "app"]

    def swap(self, sv: Supervisord, n: int) -> dict:
        if self.action == "update":
            return self.update(sv, UPDATE_TAGS[(n + 1) % 2])
        if self.action in ("sighup", "upgrade"):
            before, started = self.pids(sv), time.monotonic()
            if self.action == "sighup":
                sv.rpc.supervisor.restart()
                number = 0
            else:
                number = sv.rpc.littleboss.upgrade()["upgrade"]  # then re-executes itself: a moment unreachable
            wait_for(lambda: sv.rpc.littleboss.getRunInfo()["upgrades"] == number
                     and sv.rpc.supervisor.getState()["statename"] == "RUNNING", timeout=sv.allow(0.1),
                     what=f"supervisord after its {self.action}")
            sv.wait_all_running("app")
            return {"seconds": time.monotonic() - started, "ready_to_promotion": 0, "kept": self.pids(sv) == before}
        if self.action == "reload":
            result = sv.rpc.littleboss.reload("app", self.versions[(n + 1) % 2])
            last = sv.rpc.littleboss.getProgramInfo("app")["last_reload"]
            return {"seconds": result["seconds"] + result["drain_seconds"],
                    "ready_to_promotion": last["ready_to_promotion"]}
        started = time.monotonic()
        if self.action == "start-stop":
            for _ in range(self.processes):
                sv.rpc.supervisor.startProcess("side")
                wait_for(lambda: http_get(("127.0.0.1", self.side_port)), what="the side program to answer")
                sv.rpc.supervisor.stopProcess("side")
        else:
            sv.rpc.supervisor.stopProcess(self.spec)
            sv.rpc.supervisor.startProcess(self.spec)
        return {"seconds": time.monotonic() - started, "ready_to_promotion": 0}


    def update(self, sv: Supervisord, tag: str) -> dict:
        """The section's environment changed, then ``supervisorctl update`` as an operator runs it
        (littleboss's ctl plugin applies a littleboss program in place: a ``config`` rollout; a
        plain program is stopped, removed and added again); then until the swap has finished
        (no reload under way, no process draining, every process RUNNING)."""
        before, started = self.pids(sv), time.monotonic()
        self.write_program(sv, tag)
        output = sv.ctl("update")
        called, last, history = time.monotonic() - started, {}, {}
        if self.littleboss:
            def finished() -> dict | None:
                info = sv.rpc.littleboss.getProgramInfo("app")
                return info if info["phase"] == "idle" and not info["draining_pids"] else None
            info = wait_for(finished, timeout=sv.allow(2), what="the update's swap to finish")
            last, history = info["last_reload"], info["history"][-1] if info["history"] else {}
        sv.wait_all_running("app")
        seconds, after = time.monotonic() - started, self.pids(sv)
        said = re.sub(r"\d+", "N", (output.stdout + output.stderr).strip()) + (
            f" (exit status {output.returncode})" if output.returncode else "")
        return {"seconds": seconds, "call_seconds": called, "output": said,
                "swap_seconds": history.get("seconds") if history.get("kind") == "config" else None,
                "ready_to_promotion": last.get("ready_to_promotion") or 0,
                "replaced": len(after) == len(before) and not set(after) & set(before)}


# the environment an update scenario's program alternates between (APP_VERSION: the test server
# answers it, so the answers say when the new value took effect)
UPDATE_TAGS = ("a", "b")


def releases(root: Path) -> dict[str, Versions]:
    """The binaries each scenario alternates between (v1, v2); the Node.js and Go recipes'
    servers are made when a scenario first needs them (they need node and go)."""
    rel = root / "releases"
    myblog = tuple(make_myblog_release(rel, f"myblog{version}", version) for version in ("1", "2"))
    gunicorn = tuple(make_gunicorn_release(rel, version) for version in ("g1", "g2"))
    warm = (make_release(rel, "warm1", "w1", "--warmup", "1.5"), make_release(rel, "warm2", "w2", "--warmup", "1.5"))

    def node() -> tuple[str, str]:
        require("node", "nodejs")
        return make_node_release(rel, "n1"), make_node_release(rel, "n2")

    def go() -> tuple[str, str]:
        return make_go_release(rel, "go1", root / "go"), make_go_release(rel, "go2", root / "go")

    asgi = {server: tuple(make_asgi_release(rel, server, f"{server[0]}{n}") for n in (1, 2))
            for server in ("uvicorn", "hypercorn")}  # through littleboss's launcher
    return {"myblog": myblog, "gunicorn": gunicorn, "warm": warm, "node": node, "go": go, **asgi}


# A pool of 4 processes on one socket. A myblog process that lost the race for the last
# connection sits in a blocking accept() on the shared socket, and stops on SIGTERM only once
# another connection comes (under load, at once): the supervisord stopped after the load would
# wait out stopwaitsecs (10 s in the tests' programs) for it, so it is 1 s; replaced processes
# keep the 10 s they have in the other scenarios (littleboss_lameduck)
POOL = {"numprocs": 4, "process_name": "%(program_name)s_%(process_num)s", "stopwaitsecs": 1,
        "littleboss_lameduck": 10}


def scenarios(bins: dict) -> list[Scenario]:
    plain = (f"{HTTPAPP} --bind 127.0.0.1:{{port}}",) * 2
    plain_warm = (f"{HTTPAPP} --warmup 1.5 --bind 127.0.0.1:{{port}}",) * 2
    own_gunicorn = f"{GUNICORN} --bind 127.0.0.1:{{port}}"
    plain_gunicorn = (own_gunicorn,) * 2
    return [
        Scenario("plain-restart", "httpapp", "restart", plain, littleboss=False),
        Scenario("littleboss-restart", "myblog", "restart", bins["myblog"]),
        Scenario("littleboss-reload", "myblog", "reload", bins["myblog"]),
        Scenario("start-stop-control", "myblog", "start-stop", bins["myblog"]),
        # the same three as a pool of 4 processes on one socket (numprocs = 4): a reload replaces
        # one process at a time (littleboss_surge = 1), a restart restarts the group
        *(Scenario(f"{name}-pool", "myblog pool", action, bins["myblog"], **POOL)
          for name, action in (("littleboss-restart", "restart"), ("littleboss-reload", "reload"),
                               ("start-stop-control", "start-stop"))),
        # supervisord's own reload (supervisorctl reload): it restarts a plain program; a littleboss
        # program, a process or a pool, runs on through it
        Scenario("plain-sighup", "httpapp", "sighup", plain, littleboss=False),
        Scenario("littleboss-sighup", "myblog", "sighup", bins["myblog"]),
        Scenario("littleboss-sighup-pool", "myblog pool", "sighup", bins["myblog"], **POOL),
        Scenario("littleboss-upgrade", "myblog", "upgrade", bins["myblog"]),
        Scenario("littleboss-upgrade-pool", "myblog pool", "upgrade", bins["myblog"], **POOL),
        # supervisorctl update after a change to the program's environment (APP_VERSION=a, then b,
        # a, ...; the test server answers it): a plain program is stopped and started again, a
        # littleboss program (a process or a pool) swapped in place by a config rollout
        Scenario("plain-update", "httpapp", "update", plain, littleboss=False),
        Scenario("littleboss-update", "httpapp", "update", (HTTPAPP, HTTPAPP)),
        Scenario("littleboss-update-pool", "httpapp pool", "update", (HTTPAPP, HTTPAPP), **POOL),
        Scenario("plain-restart-warmup", "warm-up app", "restart", plain_warm, littleboss=False),
        Scenario("littleboss-reload-warmup", "warm-up app", "reload", bins["warm"]),
        Scenario("gunicorn-plain-restart", "gunicorn", "restart", plain_gunicorn, littleboss=False),
        Scenario("gunicorn-reload", "gunicorn", "reload", bins["gunicorn"], settle=1, own_port=own_gunicorn),
        # README.rst's recipes: Node cannot send READY=1 (startsecs), Go can
        Scenario("node-reload", "node", "reload", bins["node"], ready="startsecs", startsecs=1,
                 own_port="{v1} 127.0.0.1:{port}"),
        Scenario("go-reload", "go", "reload", bins["go"], own_port="{v1} -addr=127.0.0.1:{port}"),
        # uvicorn and hypercorn through the launcher, beside the server on its own port
        *(Scenario(server, server, "reload", bins[server], own_port=served_alone(server, "{port}"))
          for server in ("uvicorn", "hypercorn")),
    ]


def run(scenario: Scenario, mode: str, args, root: Path, baseline: float | None = None) -> Result:
    """One scenario in one load mode; with ``baseline``, its program under the same load for
    that many seconds, without reloads."""
    sv = BenchSupervisord(Path(tempfile.mkdtemp(dir=root)), programs=scenario.processes + 1)
    port = free_port()
    scenario.configure(sv, port)
    label = scenario.name if baseline is None else f"{'baseline' if scenario.littleboss else 'own port'} {scenario.app}"
    result = Result(label, mode, scenario.app)
    try:
        sv.start()
        sv.wait_all_running("app")
        wait_for(lambda: http_get(("127.0.0.1", port)), what="the app to answer")
        windows = []
        with LoadProcess(address=("127.0.0.1", port), threads=args.concurrency, duration=args.limit,
                         max_requests=10_000_000, keepalive=mode == "keepalive", record=True,
                         version=version_of, rate=args.rate) as rec:
            rec.wait_for_requests(args.concurrency * 10, timeout=60)
            if baseline is not None:  # a measured stretch without reloads: the baseline's whole point
                time.sleep(max(0.0, baseline - (time.monotonic() - rec.started)))
            for n in range(args.reloads if baseline is None else 0):
                started = time.monotonic()
                swap = scenario.swap(sv, n)
                windows.append((started, time.monotonic()))
                result.reload_seconds.append(round(swap["seconds"], 3))
                if swap["ready_to_promotion"]:
                    result.ready_to_promotion_ms.append(round(swap["ready_to_promotion"] * 1000, 2))
                if "kept" in swap:
                    result.pids_kept.append(swap["kept"])
                if "replaced" in swap:
                    result.pids_replaced.append(swap["replaced"])
                    result.call_seconds.append(round(swap["call_seconds"], 3))
                    if swap["swap_seconds"] is not None:
                        result.swap_seconds.append(round(swap["swap_seconds"], 3))
                    result.update_outputs[swap["output"]] = result.update_outputs.get(swap["output"], 0) + 1
                rec.wait_for_requests(args.concurrency * 5, timeout=60)
        result.seconds = round(rec.stopped - rec.started, 1)
        result.broken_keepalive = rec.result.broken if mode == "keepalive" else 0
        answers = summarize(result, rec, windows)
        if baseline is None:
            versions_around(result, answers, windows, count_old=scenario.action in ("reload", "update"))
    finally:
        sv.stop()
    return result


def cpu_and_memory(pid: int) -> tuple[float, int]:
    """(CPU seconds used, resident kB) of process ``pid``."""
    fields = proc_stat(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    ticks = os.sysconf("SC_CLK_TCK")
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS"))
    return (int(fields[11]) + int(fields[12])) / ticks, rss


def many_programs(root: Path, programs: int, plugin: bool, **more: object) -> BenchSupervisord:
    """A supervisord (not started) with ``programs`` test servers: littleboss programs, or
    plain ones (each binding its own port) in a supervisord without the plugin; ``more``:
    keys for every program's section (``{releases}`` in a value: the binaries' directory,
    ``releases/v1/app``)."""
    sv = BenchSupervisord(Path(tempfile.mkdtemp(dir=root)), programs)
    if not plugin:
        sv.conf.write_text(sv.conf.read_text().replace("[rpcinterface:littleboss]", "[x_disabled]"))
    v1 = make_release(sv.root / "releases", "v1", "v1")
    more = {key: str(value).format(releases=sv.root / "releases") for key, value in more.items()}
    for n in range(programs):
        keys = {"littleboss_sockets": f"http=tcp://127.0.0.1:{free_port()}", "littleboss_ready": "notify"} \
            if plugin else {}
        command = v1 if plugin else f"{v1} --bind 127.0.0.1:{free_port()}"
        sv.program(f"app{n}", command=command, **keys, **more)
    return sv


def supervisord_cost(root: Path, programs: int, idle: float, plugin: bool, reload_all: bool) -> dict:
    """supervisord's CPU and memory with ``programs`` programs idle (and reloading at once);
    how long it took to start them all and to stop, and how many it left running."""
    sv = many_programs(root, programs, plugin)
    try:
        started = time.monotonic()
        sv.start()
        sv.wait_all_running()
        cost = {"programs": programs, "plugin": plugin, "start_seconds": round(time.monotonic() - started, 2)}
        time.sleep(2)  # let start-up settle before measuring idle
        cpu0, _ = cpu_and_memory(sv.proc.pid)
        time.sleep(idle)  # measuring idle CPU is waiting, by definition
        cpu1, rss = cpu_and_memory(sv.proc.pid)
        cost.update(idle_seconds=idle, idle_cpu_percent=round((cpu1 - cpu0) / idle * 100, 3), rss_kb=rss)
        if reload_all:
            # the wait asks /proc whether every replaced process has exited, not supervisord: each
            # answer about 500 programs would cost it 0.1 s of CPU, counted as the reloads' cost
            replaced = list(descendants(sv.proc.pid).items())  # every program's process
            started = time.monotonic()
            for n in range(programs):
                sv.rpc.littleboss.reload(f"app{n}", "", False)
            sv.track()  # the candidates

            def all_replaced() -> bool:
                while replaced and start_ticks(replaced[-1][0]) != replaced[-1][1]:
                    replaced.pop()
                return not replaced

            def finished() -> list[dict] | None:
                infos = sv.rpc.littleboss.getAllProgramInfo()
                return infos if all(i["phase"] == "idle" and not i["draining_pids"] for i in infos) else None
            wait_for(all_replaced, timeout=sv.allow(1.0), what="every replaced process to exit")
            seconds, (cpu2, rss2) = time.monotonic() - started, cpu_and_memory(sv.proc.pid)
            infos = wait_for(finished, timeout=sv.allow(0.1), what="every reload to finish")
            outcomes = [i["history"][-1]["outcome"] for i in infos]
            cost.update(reload_all_seconds=round(seconds, 2), reload_all_cpu_seconds=round(cpu2 - cpu1, 3),
                        rss_kb_after=rss2, reloads_succeeded=outcomes.count("succeeded"))
    finally:
        sv.stop()
    return {**cost, "stop_seconds": sv.stop_seconds, "left_running": len(sv.left_running)}


def pidfile(path: Path) -> tuple[int, int] | None:
    """(inode, change time) of supervisord's pidfile, or None while there is none: a run of
    supervisord deletes it when it ends, and the next writes it anew once it has read its
    configuration, made (or taken up) its groups and made its RPC interfaces (littleboss's
    among them), just before its main loop starts."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_ctime_ns


def parse_cpu(conf: Path, plugin: bool) -> dict:
    """CPU seconds (in this process) of supervisord's parse of ``conf`` (``read_config``, as
    supervisord re-reads it on SIGHUP; and of the same programs in one file instead of one
    included file each), and with the plugin of littleboss's own read of the file
    (``littleboss_configs``: the same parse, and littleboss's settings)."""
    from supervisor_littleboss.config import littleboss_configs
    from supervisor_littleboss.glue import read_server_config

    def cpu(call: Callable[[], object]) -> float:
        started = time.process_time()
        call()
        return round(time.process_time() - started, 3)
    littleboss_configs(str(conf))  # the first parse in a process imports what parsing needs
    one = conf.with_name("one-file.conf")
    one.write_text(conf.read_text().split("[include]")[0] + "\n".join(
        f.read_text() for f in sorted(conf.parent.glob("conf.d/*.conf"))))
    parsed = {"parse_cpu_seconds": cpu(lambda: read_server_config(str(conf))),
              "parse_one_file_cpu_seconds": cpu(lambda: read_server_config(str(one)))}
    if plugin:
        parsed["littleboss_parse_cpu_seconds"] = cpu(lambda: littleboss_configs(str(conf)))
    return parsed


def sighup_cost(root: Path, programs: int, plugin: bool) -> dict:
    """supervisord's own CPU for one SIGHUP (``supervisorctl reload``) with ``programs``
    littleboss programs (or, without the plugin, plain ones: supervisord restarts them all),
    from /proc. From the signal until supervisord's new run serves again (its pidfile written
    anew: every group made or taken up) and, for plain programs, every one started again (a
    process of supervisord's for each, none of the old ones), then 2 s for the new run's first
    passes; nothing is asked of supervisord meanwhile (with 500 programs each
    ``getAllProcessInfo`` costs it tens of ms of CPU). Then one ``getAllProcessInfo``, not
    counted, checks every process RUNNING and which pids were kept."""
    sv = many_programs(root, programs, plugin)
    cost: dict = {"programs": programs, "plugin": plugin}
    try:
        sv.start()
        sv.wait_all_running()
        time.sleep(2)  # let start-up settle
        before = {f"{i['group']}:{i['name']}": i["pid"] for i in sv.rpc.supervisor.getAllProcessInfo()}
        old = {pid: start_ticks(pid) for pid in before.values()}
        written, pid = pidfile(sv.root / "supervisord.pid"), sv.proc.pid
        cost.update(parse_cpu(sv.conf, plugin))
        cpu0, rss0 = cpu_and_memory(pid)
        started = time.monotonic()
        os.kill(pid, signal.SIGHUP)  # what supervisorctl reload asks supervisord for (supervisor.restart)
        wait_for(lambda: pidfile(sv.root / "supervisord.pid") not in (None, written), timeout=sv.allow(2),
                 what="supervisord's new run to serve")
        cost["serving_seconds"] = round(time.monotonic() - started, 3)
        cost["serving_cpu_seconds"] = round(cpu_and_memory(pid)[0] - cpu0, 3)
        if not plugin:
            def restarted() -> bool:
                now = descendants(pid)
                return sum(1 for child in now if old.get(child) != now[child]) >= programs
            wait_for(restarted, timeout=sv.allow(0.5), what="every program to start again")
        cost["seconds"] = round(time.monotonic() - started, 3)
        time.sleep(2)  # the new run's first passes of its main loop (they sleep up to 1 s)
        cpu1, rss1 = cpu_and_memory(pid)
        sv.track()
        after = {f"{i['group']}:{i['name']}": i for i in sv.rpc.supervisor.getAllProcessInfo()}
        cost.update(cpu_seconds=round(cpu1 - cpu0, 3), rss_kb_before=rss0, rss_kb_after=rss1,
                    running=sum(1 for i in after.values() if i["statename"] == "RUNNING"),
                    pids_kept=sum(1 for name, p in before.items() if name in after and after[name]["pid"] == p
                                  and start_ticks(p) == old[p]))
    finally:
        sv.stop()
    return {**cost, "stop_seconds": sv.stop_seconds, "left_running": len(sv.left_running)}


def cpu_ns(pid: int) -> int:
    """CPU time process ``pid`` has used, in nanoseconds (``/proc/PID/task/*/schedstat``: the
    scheduler's own count; ``/proc/PID/stat`` counts in clock ticks of 10 ms, too coarse for
    one event)."""
    return sum(int(task.read_text().split()[0]) for task in Path(f"/proc/{pid}/task").glob("*/schedstat"))


class LogTail:
    """What a log file gains from now on."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.text = path, path.stat().st_size, ""

    def says(self, line: str) -> bool:
        """Whether ``line`` has been written since this tail was made."""
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            data = file.read()
        self.offset += len(data)
        self.text += data.decode(errors="replace")
        return line in self.text


EVENT_SETTLE = 0.5  # seconds after an event ends, for supervisord to finish its pass


def event_cpu(pid: int, event: Callable[..., object], *args: object) -> tuple[float, float]:
    """supervisord's (``pid``'s) CPU in ms for ``event(*args)`` (a call that returns once the
    event has ended) and EVENT_SETTLE seconds after it, and the event's own seconds. A moment's
    quiet first: the last XML-RPC call's connection closed."""
    time.sleep(0.2)
    cpu0, started = cpu_ns(pid), time.monotonic()
    event(*args)
    seconds = time.monotonic() - started
    time.sleep(EVENT_SETTLE)
    return (cpu_ns(pid) - cpu0) / 1e6, seconds


def event_cost(root: Path, programs: int, plugin: bool, repeats: int) -> dict:
    """supervisord's own CPU (``cpu_ns``) for one event of one program with ``programs``
    littleboss programs (without the plugin: plain ones), each event ``repeats`` times, the
    median reported: a ``littleboss.reload`` of ``app0`` to the other binary (v1 and v2 in
    turn) until it returns and its old process is reaped; the exit of the last program's
    process (SIGKILL by its pid, autorestart) until its new process is RUNNING (supervisord's
    log says so). Nothing is asked of supervisord meanwhile but the reload itself (with 500
    programs a ``getAllProcessInfo`` costs it tens of ms); a ``getProcessInfo`` of the one
    process before each event names its pid. Also supervisord's CPU idle, in ms a second."""
    keys: dict = {"autorestart": "true"}
    if plugin:  # the other binary is allowed; an exit is never taken for a failed reload
        keys.update(littleboss_allow="{releases}/*/app", littleboss_fallback_window=0)
    sv = many_programs(root, programs, plugin, **keys)
    binaries = [make_release(sv.root / "releases", version, version) for version in ("v1", "v2")]
    reloaded, exiting = "app0", f"app{programs - 1}"
    cost: dict = {"programs": programs, "plugin": plugin}
    reloads, exits, phases, restarted = [], [], [], 0

    def reload(target: str, old: int, ticks: int) -> None:
        phases.append(sv.rpc.littleboss.reload(reloaded, target)["phase"])
        wait_for(lambda: reaped(old, ticks), timeout=sv.allow(0.01), what="the reloaded process to exit")

    def exit_(old: int, tail: LogTail) -> None:
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: tail.says(f"success: {exiting} entered RUNNING state"), timeout=sv.allow(0.01),
                 what=f"{exiting} to run again")
    try:
        sv.start()
        sv.wait_all_running()
        time.sleep(1)  # let start-up settle
        pid = sv.proc.pid
        cost["idle_cpu_ms_per_s"] = round(event_cpu(pid, time.sleep, 1)[0] / (1 + EVENT_SETTLE), 2)
        for n in range(repeats if plugin else 0):
            old = sv.info(reloaded)["pid"]
            reloads.append(event_cpu(pid, reload, binaries[(n + 1) % 2], old, start_ticks(old)))
        for _ in range(repeats):
            old = sv.info(exiting)["pid"]
            exits.append(event_cpu(pid, exit_, old, LogTail(sv.log)))
            restarted += sv.info(exiting)["pid"] not in (0, old)
    finally:
        sv.stop()
    for name, figures in (("reload", reloads), ("exit", exits)):
        if figures:
            cost[f"{name}_cpu_ms"] = round(statistics.median(cpu for cpu, _ in figures), 2)
            cost[f"{name}_cpu_ms_each"] = [round(cpu, 2) for cpu, _ in figures]
            cost[f"{name}_seconds"] = round(statistics.median(seconds for _, seconds in figures), 3)
    return {**cost, "reload_phases": phases, "restarted": restarted, "stop_seconds": sv.stop_seconds,
            "left_running": len(sv.left_running)}


def table(results: list[Result]) -> str:
    head = (f"{'scenario':<26}{'mode':<10}{'requests':>9}{'req/s':>7}{'failed':>8}  {'by kind':<22}{'ka broken':>9}"
            f"{'p50':>8}{'p99':>8}{'max':>8}{'p99 rl':>8}{'gap':>8}{'gap rl':>8}{'secs':>6}"
            f"{'reload s':>9}{'rdy>prom':>9}  versions")
    lines = [head, "-" * len(head)]
    for r in results:
        kinds = ",".join(f"{k} {v}" for k, v in sorted(r.failed.items())) or "-"
        overall, inside = r.latency_ms.get("overall", {}), r.latency_ms.get("in_reloads", {})
        median_reload = f"{statistics.median(r.reload_seconds):.2f}" if r.reload_seconds else "-"
        promo = f"{statistics.median(r.ready_to_promotion_ms):.1f}ms" if r.ready_to_promotion_ms else "-"
        switched = sum(1 for before, after in r.versions if after and after != before)
        versions = f"{switched}/{len(r.versions)} switched" if r.versions else "-"
        if r.pids_kept:
            versions = f"pids kept {sum(r.pids_kept)}/{len(r.pids_kept)}"
        if r.pids_replaced:
            versions += f", pids replaced {sum(r.pids_replaced)}/{len(r.pids_replaced)}"
        if r.old_answers_after_return:
            versions += f", {r.old_answers_after_return} old answers after return"
        rate = r.requests / r.seconds if r.seconds else 0
        lines.append(f"{r.scenario:<26}{r.mode:<10}{r.requests:>9}{rate:>7.0f}{sum(r.failed.values()):>8}  {kinds:<22}"
                     f"{r.broken_keepalive:>9}{overall.get('p50', 0):>8}{overall.get('p99', 0):>8}"
                     f"{overall.get('max', 0):>8}{inside.get('p99', 0):>8}{r.longest_gap_ms:>8}"
                     f"{r.longest_gap_in_reloads_ms:>8}{r.seconds:>6.0f}{median_reload:>9}"
                     f"{promo:>9}  {versions}")
    return "\n".join(lines)


def _tags(result: Result) -> list[str]:
    """The value each update of ``result`` set (APP_VERSION), in order."""
    return [UPDATE_TAGS[(n + 1) % 2] for n in range(len(result.versions))]


def targets(results: list[Result], chosen: list[Scenario], costs: list[dict],
            sighups: tuple[dict, ...] | list[dict] = (), events: tuple[dict, ...] | list[dict] = ()
            ) -> dict[str, tuple[bool, str]]:
    """The product's targets, each (met, the figures behind it), from this run's figures."""
    settle = {s.name: s.settle for s in chosen if s.action == "reload"}
    controls = {s.name for s in chosen if s.action == "start-stop"}
    reloads = [r for r in results if r.scenario in settle]
    checks: dict[str, tuple[bool, str]] = {}
    if reloads:
        failed, broken = sum(sum(r.failed.values()) for r in reloads), sum(r.broken_keepalive for r in reloads)
        checks["no failed request or broken keep-alive connection"] = (
            failed == 0 and broken == 0, f"{failed} failed, {broken} keep-alive connections broken")
    for mode in dict.fromkeys(r.mode for r in reloads):
        pairs = [(r, next(b for b in results if b.mode == mode and b.scenario == f"baseline {r.app}"))
                 for r in reloads if r.mode == mode]
        # each reloaded app's start-stop control: its binary started and stopped beside it as often
        controlled = [(r, c) for r, _ in pairs for c in results
                      if c.mode == mode and c.scenario in controls and c.app == r.app]
        figures = "; ".join(f"{r.app} {r.longest_gap_ms} ms with reloads, {b.longest_gap_ms} ms without"
                            for r, b in pairs)
        figures += "".join(f"; {c.app} started and stopped beside the program, no reload: "
                           f"{c.longest_gap_ms} ms (control)" for _, c in controlled)
        checks[f"longest gap within 5 ms of a run without reloads ({mode})"] = (
            all(r.longest_gap_ms - b.longest_gap_ms <= 5 for r, b in pairs), figures)
        if controlled:
            checks[f"longest gap no longer than the start-stop control's ({mode})"] = (
                all(r.longest_gap_ms <= c.longest_gap_ms for r, c in controlled),
                "; ".join(f"{r.app} {r.longest_gap_ms} ms with reloads, {c.longest_gap_ms} ms in its control"
                          for r, c in controlled))
    kept = {s.name for s in chosen if s.action in ("sighup", "upgrade") and s.littleboss}
    hups = [r for r in results if r.scenario in kept]
    if hups:
        failed = sum(sum(r.failed.values()) + r.broken_keepalive for r in hups)
        checks["every pid kept and no request failed through supervisord's reload"] = (
            failed == 0 and all(all(r.pids_kept) for r in hups),
            "; ".join(f"{r.scenario} {r.mode}: pids kept {sum(r.pids_kept)}/{len(r.pids_kept)}, "
                      f"{sum(r.failed.values())} failed, {r.broken_keepalive} broken, gap {r.longest_gap_ms} ms"
                      for r in hups))
    in_place = {s.name for s in chosen if s.action == "update" and s.littleboss}
    updates = [r for r in results if r.scenario in in_place]
    if updates:
        failed = sum(sum(r.failed.values()) + r.broken_keepalive for r in updates)
        checks["supervisorctl update swaps a littleboss program in place: no request failed, new value answered"] = (
            failed == 0 and all(all(r.pids_replaced) and len(r.pids_replaced) == len(r.versions)
                                and all(after == tag for (_, after), tag in zip(r.versions, _tags(r), strict=True))
                                and not r.old_answers_after_return for r in updates),
            "; ".join(f"{r.scenario} {r.mode}: {sum(r.failed.values())} failed, {r.broken_keepalive} broken, "
                      f"pids replaced {sum(r.pids_replaced)}/{len(r.pids_replaced)}, new value answered "
                      f"{sum(after == tag for (_, after), tag in zip(r.versions, _tags(r), strict=True))}"
                      f"/{len(r.versions)}, gap {r.longest_gap_ms} ms" for r in updates))
    beyond = [ms - settle[r.scenario] * 1000 for r in reloads for ms in r.ready_to_promotion_ms]
    if beyond:
        median = statistics.median(beyond)
        checks["median READY=1 -> promotion under 20 ms (beyond littleboss_settle)"] = (median < 20, f"{median:.1f} ms")
    idle = {c["plugin"]: c for c in costs[1:]}
    if len(idle) == 2:
        # CPU time is counted in clock ticks: one tick over the idle time is as close as it can tell
        tick = 100 / (os.sysconf("SC_CLK_TCK") * idle[True]["idle_seconds"])
        with_it, without = idle[True]["idle_cpu_percent"], idle[False]["idle_cpu_percent"]
        checks["idle supervisord CPU with the plugin no higher than without"] = (
            # (the figures are rounded to 0.001: 2 ticks over 3 s read 0.667, 1 tick 0.333)
            with_it <= without + tick + 0.001, f"{with_it} % with, {without} % without (one clock tick: {tick:.2f} %)")
    kept_by = [h for h in sighups if h["plugin"]]
    if kept_by:
        checks["every pid kept through one SIGHUP, however many littleboss programs"] = (
            all(h["pids_kept"] == h["running"] == h["programs"] for h in kept_by),
            "; ".join(f"{h['programs']} programs: {h['pids_kept']} pids kept, {h['running']} running"
                      for h in kept_by))
    if len({h["programs"] for h in kept_by}) > 1:
        fewest, most = min(kept_by, key=lambda h: h["programs"]), max(kept_by, key=lambda h: h["programs"])
        plain = {h["programs"]: h["cpu_seconds"] for h in sighups if not h["plugin"]}
        # flat: no more than twice as much (or 50 ms more) with the most programs as with the fewest
        checks["supervisord CPU per SIGHUP flat in the number of littleboss programs"] = (
            most["cpu_seconds"] <= max(2 * fewest["cpu_seconds"], fewest["cpu_seconds"] + 0.05),
            "; ".join(f"{h['programs']} programs: {h['cpu_seconds']} s (supervisord's parse of the configuration "
                      f"alone {h['parse_cpu_seconds']} s, littleboss's own read {h['littleboss_parse_cpu_seconds']} s"
                      + (f"; plain supervisord, plain programs: {plain[h['programs']]} s" if h["programs"] in plain
                         else "") + ")" for h in kept_by))
    checks.update(event_targets(events))
    return checks


def event_targets(events: tuple[dict, ...] | list[dict]) -> dict[str, tuple[bool, str]]:
    """Whether littleboss's own part of supervisord's CPU for a reload and for an exit (what it
    costs beyond a plain supervisord's exit and restart of a program with as many programs: its
    main loop goes over every program each pass) is flat in the number of programs: no more
    than twice as much, or 5 ms more, with the most programs as with the fewest."""
    plain = {e["programs"]: e["exit_cpu_ms"] for e in events if not e["plugin"]}
    ours = [e for e in events if e["plugin"] and e["programs"] in plain]
    if len(ours) < 2:
        return {}
    fewest, most = min(ours, key=lambda e: e["programs"]), max(ours, key=lambda e: e["programs"])
    checks = {}
    for event in ("reload", "exit"):
        def own(e: dict, event: str = event) -> float:
            return e[f"{event}_cpu_ms"] - plain[e["programs"]]
        checks[f"littleboss's own part of supervisord's CPU per {event} flat in the number of programs"] = (
            own(most) <= max(2 * own(fewest), own(fewest) + 5),
            "; ".join(f"{e['programs']} programs: {e[f'{event}_cpu_ms']} ms, plain supervisord's exit and "
                      f"restart {plain[e['programs']]} ms, littleboss's part {own(e):.2f} ms" for e in ours))
    return checks


def print_event(cost: dict, first: bool) -> None:
    """One line of ``event_cost``'s figures (after a heading, if ``first``)."""
    if first:
        print("\nsupervisord's CPU for one event of one program (median, ms)")
    reload = f"reload {cost['reload_cpu_ms']} ms ({cost['reload_seconds']} s), " if cost["plugin"] else ""
    print(f"  {cost['programs']} {'littleboss' if cost['plugin'] else 'plain (no plugin)'} programs: {reload}"
          f"exit and restart {cost['exit_cpu_ms']} ms ({cost['exit_seconds']} s); idle {cost['idle_cpu_ms_per_s']} "
          f"ms/s; {cost['restarted']} restarted, stopped in {cost['stop_seconds']} s, "
          f"{cost['left_running']} left running", flush=True)


def each_count(numbers: str) -> list[tuple[int, bool]]:
    """(N, with the plugin), then (N, without), for each N in comma-separated ``numbers``."""
    return [(int(n), plugin) for n in numbers.split(",") if n.strip() for plugin in (True, False)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0,
                        help="requests a second each client starts at most (default 0: as fast as it can)")
    parser.add_argument("--modes", default="new,keepalive")
    parser.add_argument("--scenarios", default="all", help="comma-separated names, or all")
    parser.add_argument("--baseline", type=float, help="seconds of load without reloads on each reloaded app "
                        "(default: as long as its reload run)")
    parser.add_argument("--limit", type=float, default=600.0, help="upper bound on any one load, seconds")
    parser.add_argument("--cost-programs", type=int, default=50, help="0 skips the supervisord cost runs")
    parser.add_argument("--cost-idle", type=float, default=10.0)
    parser.add_argument("--sighup-programs", default="10,100",
                        help="comma-separated numbers of programs: supervisord's CPU for one SIGHUP with that many "
                             "littleboss programs, and without the plugin with as many plain ones (empty: skip)")
    parser.add_argument("--event-programs", default="10,100",
                        help="comma-separated numbers of programs: supervisord's CPU for one littleboss reload and "
                             "one exit + autorestart of one program among that many littleboss programs, and for the "
                             "exit without the plugin among as many plain ones (empty: skip)")
    parser.add_argument("--event-repeats", type=int, default=5, help="each event this many times (the median counts)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    report: dict = {"settings": vars(args), "runs": [], "supervisord": [], "sighup": [], "events": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bins = releases(root)
        chosen = [s for s in scenarios(bins) if args.scenarios == "all" or s.name in args.scenarios.split(",")]
        results = []
        for mode in args.modes.split(","):
            for scenario in chosen:
                results.append(run(scenario, mode, args, root))
                print(table(results[-1:]).splitlines()[-1], flush=True)
                if scenario.action == "reload":
                    # the longest gap is a maximum, so it grows with the length of the run:
                    # each reload run is compared with its own app, under load as long
                    length = args.baseline if args.baseline is not None else results[-1].seconds
                    # and, where it can bind its own port, the same server without littleboss
                    for unswapped in (scenario, scenario.alone()) if scenario.own_port else (scenario,):
                        results.append(run(unswapped, mode, args, root, baseline=length))
                        print(table(results[-1:]).splitlines()[-1], flush=True)
        pace = f" at most {args.rate:g} requests/s each" if args.rate else " as fast as they can"
        if results:
            print(f"\n{args.reloads} reloads/restarts per scenario, {args.concurrency} clients{pace}; "
                  "latencies in ms ('p99 rl': inside reload windows; 'gap': longest stretch without a success,\n"
                  "'gap rl': the longest of those overlapping a reload window; 'secs': length of the load)\n")
            print(table(results))
        report["runs"] = [asdict(r) for r in results]
        if args.cost_programs:
            costs = [supervisord_cost(root, 1, args.cost_idle, True, False),
                     supervisord_cost(root, args.cost_programs, args.cost_idle, False, False),
                     supervisord_cost(root, args.cost_programs, args.cost_idle, True, True)]
            report["supervisord"] = costs
            print("\nsupervisord's own cost")
            for cost in costs:
                print("  " + ", ".join(f"{k} {v}" for k, v in cost.items()))
        for programs, plugin in each_count(args.sighup_programs):
            report["sighup"].append(sighup_cost(root, programs, plugin))
            hup = report["sighup"][-1]
            if len(report["sighup"]) == 1:
                print("\nsupervisord's CPU for one SIGHUP (supervisorctl reload)")
            print(f"  {programs} {'littleboss' if plugin else 'plain (no plugin)'} programs: "
                  f"{hup['cpu_seconds']} s CPU, serving again after {hup['serving_seconds']} s, "
                  f"all started after {hup['seconds']} s, {hup['running']} running, "
                  f"{hup['pids_kept']} pids kept; parsing its configuration alone: {hup['parse_cpu_seconds']} s "
                  f"({hup['parse_one_file_cpu_seconds']} s as one file)"
                  + (f", littleboss's own read {hup['littleboss_parse_cpu_seconds']} s" if plugin else "")
                  + f"; {hup['rss_kb_before']} -> {hup['rss_kb_after']} kB, stopped in {hup['stop_seconds']} s, "
                  f"{hup['left_running']} left running", flush=True)
        for programs, plugin in each_count(args.event_programs):
            report["events"].append(event_cost(root, programs, plugin, args.event_repeats))
            print_event(report["events"][-1], len(report["events"]) == 1)
        report["targets"] = targets(results, chosen, report["supervisord"], report["sighup"], report["events"])
        if report["targets"]:
            print("\ntargets")
            for name, (met, figures) in report["targets"].items():
                print(f"  {'met    ' if met else 'NOT MET'}  {name}: {figures}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    # SIGTERM (a CI timeout, kill PID) unwinds like Ctrl-C: every supervisord started is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()

"""The Ansible collection (ansible_collections/supervisor_littleboss/fleet) run by the real
ansible-playbook against a fleet of three supervisords on this machine (hosts on the local
connection, each with its own server_url), under client load on each host's port."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from harness import HTTPAPP, Releases, Supervisord, free_port, http_get, make_executable, wait_for
from load import Load

from supervisor_littleboss.faults import LittlebossFaults

pytestmark = pytest.mark.e2e  # starts three real supervisords

ROOT = Path(__file__).parent.parent  # ANSIBLE_COLLECTIONS_PATH: it holds ansible_collections/
BIN = Path(sys.executable).parent  # ansible-core is a test dependency: its scripts are in this virtualenv
HOSTS = ("host1", "host2", "host3")
PROGRAM = "web"
USERNAME, PASSWORD = "deploy", "s3cret"  # host3's HTTP server asks for them
MODULE = "supervisor_littleboss.fleet.littleboss"
ROLLING_RELOAD, ROLLBACK = "supervisor_littleboss.fleet.rolling_reload", "supervisor_littleboss.fleet.rollback"
INTERPRETER = '"{{ ansible_playbook_python }}"'  # the local connection's, as README.rst's inventory has it
CHECK_TITLE = "Check health_url from the host"
STOPPED = ("the rollout stopped at this host's batch (no later batch was started): fix the cause and run the same "
           "command again to carry on")  # how the message of a stopped rollout ends
# an interpreter that runs the module as user nobody, who may not use the supervisords' sockets
NOBODY_PYTHON = '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 "$@"\n'
# ansible-core ships no JSON stdout callback (ansible.posix has one): this one prints, as the last
# line, {"results": {host: {first word of a task's name: its result, with "outcome": ok, failed
# or skipped}}, "stats": {host: counts}, "batches": [[hosts of the 1st serial batch, sorted], ...]}
CALLBACK = '''
import json
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "results_json"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.results = {}
        self.batches = []

    def v2_playbook_on_play_start(self, play):  # once per serial batch
        self.batches.append([])

    def record(self, result, outcome):
        # ansible-core 2.19 names them host, task and result; 2.17 only _host, _task and _result
        host, task, data = (getattr(result, name, None) or getattr(result, "_" + name)
                            for name in ("host", "task", "result"))
        self.results.setdefault(host.get_name(), {})[task.get_name().split()[0]] = dict(data, outcome=outcome)
        if host.get_name() not in self.batches[-1]:
            self.batches[-1].append(host.get_name())

    def v2_runner_on_ok(self, result):
        self.record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self.record(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        counts = {host: stats.summarize(host) for host in stats.processed}
        batches = [sorted(batch) for batch in self.batches]
        self._display.display(json.dumps({"results": self.results, "stats": counts, "batches": batches}, default=str))
'''


def tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN))
    assert path, f"{name} is not in {BIN}: pip install -e '.[test]' (ansible-core is a test dependency)"
    return path


class Fleet:
    """Three supervisords, ``host1`` to ``host3``, each running ``web`` on a port of its own (host3
    reached over HTTP with credentials), the releases they swap, and an inventory naming them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        releases = Releases(root)
        self.v1, self.v2 = releases.v1, releases.v2
        crash = releases.add("crash", "v3", "--mode", "crash")
        self.slow = releases.add("slow", "v4", "--warmup", "3")  # ready after 3 s
        # v3 crashes on host2 only (say, a setting that host lacks)
        self.v3 = releases.script("v3", f'[ "$FLEET_HOST" = host2 ] && exec {crash}\nAPP_VERSION=v3 exec {HTTPAPP}')
        # v5 serves, but its GET /health answers 503 from the start on host1 only (the canary)
        sick = releases.add("sick", "v5", "--unhealthy-after", "0.001")
        self.v5 = releases.script("v5", f'[ "$FLEET_HOST" = host1 ] && exec {sick}\nAPP_VERSION=v5 exec {HTTPAPP}')
        self.sv: dict[str, Supervisord] = {}
        self.ports: dict[str, int] = {}
        inventory = ["[web]"]
        for host in HOSTS:
            sv = self.sv[host] = Supervisord(root / host, inet_http=host == "host3")
            port = self.ports[host] = free_port()
            sv.littleboss_program(PROGRAM, self.v1, port, releases.allow, environment=f'FLEET_HOST="{host}"',
                                  littleboss_fallback_window=0)
            url = f"unix://{sv.sock}"
            if host == "host3":
                text = sv.conf.read_text()
                http = re.search(r"port = (127\.0\.0\.1:\d+)", text)
                sv.conf.write_text(text.replace(http[0], f"{http[0]}\nusername = {USERNAME}\npassword = {PASSWORD}"))
                self.http_url = f"http://{http[1]}"
                url = f"{self.http_url} littleboss_username={USERNAME} littleboss_password={PASSWORD}"
            inventory.append(f"{host} littleboss_server_url={url} health_url=http://127.0.0.1:{port}/health")
        inventory += ["[web:vars]", "ansible_connection=local", f"ansible_python_interpreter={INTERPRETER}"]
        self.inventory = root / "inventory.ini"
        self.inventory.write_text("\n".join(inventory) + "\n")
        (root / "ansible.cfg").write_text("[defaults]\n")
        (root / "callbacks").mkdir()
        (root / "callbacks" / "results_json.py").write_text(CALLBACK)
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith("ANSIBLE_") and not key.lower().endswith("_proxy")}
        self.env.update(ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT),
                        ANSIBLE_HOME=str(root / "ansible"), ANSIBLE_LOCAL_TEMP=str(root / "ansible" / "tmp"),
                        ANSIBLE_REMOTE_TEMP=str(root / "ansible" / "remote"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_STDOUT_CALLBACK="results_json",
                        ANSIBLE_CALLBACK_PLUGINS=str(root / "callbacks"), ANSIBLE_RETRY_FILES_ENABLED="0",
                        ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_PIPELINING="1", LC_ALL="C.UTF-8",
                        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")

    def info(self, host: str) -> dict:
        return self.sv[host].rpc.littleboss.getProgramInfo(PROGRAM)

    def untouched(self, host: str) -> tuple:
        """What a task that changed nothing leaves as it was: pid, binary, history."""
        info = self.info(host)
        return info["pid"], info["path"], info["history"]

    def serving(self, host: str) -> str:
        """The version that answers on the host's port."""
        return http_get(("127.0.0.1", self.ports[host])).split()[0].decode()

    def put(self, *binaries: str) -> None:
        """Reload every host through ``binaries`` in turn (skipping the one it already runs)."""
        for host in HOSTS:
            for binary in binaries:
                if self.info(host)["path"] != binary:
                    self.sv[host].rpc.littleboss.reload(PROGRAM, binary)

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.root, env={**self.env, **env}, capture_output=True, text=True,
                              timeout=300)

    def shown(self, playbook: str, *args: str) -> subprocess.CompletedProcess:
        """Run ``ansible-playbook`` on the inventory with Ansible's own output, as a user sees it."""
        return self.run(tool("ansible-playbook"), "-i", str(self.inventory), playbook, *args,
                        ANSIBLE_STDOUT_CALLBACK="default")

    def playbook(self, playbook: str, *args: str, ok: bool = True) -> dict:
        """Run ``ansible-playbook`` on the inventory: what CALLBACK printed. ``ok``: whether it must succeed."""
        result = self.run(tool("ansible-playbook"), "-i", str(self.inventory), playbook, *args)
        said = f"ansible-playbook exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        try:
            output = json.loads(result.stdout.splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise AssertionError(said) from None
        assert (result.returncode == 0) == ok, said
        return output

    def rolling_reload(self, *args: str, ok: bool = True) -> dict:
        return self.playbook(ROLLING_RELOAD, "-e", f"program={PROGRAM}", *args, ok=ok)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Fleet:
    """One fleet for the module: each test first puts every host on the binary it starts
    from (``Fleet.put``), so the tests pass alone and in any order."""
    fleet = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        for sv in fleet.sv.values():
            sv.start()
        for host in HOSTS:
            fleet.sv[host].wait_running(PROGRAM)
        yield fleet
    finally:
        for sv in fleet.sv.values():
            sv.stop()


@contextlib.contextmanager
def load_on(fleet: Fleet):
    """A light client load on every host's port (new connections), flowing before and after the block."""
    with contextlib.ExitStack() as stack:
        loads = [stack.enter_context(Load(("127.0.0.1", fleet.ports[host]), threads=2, rate=20, duration=180))
                 for host in HOSTS]
        for load in loads:
            load.wait_for_requests(20)
        yield loads
        for load in loads:
            load.wait_for_requests(20)
    for host, load in zip(HOSTS, loads, strict=True):
        assert load.result.failed == 0, f"{host}: {load.result}"


def test_rolling_reload_swaps_every_host_one_at_a_time_then_changes_nothing(fleet):
    fleet.put(fleet.v1)
    with load_on(fleet):
        output = fleet.rolling_reload("-e", f"path={fleet.v2}")
    previous_end = 0.0
    for host in HOSTS:
        reload, health = output["results"][host]["Reload"], output["results"][host]["Check"]
        assert reload["changed"] and (reload["old_path"], reload["new_path"]) == (fleet.v1, fleet.v2), reload
        assert reload["new_pid"] != reload["old_pid"] and reload["seconds"] > 0
        assert health["results"][0]["status"] == 200, health
        assert fleet.serving(host) == "v2" and fleet.info(host)["pid"] == reload["new_pid"]
        entry = fleet.info(host)["history"][-1]  # its time: the promotion
        assert entry["time"] - entry["seconds"] >= previous_end, "hosts reloaded at the same time"
        previous_end = entry["time"]

    again = fleet.rolling_reload("-e", f"path={fleet.v2}")
    assert {host: stats["changed"] for host, stats in again["stats"].items()} == dict.fromkeys(HOSTS, 0)
    assert all(again["results"][host]["Reload"]["message"] == f"{PROGRAM} already runs {fleet.v2}" for host in HOSTS)

    pids = {host: fleet.info(host)["pid"] for host in HOSTS}
    check = fleet.rolling_reload("-e", f"path={fleet.v1}", "--check")
    for host in HOSTS:
        reload = check["results"][host]["Reload"]
        assert reload["changed"] and reload["new_path"] == fleet.v1, reload
        assert (fleet.info(host)["pid"], fleet.serving(host)) == (pids[host], "v2")


def test_a_binary_that_fails_on_a_host_stops_the_rollout_there(fleet):
    fleet.put(fleet.v1)
    host3 = fleet.untouched("host3")
    with load_on(fleet):
        output = fleet.rolling_reload("-e", f"path={fleet.v3}", ok=False)
    first, failed = output["results"]["host1"]["Reload"], output["results"]["host2"]
    assert first["changed"] and first["new_path"] == fleet.v3 and fleet.serving("host1") == "v3"
    assert failed["Reload"]["outcome"] == "failed", failed["Reload"]
    assert failed["Reload"]["fault_code"] == LittlebossFaults.EXITED_BEFORE_READY, failed["Reload"]
    assert failed["Reload"]["msg"].startswith(f"EXITED_BEFORE_READY: {PROGRAM}: reload to {fleet.v3} failed")
    assert failed["Stop"]["msg"] == f"host2: {failed['Reload']['msg']}; {STOPPED}"
    assert failed["Roll"]["outcome"] == "skipped"  # the new binary was never promoted: nothing to roll back
    assert (failed["Reload"]["old_path"], fleet.info("host2")["path"]) == (fleet.v1, fleet.v1)
    assert fleet.serving("host2") == "v1" and fleet.info("host2")["pid"] == failed["Reload"]["old_pid"]
    assert "host3" not in output["results"] and "host3" not in output["stats"]
    assert fleet.untouched("host3") == host3, "host3 was touched"


def test_a_failed_health_check_rolls_that_host_back_and_stops_the_rollout(fleet):
    fleet.put(fleet.v1)
    before = {host: fleet.untouched(host) for host in HOSTS[1:]}
    nothing_there = f"http://127.0.0.1:{free_port()}/health"

    def check_fails(path: str) -> dict:
        """Reload to ``path`` with a health check that fails at once: what each host did."""
        return fleet.rolling_reload("-e", f"path={path}", "-e", f"health_url={nothing_there}",
                                    "-e", "health_retries=1", "-e", "health_delay=0", ok=False)["results"]

    def stopped(results: dict, outcome: str) -> str:
        return (f"host1: the health check of {PROGRAM} at {nothing_there} failed: "
                f"{results['Check']['results'][0]['msg']}; {outcome}; {STOPPED}")

    output = check_fails(fleet.v2)
    host1 = output["host1"]
    assert host1["Reload"]["changed"] and host1["Check"]["outcome"] == "failed"
    assert host1["Roll"]["changed"] and host1["Roll"]["new_path"] == fleet.v1, host1["Roll"]
    assert host1["Stop"]["msg"] == stopped(host1, f"rolled back to {fleet.v1}")
    assert fleet.serving("host1") == "v1" and fleet.info("host1")["history"][-1]["kind"] == "rollback"
    assert list(output) == ["host1"]
    assert {host: fleet.untouched(host) for host in HOSTS[1:]} == before

    unchanged = fleet.untouched("host1")
    host1 = check_fails(fleet.v1)["host1"]  # it runs v1 already: nothing to roll back
    assert host1["Roll"]["outcome"] == "skipped" and fleet.untouched("host1") == unchanged
    assert host1["Stop"]["msg"] == stopped(host1, f"left on {fleet.v1}, which it ran before this run")


def last_swaps(fleet: Fleet, host: str, count: int) -> list[tuple[str, str, str]]:
    """The kind, from and to of the host's last ``count`` history entries."""
    return [(entry["kind"], entry["from"], entry["to"]) for entry in fleet.info(host)["history"][-count:]]


def test_canary_batches_swap_the_canary_then_the_rest_after_a_hold(fleet):
    fleet.put(fleet.v1)
    with load_on(fleet):
        output = fleet.rolling_reload("-e", f"path={fleet.v2}", "-e", '{"batches": [1, "100%"], "hold": 1}')
    assert output["batches"] == [["host1"], ["host2", "host3"]]  # the canary, then the rest at once
    results = output["results"]
    for host in HOSTS:
        reload, health = results[host]["Reload"], results[host]["Check"]
        assert reload["changed"] and (reload["old_path"], reload["new_path"]) == (fleet.v1, fleet.v2), reload
        assert health["results"][0]["status"] == 200 and fleet.serving(host) == "v2", health
    # the hold after the canary's batch, then its health checked again; none after the last batch
    assert results["host1"]["Hold"]["outcome"] == "ok" and results["host1"]["Recheck"]["results"][0]["status"] == 200
    assert results["host2"]["Hold"]["outcome"] == "skipped"  # a pause runs once per batch, as its first host
    assert [results[host]["Recheck"]["outcome"] for host in HOSTS[1:]] == ["skipped", "skipped"]
    canary = fleet.info("host1")["history"][-1]  # its time: the promotion
    for host in HOSTS[1:]:
        entry = fleet.info(host)["history"][-1]
        assert entry["time"] - entry["seconds"] >= canary["time"] + 1, f"{host} started within the canary's hold"


def test_a_canary_that_fails_its_health_check_is_rolled_back_and_no_other_host_is_touched(fleet):
    fleet.put(fleet.v1)
    before = {host: fleet.untouched(host) for host in HOSTS[1:]}
    with load_on(fleet):  # v5's /health answers 503 on host1 only
        output = fleet.rolling_reload("-e", f"path={fleet.v5}", "-e", "batches=1,50%,100%",
                                      "-e", "health_retries=2", "-e", "health_delay=0", ok=False)
    assert output["batches"] == [["host1"]] and list(output["results"]) == ["host1"], output["batches"]
    host1 = output["results"]["host1"]
    assert host1["Reload"]["changed"] and host1["Reload"]["new_path"] == fleet.v5, host1["Reload"]
    check = host1["Check"]["results"][0]
    assert host1["Check"]["outcome"] == "failed" and check["status"] == 503, check
    assert host1["Roll"]["changed"] and host1["Roll"]["new_path"] == fleet.v1, host1["Roll"]
    assert host1["Stop"]["msg"] == (f"host1: the health check of {PROGRAM} at http://127.0.0.1:{fleet.ports['host1']}"
                                    f"/health failed: {check['msg']}; rolled back to {fleet.v1}; {STOPPED}")
    assert last_swaps(fleet, "host1", 2) == [("reload", fleet.v1, fleet.v5), ("rollback", fleet.v5, fleet.v1)]
    assert fleet.serving("host1") == "v1"
    assert {host: fleet.untouched(host) for host in HOSTS[1:]} == before, "a host after the canary was touched"


@contextlib.contextmanager
def health_url_failing_after(passes: int):
    """A health URL on 127.0.0.1 that answers 200 to its first ``passes`` GETs, then 503: the URL and
    the statuses it answered."""
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            statuses.append(200 if len(statuses) < passes else 503)
            self.send_response(statuses[-1])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/health", statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_canary_whose_health_check_fails_after_the_hold_is_rolled_back(fleet):
    fleet.put(fleet.v1)
    before = {host: fleet.untouched(host) for host in HOSTS[1:]}
    with health_url_failing_after(1) as (url, statuses):  # passes right after the reload, fails after the hold
        output = fleet.rolling_reload("-e", f"path={fleet.v2}", "-e", f"health_url={url}", "-e", "batches=1,100%",
                                      "-e", "hold=1", "-e", "health_retries=0", ok=False)
    assert statuses == [200, 503] and output["batches"] == [["host1"]], (statuses, output["batches"])
    host1 = output["results"]["host1"]
    assert [host1[task]["outcome"] for task in ("Reload", "Check", "Hold", "Recheck")] == ["ok", "ok", "ok", "failed"]
    assert host1["Roll"]["changed"] and host1["Roll"]["new_path"] == fleet.v1, host1["Roll"]
    assert host1["Stop"]["msg"] == (f"host1: the health check of {PROGRAM} at {url} failed after the hold of 1 s: "
                                    f"{host1['Recheck']['results'][0]['msg']}; rolled back to {fleet.v1}; {STOPPED}")
    assert last_swaps(fleet, "host1", 2) == [("reload", fleet.v1, fleet.v2), ("rollback", fleet.v2, fleet.v1)]
    assert fleet.serving("host1") == "v1"
    assert {host: fleet.untouched(host) for host in HOSTS[1:]} == before, "a host after the canary was touched"


def test_rollback_playbook_returns_every_host_to_its_previous_binary(fleet):
    fleet.put(fleet.v1, fleet.v2)
    with load_on(fleet):
        output = fleet.playbook(ROLLBACK, "-e", f"program={PROGRAM}")
    for host in HOSTS:
        result = output["results"][host]["Roll"]
        assert result["changed"] and (result["old_path"], result["new_path"]) == (fleet.v2, fleet.v1), result
        assert fleet.serving(host) == "v1"
    again = fleet.playbook(ROLLBACK, "-e", f"program={PROGRAM}", "-e", f"path={fleet.v1}")  # repeatable
    assert {host: stats["changed"] for host, stats in again["stats"].items()} == dict.fromkeys(HOSTS, 0)


def test_bad_input_and_a_timeout_fail_the_task_with_a_clear_message(fleet):
    socket_url, host2_url = (f"unix://{fleet.sv[host].sock}" for host in ("host1", "host2"))
    tasks = {
        "unknown": {"name": "nope", "path": fleet.v2, "server_url": socket_url},
        "relative": {"name": PROGRAM, "path": "releases/v2/app", "server_url": socket_url},
        "unreachable": {"name": PROGRAM, "path": fleet.v2, "server_url": f"unix://{fleet.root}/missing.sock"},
        "credentials": {"name": PROGRAM, "path": fleet.v2, "server_url": fleet.http_url, "username": USERNAME,
                        "password": "wrong"},
        "not-previous": {"name": PROGRAM, "state": "rolled_back", "path": fleet.v3, "server_url": socket_url},
        "denied": {"name": PROGRAM, "path": fleet.v2, "server_url": socket_url},
        "timeout": {"name": PROGRAM, "path": fleet.slow, "server_url": host2_url, "timeout": 1},
    }
    task_vars = {"denied": {"ansible_python_interpreter": make_executable(fleet.root, "nobody", NOBODY_PYTHON)}}
    play = [{"hosts": "host1", "gather_facts": False, "tasks": [
        {"name": name, MODULE: args, "vars": task_vars.get(name, {}), "ignore_errors": True}
        for name, args in tasks.items()]}]
    (fleet.root / "bad.yml").write_text(json.dumps(play))  # JSON is YAML
    before = fleet.untouched("host1")
    results = fleet.playbook("bad.yml")["results"]["host1"]
    assert all(result["outcome"] == "failed" for result in results.values()), results
    assert results["unknown"]["msg"].startswith("UNKNOWN_PROGRAM: no program named 'nope'")
    assert results["unknown"]["fault_code"] == LittlebossFaults.UNKNOWN_PROGRAM
    assert results["relative"]["msg"] == f"{PROGRAM}: path must be absolute (the binary's path on the host): " \
                                         "'releases/v2/app'"
    assert results["unreachable"]["msg"] == (
        f"cannot reach supervisord at unix://{fleet.root}/missing.sock: [Errno 2] No such file or directory; is "
        "supervisord running? If so, set server_url (littleboss_server_url in the playbooks' inventory) to its "
        "[unix_http_server] file or [inet_http_server] port")
    assert results["denied"]["msg"] == (f"cannot reach supervisord at {socket_url}: [Errno 13] Permission denied; "
                                        "run the task as a user allowed to use it (become: true, or "
                                        "ansible-playbook -b)")
    assert results["credentials"]["msg"] == (f"supervisord at {fleet.http_url} refused the credentials "
                                             "(HTTP 401 Unauthorized): check username and password")
    assert results["not-previous"]["msg"].startswith(f"{PROGRAM}: cannot roll back to {fleet.v3}: it runs")
    assert fleet.untouched("host1") == before
    assert results["timeout"]["msg"] == (f"no answer from supervisord at {host2_url} within 1s (timeout); the "
                                         f"reload may still be running in supervisord (supervisorctl "
                                         f"littleboss:status {PROGRAM} shows it)")
    wait_for(lambda: fleet.info("host2")["phase"] == "idle", what="the reload on host2 to end")
    assert fleet.info("host2")["path"] == fleet.slow


def test_the_health_check_shows_each_hosts_own_url(fleet):
    fleet.put(fleet.v2)
    result = fleet.shown(ROLLING_RELOAD, "-e", f"program={PROGRAM}", "-e", f"path={fleet.v2}")
    assert result.returncode == 0, result.stdout + result.stderr
    titles = re.findall(r"^TASK \[(.*)\]", result.stdout, re.MULTILINE)
    assert titles.count(CHECK_TITLE) == len(HOSTS) and "http" not in " ".join(titles), titles  # a title per host
    for host in HOSTS:
        assert f"ok: [{host}] => (item=http://127.0.0.1:{fleet.ports[host]}/health)" in result.stdout, result.stdout


@pytest.mark.parametrize(("playbook", "args", "message"), [
    (ROLLING_RELOAD, ("-e", "path=/srv/web/app"),
     f"program is required: the supervisord program to reload on each host, e.g. ansible-playbook -i inventory.ini "
     f"{ROLLING_RELOAD} -e program=myblog -e path=/srv/myblog/releases/42/myblog"),
    (ROLLBACK, (),
     f"program is required: the supervisord program to roll back on each host, e.g. ansible-playbook -i "
     f"inventory.ini {ROLLBACK} -e program=myblog -e path=/srv/myblog/releases/41/myblog"),
    (ROLLING_RELOAD, ("-e", f"program={PROGRAM}", "-e", "health_retries=five"),
     "health_retries and health_delay must be whole numbers (how many times to try health_url again after a failed "
     "try, and the seconds between tries), e.g. -e health_retries=10 -e health_delay=2; got health_retries=five, "
     "health_delay=1"),
    (ROLLING_RELOAD, ("-e", f"program={PROGRAM}", "-e", "batches=1,all"),
     "batches must be the hosts of each batch, each a whole number or a percentage of the fleet (the first batch is "
     "the canary), e.g. -e batches=1,25%,100%; hold must be a whole number of seconds to wait after each batch, "
     "e.g. -e hold=300; got batches=1,all, hold=0"),
], ids=["rolling_reload", "rollback", "health_retries", "batches"])
def test_a_missing_or_bad_variable_stops_the_run_before_any_host_is_touched(fleet, playbook, args, message):
    before = {host: fleet.untouched(host) for host in HOSTS}
    result = fleet.shown(playbook, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    fatal = re.search(r"^fatal: \[host1\]: FAILED! => (.*)$", result.stdout, re.MULTILINE)
    assert fatal and json.loads(fatal[1])["msg"] == message, result.stdout
    assert "is undefined" not in result.stdout + result.stderr and "[host2]" not in result.stdout
    assert {host: fleet.untouched(host) for host in HOSTS} == before


def test_ansible_doc_shows_the_module(fleet):
    # ansible's own warnings (a documentation problem) go to stderr; Python's warnings from the
    # libraries it imports (cryptography 51 deprecates DSA, which ansible imports) are not ours
    result = fleet.run(tool("ansible-doc"), MODULE, PYTHONWARNINGS="ignore")
    assert result.returncode == 0 and not result.stderr, result.stderr
    for text in ("rolled_back", "server_url", "EXAMPLES", "RETURN VALUES", "fault_code"):
        assert text in result.stdout

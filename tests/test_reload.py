"""littleboss.reload / littleboss.rollback against a real supervisord, with real clients
under load on 127.0.0.1: successful swaps, every failure path, every refusal."""
from __future__ import annotations

import socket
import subprocess
import xmlrpc.client
from pathlib import Path

import pytest
from harness import (
    GUNICORN,
    Releases,
    Supervisord,
    free_port,
    http_get,
    make_gunicorn_release,
    pid_alive,
    reload_fault,
    wait_for,
)
from load import Load, keepalive_rate

from supervisor_littleboss.faults import LittlebossFaults

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # real supervisords, programs and clients

PORTS: dict[str, int] = {}  # chosen by the sv fixture
SETTLE = 30  # the "settle" program: no test waits it out, and an update always comes within it
# "stubborn" ignores SIGTERM: a draining one is killed after this; tests that act while it drains
# need the window wide enough to see it on a loaded machine (1 s was missed in CI)
STUBBORN_LAMEDUCK = 4


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> Releases:
    """v1 and v2, a release for each way a candidate fails, and two of gunicorn."""
    releases = Releases(tmp_path_factory.mktemp("releases"))
    releases.crash = releases.add("crash", "v3", "--mode", "crash")
    releases.never = releases.add("never", "v3", "--mode", "never-ready")
    releases.fork_ready = releases.add("forkready", "v3", "--mode", "fork-ready")
    releases.settle_crash = releases.add("settlecrash", "v3", "--mode", "crash-after-ready", "--after", "0.3")
    releases.dies = releases.add("dies", "v3", "--mode", "crash-after-ready", "--after", "1.5")
    releases.stubborn = releases.add("stubborn", "v1", "--mode", "ignore-term")
    releases.stuck = releases.add("stuck", "v3", "--mode", "never-ready,ignore-term")
    releases.g1, releases.g2 = (make_gunicorn_release(releases.dir, name) for name in ("g1", "g2"))
    return releases


def littleboss(sv: Supervisord, name: str, command: str, releases: Releases, **keys) -> None:
    """``name`` on its port in PORTS, reloadable to ``releases``, no fallback window unless ``keys`` say."""
    sv.littleboss_program(name, command, PORTS[name], releases.allow, **{"littleboss_fallback_window": 0, **keys})


@pytest.fixture(scope="module")
def sv(tmp_path_factory, releases) -> Supervisord:
    """One supervisord for the module: each test uses programs no other test leaves changed
    (each program is back on its configured release, or the test puts it where it needs it
    first: ``other``, ``stubborn``), so the tests pass alone and in any order."""
    sv = Supervisord(tmp_path_factory.mktemp("reload"))
    names = ("web", "settle", "fallback", "startsecs", "stubborn", "gweb", "other")
    PORTS.update({name: free_port() for name in names})
    littleboss(sv, "web", releases.v1, releases, littleboss_ready_timeout=3)
    littleboss(sv, "settle", releases.v1, releases, littleboss_settle=SETTLE)
    littleboss(sv, "fallback", releases.v1, releases, littleboss_fallback_window=30)
    littleboss(sv, "startsecs", releases.v1, releases, startsecs=1, ready="startsecs")
    littleboss(sv, "stubborn", releases.stubborn, releases, littleboss_lameduck=STUBBORN_LAMEDUCK,
               stopwaitsecs=STUBBORN_LAMEDUCK)  # at the end, its SIGKILL comes sooner
    littleboss(sv, "gweb", releases.g1, releases, littleboss_settle=1)
    littleboss(sv, "other", releases.v1, releases)
    sv.program("multi", command=releases.v1, numprocs=2, process_name="%(program_name)s_%(process_num)s",
               littleboss_sockets=f"http=tcp://127.0.0.1:{free_port()}")
    sv.program("plain", command="sleep 1000")
    sv.start()
    yield sv
    sv.stop()


def address(name: str) -> tuple[str, int]:
    return ("127.0.0.1", PORTS[name])


def serving(name: str) -> tuple[str, int]:
    """(version, pid) that answers on the program's socket now."""
    version, pid, *_ = http_get(address(name)).split()
    return version.decode(), int(pid)


# --- successful reloads ------------------------------------------------------------

@pytest.mark.soak
@pytest.mark.parametrize("keepalive", [False, True], ids=["new-connection", "keep-alive"])
def test_twenty_reloads_alternating_binaries_fail_no_request(sv, releases, keepalive):
    sv.wait_running("web")
    with Load(address("web"), keepalive=keepalive) as load:
        load.wait_for_requests(100)
        for n in range(20):
            current = sv.rpc.littleboss.getProgramInfo("web")["path"]
            target, version = (releases.v2, "v2") if current == releases.v1 else (releases.v1, "v1")
            old_version = "v1" if version == "v2" else "v2"
            result = sv.rpc.littleboss.reload("web", target)
            assert (result["old_path"], result["new_path"]) == (current, target)
            # it returned once the old process had drained (no connection, no listener); it exits then
            wait_for(lambda old=result["old_pid"]: not pid_alive(old), what="the drained old process to exit")
            assert serving("web") == (version, result["new_pid"])
            old_answers = load.result.bodies[old_version]
            load.wait_for_requests(20)
            assert load.result.bodies[old_version] == old_answers, f"old version answered after reload {n}"
            assert sv.info("web")["pid"] == result["new_pid"]
    assert load.result.failed == 0, load.result
    assert set(load.result.bodies) == {"v1", "v2"}
    if keepalive:
        assert load.result.connections <= 4 * 21  # one per client, plus one graceful reconnect per reload
    history = sv.rpc.littleboss.getProgramInfo("web")["history"]
    assert [entry["outcome"] for entry in history[-20:]] == ["succeeded"] * 20
    log = (sv.root / "web.log").read_text()  # both outputs reach the program's log
    assert "httpapp v1 pid" in log and "httpapp v2 pid" in log


@pytest.mark.parametrize("keepalive, reloads", [
    pytest.param(False, 10, id="new-connection", marks=pytest.mark.soak),
    pytest.param(True, 10, id="keep-alive", marks=pytest.mark.soak),
    pytest.param(True, 2, id="two-keep-alive"),  # the same steps, where soak tests are left out
])
def test_gunicorn_reloads_under_notify_fail_no_request(sv, releases, keepalive, reloads):
    """README's gunicorn recipe (sync workers: each closes its connection after a request)."""
    sv.wait_running("gweb")
    with Load(address("gweb"), keepalive=keepalive) as load:
        load.wait_for_requests(50)
        for _ in range(reloads):
            target, version = (releases.g2, "g2") if serving("gweb")[0] == "g1" else (releases.g1, "g1")
            result = sv.rpc.littleboss.reload("gweb", target)
            assert result["new_path"] == target
            assert serving("gweb")[0] == version
            load.wait_for_requests(50)
    assert load.result.failed == 0 and load.result.broken == 0, load.result


def test_gunicorn_keepalive_throughput_is_its_own(sv, tmp_path):
    """The same gunicorn on a port of its own, and under littleboss: alternately, best of two each."""
    sv.wait_running("gweb")
    port = free_port()
    with open(tmp_path / "own-port.log", "w") as log:
        own = subprocess.Popen([*GUNICORN.split(), "--bind", f"127.0.0.1:{port}"], stdout=log, stderr=log)
    try:
        wait_for(lambda: own.poll() is not None or http_get(("127.0.0.1", port)), what="gunicorn on its own port")
        assert own.poll() is None, (tmp_path / "own-port.log").read_text()
        rates = [keepalive_rate(where) for where in [("127.0.0.1", port), address("gweb")] * 2]
    finally:
        own.terminate()
        own.wait(timeout=30)
    alone, littleboss = max(rates[0::2]), max(rates[1::2])
    assert littleboss >= 0.5 * alone, f"{littleboss:.0f} requests/s under littleboss, {alone:.0f} on its own port"



def test_startsecs_readiness_waits_for_startsecs(sv, releases):
    sv.wait_running("startsecs")
    with Load(address("startsecs")) as load:
        result = sv.rpc.littleboss.reload("startsecs", releases.v2)
        load.wait_for_requests(50)
    assert result["seconds"] >= 1
    assert load.result.failed == 0, load.result
    assert serving("startsecs") == ("v2", result["new_pid"])


def test_empty_path_re_executes_the_current_binary_and_rollback_returns_to_the_previous(sv, releases):
    before = sv.rpc.littleboss.getProgramInfo("other")  # v1, or v2 if other tests reloaded it
    target = releases.v2 if before["path"] == releases.v1 else releases.v1
    same = sv.rpc.littleboss.reload("other", "")
    assert same["new_path"] == same["old_path"] == before["path"] and same["new_pid"] != before["pid"]
    sv.rpc.littleboss.reload("other", target)
    assert sv.rpc.littleboss.getProgramInfo("other")["previous_path"] == before["path"]
    back = sv.rpc.littleboss.rollback("other")
    assert (back["old_path"], back["new_path"]) == (target, before["path"])
    assert serving("other") == (Path(before["path"]).parent.name, back["new_pid"])  # releases/VERSION/app
    assert sv.rpc.littleboss.getProgramInfo("other")["history"][-1]["kind"] == "rollback"


# --- the new binary fails: the old process keeps serving -----------------------------

@pytest.mark.parametrize("binary, code, text", [
    ("crash", LittlebossFaults.EXITED_BEFORE_READY, "exited before it was ready (exit status 3; last output: "
                    "httpapp v3: cannot start: configuration is broken)"),
    ("never", LittlebossFaults.READY_TIMEOUT, "it was not ready within 3s (littleboss_ready = notify)"),
    ("fork_ready", LittlebossFaults.READY_TIMEOUT, "it was not ready within 3s"),
])
def test_a_candidate_that_fails_before_ready_never_takes_traffic(sv, releases, binary, code, text):
    pid = sv.wait_running("web")
    before = serving("web")
    with Load(address("web")) as load:
        load.wait_for_requests(50)
        fault = reload_fault(lambda: sv.rpc.littleboss.reload("web", getattr(releases, binary)))
        load.wait_for_requests(50)
    assert fault.faultCode == code
    assert text in fault.faultString and f"pid {pid} keeps serving" in fault.faultString
    assert load.result.failed == 0, load.result
    if binary == "crash":
        assert set(load.result.bodies) == {before[0]}
    # the others accepted connections while not ready: stopped gracefully, they finished them
    assert serving("web") == before and sv.info("web")["pid"] == pid
    last = sv.rpc.littleboss.getProgramInfo("web")["last_reload"]
    assert last["phase"] == "failed"
    wait_for(lambda: not pid_alive(last["new_pid"]), what="the candidate to be killed and reaped")
    if binary == "fork_ready":
        assert "ignored notification ['READY'] from pid" in sv.log.read_text()


def test_a_candidate_that_dies_while_settling_is_not_promoted(sv, releases):
    pid = sv.wait_running("settle")
    with Load(address("settle")) as load:
        fault = reload_fault(lambda: sv.rpc.littleboss.reload("settle", releases.settle_crash))
        load.wait_for_requests(50)
    assert fault.faultCode == LittlebossFaults.SETTLE_FAILED
    assert "within littleboss_settle (exit status 4" in fault.faultString
    assert load.result.failed == 0, load.result
    assert serving("settle") == ("v1", pid)


def test_a_new_binary_that_exits_in_the_fallback_window_is_rolled_back(sv, releases):
    sv.wait_running("fallback")
    with Load(address("fallback")) as load:
        result = sv.rpc.littleboss.reload("fallback", releases.dies)

        def rolled_back():
            info = sv.rpc.littleboss.getProgramInfo("fallback")
            return info["path"] == releases.v1 and info["statename"] == "RUNNING" and info

        info = wait_for(rolled_back, what="the automatic rollback")
        load.wait_for_requests(50)
    assert info["pid"] != result["new_pid"]
    assert info["history"][-1]["kind"] == "fallback"
    assert f"rolled back automatically: {releases.dies} exited (exit status 4)" in info["history"][-1]["outcome"]
    assert serving("fallback")[0] == "v1"
    assert load.result.failed == 0, load.result


def test_an_old_process_that_ignores_sigterm_is_killed_after_the_lameduck(sv, releases):
    if sv.rpc.littleboss.getProgramInfo("stubborn")["path"] != releases.stubborn:  # another test reloaded it
        sv.rpc.littleboss.reload("stubborn", releases.stubborn)
    old = sv.wait_running("stubborn")
    with Load(address("stubborn")) as load:
        result = sv.rpc.littleboss.reload("stubborn", releases.v2)
        load.wait_for_requests(50)
    assert result["drain_seconds"] >= STUBBORN_LAMEDUCK
    wait_for(lambda: not pid_alive(old), what="the old process to exit")
    assert f"killing 'stubborn' ({old}) with SIGKILL" in sv.log.read_text()
    # it kept accepting until killed: what it had accepted is lost, but nothing is refused
    assert load.result.failures["refused"] == 0 and load.result.failures["timeout"] == 0, load.result


# --- refusals: nothing starts ---------------------------------------------------------

def test_each_path_rule_is_a_distinct_fault(sv, releases):
    directory = releases.dir
    (directory / "missingdir").mkdir(mode=0o755, exist_ok=True)
    (directory / "adir" / "app").mkdir(parents=True, exist_ok=True)
    noexec = Path(releases.add("noexec", "v9"))
    noexec.chmod(0o644)
    Path(releases.add("groupw", "v9")).chmod(0o775)
    releases.add("openw", "v9")
    (directory / "openw").chmod(0o777)
    pid = sv.wait_running("web")
    cases = [
        ("relative/app", LittlebossFaults.PATH_NOT_ABSOLUTE, "the path must be absolute"),
        ("/usr/bin/env", LittlebossFaults.NOT_ALLOWED,
         f"it matches none of the allowed paths ({releases.v1} {releases.allow}); "
         "add a pattern to littleboss_allow in [program:web]"),
        (f"{directory}/missingdir/app", LittlebossFaults.NO_FILE, "no such file"),
        (f"{directory}/adir/app", LittlebossFaults.NOT_A_FILE, "it is a directory: give the executable in it"),
        (str(noexec), LittlebossFaults.NOT_EXECUTABLE, "it is not executable by supervisord's user"),
        (f"{directory}/groupw/app", LittlebossFaults.WRITABLE_FILE, "it is writable by group or others (mode 0775)"),
        (f"{directory}/openw/app", LittlebossFaults.WRITABLE_DIRECTORY,
         f"it sits in {directory}/openw, which is writable by group or others (mode 0777)"),
    ]
    for path, code, rule in cases:
        fault = reload_fault(lambda path=path: sv.rpc.littleboss.reload("web", path))
        assert (fault.faultCode, fault.faultString) == (code, f"{fault.faultString.split(':')[0]}: web: "
                                                                f"cannot reload to {path}: {rule}"), path
    assert sv.info("web")["pid"] == pid


@pytest.mark.parametrize("call, code, text", [
    (lambda rpc: rpc.reload("nope"), LittlebossFaults.UNKNOWN_PROGRAM, "UNKNOWN_PROGRAM: no program named 'nope'"),
    (lambda rpc: rpc.reload("plain"), LittlebossFaults.NOT_LITTLEBOSS,
     "NOT_LITTLEBOSS: program 'plain' is not a littleboss program"),
    (lambda rpc: rpc.rollback("settle"), LittlebossFaults.NO_PREVIOUS,
     "NO_PREVIOUS: settle: no previous binary to roll back to"),
])
def test_refusals_before_anything_starts(sv, call, code, text):
    fault = reload_fault(lambda: call(sv.rpc.littleboss))
    assert (fault.faultCode, fault.faultString) == (code, text) or (fault.faultCode == code and
                                                                     fault.faultString.startswith(text))


def test_one_reload_per_program_at_a_time_but_programs_reload_concurrently(sv, releases):
    pid = sv.wait_running("web")
    started = sv.rpc.littleboss.reload("web", releases.never, False)
    assert started["phase"] == "starting" and pid_alive(started["new_pid"])
    for call in (lambda: sv.rpc.littleboss.reload("web", releases.v2), lambda: sv.rpc.littleboss.rollback("web")):
        fault = reload_fault(call)
        assert fault.faultCode == LittlebossFaults.RELOAD_IN_PROGRESS
        assert f"web: a reload to {releases.never} is in progress (phase starting)" in fault.faultString
    other = sv.rpc.littleboss.getProgramInfo("other")["path"]
    target = releases.v2 if other == releases.v1 else releases.v1
    assert sv.rpc.littleboss.reload("other", target)["new_path"] == target
    info = wait_for(lambda: (i := sv.rpc.littleboss.getProgramInfo("web"))["phase"] == "idle" and i,
                    what="the first reload to time out")
    assert info["last_reload"]["error"].startswith("READY_TIMEOUT")
    assert info["pid"] == pid


# --- interruptions --------------------------------------------------------------------

def test_stop_during_a_reload_aborts_the_candidate(sv, releases):
    sv.wait_running("web")
    candidate = sv.rpc.littleboss.reload("web", releases.never, False)["new_pid"]
    sv.ctl("stop", "web", check=True)
    assert not pid_alive(candidate)
    assert sv.info("web")["statename"] == "STOPPED"
    wait_for(lambda: not sv.zombie_children(), what="no zombie left")
    info = sv.rpc.littleboss.getProgramInfo("web")
    assert info["history"][-1]["outcome"] == "failed: aborted: the program is being stopped"
    assert info["candidate_pid"] == 0 and info["draining_pids"] == []
    sv.ctl("start", "web", check=True)


def test_update_during_a_reload_aborts_the_candidate_and_applies_the_change(sv, releases):
    pid = sv.wait_running("settle")
    candidate = sv.rpc.littleboss.reload("settle", releases.never, False)["new_pid"]
    littleboss(sv, "settle", releases.v1, releases, environment="APP_VERSION=v1", littleboss_settle=SETTLE)
    with Load(address("settle")) as load:
        assert "settle: updated process group" in sv.ctl("update", check=True).stdout
        sv.wait_running("settle", not_pid=pid)
        load.wait_for_requests(50)
    assert not pid_alive(candidate)
    assert load.result.failed == 0, load.result


def test_a_client_that_disconnects_does_not_stop_the_reload(sv, releases):
    before = sv.rpc.littleboss.getProgramInfo("other")
    target = releases.v2 if before["path"] == releases.v1 else releases.v1
    body = xmlrpc.client.dumps(("other", target), "littleboss.reload").encode()
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(sv.sock))
        client.sendall(b"POST /RPC2 HTTP/1.0\r\nContent-Type: text/xml\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    info = wait_for(lambda: (i := sv.rpc.littleboss.getProgramInfo("other"))["path"] == target and i,
                    what="the reload to finish without its client")
    assert info["pid"] != before["pid"]
    wait_for(lambda: not pid_alive(before["pid"]), what="the old process to drain")


def test_shutdown_during_a_reload_leaves_no_process(supervisord: Supervisord, releases):
    port = free_port()
    supervisord.littleboss_program("web", releases.v1, port, releases.allow)
    supervisord.start()
    old = supervisord.wait_running("web")
    candidate = supervisord.rpc.littleboss.reload("web", releases.never, False)["new_pid"]
    supervisord.stop()
    assert not pid_alive(old) and not pid_alive(candidate)
    assert not Path(f"/proc/{candidate}").exists()  # reaped, not a zombie


def test_a_failed_candidate_that_ignores_sigterm_is_killed_even_if_another_reload_follows(sv, releases):
    pid = sv.wait_running("web")
    candidate = sv.rpc.littleboss.reload("web", releases.stuck, False)["new_pid"]
    wait_for(lambda: sv.rpc.littleboss.getProgramInfo("web")["phase"] == "idle", what="the ready timeout")
    assert pid_alive(candidate)  # it ignores the stop signal: its lameduck runs
    result = sv.rpc.littleboss.reload("web", releases.v2 if serving("web")[0] == "v1" else releases.v1)
    assert result["old_pid"] == pid
    wait_for(lambda: not pid_alive(candidate), timeout=10, what="SIGKILL after the lameduck (5s)")
    wait_for(lambda: not sv.zombie_children(), what="no zombie left")


def test_a_reload_while_the_previous_one_drains_answers_both_clients(sv, releases):
    import threading

    sv.rpc.littleboss.reload("stubborn", releases.stubborn)  # now the serving process ignores SIGTERM
    first = {}
    waiting = threading.Thread(target=lambda: first.update(sv.rpc.littleboss.reload("stubborn", releases.v1)))
    waiting.start()
    wait_for(lambda: sv.rpc.littleboss.getProgramInfo("stubborn")["draining_pids"], what="the first to drain")
    second = sv.rpc.littleboss.reload("stubborn", releases.v2)
    waiting.join(timeout=20)
    assert not waiting.is_alive() and first["new_pid"] == second["old_pid"]
    assert serving("stubborn") == ("v2", second["new_pid"])


def test_stop_while_the_old_process_drains_waits_for_it(sv, releases):
    sv.rpc.littleboss.reload("stubborn", releases.stubborn)  # the serving process ignores SIGTERM
    sv.rpc.littleboss.reload("stubborn", releases.v1, False)
    old = wait_for(lambda: sv.rpc.littleboss.getProgramInfo("stubborn")["draining_pids"], what="draining")[0]
    new = sv.info("stubborn")["pid"]
    sv.ctl("stop", "stubborn", check=True)  # returns once every process of the program is gone
    assert not pid_alive(old) and not pid_alive(new)
    assert sv.info("stubborn")["statename"] == "STOPPED"
    wait_for(lambda: not sv.zombie_children(), what="no zombie left")
    sv.ctl("start", "stubborn", check=True)


def test_update_while_settling_aborts_the_candidate(sv, releases):
    pid = sv.wait_running("settle")
    candidate = sv.rpc.littleboss.reload("settle", releases.v2, False)["new_pid"]
    wait_for(lambda: sv.rpc.littleboss.getProgramInfo("settle")["phase"] == "settling", what="settling")
    littleboss(sv, "settle", releases.v1, releases, environment="CHANGED=1", littleboss_settle=SETTLE)
    with Load(address("settle")) as load:
        sv.ctl("update", check=True)
        sv.wait_running("settle", not_pid=pid)
        load.wait_for_requests(50)
    assert not pid_alive(candidate)
    assert load.result.failed == 0, load.result
    history = sv.rpc.littleboss.getProgramInfo("settle")["history"]
    assert history[-1]["outcome"].startswith("failed: aborted")

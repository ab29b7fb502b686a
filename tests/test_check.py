"""littleboss_check against a real supervisord, under load: promotion waits for the check,
a check that never passes fails the reload (the old process keeps serving), a hanging check
is killed at its timeout, and nothing a check forks is left behind."""
from __future__ import annotations

from pathlib import Path

import pytest
from harness import Releases, Supervisord, free_port, make_executable, pid_alive, reload_fault, wait_for
from load import Load

from supervisor_littleboss.faults import LittlebossFaults

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]

PORTS: dict[str, int] = {}


def check_script(root: Path, name: str, body: str) -> str:
    return make_executable(root / "checks", name, f"#!/bin/sh\n{body}\n", filename="check")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One supervisord for the module, a program per check, each reloaded by its one test
    only: the tests cannot affect each other, and pass alone and in any order."""
    root = tmp_path_factory.mktemp("check")
    releases = Releases(root)
    v1, v2 = releases.v1, releases.v2
    checks = {
        # each candidate fails twice, then passes; it records what it was given
        "flaky": check_script(root, "flaky", f'''runs={root}/runs.$LITTLEBOSS_PID
echo x >> $runs
echo "program=$LITTLEBOSS_PROGRAM process=$LITTLEBOSS_PROCESS pid=$LITTLEBOSS_PID binary=$LITTLEBOSS_BINARY \\
sockets=$LITTLEBOSS_SOCKETS http=$LITTLEBOSS_SOCKET_HTTP" >> {root}/env.$LITTLEBOSS_PID
[ $(wc -l < $runs) -ge 3 ] || {{ echo "not warm yet"; exit 1; }}'''),
        "never": check_script(root, "never", 'echo "database unreachable" >&2; exit 2'),
        "hangs": check_script(root, "hangs", f"echo $$ > {root}/hung.pid; exec sleep 60"),
        "forks": check_script(root, "forks", f"sleep 60 & echo $! > {root}/forked.pid; exit 0"),
    }
    sv = Supervisord(root)
    for name, check in checks.items():
        PORTS[name] = free_port()
        sv.littleboss_program(name, v1, PORTS[name], releases.allow, numprocs=2 if name == "flaky" else 1,
                              process_name="%(program_name)s_%(process_num)s",
                              littleboss_fallback_window=0, littleboss_check=check,
                              littleboss_check_interval=0.5 if name == "flaky" else 0.2,  # flaky: checking >= 1 s
                              littleboss_check_timeout=1, littleboss_ready_timeout=4)
    sv.start()
    yield sv, root, v1, v2
    sv.stop()


def test_promotion_waits_for_a_check_that_fails_twice_then_passes(setup):
    sv, root, v1, v2 = setup
    old = {p["pid"] for p in sv.rpc.littleboss.getProgramInfo("flaky")["processes"]}
    with Load(("127.0.0.1", PORTS["flaky"])) as load:
        started = sv.rpc.littleboss.reload("flaky", v2, False)
        wait_for(lambda: sv.rpc.littleboss.getProgramInfo("flaky")["phase"] == "checking", what="phase checking")
        result = wait_for(lambda: (r := sv.rpc.littleboss.getProgramInfo("flaky")["last_reload"])["phase"] == "done"
                          and r, what="the rollout to end")
        load.wait_for_requests(50)
    assert result["id"] == started["id"] and result["slots_done"] == 2
    for slot in result["slots"]:
        pid = slot["candidate_pid"]
        assert (root / f"runs.{pid}").read_text().count("x") == 3  # two failures, then the pass
        assert slot["check"] == "exit status 0"
        env = (root / f"env.{pid}").read_text().splitlines()[0]
        assert env == (f"program=flaky process={slot['process']} pid={pid} binary={v2} "
                       f"sockets=http=tcp://127.0.0.1:{PORTS['flaky']} http=tcp://127.0.0.1:{PORTS['flaky']}")
    wait_for(lambda: not any(pid_alive(pid) for pid in old), what="the drained processes to exit")
    log = (sv.root / "flaky.log").read_text()
    assert "littleboss check: not warm yet" in log  # its output, marked, in the program's log
    assert load.result.failed == 0, load.result


def test_a_check_that_never_passes_fails_the_reload_and_the_old_process_keeps_serving(setup):
    sv, root, v1, v2 = setup
    pid = sv.wait_running("never:never_0")
    with Load(("127.0.0.1", PORTS["never"])) as load:
        result = sv.ctl("littleboss:reload", "never", v2)
        load.wait_for_requests(50)
    assert result.returncode == 7, result.stdout
    assert "check of candidate pid" in result.stdout and "failed (exit status 2; last output: database " \
                                                          "unreachable)" in result.stdout
    last = result.stdout.splitlines()[-1]
    assert last.startswith("ERROR: CHECK_FAILED: never: reload to ") and "its check did not pass within 4s" in last
    assert f"pid {pid} keeps serving {v1}" in last
    assert sv.info("never:never_0")["pid"] == pid
    assert load.result.failed == 0, load.result


def test_a_check_that_hangs_is_killed_at_its_timeout(setup):
    sv, root, v1, v2 = setup
    fault = reload_fault(lambda: sv.rpc.littleboss.reload("hangs", v2))
    assert fault.faultCode == LittlebossFaults.CHECK_FAILED
    assert "timed out after 1s (littleboss_check_timeout): killed" in fault.faultString
    hung = int((root / "hung.pid").read_text())
    wait_for(lambda: not pid_alive(hung), what="the hanging check killed")


def test_what_a_check_forks_is_not_left_behind(setup):
    sv, root, v1, v2 = setup
    result = sv.rpc.littleboss.reload("forks", v2)
    assert result["phase"] == "done"
    forked = int((root / "forked.pid").read_text())
    wait_for(lambda: not pid_alive(forked), what="the check's child killed")
    wait_for(lambda: not sv.zombie_children(), what="every check reaped")

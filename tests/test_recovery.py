"""Ways out: a swapped-in binary that is gone, and reloads of a program that is not running."""
from __future__ import annotations

import json
import os

import pytest
from harness import Releases, Supervisord, free_port, http_get, make_executable, reload_fault, wait_for

from supervisor_littleboss.faults import LittlebossFaults

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # each test starts a real supervisord


@pytest.fixture
def web(supervisord: Supervisord) -> Releases:
    """Releases v1 (configured), v2, v3 and a crashing one; ``web`` configured on v1, not started."""
    releases = Releases(supervisord.root)
    releases.v3 = releases.add("v3", "v3")
    releases.crash = releases.add("crash", "crash", "--mode", "crash")
    supervisord.port = free_port()
    supervisord.littleboss_program("web", releases.v1, supervisord.port, releases.allow, startretries=0)
    return releases


def serving(supervisord: Supervisord) -> str:
    return http_get(("127.0.0.1", supervisord.port)).split()[0].decode()


def restart(supervisord: Supervisord) -> None:
    supervisord.stop()
    supervisord.start()
    supervisord.wait_running("web")


def test_a_deleted_swapped_in_binary_gives_way_to_the_previous_then_the_configured_one(supervisord, web):
    supervisord.start()
    supervisord.wait_running("web")
    supervisord.rpc.littleboss.reload("web", web.v2)
    supervisord.rpc.littleboss.reload("web", web.v3)
    os.unlink(web.v3)
    restart(supervisord)
    assert serving(supervisord) == "v2"
    info = supervisord.rpc.littleboss.getProgramInfo("web")
    assert (info["path"], info["previous_path"]) == (web.v2, "")
    outcome = (f"the swapped-in binary cannot run (NO_FILE: web: cannot reload to {web.v3}: no such file); "
               f"starting {web.v2} instead")
    assert info["history"][-1] == {**info["history"][-1], "kind": "refused", "from": web.v3, "to": web.v2,
                                   "outcome": outcome}
    assert f"WARN littleboss: web: {outcome}" in supervisord.log.read_text()

    os.unlink(web.v2)  # gone too, and there is no previous binary any more
    restart(supervisord)
    assert serving(supervisord) == "v1"  # the configured command
    assert supervisord.rpc.littleboss.getProgramInfo("web")["path"] == web.v1


def test_a_swapped_in_binary_outside_the_allow_list_is_not_started(supervisord, web):
    """The state file is not trusted blindly: a path written into it runs only if a reload to
    it would be allowed now."""
    marker = supervisord.root / "ran"
    stray = make_executable(supervisord.root, "elsewhere", f"#!/bin/sh\ntouch {marker}\n")
    state = supervisord.root / "supervisord-littleboss.json"
    state.write_text(json.dumps({"programs": {"web": {"path": stray, "command": web.v1}}}))
    supervisord.start()
    supervisord.wait_running("web")
    assert serving(supervisord) == "v1" and not marker.exists()
    assert supervisord.rpc.littleboss.getProgramInfo("web")["history"][-1]["outcome"].startswith(
        f"the swapped-in binary cannot run (NOT_ALLOWED: web: cannot reload to {stray}: ")


def start_fatal(supervisord: Supervisord, web: Releases) -> None:
    """Start supervisord with web configured on the crashing binary, and wait until it is FATAL."""
    # startsecs 3: the crash comes long before it even on a loaded machine (FATAL, not RUNNING
    # then EXITED); no autorestart to race the reloads
    supervisord.littleboss_program("web", web.crash, supervisord.port, web.allow, ready=None, startretries=0,
                                   startsecs=3, autorestart="false")
    supervisord.start()
    supervisord.wait_state("web", "FATAL")


def test_a_reload_of_a_fatal_program_starts_it_on_the_new_binary(supervisord, web):
    start_fatal(supervisord, web)
    result = supervisord.ctl("littleboss:reload", "web", web.v2)
    assert result.returncode == 0, result.stdout
    pid = supervisord.info("web")["pid"]
    assert result.stdout.splitlines() == [f"web: was FATAL; started {web.v2} (pid {pid})",
                                          f"web: RUNNING (pid {pid})"]
    assert serving(supervisord) == "v2"
    info = supervisord.rpc.littleboss.getProgramInfo("web")
    assert (info["path"], info["previous_path"]) == (web.v2, "")  # a binary that failed is no rollback target
    assert info["history"][-1]["outcome"] == "started (it was FATAL)"


def test_a_reload_of_a_fatal_program_to_a_binary_that_fails_says_so(supervisord, web):
    start_fatal(supervisord, web)
    fault = reload_fault(lambda: supervisord.rpc.littleboss.reload("web", web.crash))
    assert fault.faultCode == LittlebossFaults.EXITED_BEFORE_READY and "did not start" in fault.faultString, fault
    assert "cannot start: configuration is broken" in fault.faultString
    result = supervisord.ctl("littleboss:reload", "web", web.crash)
    assert result.returncode == 7 and "ERROR: web: " in result.stdout, result.stdout


def test_a_reload_of_a_stopped_program_starts_nothing_and_its_next_start_runs_the_new_binary(supervisord, web):
    supervisord.start()
    supervisord.wait_running("web")
    supervisord.ctl("stop", "web", check=True)
    result = supervisord.rpc.littleboss.reload("web", web.v2)
    assert result["phase"] == "recorded" and result["new_pid"] == 0
    assert result["message"] == (f"web: is STOPPED: nothing was started; {web.v2} is the binary "
                                 "`supervisorctl start web` runs")
    assert supervisord.info("web")["statename"] == "STOPPED"
    assert supervisord.rpc.littleboss.getProgramInfo("web")["path"] == web.v2
    supervisord.ctl("start", "web", check=True)
    assert serving(supervisord) == "v2"
    supervisord.ctl("stop", "web", check=True)
    rollback = supervisord.ctl("littleboss:rollback", "web")
    assert rollback.returncode == 0 and "nothing was started" in rollback.stdout, rollback.stdout
    supervisord.ctl("start", "web", check=True)
    assert serving(supervisord) == "v1"


def test_the_checks_still_apply_to_a_program_that_is_not_running(supervisord, web):
    supervisord.start()
    supervisord.wait_running("web")
    supervisord.ctl("stop", "web", check=True)
    fault = reload_fault(lambda: supervisord.rpc.littleboss.reload("web", "/usr/bin/env"))
    assert fault.faultCode == LittlebossFaults.NOT_ALLOWED
    assert supervisord.rpc.littleboss.getProgramInfo("web")["path"] == web.v1


def test_control_characters_in_a_failed_candidates_output_keep_info_and_history_readable(supervisord, web):
    colour = web.script("colour", "printf '\\033[31mboom\\033[0m\\001\\n' >&2\nexit 3")
    supervisord.start()
    supervisord.wait_running("web")
    fault = reload_fault(lambda: supervisord.rpc.littleboss.reload("web", colour))
    assert "last output: ?[31mboom?[0m?" in fault.faultString, fault.faultString
    assert "boom" in supervisord.rpc.littleboss.getProgramInfo("web")["history"][-1]["outcome"]
    assert supervisord.ctl("littleboss:status", "--history", "web").returncode == 0


def test_previous_is_the_release_before_a_re_exec_keeps_it_and_a_crashed_binary_is_never_it(supervisord, web):
    dies = web.add("dies", "dies", "--mode", "crash-after-ready", "--after", "0.5")
    supervisord.start()
    supervisord.wait_running("web")

    def paths() -> tuple[str, str]:
        info = supervisord.rpc.littleboss.getProgramInfo("web")
        return info["path"], info["previous_path"]

    supervisord.rpc.littleboss.reload("web", web.v2)
    supervisord.rpc.littleboss.reload("web")  # a re-exec of v2
    assert paths() == (web.v2, web.v1)
    supervisord.rpc.littleboss.reload("web", dies)  # promoted, then exits: rolled back to v2 automatically
    wait_for(lambda: supervisord.rpc.littleboss.getProgramInfo("web")["history"][-1]["kind"] == "fallback",
             what="the automatic rollback")
    supervisord.wait_running("web")
    assert paths() == (web.v2, web.v1)
    assert supervisord.rpc.littleboss.rollback("web")["new_path"] == web.v1
    assert serving(supervisord) == "v1"

"""``supervisorctl littleboss:upgrade``: what it prints and how it exits, against a scripted
supervisord (the unit tests) and a real one (e2e: upgraded, refused, preflight failed)."""
from __future__ import annotations

import io
import xmlrpc.client
from types import SimpleNamespace

import pytest
from harness import HTTPAPP, Releases, free_port
from supervisor.xmlrpc import Faults

from supervisor_littleboss import controller
from supervisor_littleboss.controller import LittlebossControllerPlugin, upgrade_problem, upgraded_line

pytestmark = pytest.mark.python_facing  # its e2e tests (the others run in the unit layer anyway)

OLD = {"supervisor": "4.2.2", "littleboss": "0.1.0", "python": "3.11.7"}
NEW = {"supervisor": "4.3.0", "littleboss": "0.1.0", "python": "3.11.7"}
BEFORE = {"pid": 123, "started": 1000.0, "upgrades": 2, **OLD}
UPGRADED = {**BEFORE, "started": 2000.0, "upgrades": 3, **NEW}
SHUTDOWN = xmlrpc.client.Fault(Faults.SHUTDOWN_STATE, "SHUTDOWN_STATE")


class ScriptedRPC:
    """The ``littleboss`` namespace of a supervisord that answers getRunInfo with ``run_infos``
    in turn (an exception is raised; the last one is repeated)."""

    def __init__(self, run_infos: list, upgrade: object = None, programs: list | None = None) -> None:
        self.run_infos = [BEFORE, *run_infos]
        self.answer = upgrade or {"pid": 123, "upgrade": 3, "from": OLD, "to": NEW}
        self.programs = [{"statename": "RUNNING"}] * 2 if programs is None else programs

    def getRunInfo(self) -> dict:
        answer = self.run_infos.pop(0) if len(self.run_infos) > 1 else self.run_infos[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def upgrade(self) -> dict:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    def getAllProgramInfo(self) -> list:
        return self.programs

    def getAPIVersion(self) -> str:
        return "1.0"


def upgrade(rpc: ScriptedRPC, monkeypatch, wait: float = 60) -> tuple[int, list[str]]:
    """Run ``littleboss:upgrade`` against ``rpc``: (exit status, lines printed)."""
    monkeypatch.setattr(controller, "POLL_SECONDS", 0)
    monkeypatch.setattr(controller, "RELOAD_WAIT", wait)
    lines: list[str] = []
    ctl = SimpleNamespace(output=lines.append, stdout=io.StringIO(), exitstatus=0, get_server_proxy=lambda _: rpc,
                          complete=None, do_help=None,
                          options=SimpleNamespace(serverurl="unix:///run/supervisor.sock", plugins=[], args=None))
    LittlebossControllerPlugin(ctl).do_littleboss(":upgrade")
    return ctl.exitstatus, lines


def test_upgrade_waits_through_the_restart_then_prints_the_final_line(monkeypatch):
    rpc = ScriptedRPC([SHUTDOWN, ConnectionRefusedError(111, "Connection refused"),
                       FileNotFoundError(2, "No such file or directory"), UPGRADED])
    assert upgrade(rpc, monkeypatch) == (0, [
        "supervisord (pid 123) is being upgraded in place: supervisor 4.2.2 -> 4.3.0; littleboss programs run on, "
        "other programs restart",
        "supervisord upgraded in place: pid 123, supervisor 4.2.2 -> 4.3.0; 2 littleboss programs running",
    ])


def test_upgrade_to_the_same_versions_says_so():
    same = {**UPGRADED, **OLD}
    assert upgraded_line(BEFORE, same, [{"statename": "RUNNING"}, {"statename": "FATAL"}]) == (
        "supervisord upgraded in place: pid 123, same versions (supervisor 4.2.2, littleboss 0.1.0, Python 3.11.7); "
        "1 of 2 littleboss programs running")
    assert upgraded_line(BEFORE, same, [{"statename": "RUNNING"}]).endswith("; 1 littleboss program running")


@pytest.mark.parametrize("after, problem", [
    ({**UPGRADED, "pid": 456}, "supervisord answers with pid 456, not 123: it was started again, not upgraded in "
                               "place"),
    ({**UPGRADED, "upgrades": 0}, "supervisord (pid 123) re-executed itself, but its new code did not take the "
                                  "programs' processes up: they were recovered as after a kill -9 of supervisord"),
    (BEFORE, "supervisord (pid 123) did not re-execute itself: it reloaded on the code it already ran"),
])
def test_supervisord_back_but_not_upgraded_in_place_is_an_error(monkeypatch, after, problem):
    assert upgrade_problem(BEFORE, after, 3).startswith(problem)
    status, lines = upgrade(ScriptedRPC([SHUTDOWN, after]), monkeypatch)
    assert status == 1 and lines[-1].startswith(f"ERROR: {problem}") and lines[-1].endswith("; see supervisord's log")


@pytest.mark.parametrize("last, said", [
    (FileNotFoundError(2, "No such file or directory"),
     "ERROR: supervisord (pid 123) did not answer again within 0 s of its upgrade ([Errno 2] No such file or "
     "directory): see supervisord's log. If supervisord is gone, start it again: it takes the programs back as "
     "after a kill -9"),
    (SHUTDOWN, "ERROR: supervisord (pid 123) was still stopping its programs 0 s after its upgrade began"),
])
def test_supervisord_not_back_in_time_says_what_to_check(monkeypatch, last, said):
    status, lines = upgrade(ScriptedRPC([last]), monkeypatch, wait=0)
    assert status == 1 and lines[-1].startswith(said), lines


def test_ctrl_c_stops_waiting_but_not_the_upgrade(monkeypatch):
    status, lines = upgrade(ScriptedRPC([SHUTDOWN, KeyboardInterrupt()]), monkeypatch)
    assert status == 130
    assert lines[-1].startswith("supervisord (pid 123): stopped waiting; the upgrade goes on in supervisord")
    status, lines = upgrade(ScriptedRPC([], upgrade=KeyboardInterrupt()), monkeypatch)  # during the preflight
    assert status == 130 and lines == ["supervisord (pid 123): stopped before it answered; nothing changes, unless its "
                                     "answer was already on its way (then the upgrade goes on)"]


def test_a_refusal_is_one_error_line(monkeypatch):
    refused = xmlrpc.client.Fault(1404, "RELOAD_IN_PROGRESS: web: a reload is in progress")
    assert upgrade(ScriptedRPC([], upgrade=refused), monkeypatch) == (
        1, ["ERROR: RELOAD_IN_PROGRESS: web: a reload is in progress"])


def test_a_supervisord_on_a_littleboss_without_upgrades_says_to_restart_it_once(monkeypatch):
    rpc = ScriptedRPC([])
    rpc.run_infos = [xmlrpc.client.Fault(Faults.UNKNOWN_METHOD, "UNKNOWN_METHOD")]
    status, [line] = upgrade(rpc, monkeypatch)
    assert status == 1 and line.startswith("ERROR: supervisord runs a littleboss release without in-place upgrades: "
                                           "restart supervisord once")


def test_upgrade_takes_no_arguments_and_completes_no_program_names(monkeypatch):
    lines: list[str] = []
    ctl = SimpleNamespace(output=lines.append, stdout=io.StringIO(), exitstatus=0, complete=None, do_help=None,
                          options=SimpleNamespace(plugins=[], args=None))
    plugin = LittlebossControllerPlugin(ctl)
    plugin.do_littleboss(" upgrade now")
    assert ctl.exitstatus == 2 and lines[:2] == ["Error: upgrade takes no arguments", "littleboss:upgrade\t\t\t"
                                                 "Re-execute supervisord in place (same pid) on the supervisor, "
                                                 "littleboss and Python installed now: littleboss programs run on, "
                                                 "other programs restart"]
    assert plugin._complete("up", "littleboss up") == ["upgrade "]
    assert plugin._complete("", "littleboss:upgrade ") == [] and plugin._complete("", "littleboss upgrade ") == []


# --- a real supervisord -----------------------------------------------------------------

@pytest.mark.e2e
def test_upgrade_keeps_supervisords_and_the_programs_pids_and_prints_a_final_line(supervisord):
    supervisord.littleboss_program("web", HTTPAPP, free_port())
    supervisord.program("plain", command="sleep 1000")
    supervisord.start()
    web, plain = supervisord.wait_running("web"), supervisord.wait_running("plain")
    pid, before = supervisord.proc.pid, supervisord.rpc.littleboss.getRunInfo()
    result = supervisord.ctl("littleboss:upgrade")
    assert result.returncode == 0, result.stdout + result.stderr
    versions = f"same versions (supervisor {before['supervisor']}, littleboss {before['littleboss']}, " \
               f"Python {before['python']})"
    assert result.stdout.splitlines() == [
        f"supervisord (pid {pid}) is being upgraded in place: {versions}; littleboss programs run on, "
        "other programs restart",
        f"supervisord upgraded in place: pid {pid}, {versions}; 1 littleboss program running",
    ]
    after = supervisord.rpc.littleboss.getRunInfo()
    assert (after["pid"], after["upgrades"]) == (pid, before["upgrades"] + 1) and after["started"] > before["started"]
    assert supervisord.info("web")["pid"] == web
    supervisord.wait_running("plain", not_pid=plain)  # a plain program restarts, as on supervisorctl reload


@pytest.mark.e2e
def test_upgrade_is_refused_while_a_program_reloads(supervisord):
    releases = Releases(supervisord.root)
    never = releases.add("never", "v3", "--mode", "never-ready")
    supervisord.littleboss_program("web", releases.v1, free_port(), releases.allow)
    supervisord.start()
    web = supervisord.wait_running("web")
    supervisord.rpc.littleboss.reload("web", never, False)  # its candidate never says READY=1
    result = supervisord.ctl("littleboss:upgrade")
    assert result.returncode == 1, result.stdout
    assert result.stdout.startswith("ERROR: RELOAD_IN_PROGRESS: web: a reload is in progress"), result.stdout
    assert supervisord.rpc.littleboss.getRunInfo()["upgrades"] == 0 and supervisord.info("web")["pid"] == web


@pytest.mark.e2e
def test_a_failed_preflight_says_why_and_changes_nothing(supervisord):
    supervisord.littleboss_program("web", HTTPAPP, free_port())
    supervisord.start()
    web = supervisord.wait_running("web")
    with open(supervisord.confd / "web.conf", "a") as conf:  # the next supervisord would refuse to start
        conf.write("littleboss_bogus = 1\n")
    result = supervisord.ctl("littleboss:upgrade")
    assert result.returncode == 1, result.stdout
    [line] = result.stdout.splitlines()
    assert line.startswith("ERROR: PREFLIGHT_FAILED: ") and "littleboss_bogus" in line, line
    info = supervisord.rpc.littleboss.getRunInfo()
    assert (info["pid"], info["upgrades"]) == (supervisord.proc.pid, 0) and supervisord.info("web")["pid"] == web

"""Strict inputs over XML-RPC and supervisorctl: each bad one gets a clear fault, nothing
starts, and the program keeps serving."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from urllib.parse import unquote

import pytest
from harness import APPS, Releases, Supervisord, free_port, http_get, make_release, pid_alive, reload_fault, wait_for
from supervisor.childutils import get_headers
from supervisor.xmlrpc import Faults

from supervisor_littleboss.faults import LittlebossFaults

pytestmark = pytest.mark.e2e  # real supervisords, programs and clients


@pytest.fixture(scope="module")
def sv(tmp_path_factory) -> Supervisord:
    """One supervisord for the module: most tests are refused and change nothing; the one
    that reloads web puts it back on v1, and only one test reloads slow (while it is STARTING:
    well within its startsecs = 60 of the start). The tests pass alone and in any order."""
    sv = Supervisord(tmp_path_factory.mktemp("inputs"))
    releases = sv.root / "my releases"
    sv.v1 = make_release(releases, "v1", "v1")
    sv.v2 = make_release(releases, "v: 2", "v2")  # a space and a colon in the path
    sv.port = free_port()
    allow = f"'{releases}/*/app'"  # quoted: a space in the pattern
    sv.littleboss_program("web", shlex.quote(sv.v1), sv.port, allow)
    sv.littleboss_program("slow", shlex.quote(sv.v1), free_port(), allow, startsecs=60)
    sv.events = sv.root / "events.log"
    (sv.confd / "recorder.conf").write_text(
        f"[eventlistener:recorder]\ncommand = {sys.executable} {APPS / 'listener.py'} {sv.events}\n"
        "events = LITTLEBOSS_RELOAD\n")
    sv.start()
    sv.wait_running("web")
    yield sv
    sv.stop()


BAD_NAMES = {"int": 5, "array": ["web"], "struct": {"name": "web"}, "boolean": True}


@pytest.mark.parametrize("value", BAD_NAMES.values(), ids=BAD_NAMES.keys())
@pytest.mark.parametrize("method", ["getProgramInfo", "reload", "rollback"])
def test_a_name_that_is_not_a_string_is_incorrect_parameters(sv, method, value):
    pid = sv.info("web")["pid"]
    fault = reload_fault(lambda: getattr(sv.rpc.littleboss, method)(value))
    kind = {int: "an int", list: "an array", dict: "a struct", bool: "a boolean"}[type(value)]
    assert (fault.faultCode, fault.faultString) == (Faults.INCORRECT_PARAMETERS,
                                                    f"INCORRECT_PARAMETERS: name must be a string, not {kind}")
    assert sv.info("web")["pid"] == pid


@pytest.mark.parametrize("args, message", [
    (("web", False), "path must be a string, not a boolean"),
    (("web", 7), "path must be a string, not an int"),
    (("web", "", "yes"), "wait must be a boolean, not a string"),
])
def test_a_path_or_wait_of_the_wrong_type_is_incorrect_parameters(sv, args, message):
    pid = sv.info("web")["pid"]
    fault = reload_fault(lambda: sv.rpc.littleboss.reload(*args))
    assert (fault.faultCode, fault.faultString) == (Faults.INCORRECT_PARAMETERS, f"INCORRECT_PARAMETERS: {message}")
    assert sv.info("web")["pid"] == pid
    assert "Traceback" not in sv.log.read_text()


def test_a_process_that_is_not_in_the_group_is_bad_name(sv):
    pid = sv.info("web")["pid"]
    fault = reload_fault(lambda: sv.rpc.littleboss.reload("web:bogus", sv.v2))
    assert (fault.faultCode, fault.faultString) == (Faults.BAD_NAME,
                                                    "BAD_NAME: web:bogus: program 'web' has no process 'bogus'")
    assert sv.info("web")["pid"] == pid
    assert sv.rpc.littleboss.getProgramInfo("web:web")["pid"] == pid


def test_a_release_directory_is_refused_as_one_naming_the_executable_in_it(sv):
    """Whatever the allow-list says about the directory itself."""
    pid, release = sv.info("web")["pid"], os.path.dirname(sv.v2)
    message = f"web: cannot reload to {release}: it is a directory: give the executable in it, e.g. {sv.v2}"
    fault = reload_fault(lambda: sv.rpc.littleboss.reload("web", release))
    assert (fault.faultCode, fault.faultString) == (LittlebossFaults.NOT_A_FILE, f"NOT_A_FILE: {message}")
    refused = sv.ctl("littleboss:reload", "web", release)
    assert refused.returncode == 1 and message in refused.stdout + refused.stderr, refused
    assert sv.info("web")["pid"] == pid

def test_a_starting_program_is_reloaded_like_a_running_one(sv):
    assert sv.info("slow")["statename"] == "STARTING"  # startsecs = 60
    old = sv.info("slow")["pid"]
    result = sv.rpc.littleboss.reload("slow", sv.v2)
    assert result["old_pid"] == old  # it answered once the old process had drained; it exits then
    wait_for(lambda: not pid_alive(old), what="the drained old process to exit")
    assert sv.info("slow")["statename"] == "RUNNING" and sv.info("slow")["pid"] == result["new_pid"]


def reload_event(sv: Supervisord, eventname: str, to: str) -> dict:
    """The payload of a ``eventname`` event of a reload of web to ``to``, parsed as a
    listener parses it (``childutils.get_headers``), its values decoded."""
    def find() -> dict | None:
        for line in sv.events.read_text().splitlines():
            name, _, payload = line.partition(" ")
            values = {key: unquote(value) for key, value in get_headers(payload).items()}
            if name == eventname and values["processname"] == "web" and values["to"] == to:
                return values
        return None
    return wait_for(find, what=f"a {eventname} event of a reload to {to}")


def test_paths_with_spaces_and_colons_work_from_supervisorctl_and_events_carry_them(sv):
    one_shot = sv.ctl("littleboss:reload", "web", sv.v2)  # the shell split it: one word
    assert one_shot.returncode == 0, one_shot.stdout
    assert http_get(("127.0.0.1", sv.port)).split()[0] == b"v2"
    assert reload_event(sv, "LITTLEBOSS_RELOAD_SUCCEEDED", sv.v2)["from"] == sv.v1
    interactive = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(sv.conf)],
        input=f'littleboss reload web "{sv.v1}"\n', capture_output=True, text=True, timeout=60)
    assert f"reloaded {sv.v2} \u2192 {sv.v1}" in interactive.stdout, interactive.stdout
    assert reload_event(sv, "LITTLEBOSS_RELOAD_STARTED", sv.v1)["from"] == sv.v2
    unclosed = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(sv.conf)],
                              input='littleboss reload web "/x\n', capture_output=True, text=True, timeout=60)
    assert "Error: cannot split the arguments: No closing quotation" in unclosed.stdout, unclosed.stdout


def test_a_failure_reason_with_colons_stays_one_parseable_payload(sv):
    crash = make_release(sv.root / "my releases", "crash: now", "v3", "--mode", "crash")
    reload_fault(lambda: sv.rpc.littleboss.reload("web", crash))
    failed = reload_event(sv, "LITTLEBOSS_RELOAD_FAILED", crash)
    assert failed["reason"] == ("it exited before it was ready (exit status 3; last output: httpapp v3: "
                                "cannot start: configuration is broken)")


def test_another_plugin_cannot_add_a_process_to_a_littleboss_program(tmp_path):
    sv = Supervisord(tmp_path)
    factory = "supervisor_twiddler.rpcinterface:make_twiddler_rpcinterface"
    sv.conf.write_text(f"{sv.conf.read_text()}\n[rpcinterface:twiddler]\nsupervisor.rpcinterface_factory = {factory}\n")
    port = free_port()
    sv.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}")
    sv.start()
    try:
        pid = sv.wait_running("web")
        for call in (lambda: sv.rpc.twiddler.addProgramToGroup("web", "extra", {"command": "sleep 100"}),
                     lambda: sv.rpc.twiddler.removeProcessFromGroup("web", "web")):
            fault = reload_fault(call)
            # UNSUPPORTED, or twiddler's STILL_RUNNING first
            assert fault.faultCode in (LittlebossFaults.UNSUPPORTED, Faults.STILL_RUNNING), fault
        sv.ctl("stop", "web", check=True)
        fault = reload_fault(lambda: sv.rpc.twiddler.removeProcessFromGroup("web", "web"))
        assert fault.faultCode == LittlebossFaults.UNSUPPORTED and "is a littleboss program" in fault.faultString, fault
        sv.ctl("start", "web", check=True)
        assert sv.rpc.supervisor.getState()["statename"] == "RUNNING"
        assert [p["name"] for p in sv.rpc.supervisor.getAllProcessInfo()] == ["web"]
        assert http_get(("127.0.0.1", port)).split()[1] != str(pid).encode()
        assert "Traceback" not in sv.output.read_text()
    finally:
        sv.stop()


def test_a_program_section_name_with_spaces_works_as_without_the_plugin(tmp_path):
    sv = Supervisord(tmp_path)
    releases = Releases(tmp_path)
    v1, v2 = releases.v1, releases.v2
    port = free_port()
    sv.littleboss_program("web", v1, port, releases.allow, ready=None)
    conf = sv.confd / "web.conf"
    conf.write_text(conf.read_text().replace("[program:web]", "[program: web ]"))
    sv.start()
    try:
        sv.wait_running("web")
        assert sv.rpc.littleboss.reload("web", v2)["new_path"] == v2
        assert http_get(("127.0.0.1", port)).split()[0] == b"v2"
    finally:
        sv.stop()

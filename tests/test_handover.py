"""The in-place upgrade's handover record and preflight, in-process: what an older release wrote
is read, what cannot be read is refused with a reason, and an unreadable record leaves nothing
open."""
from __future__ import annotations

import json
import os
import re
import signal
import tempfile
from pathlib import Path

import pytest

from supervisor_littleboss import upgrade
from supervisor_littleboss.handover import ENVIRONMENT, HandedProcess, HandedProgram, Handover
from supervisor_littleboss.preflight import Preflight

FORMAT_1 = Path(__file__).parent / "data" / "handover-format-1.json"  # as release 0.1.0 wrote it


def record(pid: int = 4242) -> Handover:
    process = HandedProcess(0, "web", 5001, 123456, 1796440000.5, "RUNNING", {"stdin": 7, "stdout": 8},
                            "/srv/web/releases/2/web", {"command": "'/srv/web/current/web'"},
                            {"stdout_logfile": "/var/log/web.log"}, 9, True, 1796440001.0, "serving")
    return Handover(pid, "/", 3, {"supervisor": "4.2.2", "littleboss": "0.1.0", "python": "3.10.13"},
                    {"tcp://127.0.0.1:8080": 5}, {"web": HandedProgram([["http", "tcp://127.0.0.1:8080"]], [process])})


def test_a_record_reads_back_as_written(tmp_path):
    path = tmp_path / "handover.json"
    record().write(str(path))
    assert Handover.read(str(path)) == record()
    assert record().fds() == {5, 7, 8, 9}
    assert record().log_files() == {"/var/log/web.log"}


def test_the_first_format_is_read_by_this_release():
    read = Handover.read(str(FORMAT_1))
    assert read.format == 1 and read.programs["web"].processes[0].pid == 5001


@pytest.mark.parametrize(("text", "reason"), [
    ("{", "not valid JSON"),
    ('{"format": 99}', "format 99, and this littleboss reads format(s) 1"),
    ("[]", "format None"),
    ('{"format": 1, "pid": 1}', "not a handover record"),
])
def test_a_record_that_cannot_be_read_says_why(tmp_path, text, reason):
    path = tmp_path / "handover.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(reason)):
        Handover.read(str(path))


def test_a_field_of_the_wrong_kind_is_refused(tmp_path):
    data = json.loads(FORMAT_1.read_text())
    data["sockets"]["tcp://127.0.0.1:8080"] = "five"
    path = tmp_path / "handover.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="an fd is not a number"):
        Handover.read(str(path))


def test_an_unreadable_record_is_removed_and_the_fds_it_named_are_closed(tmp_path, monkeypatch):
    path = tmp_path / "handover.json"
    path.write_text("{")
    monkeypatch.setenv(ENVIRONMENT, str(path))
    read, write = os.pipe()
    os.set_inheritable(read, True)  # as the old code leaves the fds it hands over
    try:
        arrival = upgrade.arrive()
        assert arrival.record is None and "cannot be read (not valid JSON" in arrival.problem
        assert not path.exists() and ENVIRONMENT not in os.environ
        with pytest.raises(OSError):
            os.fstat(read)
    finally:
        os.close(write)


def test_a_record_of_another_pid_is_not_taken_up(tmp_path, monkeypatch):
    path = tmp_path / "handover.json"
    record(pid=os.getpid() + 1).write(str(path))
    monkeypatch.setenv(ENVIRONMENT, str(path))
    monkeypatch.setattr(upgrade, "close_inherited_fds", lambda: None)
    arrival = upgrade.arrive()
    assert arrival.record is None and f"is of pid {os.getpid() + 1}, not this one" in arrival.problem


def preflight_of(output: str, status: int | None) -> Preflight:
    """A Preflight that printed ``output`` and ended with wait status ``status`` (None: it timed out)."""
    check = Preflight.__new__(Preflight)
    check.output = tempfile.TemporaryFile()
    check.output.write(output.encode())
    check.status, check.timed_out = status, status is None
    return check


def test_a_passed_preflight_says_the_new_versions():
    said = {"versions": {"supervisor": "4.3.0", "littleboss": "0.2.0", "python": "3.13.0"}, "reads": [1]}
    assert preflight_of("some warning\n" + json.dumps(said) + "\n", 0).result() == (said, "")


@pytest.mark.parametrize(("output", "status", "how"), [
    ("Error: bad setting\nFor help, use supervisord -h\n", 2 << 8, "exit status 2: Error: bad setting / For help"),
    ("", 1 << 8, "exit status 1: no output"),
    ('{"versions": "x"}\n', 0, "exit status 0"),
    ("", None, "killed after 60 s"),
    ("Segmentation fault\n", signal.SIGSEGV, "terminated by SIGSEGV: Segmentation fault"),
])
def test_a_failed_preflight_says_how_and_what_it_printed(output, status, how):
    said, why = preflight_of(output, status).result()
    assert said is None and why.startswith(how), why


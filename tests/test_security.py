"""The allow-list holds against path tricks, and what runs is the file that was checked."""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from harness import HTTPAPP, Supervisord, free_port, http_get, make_executable, make_release, reload_fault, wait_for

from supervisor_littleboss.faults import LittlebossFaults

pytestmark = pytest.mark.e2e  # each test starts a real supervisord

ENV = shutil.which("env")


@pytest.fixture
def opt(supervisord: Supervisord) -> Path:
    """``root/opt/app/bin/app`` (allowed as ``root/opt/*/bin/*``) serving on a free port."""
    root = supervisord.root / "opt"
    app = make_release(root / "app", "bin", "v1")
    supervisord.port = free_port()
    supervisord.program("web", command=app, littleboss_sockets=f"http=tcp://127.0.0.1:{supervisord.port}",
                        littleboss_allow=f"{root}/*/bin/*")
    supervisord.start()
    supervisord.wait_running("web")
    return root


def assert_refused_and_nothing_ran(supervisord: Supervisord, path: str, resolved: str, marker: Path) -> None:
    pid = supervisord.info("web")["pid"]
    fault = reload_fault(lambda: supervisord.rpc.littleboss.reload("web", path))
    assert fault.faultCode == LittlebossFaults.NOT_ALLOWED, fault.faultString
    assert fault.faultString.startswith(
        f"NOT_ALLOWED: web: cannot reload to {path} (which resolves to {resolved}): it matches none"), fault
    assert supervisord.info("web")["pid"] == pid
    assert not marker.exists()


def test_dot_dot_never_leaves_an_allowed_tree(supervisord: Supervisord, opt: Path):
    marker = supervisord.root / "escaped"
    outside = make_executable(supervisord.root, "bin", f"#!/bin/sh\ntouch {marker}\n", "app")
    assert_refused_and_nothing_ran(supervisord, f"{opt}/../bin/app", outside, marker)


def test_a_symlink_in_an_allowed_directory_to_a_file_outside_is_refused(supervisord: Supervisord, opt: Path):
    marker = supervisord.root / "escaped"
    outside = make_executable(supervisord.root, "bin", f"#!/bin/sh\ntouch {marker}\n", "app")
    link = opt / "app" / "bin" / "link"
    link.symlink_to(outside)
    assert_refused_and_nothing_ran(supervisord, str(link), outside, marker)


def test_a_symlink_to_an_allowed_file_runs_and_is_recorded_as_that_file(supervisord: Supervisord, opt: Path):
    v2 = make_release(opt / "v2", "bin", "v2")
    current = opt / "current"
    current.symlink_to(opt / "v2")
    result = supervisord.rpc.littleboss.reload("web", f"{current}/bin/app")
    assert result["new_path"] == v2
    assert http_get(("127.0.0.1", supervisord.port)).split()[0] == b"v2"
    assert supervisord.rpc.littleboss.getProgramInfo("web")["path"] == v2


@pytest.mark.parametrize("pattern", ["relative/*", "/srv/app/../bin/*"])
def test_an_allow_pattern_must_be_absolute_and_without_dot_dot(supervisord: Supervisord, pattern: str):
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{free_port()}", littleboss_allow=pattern)
    supervisord.start(wait=False)
    status, output = supervisord.exit_output()
    assert status == 2 and f"[program:web] littleboss_allow = {pattern!r} is invalid" in output, output


def test_a_file_swapped_after_it_was_checked_never_runs(supervisord: Supervisord):
    """A binary is executed from the file that was checked: a group-writable script renamed
    over the path, again and again while reloads run, never runs."""
    releases = supervisord.root / "releases"
    marker = supervisord.root / "swapped-in"
    good = make_executable(releases, "good", "", "app")
    Path(good).write_bytes(Path(ENV).read_bytes())  # a binary (ELF): env, running the test server
    bad = Path(make_executable(releases, "bad", f"#!/bin/sh\ntouch {marker}\nexec {HTTPAPP}\n", "app"))
    bad.chmod(0o775)  # the checks refuse it
    spare = releases / "good" / "spare"
    shutil.copy2(good, spare)
    port = free_port()
    supervisord.program("web", command=f"{good} APP_VERSION=v1 {HTTPAPP}",
                        littleboss_sockets=f"http=tcp://127.0.0.1:{port}", littleboss_allow=f"{releases}/*/app")
    supervisord.start()
    supervisord.wait_running("web")
    swapped = releases / "good" / "swap"

    stop = threading.Event()

    def swap() -> None:
        """Put the bad file at the path, then the good one back, until told to stop."""
        while not stop.is_set():
            shutil.copy2(bad, swapped)
            os.replace(swapped, good)
            shutil.copy2(spare, swapped)
            os.replace(swapped, good)

    swapper = threading.Thread(target=swap)
    swapper.start()
    outcomes = []
    try:
        deadline = time.monotonic() + 30
        while len(outcomes) < 40 and time.monotonic() < deadline:
            try:
                outcomes.append(supervisord.rpc.littleboss.reload("web", good)["new_pid"])
            except Exception as exc:  # refused: the bad file was at the path when it was checked
                outcomes.append(str(exc))
    finally:
        stop.set()
        swapper.join()
    assert len(outcomes) == 40
    assert not marker.exists(), "a file that was swapped in after the checks ran"
    assert any(isinstance(outcome, int) for outcome in outcomes), outcomes
    assert http_get(("127.0.0.1", port)).split()[0] == b"v1"


def test_a_current_symlink_flipped_between_releases_reloads_and_rolls_back_by_release(supervisord: Supervisord):
    """The configured command runs ``current/app``; a deploy flips ``current`` and re-executes:
    the resolved releases are what the program info, the history and rollback record."""
    releases = supervisord.root / "releases"
    v1, v2 = make_release(releases, "1", "v1"), make_release(releases, "2", "v2")
    current = releases / "current"
    current.symlink_to(releases / "1")
    port = free_port()
    supervisord.program("web", command=f"{current}/app", littleboss_sockets=f"http=tcp://127.0.0.1:{port}",
                        littleboss_allow=f"{releases}/*/app")
    supervisord.start()
    pid = supervisord.wait_running("web")
    # the shell has opened current/app and exec'd the app (RUNNING comes first, startsecs = 0):
    # flipped before, the link leads nowhere for a moment and the start fails
    wait_for(lambda: f"pid {pid} serving" in (supervisord.root / "web.log").read_text(), what=f"pid {pid} serving")
    assert supervisord.rpc.littleboss.getProgramInfo("web")["path"] == v1
    current.unlink()
    current.symlink_to(releases / "2")
    assert supervisord.rpc.littleboss.getProgramInfo("web")["path"] == v1  # what runs, not what the link says now
    result = supervisord.rpc.littleboss.reload("web")  # re-execute the command's path: the new release
    assert (result["old_path"], result["new_path"]) == (v1, v2)
    info = supervisord.rpc.littleboss.getProgramInfo("web")
    assert (info["path"], info["previous_path"]) == (v2, v1)
    assert http_get(("127.0.0.1", port)).split()[0] == b"v2"
    assert supervisord.rpc.littleboss.rollback("web")["new_path"] == v1
    assert http_get(("127.0.0.1", port)).split()[0] == b"v1"

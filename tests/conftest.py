"""Fixtures shared by the end-to-end tests."""
from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import APPS, EXAMPLE, SESSION, Supervisord

# no client call may wait forever, whatever goes wrong on the server's side
socket.setdefaulttimeout(120)


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[Supervisord]:
    """A fresh, not yet started supervisord of the test's own; stopped (by pid) afterwards."""
    sv = Supervisord(tmp_path)
    yield sv
    sv.stop()


def _start_ticks(pid: int | str) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def _orphans_since(ticks: int) -> list[str]:
    """Processes started after ``ticks`` that run our test apps and lost their parent."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        ours = str(APPS) in cmdline or str(EXAMPLE) in cmdline or "/releases/" in cmdline
        if ours and stat[1] == "1" and int(stat[19]) >= ticks and _session_of(entry) == SESSION:
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def _session_of(proc: Path) -> str | None:
    """The test session that started the process (``LITTLEBOSS_TEST_SESSION`` in its environment)."""
    try:
        environ = (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for variable in environ:
        name, _, value = variable.partition(b"=")
        if name == b"LITTLEBOSS_TEST_SESSION":
            return value.decode()
    return None


@pytest.fixture(scope="session", autouse=True)
def no_orphaned_processes() -> Iterator[None]:
    """Every program the tests started is gone at the end: a test that orphans one fails here."""
    ticks = _start_ticks("self")
    yield
    orphans = _orphans_since(ticks)
    for line in orphans:
        os.kill(int(line.split(":")[0]), signal.SIGKILL)  # started by this session's tests
    assert not orphans, "processes outlived their supervisord:\n" + "\n".join(orphans)

"""The preflight of an in-place upgrade: the code installed now, tried before supervisord runs it.

Before supervisord re-executes itself, the installed code is run once in a process of its
own (``python -m supervisor_littleboss.preflight ARGS``, with supervisord's Python and
arguments, from the directory supervisord was started in): it imports supervisor and
littleboss, reads the configuration as the new supervisord would (every ``[rpcinterface:x]``
factory imported, every littleboss setting checked) and prints its versions as one line of
JSON. Anything else (a traceback, ``Error: ...`` and exit 2) stops the upgrade before
anything changes, as ``nginx -t`` does.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata

from .orphans import kill_group

LAUNCH_DIR = os.getcwd()  # supervisord's directory when it was started (before it daemonized)
PREFLIGHT_TIMEOUT = 60  # seconds


def versions() -> dict[str, str]:
    """supervisor's, littleboss's and Python's versions, as installed now."""
    from . import __version__
    return {"supervisor": metadata.version("supervisor"), "littleboss": __version__,
            "python": platform.python_version()}


RUNNING = versions()  # those of the code running (imported now): an install later changes the above


def command() -> list[str]:
    """supervisord's command line, as it was started, run by the Python installed at its path."""
    return [sys.executable, *sys.orig_argv[1:]]


class Preflight:
    """One run of the installed code against supervisord's configuration, in the background.
    supervisord's reap() hands its exit status to ``finish`` (record it in ``pidhistory``)."""

    def __init__(self, arguments: list[str], now: float) -> None:
        self.output = tempfile.TemporaryFile()
        self.deadline = now + PREFLIGHT_TIMEOUT
        self.status: int | None = None  # the wait status, once reaped
        argv = [sys.executable, "-m", __name__, *arguments]
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, self.output.fileno(), 1), (os.POSIX_SPAWN_DUP2, self.output.fileno(), 2)]
        cwd = os.getcwd()
        os.chdir(LAUNCH_DIR)  # supervisord's arguments are relative to it (posix_spawn has no cwd)
        try:
            self.pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
        finally:
            os.chdir(cwd)

    def finish(self, pid: int, status: int) -> None:
        self.status = status

    def done(self, now: float) -> bool:
        """Whether it is over: it exited, or it ran out of time (then it is killed)."""
        if self.status is None and now > self.deadline:
            kill_group(self.pid)
            self.status = -1
        return self.status is not None

    def result(self) -> tuple[dict | None, str]:
        """(what the new code said: its ``versions``, the handover formats it ``reads``; '') if
        it passed, else (None, what it printed)."""
        self.output.seek(0)
        text = self.output.read().decode(errors="replace")
        self.output.close()
        lines = text.strip().splitlines()
        code = os.waitstatus_to_exitcode(self.status) if self.status != -1 else None
        if code == 0 and lines:
            try:
                said = json.loads(lines[-1])
                if isinstance(said["versions"], dict) and isinstance(said["reads"], list):
                    return said, ""
            except (ValueError, KeyError, TypeError):
                pass
        how = f"killed after {PREFLIGHT_TIMEOUT} s" if code is None else f"exit status {code}"
        return None, f"{how}: {' / '.join(lines[-12:]) or 'no output'}"


def main(arguments: list[str]) -> None:
    from supervisor.options import ServerOptions

    from .handover import READS

    started = time.monotonic()
    options = ServerOptions()
    options.realize(arguments, progname="supervisord")  # a bad configuration: "Error: ...", exit 2
    print(json.dumps({"versions": versions(), "reads": READS,
                      "programs": len(options.process_group_configs),
                      "seconds": round(time.monotonic() - started, 3)}))


if __name__ == "__main__":
    main(sys.argv[1:])

"""A short-lived helper process of supervisord's own: a program's check, an upgrade's preflight.

It runs in a session of its own (``posix_spawn``: nothing blocks the main loop, and what it
forks is killed with it), with stdin from /dev/null and stdout and stderr into one file
descriptor. supervisord reaps it like its own processes: its ``pidhistory`` hands the wait
status to ``finish``.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from .orphans import kill_group


class Child:
    """``argv`` (its program found on PATH, as a shell finds it), started now."""

    def __init__(self, argv: list[str], env: Mapping[str, str], output: int, cwd: str | None = None) -> None:
        """Start it in ``cwd`` (default: supervisord's own), printing into ``output``; OSError if it cannot start."""
        self.status: int | None = None  # the wait status, once reaped
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, output, 1), (os.POSIX_SPAWN_DUP2, output, 2)]
        here = os.getcwd() if cwd else None
        if cwd:
            os.chdir(cwd)  # posix_spawn has no cwd of its own
        try:
            self.pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True)
        finally:
            if here:
                os.chdir(here)

    def finish(self, pid: int, status: int) -> None:
        """Called by supervisord's reap() with the wait status."""
        self.status = status

    def exit_code(self) -> int | None:
        """Its exit status (minus the signal that ended it), None while it runs."""
        return None if self.status is None else os.waitstatus_to_exitcode(self.status)

    def ended(self) -> str:
        """How it ended, once it has: "exit status N" or "terminated by SIGX"."""
        code = self.exit_code()
        return f"exit status {code}" if code is None or code >= 0 else f"terminated by {signal.Signals(-code).name}"

    def kill(self) -> None:
        """SIGKILL to it and to everything it forked (its session's process group)."""
        kill_group(self.pid)

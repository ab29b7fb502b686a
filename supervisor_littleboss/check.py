"""One run of a program's ``littleboss_check`` against a candidate.

The command runs as a child of supervisord in a session of its own (``posix_spawn``,
nothing to block the main loop), with stdin from /dev/null and stdout and stderr into a
pipe that is read without blocking. supervisord reaps it like its own processes (its
``pidhistory`` hands the exit status to ``finish``). A run that outlasts its timeout is
killed and fails; once a run is over, or stopped, its whole process group is killed, so
nothing it forked is left behind.
"""
from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable

from .orphans import kill_group
from .outcome import last_lines

TAIL_BYTES = 2048
OUTPUT_MARK = b"littleboss check: "  # the start of each line a check prints, in the program's log


def check_environment(program: str, process: str, pid: int, binary: str,
                      sockets: list[tuple[str, str]]) -> dict[str, str]:
    """supervisord's environment, and what reaches the candidate alone: its program and process
    names, pid, binary and the program's socket addresses (``sockets``: (name, url) pairs), all
    in LITTLEBOSS_SOCKETS and one by one."""
    env = {**os.environ, "LITTLEBOSS_PROGRAM": program, "LITTLEBOSS_PROCESS": process,
           "LITTLEBOSS_PID": str(pid), "LITTLEBOSS_BINARY": binary,
           "LITTLEBOSS_SOCKETS": " ".join(f"{name}={url}" for name, url in sockets)}
    for name, url in sockets:
        env["LITTLEBOSS_SOCKET_" + re.sub(r"[^A-Z0-9]", "_", name.upper())] = url
    return env


def mark_output(lines: bytes) -> bytes:
    """A check's output as the program's log shows it: each line marked as the check's."""
    return b"".join(OUTPUT_MARK + line for line in lines.splitlines(keepends=True))


class CheckRun:
    """``argv`` started now; ``poll()`` says when it is over and how. ``output`` gets what
    it prints, in whole lines."""

    def __init__(self, argv: list[str], env: dict[str, str], timeout: float, now: float,
                 output: Callable[[bytes], None]) -> None:
        self.timeout, self.started, self.output = timeout, now, output
        self.tail, self.partial = bytearray(), b""
        self.status: int | None = None  # the wait status, once reaped
        self.failure = ""  # why it could not run
        read, write = os.pipe()
        os.set_blocking(read, False)
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, write, 1), (os.POSIX_SPAWN_DUP2, write, 2)]
        try:
            self.pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True)
        except OSError as exc:
            self.pid, self.failure = 0, f"cannot run {argv[0]}: {exc.strerror}"
        finally:
            os.close(write)
        self.fd: int | None = read

    def finish(self, pid: int, status: int) -> None:
        """Called by supervisord's reap() with the exit status."""
        self.status = status

    def poll(self, now: float) -> tuple[bool, str] | None:
        """None while it runs; then (passed, how it ended with its last output lines)."""
        self._read()
        if self.failure:
            return self._end(False, self.failure)
        if self.status is None:
            if now - self.started < self.timeout:
                return None
            return self._end(False, f"timed out after {self.timeout:g}s (littleboss_check_timeout): killed")
        code = os.waitstatus_to_exitcode(self.status)
        how = f"exit status {code}" if code >= 0 else f"terminated by {signal.Signals(-code).name}"
        return self._end(code == 0, how)

    def stop(self) -> None:
        """End it now (the reload moved on or failed): kill it and what it forked."""
        if self.fd is not None:
            self._end(False, "stopped")

    def _end(self, passed: bool, how: str) -> tuple[bool, str]:
        self._read()
        if self.pid:
            kill_group(self.pid)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.partial:
            self.output(self.partial + b"\n")
            self.partial = b""
        lines = last_lines(bytes(self.tail), 3)
        return passed, how + (f"; last output: {lines}" if lines else "")

    def _read(self) -> None:
        while self.fd is not None:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            lines = (self.partial + data).split(b"\n")
            self.partial = lines.pop()
            if lines:
                self.output(b"".join(line + b"\n" for line in lines))  # whole lines only
            self.tail.extend(data)
            del self.tail[:-TAIL_BYTES]


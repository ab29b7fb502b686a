"""One run of a program's ``littleboss_check`` against a candidate.

The command runs as a ``Child`` of supervisord's, its output into a pipe that is read
without blocking. A run that outlasts its timeout is killed and fails; once a run is over,
or stopped, its whole process group is killed, so nothing it forked is left behind.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable

from .child import Child
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


class CheckRun(Child):
    """``argv`` started now, its output read from a pipe without blocking; ``poll()`` says
    when it is over and how. ``output`` gets what it prints, in whole lines."""

    def __init__(self, argv: list[str], env: dict[str, str], timeout: float, now: float,
                 output: Callable[[bytes], None]) -> None:
        self.timeout, self.started, self.output = timeout, now, output
        self.tail, self.partial = bytearray(), b""
        self.failure = ""  # why it could not run
        read, write = os.pipe()
        os.set_blocking(read, False)
        try:
            super().__init__(argv, env, write)
        except OSError as exc:
            self.pid, self.status, self.failure = 0, None, f"cannot run {argv[0]}: {exc.strerror}"
        finally:
            os.close(write)
        self.fd: int | None = read

    def poll(self, now: float) -> tuple[bool, str] | None:
        """None while it runs; then (passed, how it ended with its last output lines)."""
        self._read()
        if self.failure:
            return self._end(False, self.failure)
        if self.status is None:
            if now - self.started < self.timeout:
                return None
            return self._end(False, f"timed out after {self.timeout:g}s (littleboss_check_timeout): killed")
        return self._end(self.exit_code() == 0, self.ended())

    def stop(self) -> None:
        """End it now (the reload moved on or failed): kill it and what it forked."""
        if self.fd is not None:
            self._end(False, "stopped")

    def _end(self, passed: bool, how: str) -> tuple[bool, str]:
        self._read()
        if self.pid:
            self.kill()
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


"""supervisord's main loop wakes when a signal arrives: a child that exited is reaped in that pass.

supervisord's loop sleeps up to 1 s in poll(), and Python retries a poll that a signal
interrupted (PEP 475): a child's exit (SIGCHLD) was seen at the next pass, up to 1 s
later, and its autorestart or the next step of a reload waited for it, or for the ticker's
next tick. Python's signal wakeup fd (``signal.set_wakeup_fd``) is a pipe its C signal
handler writes a byte to for every signal; registered in the loop, it ends the poll, and
the first littleboss group's ``transition()`` of that pass reaps the children that exited
(``Plugin.reap_signalled``).

One pipe per supervisord process, made at the first run and kept through SIGHUP (its fds
are spared like the held sockets'): the wakeup fd is the C handler's, and a closed one
could be reused by a log file.
"""
from __future__ import annotations

import os
import signal
import traceback

_PIPE: tuple[int, int] | None = None  # (read, write), non-blocking, close-on-exec


def wakeup_fds() -> set[int]:
    """The pipe's fds, spared on SIGHUP (none before the first run made it)."""
    return set(_PIPE) if _PIPE else set()


class Wakeup:
    """A supervisord dispatcher around the signal wakeup pipe, for one run of supervisord."""

    def __init__(self, plugin) -> None:
        global _PIPE
        if _PIPE is None:
            _PIPE = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(_PIPE[1], warn_on_full_buffer=False)
        self.fd = _PIPE[0]
        self.plugin = plugin

    def close(self) -> None:
        """The run ended: no signal writes to the pipe until the next run that loads littleboss."""
        signal.set_wakeup_fd(-1)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        try:
            while os.read(self.fd, 4096):  # one byte per signal caught; supervisord acts on them
                pass
        except BlockingIOError:
            pass
        self.plugin.signalled = True  # reaped after this pass's reads and writes (Plugin.reap_signalled)

    def handle_error(self) -> None:
        self.plugin.options.logger.critical(f"littleboss: reading the signal wakeup pipe failed: "
                                            f"{traceback.format_exc()}")

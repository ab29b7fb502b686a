"""What littleboss reads for its programs' processes, behind one fd of supervisord's main loop.

supervisord's loop goes over every fd it polls in every pass, however idle: it asks each
group for its dispatchers, asks each dispatcher whether it is readable and registers its fd.
With many programs that is most of what a pass costs, and a reload or an exit takes several
passes. The output pipes and notify socket of every littleboss process are in one epoll set
instead, whose one fd the loop polls: readable when any of them is, each then read by its own
dispatcher, as supervisord's loop would (``handle_read_event``; ``handle_error`` if that
raises; no longer polled once not ``readable``). A process's stdin, written only while
``sendProcessStdin`` has input waiting, is still supervisord's to poll.

One set per supervisord process, made at the first use and kept through SIGHUP: its fd, and
those of the processes that run on, are spared.
"""
from __future__ import annotations

import contextlib
import functools
import select
import traceback


class ReadPoll:
    """A supervisord dispatcher around an epoll set of fds, each read by its own dispatcher."""

    def __init__(self) -> None:
        self.epoll = select.epoll()  # (close-on-exec)
        self.fd = self.epoll.fileno()
        self.dispatchers: dict[int, object] = {}
        self.logger = None  # the running supervisord's

    def watch(self, fd: int, dispatcher) -> None:
        """Read ``fd`` with ``dispatcher`` from now on (OSError if it cannot be watched)."""
        self.forget(fd, self.dispatchers.get(fd))  # (an fd closed and opened again since)
        self.epoll.register(fd, select.EPOLLIN)
        self.dispatchers[fd] = dispatcher

    def forget(self, fd: int, dispatcher) -> None:
        """No longer read ``fd`` with ``dispatcher``: before ``fd`` is closed (epoll drops an
        entry at the close only if no other process holds a copy, as a child just forked does)."""
        if dispatcher is not None and self.dispatchers.get(fd) is dispatcher:
            del self.dispatchers[fd]
            with contextlib.suppress(OSError):  # (closed already: the kernel dropped it)
                self.epoll.unregister(fd)

    def fds(self) -> set[int]:
        """The set's fd and every fd in it."""
        return {self.fd, *self.dispatchers}

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        for fd, _ in self.epoll.poll(0):
            dispatcher = self.dispatchers.get(fd)
            if dispatcher is None:
                continue
            try:
                dispatcher.handle_read_event()
            except Exception:  # as supervisord's loop does: the dispatcher says so, and closes
                dispatcher.handle_error()
            if not dispatcher.readable():
                self.forget(fd, dispatcher)

    def handle_error(self) -> None:
        if self.logger is not None:
            self.logger.critical(f"littleboss: reading the processes' output failed: {traceback.format_exc()}")


@functools.cache
def read_poll() -> ReadPoll:
    """This supervisord process's set, made at the first call."""
    return ReadPoll()


def read_poll_fds() -> set[int]:
    """The set's fd and the fds in it, spared on SIGHUP (a process that does not run on
    closed its pipes and notify socket when it ended)."""
    return read_poll().fds()

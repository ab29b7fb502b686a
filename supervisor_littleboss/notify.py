"""The ``sd_notify`` receiver: one ``NOTIFY_SOCKET`` per spawned process.

A datagram socket in the abstract namespace. The kernel tells us the sender's pid
(``SO_PASSCRED``): only the process supervisord spawned counts, not a child it forked.
Each process has its own: a socket holds only ``net.unix.max_dgram_qlen`` messages
(often 10) before its senders block, and one process's messages never hold up another's.

Every process's socket is in one epoll set (``NotifyPoll``), whose one fd supervisord's
main loop polls: a ``READY=1`` wakes the loop at once, and the loop, which goes over every
fd it polls in every pass, has one fd more, not one more per process. The set is made once
per supervisord process and kept through SIGHUP (its fd, and the sockets of the processes
that run on, spared).
"""
from __future__ import annotations

import contextlib
import functools
import select
import socket
import struct
import time
import traceback

_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class NotifyReceiver:
    """The ``sd_notify`` messages of one process, read from its socket when ``NotifyPoll``
    finds it readable."""

    def __init__(self, process, taken: socket.socket | None = None) -> None:
        """A new socket for ``process``; or ``taken``, the one it was started with, kept open
        through supervisord's in-place upgrade."""
        self.process = process
        self.socket = taken or socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if taken is None:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
                self.socket.bind("")  # autobind: the kernel picks a free abstract name nobody can squat
            self.socket.setblocking(False)
            self.name = self.socket.getsockname()[1:].decode()
            self.fd = self.socket.fileno()
            notify_poll().watch(self)  # read from now on
        except OSError:
            self.socket.close()
            raise
        self.closed = False
        self.ready = False
        self.ready_at = 0.0  # when READY=1 arrived
        self.pinged_at = 0.0  # when WATCHDOG=1 last arrived
        self.extended_until = 0.0  # EXTEND_TIMEOUT_USEC: no deadline before this
        self.triggered = False  # WATCHDOG=trigger: the program says it is hung
        self.status = ""

    @property
    def address(self) -> str:
        """The ``NOTIFY_SOCKET`` value (``@`` marks the abstract namespace)."""
        return "@" + self.name

    def handle_read_event(self) -> None:
        for _ in range(64):  # bounded: a chatty program cannot stall supervisord
            try:
                data, ancillary, _, _ = self.socket.recvmsg(4096, socket.CMSG_SPACE(_CREDENTIALS.size))
            except BlockingIOError:
                return
            self.receive(data, _sender_pid(ancillary))

    def receive(self, data: bytes, pid: int | None) -> None:
        """Apply one message (``KEY=VALUE`` lines) sent by ``pid``."""
        logger = self.process.config.options.logger
        fields = dict(line.partition("=")[::2] for line in data.decode(errors="replace").splitlines())
        if pid != self.process.pid:
            logger.warn(
                f"littleboss: {self.process.config.name}: ignored notification {sorted(fields)} "
                f"from pid {pid}: only the main pid {self.process.pid} may send it"
            )
            return
        if "STATUS" in fields:
            self.status = fields["STATUS"]
        now = time.time()
        if fields.get("WATCHDOG") == "1":
            self.pinged_at = now
        elif fields.get("WATCHDOG") == "trigger":
            self.triggered = True
        if _digits(fields.get("EXTEND_TIMEOUT_USEC", "")):
            self.extended_until = now + int(fields["EXTEND_TIMEOUT_USEC"]) / 1e6
        if fields.get("READY") == "1" and not self.ready:
            self.ready, self.ready_at = True, now
            logger.info(f"littleboss: {self.process.config.name} (pid {pid}) sent READY=1")

    def handle_error(self) -> None:
        self.process.config.options.logger.critical(
            f"littleboss: error reading notifications of {self.process.config.name}; closing its NOTIFY_SOCKET"
        )
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            notify_poll().forget(self)
            self.socket.close()


def _digits(value: str) -> bool:
    """A number of microseconds, as ``EXTEND_TIMEOUT_USEC`` holds (ASCII digits, not too many)."""
    return value.isascii() and value.isdigit() and len(value) <= 18


class NotifyPoll:
    """A supervisord dispatcher around one epoll set of every process's notify socket: readable
    when any of them is; each one readable is read by its own receiver."""

    def __init__(self) -> None:
        self.epoll = select.epoll()  # (close-on-exec)
        self.fd = self.epoll.fileno()
        self.receivers: dict[int, NotifyReceiver] = {}
        self.logger = None  # the running supervisord's

    def watch(self, receiver: NotifyReceiver) -> None:
        self.epoll.register(receiver.fd, select.EPOLLIN)
        self.receivers[receiver.fd] = receiver

    def forget(self, receiver: NotifyReceiver) -> None:
        """Before ``receiver``'s socket is closed."""
        if self.receivers.get(receiver.fd) is receiver:
            del self.receivers[receiver.fd]
            with contextlib.suppress(OSError):
                self.epoll.unregister(receiver.fd)

    def fds(self) -> set[int]:
        """The set's fd and every socket in it."""
        return {self.fd, *self.receivers}

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        for fd, _ in self.epoll.poll(0):
            receiver = self.receivers.get(fd)
            if receiver is None:
                continue
            try:
                receiver.handle_read_event()
            except Exception:  # as supervisord does for a dispatcher: that socket alone is closed
                receiver.handle_error()

    def handle_error(self) -> None:
        if self.logger is not None:
            self.logger.critical(f"littleboss: reading the notify sockets failed: {traceback.format_exc()}")


@functools.cache
def notify_poll() -> NotifyPoll:
    """This supervisord process's set of notify sockets, made at the first call."""
    return NotifyPoll()


def notify_fds() -> set[int]:
    """The set's fd and the sockets in it, spared on SIGHUP (a process that does not run on
    closed its socket when it ended)."""
    return notify_poll().fds()


def _sender_pid(ancillary: list) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return _CREDENTIALS.unpack(data[: _CREDENTIALS.size])[0]
    return None

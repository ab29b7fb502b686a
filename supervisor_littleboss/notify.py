"""The ``sd_notify`` receiver: one ``NOTIFY_SOCKET`` per spawned process.

A datagram socket in the abstract namespace. The kernel tells us the sender's pid
(``SO_PASSCRED``): only the process supervisord spawned counts, not a child it forked.
Each process has its own: a socket holds only ``net.unix.max_dgram_qlen`` messages
(often 10) before its senders block, and one process's messages never hold up another's.
It is read through ``readpoll``'s set, whose fd supervisord's main loop polls: a
``READY=1`` wakes the loop at once.
"""
from __future__ import annotations

import socket
import struct
import time

from .readpoll import read_poll

_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class NotifyReceiver:
    """A dispatcher that reads ``sd_notify`` messages for one process (through ``readpoll``)."""

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
            read_poll().watch(self.fd, self)  # read from now on
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

    def readable(self) -> bool:
        return not self.closed

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
            read_poll().forget(self.fd, self)
            self.socket.close()


def _digits(value: str) -> bool:
    """A number of microseconds, as ``EXTEND_TIMEOUT_USEC`` holds (ASCII digits, not too many)."""
    return value.isascii() and value.isdigit() and len(value) <= 18


def _sender_pid(ancillary: list) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return _CREDENTIALS.unpack(data[: _CREDENTIALS.size])[0]
    return None

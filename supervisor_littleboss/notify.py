"""The ``sd_notify`` receiver: one ``NOTIFY_SOCKET`` for every process supervisord spawns.

As systemd's: a datagram socket in the abstract namespace, and the kernel tells the
sender's pid with each message (``SO_PASSCRED``): a message counts for the process
supervisord spawned with that pid, never for a child it forked. Read in supervisord's
main loop like a process's output pipes, so a ``READY=1`` wakes the loop at once. One
socket, not one per process: supervisord's loop goes over every fd it polls in every pass.

Made once per supervisord process and kept through SIGHUP (its fd spared) and through an
in-place upgrade (its fd handed over): the processes that run on know it by its name.
"""
from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_SOCKET: socket.socket | None = None  # the shared one, once made or taken up


def notify_fds() -> set[int]:
    """The shared socket's fd, spared on SIGHUP (none before it was made)."""
    return {_SOCKET.fileno()} if _SOCKET else set()


def shared_socket(taken: int | None = None) -> socket.socket:
    """The shared socket, made at the first call (``taken``: the fd of the one an upgrade
    handed over, taken up instead). OSError if it cannot be made."""
    global _SOCKET
    if _SOCKET is None:
        _SOCKET = open_socket(taken)
    return _SOCKET


def open_socket(taken: int | None = None) -> socket.socket:
    """A non-blocking receiving socket: a new one, or the open one at fd ``taken``."""
    sock = socket.socket(fileno=taken) if taken is not None else socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        if taken is None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind("")  # autobind: the kernel picks a free abstract name nobody can squat
        sock.set_inheritable(False)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def address(sock: socket.socket) -> str:
    """The ``NOTIFY_SOCKET`` value of ``sock`` (``@`` marks the abstract namespace)."""
    return "@" + sock.getsockname()[1:].decode()


class Notifications:
    """What one run of a process has told over ``sd_notify``."""

    def __init__(self, address: str) -> None:
        self.address = address  # its NOTIFY_SOCKET
        self.ready = False
        self.ready_at = 0.0  # when READY=1 arrived
        self.pinged_at = 0.0  # when WATCHDOG=1 last arrived
        self.extended_until = 0.0  # EXTEND_TIMEOUT_USEC: no deadline before this
        self.triggered = False  # WATCHDOG=trigger: the program says it is hung
        self.status = ""

    def apply(self, fields: dict[str, str], now: float) -> bool:
        """Apply one message; whether it made the process ready."""
        if "STATUS" in fields:
            self.status = fields["STATUS"]
        if fields.get("WATCHDOG") == "1":
            self.pinged_at = now
        elif fields.get("WATCHDOG") == "trigger":
            self.triggered = True
        if fields.get("EXTEND_TIMEOUT_USEC", "").isdigit():
            self.extended_until = now + int(fields["EXTEND_TIMEOUT_USEC"]) / 1e6
        if fields.get("READY") == "1" and not self.ready:
            self.ready, self.ready_at = True, now
            return True
        return False


class NotifyReceiver:
    """A supervisord dispatcher that reads one notify socket; each message goes to the
    ``Notifications`` of the process that sent it, found by pid (``process_of``)."""

    def __init__(self, sock: socket.socket, process_of: Callable[[int], object | None], logger) -> None:
        self.socket, self.process_of, self.logger = sock, process_of, logger
        self.fd = sock.fileno()
        self.closed = False

    def readable(self) -> bool:
        return not self.closed

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        for _ in range(64):  # bounded: a chatty program cannot stall supervisord
            try:
                data, ancillary, _, _ = self.socket.recvmsg(4096, socket.CMSG_SPACE(_CREDENTIALS.size))
            except BlockingIOError:
                return
            self.receive(data, _sender_pid(ancillary))

    def receive(self, data: bytes, pid: int | None) -> None:
        """Apply one message (``KEY=VALUE`` lines) sent by ``pid``."""
        fields = dict(line.partition("=")[::2] for line in data.decode(errors="replace").splitlines())
        process = self.process_of(pid) if pid else None
        notifications = getattr(process, "notify", None)
        if not isinstance(notifications, Notifications):
            self._ignore(fields, pid)
        elif notifications.apply(fields, time.time()):
            self.logger.info(f"littleboss: {process.config.name} (pid {pid}) sent READY=1")

    def _ignore(self, fields: dict[str, str], pid: int | None) -> None:
        """A message from a process that is not one supervisord spawned for a program that
        listens (a wrapper's child, say): said in the log, against the program whose process
        forked the sender if it can be told."""
        owner = next(filter(None, map(self.process_of, _ancestors(pid))), None) if pid else None
        if isinstance(getattr(owner, "notify", None), Notifications):
            self.logger.warn(f"littleboss: {owner.config.name}: ignored notification {sorted(fields)} from pid "
                             f"{pid}: only the main pid {owner.pid} may send it")
        else:
            self.logger.warn(f"littleboss: ignored notification {sorted(fields)} from pid {pid}: only the main pid "
                             "of a littleboss program's process may send it")

    def handle_error(self) -> None:
        self.logger.critical(f"littleboss: error reading notifications on fd {self.fd}; closing it")
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.socket.close()


def _sender_pid(ancillary: list) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return _CREDENTIALS.unpack(data[: _CREDENTIALS.size])[0]
    return None


def _ancestors(pid: int, most: int = 16) -> list[int]:
    """``pid``'s parent, its parent's... (``/proc``), as far as they can be read."""
    found = []
    for _ in range(most):
        try:
            with open(f"/proc/{pid}/stat", "rb") as file:
                pid = int(file.read().rsplit(b")", 1)[1].split()[1])  # field 4, after the command's name
        except (OSError, ValueError, IndexError):
            break
        if pid <= 1:
            break
        found.append(pid)
    return found

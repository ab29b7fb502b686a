"""Processes a previous supervisord started that outlived it: recognise, disarm, stop.

Owns three things, on Linux only (standard library and ``ctypes``, no supervisord):

- *identity*: a ``ProcessRecord`` is a pid plus its start time (clock ticks since boot,
  from ``/proc/PID/stat``), so a pid reused by another process is never taken for ours;
- *taking a listening socket back* from such a process (``pidfd_open`` +
  ``pidfd_getfd``), so the new supervisord holds the very socket the orphan listens on
  and no connection is refused while the orphan is stopped;
- *signalling* it: its whole process group (supervisord starts every child as the
  leader of its own group), only while its start time still matches.

Nothing here waits (but for resolving a host name, as ``bind()`` itself does): the
caller polls ``still_alive`` from its own loop.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import ipaddress
import os
import signal
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Syscall numbers of the pidfd family: the same on every Linux architecture (the
# unified table, 5.1+), except alpha.
_SYS_PIDFD_SEND_SIGNAL = 424
_SYS_PIDFD_OPEN = 434
_SYS_PIDFD_GETFD = 438

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args: int) -> int:
    """Call a system call with integer arguments; OSError(errno) if it fails."""
    result = _libc.syscall(ctypes.c_long(number), *(ctypes.c_long(arg) for arg in args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time) of ``pid`` from /proc; None if it does not exist.

    The command name (field 2) may hold spaces and ')', so fields are counted after the
    last ')': state is field 3, pgrp field 5, starttime field 22.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data.rpartition(b")")[2].split()
    try:
        return fields[0].decode(), int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; None if it does not exist or is a zombie."""
    stat = _stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return None
    return stat[2]


@dataclass(frozen=True)
class ProcessRecord:
    """A process as supervisord started it: its pid and that pid's start time."""

    pid: int
    start: int  # clock ticks since boot (field 22 of /proc/PID/stat)

    def __post_init__(self) -> None:
        if type(self.pid) is not int or self.pid <= 0:
            raise ValueError(f"a process record's pid is a positive integer, not {self.pid!r}")
        if type(self.start) is not int or self.start < 0:
            raise ValueError(f"a process record's start is a non-negative integer, not {self.start!r}")

    @classmethod
    def of(cls, pid: int) -> ProcessRecord | None:
        """The record of the running process ``pid``; None if there is none (or a zombie)."""
        start = start_time(pid)
        return None if start is None else cls(pid, start)

    def alive(self) -> bool:
        """True while this very process runs: same pid and same start time, not a zombie."""
        return start_time(self.pid) == self.start

    def to_dict(self) -> dict[str, int]:
        return {"pid": self.pid, "start": self.start}

    @classmethod
    def from_dict(cls, data: Any) -> ProcessRecord:
        """The record saved by ``to_dict``; ValueError if ``data`` is not one."""
        if not isinstance(data, dict) or "pid" not in data or "start" not in data:
            raise ValueError(f"a process record is {{'pid': int, 'start': int}}, not {data!r}")
        return cls(data["pid"], data["start"])


def still_alive(records: Iterable[ProcessRecord]) -> list[ProcessRecord]:
    """The records whose process still runs (a zombie or a reused pid does not)."""
    return [record for record in records if record.alive()]


def _open_pidfd(record: ProcessRecord) -> int | None:
    """A pidfd of the recorded process; None if it is gone or its pid now names another.

    The start time is checked *after* the pidfd is open: the pidfd then surely refers to
    the recorded process, whatever happens to its pid afterwards.
    """
    try:
        pidfd = _syscall(_SYS_PIDFD_OPEN, record.pid, 0)
    except ProcessLookupError:
        return None
    if record.alive():
        return pidfd
    os.close(pidfd)
    return None


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in process group ``pgid`` (its leader's pid, which Linux
    does not reuse while the group has members); nothing if none is left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def signal_group(record: ProcessRecord, sig: int) -> bool:
    """Send ``sig`` to the process group the recorded process leads; True if sent.

    Nothing is sent if the process is gone or its pid now names another process. A
    process that does not lead its own group (supervisord's children all do) gets the
    signal alone: a group it merely belongs to may hold processes that are not ours.
    OSError only for what the caller must hear of (EPERM: not ours to signal; ENOSYS:
    kernel older than 5.3).
    """
    pidfd = _open_pidfd(record)
    if pidfd is None:
        return False
    try:
        stat = _stat(record.pid)
        if stat is not None and stat[1] == record.pid:
            os.killpg(record.pid, sig)  # its leader checked just now; a group's id is not reused while it has members
        else:
            _syscall(_SYS_PIDFD_SEND_SIGNAL, pidfd, sig, 0, 0)
        return True
    except ProcessLookupError:
        return False  # it died meanwhile
    finally:
        os.close(pidfd)


def _canonical(family: int, address: Any) -> Any:
    """An address as compared here: IP hosts in ipaddress's compressed form, paths normalised."""
    if family == socket.AF_UNIX:
        return os.path.normpath(address) if isinstance(address, str) and address else address
    host, port = address[0], int(address[1])
    return ipaddress.ip_address(host).compressed, port


def _url(family: int, address: Any) -> str:
    """``address`` written as in ``littleboss_sockets``, for messages."""
    if family == socket.AF_UNIX:
        return f"unix://{address}"
    return f"tcp://[{address[0]}]:{address[1]}" if family == socket.AF_INET6 else f"tcp://{address[0]}:{address[1]}"


def _wanted(family: int, address: Any) -> set[Any]:
    """Every canonical address the socket configured as ``address`` may be bound to."""
    if family == socket.AF_UNIX:
        return {_canonical(family, address)}
    host, port = address[0], int(address[1])
    try:
        return {_canonical(family, (host, port))}
    except ValueError:  # a host name: bind() took one of its addresses
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        return {_canonical(family, info[4]) for info in infos}


def take_listener(
    record: ProcessRecord, family: int, address: tuple[str, int] | str, log: Callable[[str], Any] | None = None
) -> socket.socket | None:
    """A duplicate of the listening socket bound to ``address`` that the recorded process holds.

    ``address`` is ``(host, port)`` for AF_INET/AF_INET6 (a host name is resolved) or a
    path for AF_UNIX. The process keeps its own descriptor until it exits; both accept
    from the same queue meanwhile. The socket's file status flags are shared with the
    process and left as they are (the object's blocking mode matches them).

    Never raises: None if it cannot (the process is gone or is not the recorded one; no
    ptrace rights over it: root has them, another user only over its own processes and
    not under Yama's ptrace_scope >= 1; ENOSYS before Linux 5.6; no such listening
    socket); ``log`` is then called with one line saying why.
    """
    where = f"{_url(family, address)} from pid {record.pid}"

    def fail(reason: str) -> None:
        if log is not None:
            log(f"cannot take back {where}: {reason}")

    try:
        wanted = _wanted(family, address)
        pidfd = _open_pidfd(record)
    except (OSError, ValueError) as exc:
        fail(_reason(exc))
        return None
    if pidfd is None:
        fail("the process is gone, or its pid now names another process")
        return None
    try:
        sock = _find_listener(record.pid, pidfd, family, wanted)
    except OSError as exc:
        fail(_reason(exc))
        return None
    finally:
        os.close(pidfd)
    if sock is None:
        fail("it holds no socket listening there")
    return sock


def _find_listener(pid: int, pidfd: int, family: int, wanted: set[Any]) -> socket.socket | None:
    """Take each socket ``pid`` holds in turn; keep the listening one bound to an address in ``wanted``."""
    with os.scandir(f"/proc/{pid}/fd") as entries:
        targets = [int(entry.name) for entry in entries if _is_socket(entry.path)]
    for target in targets:
        try:
            fd = _syscall(_SYS_PIDFD_GETFD, pidfd, target, 0)  # close-on-exec, as Python's fds
        except OSError as exc:
            if exc.errno == errno.EBADF:
                continue  # closed meanwhile
            raise
        try:
            # SOCK_NONBLOCK in the type: Python then leaves the fd's flags alone, which the
            # process shares with us (with a default timeout set it would make it non-blocking).
            sock = socket.socket(-1, socket.SOCK_STREAM | socket.SOCK_NONBLOCK, -1, fd)
        except OSError:  # the number was reused meanwhile, for something that is not a socket
            os.close(fd)
            continue
        try:
            if (
                sock.family == family
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
                and _canonical(family, sock.getsockname()) in wanted
            ):
                if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK:
                    sock.settimeout(None)  # blocking, as the fd already is: its flags are unchanged
                return sock
        except (OSError, ValueError):
            pass
        sock.close()
    return None


def _is_socket(path: str) -> bool:
    """True if the /proc/PID/fd entry at ``path`` is a socket (False if it is gone)."""
    try:
        return os.readlink(path).startswith("socket:[")
    except FileNotFoundError:
        return False


def _reason(exc: OSError | ValueError) -> str:
    """What an error met while taking a socket back means, in one phrase."""
    if not isinstance(exc, OSError):
        return f"not an address: {exc}"
    if exc.errno in (errno.EPERM, errno.EACCES):
        return f"{exc.strerror} (taking another process's socket needs ptrace rights over it: run supervisord as root)"
    if exc.errno == errno.ENOSYS:
        return f"{exc.strerror} (pidfd_open needs Linux 5.3, pidfd_getfd Linux 5.6)"
    if exc.errno in (errno.ESRCH, errno.ENOENT):
        return "the process is gone"
    return str(exc)


ORPHAN_KILL_WAIT = 5  # seconds an orphan has to vanish after SIGKILL


class Orphans:
    """The processes of one program that an earlier supervisord, killed (-9), left running:
    their listening sockets are taken back, then they are stopped as replaced processes are
    (stop signal, lameduck, SIGKILL). ``forget`` is told of each one gone."""

    def __init__(self, program: str, records: list[ProcessRecord], log: Callable[[str], Any],
                 forget: Callable[[list[ProcessRecord]], None]) -> None:
        self.program, self.log, self.forget = program, log, forget
        self.records = still_alive(records)
        self.deadline = 0.0

    def __bool__(self) -> bool:
        return bool(self.records)

    def take_sockets(self, wanted: list[tuple[str, int, Any]]) -> dict[str, socket.socket]:
        """Their listening sockets, by URL, for each ``(url, family, address)`` wanted."""
        taken: dict[str, socket.socket] = {}
        for url, family, address in wanted:
            for record in self.records:
                if url not in taken:
                    sock = take_listener(record, family, address, log=self.log)
                    if sock is not None:
                        taken[url] = sock
        return taken

    def take_over(self, wanted: list[tuple[str, int, Any]], stopsignal: int, lameduck: float, now: float,
                  total: int) -> dict[str, socket.socket]:
        """Take their listening sockets back (``take_sockets``), then stop them (``stop``); the
        log says so (``total``: how many sockets the program has)."""
        taken = self.take_sockets(wanted)
        pids = ", ".join(str(record.pid) for record in self.records)
        self.stop(stopsignal, lameduck, now)
        self.log(f"{self.program}: pid(s) {pids} of an earlier supervisord still run: took back {len(taken)} of "
                 f"{total} socket(s) from them; stopping them ({signal.Signals(stopsignal).name}, SIGKILL after "
                 f"{lameduck:g}s)")
        return taken

    def stop(self, stopsignal: int, lameduck: float, now: float) -> None:
        """Send them ``stopsignal``; SIGKILL once ``lameduck`` seconds have passed (``reap``)."""
        self.deadline = now + lameduck
        self.signal(stopsignal)

    def signal(self, sig: int) -> None:
        for record in self.records:
            try:
                signal_group(record, sig)
            except OSError as exc:
                self.log(f"{self.program}: cannot signal pid {record.pid}: {exc.strerror}")

    def reap(self, now: float) -> None:
        """Forget those gone; SIGKILL those left once their lameduck is over."""
        alive = still_alive(self.records)
        if len(alive) < len(self.records):
            self.forget([record for record in self.records if record not in alive])
        self.records = alive
        if self.records and now > self.deadline:
            self.signal(signal.SIGKILL)

    def wait(self, clock: Callable[[], float], pause: Callable[[float], None]) -> None:
        """Until they have exited (supervisord is starting: nothing is served yet), or cannot
        be killed (a process in D state: binding then reports the address in use)."""
        while self.records:
            now = clock()
            self.reap(now)
            if now > self.deadline + ORPHAN_KILL_WAIT:
                break
            pause(0.02)

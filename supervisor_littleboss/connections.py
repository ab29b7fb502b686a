"""What the kernel says about the sockets littleboss programs serve on: a listening socket's
accept queue, and the established connections a process still holds.

Read only when asked (a scrape of the metrics, a drain in progress): a listening socket's
queue is one ``getsockopt`` on the socket supervisord holds; a process's connections are its
fds' socket inodes matched against the kernel's TCP tables for the program's ports.
"""
from __future__ import annotations

import os
import socket
import struct

_TCP_INFO = struct.Struct("8B6I")  # struct tcp_info's first fields: ..., tcpi_unacked, tcpi_sacked
_ESTABLISHED = "01"
_UNIX_CONNECTED = "03"  # /proc/net/unix's St: SS_CONNECTED
_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def accept_queue(sock: socket.socket) -> tuple[int, int] | None:
    """(connections waiting to be accepted, the backlog) of a listening TCP socket; None for
    any other socket (the kernel tells a TCP listener's in ``tcpi_unacked``/``tcpi_sacked``)."""
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO.size)
    except OSError:
        return None
    fields = _TCP_INFO.unpack_from(info.ljust(_TCP_INFO.size, b"\0"))
    return fields[12], fields[13]


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` has open (empty if it is gone)."""
    inodes = set()
    try:
        with os.scandir(f"/proc/{pid}/fd") as entries:
            for entry in entries:
                try:
                    target = os.readlink(entry.path)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def holds(pids: list[int], ports: set[int], paths: set[str],
          listeners: set[str] = frozenset()) -> dict[int, tuple[int, bool]]:
    """For each of ``pids``, what it still serves: how many connections it holds to the program's
    TCP ``ports`` or unix socket ``paths`` (accepted connections, not the ones it opened itself),
    and whether it still holds one of the ``listeners`` (their inodes), so that it may accept
    another. The kernel's tables are read once for all of them."""
    inodes = {pid: socket_inodes(pid) for pid in pids}
    owner = {inode: pid for pid, held in inodes.items() for inode in held}
    counts = dict.fromkeys(pids, 0)
    if owner and ports:
        _count_tcp(owner, ports, counts)
    if owner and paths:
        _count_unix(owner, paths, counts)
    return {pid: (counts[pid], bool(inodes[pid] & listeners)) for pid in pids}


def _count_tcp(owner: dict[str, int], ports: set[int], counts: dict[int, int]) -> None:
    """Add to ``counts`` the established TCP connections to one of ``ports`` among the socket
    inodes in ``owner`` (inode: pid)."""
    for table in _TABLES:
        try:
            with open(table) as file:
                next(file, None)
                for line in file:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == _ESTABLISHED and fields[9] in owner \
                            and int(fields[1].rpartition(":")[2], 16) in ports:
                        counts[owner[fields[9]]] += 1
        except OSError:
            continue


def _count_unix(owner: dict[str, int], paths: set[str], counts: dict[int, int]) -> None:
    """Add to ``counts`` the connected unix stream sockets bound to one of ``paths`` among the
    socket inodes in ``owner`` (a connection a listening unix socket accepted carries its path)."""
    try:
        with open("/proc/net/unix") as file:
            next(file, None)
            for line in file:
                fields = line.split(None, 7)
                if len(fields) == 8 and fields[5] == _UNIX_CONNECTED and fields[6] in owner \
                        and fields[7].rstrip("\n") in paths:
                    counts[owner[fields[6]]] += 1
    except OSError:
        pass

"""What the kernel says about the sockets littleboss programs serve on: a listening socket's
accept queue, and the established connections a process still holds.

Read only when asked (a scrape of the metrics, a drain in progress): a listening socket's
queue is one ``getsockopt`` on the socket supervisord holds; a process's connections are its
fds' socket inodes matched against the kernel's established TCP connections on the program's
ports. Those the kernel lists itself, filtered by state and port (``sock_diag``, as ``ss``
asks), so that a look costs what the program's own connections cost, not the machine's: a
busy host's ``/proc/net/tcp`` holds tens of thousands of TIME_WAIT sockets, all read and
parsed at each look. ``/proc/net/tcp`` is read only where ``sock_diag`` is not to be had (a
kernel without ``tcp_diag``, a container that may not load it).
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator

_TCP_INFO = struct.Struct("8B6I")  # struct tcp_info's first fields: ..., tcpi_unacked, tcpi_sacked
_ESTABLISHED = "01"
_UNIX_CONNECTED = "03"  # /proc/net/unix's St: SS_CONNECTED
_TABLES = {socket.AF_INET: "/proc/net/tcp", socket.AF_INET6: "/proc/net/tcp6"}

# sock_diag (linux/sock_diag.h, linux/inet_diag.h)
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_DUMP_REQUEST = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states, any socket id
_ATTRIBUTE = struct.Struct("=HH")  # nlattr: length, type
_OP = struct.Struct("=BBH")  # inet_diag_bc_op: code, bytes on if true, bytes on if false (or a port)
_INET_DIAG_REQ_BYTECODE = 1
_BC_S_GE, _BC_S_LE = 2, 3
_TCP_ESTABLISHED = 1
_SPORT = struct.Struct("!H")  # inet_diag_msg's idiag_sport, at 4 (after family, state, timer, retrans)
_INODE = struct.Struct("=I")  # inet_diag_msg's idiag_inode, at 68
_MESSAGE_SIZE = 72  # struct inet_diag_msg


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


def held_connections(sockets: dict[int, set[str]], ports: set[tuple[int, int]],
                     paths: set[str]) -> dict[int, int]:
    """For each pid in ``sockets`` (its socket inodes, as ``socket_inodes`` tells), how many
    connections it holds to the program's TCP ``ports`` ((family, port) of each listener) or unix
    socket ``paths``: connections accepted there, not the ones it opened itself. The kernel's
    tables are read once for all of them."""
    owner = {inode: pid for pid, held in sockets.items() for inode in held}
    counts = dict.fromkeys(sockets, 0)
    if owner and ports:
        for inode in established_tcp(ports):
            if inode in owner:
                counts[owner[inode]] += 1
    if owner and paths:
        _count_unix(owner, paths, counts)
    return counts


def established_tcp(ports: set[tuple[int, int]]) -> list[str]:
    """The inodes of the established TCP sockets whose (family, local port) is one of
    ``ports``: the connections accepted on those listeners (an IPv6 listener's, IPv4-mapped
    ones included, are IPv6 sockets)."""
    wanted = {family: {port for f, port in ports if f == family} for family, _ in ports}
    try:
        return [inode for family, numbers in wanted.items()
                for port, inode in _diag_established(family, min(numbers), max(numbers)) if port in numbers]
    except OSError:
        return [inode for family, numbers in wanted.items() for inode in _proc_established(family, numbers)]


def _diag_established(family: int, low: int, high: int) -> Iterator[tuple[int, str]]:
    """(local port, inode) of each established TCP socket of ``family`` whose local port is from
    ``low`` to ``high``, as the kernel's sock_diag lists them (it filters them itself)."""
    # the filter: on to the next op if sport >= low, else past the end (rejected); then on to the
    # end (accepted) if sport <= high, else past it
    bytecode = (_OP.pack(_BC_S_GE, 8, 20) + _OP.pack(0, 0, low)
                + _OP.pack(_BC_S_LE, 8, 12) + _OP.pack(0, 0, high))
    body = (_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_ESTABLISHED)
            + _ATTRIBUTE.pack(_ATTRIBUTE.size + len(bytecode), _INET_DIAG_REQ_BYTECODE) + bytecode)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG) as link:
        link.settimeout(1)  # the kernel answers at once; supervisord's loop must never hang on it
        link.sendto(_HEADER.pack(_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_DUMP_REQUEST, 1, 0) + body,
                    (0, 0))
        while True:
            data = link.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind = _HEADER.unpack_from(data, offset)[:2]
                message = offset + _HEADER.size
                if kind == _NLMSG_DONE:
                    return
                if kind == _NLMSG_ERROR:
                    error = -struct.unpack_from("=i", data, message)[0]
                    raise OSError(error, f"sock_diag: {os.strerror(error)}")
                if kind != _SOCK_DIAG_BY_FAMILY or length < _HEADER.size + _MESSAGE_SIZE or offset + length > len(data):
                    raise OSError(errno.EPROTO, f"sock_diag: unexpected message (type {kind}, {length} bytes)")
                yield _SPORT.unpack_from(data, message + 4)[0], str(_INODE.unpack_from(data, message + 68)[0])
                offset += (length + 3) & ~3


def _proc_established(family: int, ports: set[int]) -> list[str]:
    """What ``_diag_established`` tells of ``ports``, read from /proc/net/tcp or tcp6 (every
    socket's line)."""
    found = []
    try:
        with open(_TABLES[family]) as file:
            next(file, None)
            for line in file:
                fields = line.split()
                if len(fields) > 9 and fields[3] == _ESTABLISHED and int(fields[1].rpartition(":")[2], 16) in ports:
                    found.append(fields[9])
    except OSError:
        pass
    return found


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

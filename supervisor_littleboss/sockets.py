"""Listening sockets that supervisord holds on behalf of littleboss programs.

Owns the ``littleboss_sockets`` URL syntax, binding (TCP and UDP over IPv4 and IPv6,
and unix stream sockets, built on supervisord's own socket configs and ``SocketManager``) and the registry
that keeps each socket open, the same socket, for as long as a configured program
uses its address: across crashes, restarts, ``update`` and SIGHUP.
"""
from __future__ import annotations

import atexit
import errno
import ipaddress
import os
import re
import socket
import stat
from dataclasses import dataclass

from supervisor.datatypes import InetStreamSocketConfig, UnixStreamSocketConfig

from .glue import HeldSocketManager

URL_FORMS = "tcp://HOST:PORT, tcp://[IPV6]:PORT, udp://HOST:PORT, udp://[IPV6]:PORT or unix:///absolute/path"
NAME_FORM = "letters, digits, '_', '.' and '-', starting with a letter or digit"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_INET_RE = re.compile(r"^(?P<scheme>tcp|udp)://(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:/\[\]]+)):(?P<port>\d+)$")
_UNIX_PATH_MAX = 107  # sizeof(sun_path) - 1 on Linux


@dataclass(frozen=True)
class SocketOptions:
    """Program-wide settings applied to its sockets."""

    backlog: int | None = None
    mode: int | None = None  # unix sockets only
    owner: tuple[int, int] | None = None  # (uid, gid); unix sockets only


@dataclass(frozen=True)
class SocketSpec:
    """One ``name=URL`` entry of ``littleboss_sockets``."""

    name: str
    url: str  # canonical form, the registry's key

    @property
    def is_unix(self) -> bool:
        return self.url.startswith("unix://")

    @property
    def is_datagram(self) -> bool:
        return self.url.startswith("udp://")

    @property
    def type(self) -> int:
        return socket.SOCK_DGRAM if self.is_datagram else socket.SOCK_STREAM

    @property
    def address(self) -> tuple[int, tuple[str, int] | str]:
        """(family, address) as ``bind()`` takes them."""
        if self.is_unix:
            return socket.AF_UNIX, self.url[len("unix://"):]
        match = _INET_RE.match(self.url)
        if match["ipv6"]:
            return socket.AF_INET6, (match["ipv6"], int(match["port"]))
        return socket.AF_INET, (match["host"], int(match["port"]))

    def make_config(self, opts: SocketOptions) -> InetStreamSocketConfig | UnixStreamSocketConfig:
        """Return the supervisord socket config that binds this address."""
        if self.is_unix:
            return SafeUnixStreamSocketConfig(
                self.url[len("unix://"):], mode=opts.mode, owner=opts.owner, backlog=opts.backlog
            )
        match = _INET_RE.match(self.url)
        if self.is_datagram:
            return InetDatagramSocketConfig(*self.address)
        if match["ipv6"]:
            return Inet6StreamSocketConfig(match["ipv6"], match["port"], backlog=opts.backlog)
        return InetStreamSocketConfig(match["host"], match["port"], backlog=opts.backlog)


def parse_socket_url(url: str) -> str:
    """Validate a socket URL and return its canonical form; ValueError names the problem."""
    url = url.strip()
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        if not path.startswith("/"):
            raise ValueError("a unix socket path must be absolute")
        if len(os.fsencode(path)) > _UNIX_PATH_MAX:
            raise ValueError(f"a unix socket path is limited to {_UNIX_PATH_MAX} bytes")
        return "unix://" + os.path.normpath(path)
    match = _INET_RE.match(url)
    if not match:
        raise ValueError("not a socket URL")
    scheme = match["scheme"]
    port = int(match["port"])
    if not 0 < port < 65536:
        raise ValueError("the port must be between 1 and 65535")
    if match["ipv6"]:
        try:
            host = ipaddress.IPv6Address(match["ipv6"]).compressed
        except ValueError:
            raise ValueError(f"{match['ipv6']!r} is not an IPv6 address") from None
        return f"{scheme}://[{host}]:{port}"
    return f"{scheme}://{match['host'].lower()}:{port}"


Address = tuple[int, int, str, int]  # (family, type, IP address or unix socket path, port)


def bound_addresses(spec: SocketSpec) -> set[Address]:
    """Where binding ``spec`` listens, however its URL spells it: each address its host
    resolves to (a trailing dot ignored; the host as written if it does not resolve), or
    the unix socket's path with its directory resolved."""
    (family, address), kind = spec.address, spec.type
    if family == socket.AF_UNIX:
        directory, name = os.path.split(address)
        return {(family, kind, os.path.join(os.path.realpath(directory), name), 0)}
    host, port = address
    try:
        infos = socket.getaddrinfo(host.removesuffix(".") or host, port, family, kind)
    except (OSError, UnicodeError):
        return {(family, kind, host, port)}
    return {(family, kind, ipaddress.ip_address(info[4][0].partition("%")[0]).compressed, port) for info in infos}


def same_address(a: set[Address], b: set[Address]) -> bool:
    """Do two sets of bound addresses collide? Equal, or a wildcard and any address of its
    family and type (TCP and UDP ports are apart) on the same port (binding one makes
    binding the other fail)."""
    def wildcard(host: str) -> bool:
        return host in ("0.0.0.0", "::")

    return any(fa == fb and ta == tb and pa == pb and (ha == hb or fa != socket.AF_UNIX and (wildcard(ha) or
                                                                                       wildcard(hb)))
               for fa, ta, ha, pa in a for fb, tb, hb, pb in b)


def serving_addresses(specs: tuple[SocketSpec, ...]) -> tuple[set[tuple[int, int]], set[str]]:
    """The TCP ports ((family, port) each) and unix socket paths of ``specs``: what a
    connection to them is made to."""
    ports = {(spec.address[0], spec.address[1][1]) for spec in specs if not spec.is_unix and not spec.is_datagram}
    paths = {spec.address[1] for spec in specs if spec.is_unix}
    return ports, paths


def parse_socket_list(value: str) -> tuple[SocketSpec, ...]:
    """Parse ``name=URL, name=URL``; ValueError says which entry is wrong and why."""
    specs: list[SocketSpec] = []
    for entry in value.split(","):
        entry = entry.strip()
        name, sep, url = entry.partition("=")
        name = name.strip()
        if not entry:
            raise ValueError("an entry is empty; expected name=URL, name=URL, ...")
        if not sep:
            raise ValueError(f"{entry!r} is not name=URL")
        if not _NAME_RE.match(name):
            raise ValueError(f"socket name {name!r} is not valid; a name uses {NAME_FORM}")
        if any(spec.name == name for spec in specs):
            raise ValueError(f"socket name {name!r} is used twice")
        try:
            canonical = parse_socket_url(url)
        except ValueError as exc:
            raise ValueError(f"{url.strip()!r} for {name!r}: {exc}") from None
        if any(spec.url == canonical for spec in specs):
            raise ValueError(f"address {canonical} is listed twice")
        specs.append(SocketSpec(name, canonical))
    return tuple(specs)


class Inet6StreamSocketConfig(InetStreamSocketConfig):
    """supervisord's TCP socket config, for an IPv6 address."""

    def __init__(self, host: str, port: str | int, **kwargs) -> None:
        super().__init__(host, port, **kwargs)
        self.url = f"tcp://[{self.host}]:{self.port}"

    def create_and_bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(self.addr())
        except BaseException:
            sock.close()
            raise
        return sock


class DatagramSocket(socket.socket):
    """A UDP socket held like a listening one: ``SocketManager`` calls ``listen()`` on every
    socket it prepares (and littleboss on a changed backlog), which a datagram socket has
    not; there is no backlog to apply, so it does nothing."""

    def listen(self, backlog: int = 0) -> None:
        pass


class InetDatagramSocketConfig(InetStreamSocketConfig):
    """supervisord's inet socket config, for a UDP address (IPv4 or IPv6)."""

    def __init__(self, family: int, address: tuple[str, int]) -> None:
        super().__init__(*address)
        self.family = family
        host = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self.url = f"udp://{host}:{self.port}"

    def create_and_bind(self) -> socket.socket:
        sock = DatagramSocket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(self.addr())
        except BaseException:
            sock.close()
            raise
        return sock


class SafeUnixStreamSocketConfig(UnixStreamSocketConfig):
    """supervisord's unix socket config, but it never unlinks what is not a stale socket.

    The socket is bound under a tight umask, then given its owner and mode, so it is
    never reachable with looser permissions than configured (0600 by default).
    """

    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file it bound

    def create_and_bind(self) -> socket.socket:
        remove_stale_socket(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(self.path)
        except BaseException:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        self.identity = _identity(self.path)
        try:
            self.apply_permissions()
        except BaseException:
            sock.close()
            self.unlink()
            raise
        return sock

    def apply_permissions(self) -> None:
        """Give the socket file its owner and mode: as configured, else supervisord's user and 0600."""
        uid, gid = self.owner or (os.geteuid(), os.getegid())
        mode = 0o600 if self.mode is None else self.mode
        try:
            os.chown(self.path, uid, gid)
            os.chmod(self.path, mode)
        except OSError as exc:
            raise ValueError(f"cannot give {self.path} owner {uid}:{gid} and mode {mode:04o}: {exc.strerror}") from None

    def unlink(self) -> None:
        """Remove the socket file if it is still the one this config bound."""
        if self.identity is not None and _identity(self.path) == self.identity:
            os.unlink(self.path)


def _identity(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the unix socket at ``path``; None if there is none."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISSOCK(st.st_mode) else None


def remove_stale_socket(path: str) -> None:
    """Unlink ``path`` only if it is a unix socket that nobody listens on."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket; refusing to remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a listener with a full backlog must not block supervisord
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: left behind by a process that is gone
        return
    except BlockingIOError:
        pass  # someone listens, with a full backlog
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"another process is listening on {path}")


class HeldSocket:
    """One address's ``SocketManager`` and the reference the registry holds on it."""

    def __init__(self, spec: SocketSpec, opts: SocketOptions, logger, adopted: socket.socket | None = None) -> None:
        config = spec.make_config(opts)
        self.manager = HeldSocketManager(config, logger=logger)
        if adopted is not None:  # a listening socket taken back: held instead of binding
            self.manager.adopt(adopted)
            if isinstance(config, SafeUnixStreamSocketConfig):
                config.identity = _identity(config.path)
        self.proxy = self.manager.get_socket()  # binds (or adopts) and listens
        self.opts = opts

    def reconfigure(self, opts: SocketOptions) -> None:
        """Apply changed settings to the open socket in place: it is never re-bound."""
        if opts == self.opts:
            return
        config = self.manager.socket_config
        if isinstance(config, SafeUnixStreamSocketConfig):
            config.mode, config.owner = opts.mode, opts.owner
            config.apply_permissions()
        config.backlog = opts.backlog
        self.proxy.listen(opts.backlog or socket.SOMAXCONN)
        self.opts = opts  # only once applied: a failure is retried, and reported, at the next spawn

    def close(self, logger) -> None:
        """Drop the registry's reference now, which closes the socket."""
        self.manager.release(self.proxy, logger)


class SocketRegistry:
    """Every socket supervisord holds for littleboss programs, keyed by canonical URL."""

    def __init__(self) -> None:
        self._held: dict[str, HeldSocket] = {}

    def acquire(self, spec: SocketSpec, opts: SocketOptions, logger=None,
                adopted: socket.socket | None = None) -> socket.socket:
        """Return the listening socket for ``spec``, binding it only if not yet held (or
        holding ``adopted``, a listening socket taken back from a process).

        Raises OSError or ValueError (with the reason) if it cannot be bound.
        """
        held = self._held.get(spec.url)
        if held is None:
            held = self._held[spec.url] = HeldSocket(spec, opts, logger, adopted)
        else:
            held.manager.use_logger(logger)
            held.reconfigure(opts)
        return held.proxy

    def acquire_all(self, program: str, specs: tuple[SocketSpec, ...], opts: SocketOptions, logger,
                    adopted: dict[str, socket.socket]) -> tuple[list[socket.socket], str | None]:
        """Every socket of ``program`` (``adopted``: a socket to hold for its URL), all or
        nothing: (the sockets, None), or ([], the reason one cannot be bound, naming program
        and address), with the sockets it bound for this call closed again, so that no client
        waits on a program that cannot start."""
        new = [spec.url for spec in specs if not self.is_held(spec.url)]
        sockets = []
        for spec in specs:
            try:
                sockets.append(self.acquire(spec, opts, logger, adopted.get(spec.url)))
            except (OSError, ValueError) as exc:
                reason = f"littleboss: program {program!r} cannot listen on {spec.name}={spec.url}: {exc}"
                logger.error(reason)
                for url in new:
                    if self.is_held(url):
                        self.close(url, logger)
                return [], reason
        return sockets, None

    def is_held(self, url: str) -> bool:
        return url in self._held

    def retain_only(self, urls: set[str], logger=None) -> list[str]:
        """Close every held socket whose URL is not in ``urls``; return those closed."""
        closed = [url for url in self._held if url not in urls]
        for url in closed:
            self.close(url, logger)
        return closed

    def close(self, url: str, logger=None) -> None:
        self._held.pop(url).close(logger)

    def close_all(self) -> None:
        """Close every socket: supervisord exits (and has already closed its logger)."""
        self.retain_only(set())

    def fds(self) -> set[int]:
        """File descriptors of the held sockets (to spare when supervisord closes fds)."""
        return set(self.fds_by_url().values())

    def fds_by_url(self) -> dict[str, int]:
        return {url: held.proxy.fileno() for url, held in self._held.items()}

    def take_up(self, url: str, fd: int, logger) -> None:
        """Hold the listening socket open at ``fd`` for ``url`` (kept open through supervisord's
        in-place upgrade); its program's settings are applied when it takes it. OSError or
        ValueError if it cannot be."""
        self.acquire(parse_socket_list(f"taken={url}")[0], SocketOptions(), logger, socket_at(fd))


def socket_at(fd: int) -> socket.socket:
    """The socket open at ``fd``, its flags untouched (the processes it was handed to share them)."""
    sock = socket.socket(fileno=fd)
    return DatagramSocket(fileno=sock.detach()) if sock.type == socket.SOCK_DGRAM else sock


REGISTRY = SocketRegistry()
atexit.register(REGISTRY.close_all)  # supervisord exits: close, remove unix socket files

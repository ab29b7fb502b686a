"""The program side: littleboss's API for Python programs (standard library only).

    lb = Littleboss("myblog")
    http = lb.listener("http", "tcp", "127.0.0.1:8080", "address to serve HTTP on")
    lb.run(lambda ctx: serve(http.socket(), ctx))   # call lb.ready() once serving

A ``udp`` listener (``lb.listener("dns", "udp", "127.0.0.1:5353")``) is a bound datagram
socket, inherited or bound the same way.

Each listener is also a command-line option (``--http=ADDR``). Under supervisord
(``LISTEN_PID`` is this process) a listener takes the inherited socket of the same name
from ``LISTEN_FDNAMES``; run directly (the seed's *bypass* mode) it binds the address
itself, so the same program runs both ways. ``--littleboss=reload`` asks supervisord
to swap in this very executable for the program named like the service;
``start``/``stop``/``status`` do what supervisorctl would.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable

SD_LISTEN_FDS_START = 3
SLICE = 0.05  # seconds
MODES = ("reload", "start", "stop", "status")


class Listener:
    """A named listening socket: inherited from supervisord, or bound from its address."""

    def __init__(self, name: str, network: str, address: str, usage: str) -> None:
        if network not in ("tcp", "udp", "unix"):
            raise ValueError(f"listener {name!r}: network must be 'tcp', 'udp' or 'unix', not {network!r}")
        self.name, self.network, self.address, self.usage = name, network, address, usage
        self._socket: socket.socket | None = None

    def socket(self) -> socket.socket:
        """The listening socket, or for ``udp`` the bound datagram socket (available once
        ``run`` has started)."""
        if self._socket is None:
            raise RuntimeError(f"listener {self.name!r} is not open yet: use it inside Littleboss.run")
        return self._socket

    def bind(self) -> socket.socket:
        """Bypass mode: bind (and listen on) the address ourselves."""
        if self.network == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(self.address)
            sock.listen(socket.SOMAXCONN)
            return sock
        host, _, port = self.address.rpartition(":")
        host = host.strip("[]") or None
        family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
        if self.network == "udp":
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind((host or "", int(port)))
            return sock
        return socket.create_server((host or "", int(port)), family=family, backlog=socket.SOMAXCONN)


class Context:
    """Tells ``main`` when to shut down: SIGTERM or SIGINT (the lame-duck signal) arrived."""

    def __init__(self) -> None:
        self._done = threading.Event()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until shutdown is asked (True) or ``timeout`` passes (False).

        It wakes every SLICE seconds: the kernel may deliver SIGTERM to any thread, and
        Python runs its handler only when the main thread wakes, so a plain wait could
        block forever.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.wait(SLICE):
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def cancel(self) -> None:
        self._done.set()


class Littleboss:
    """One service: its listeners, its command-line options, and how it runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.listeners: dict[str, Listener] = {}
        self.notify_socket = ""
        self.watchdog_seconds = 0.0  # littleboss_watchdog (WATCHDOG_USEC), when supervisord set one
        self.supervised = False
        self.args: argparse.Namespace | None = None

    def listener(self, name: str, network: str, address: str, usage: str = "address") -> Listener:
        """Declare a listener (and its ``--NAME=ADDR`` option)."""
        self.listeners[name] = Listener(name, network, address, usage)
        return self.listeners[name]

    def parse_args(self, argv: list[str] | None = None) -> argparse.Namespace:
        parser = argparse.ArgumentParser(description=f"{self.name} (littleboss)")
        for listener in self.listeners.values():
            parser.add_argument(f"--{listener.name}", dest=listener.name, default=listener.address, metavar="ADDR",
                                help=f"{listener.usage} (default {listener.address})")
        parser.add_argument("--littleboss", choices=MODES, help="ask supervisord to act on this service")
        parser.add_argument("-c", "--configuration", help="supervisord configuration, as for supervisorctl")
        parser.add_argument("-s", "--serverurl", help="supervisord URL, as for supervisorctl")
        self.args, _ = parser.parse_known_args(argv)  # the rest is the program's own
        for listener in self.listeners.values():
            listener.address = getattr(self.args, listener.name)
        return self.args

    # --- running the service ---------------------------------------------------------
    def run(self, main: Callable[[Context], object], argv: list[str] | None = None) -> None:
        """Open the listeners, then call ``main(ctx)``; or act on supervisord (``--littleboss``)."""
        ctx = self._start(argv)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: ctx.cancel())
        main(ctx)

    def run_async(self, main: Callable[[asyncio.Event], Awaitable[object]], argv: list[str] | None = None) -> None:
        """``run`` for asyncio servers: ``await main(stop)``, ``stop`` set on SIGTERM/SIGINT."""
        self._start(argv)

        async def serve() -> None:
            stop, loop = asyncio.Event(), asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await main(stop)

        asyncio.run(serve())

    def _start(self, argv: list[str] | None) -> Context:
        args = self.parse_args(argv)
        if args.littleboss:
            sys.exit(self.control(args.littleboss))
        self.open_listeners()
        return Context()

    def inherited(self, environ: dict | None = None) -> list[tuple[str, int]] | None:
        """The sockets supervisord passed, as (name, fd) in fd order; None when this process
        is not the one supervisord started (``LISTEN_PID``). Takes ``NOTIFY_SOCKET`` for
        ``ready()``/``status()`` and clears the variables: our own children must not take
        them for theirs."""
        environ = os.environ if environ is None else environ
        self.supervised = environ.get("LISTEN_PID") == str(os.getpid())
        if not self.supervised:
            return None
        names = environ.get("LISTEN_FDNAMES", "").split(":")
        count = int(environ.get("LISTEN_FDS", "0"))
        self.notify_socket = environ.pop("NOTIFY_SOCKET", "")
        if environ.get("WATCHDOG_PID", str(os.getpid())) == str(os.getpid()):
            self.watchdog_seconds = int(environ.get("WATCHDOG_USEC", "0") or 0) / 1e6
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"):
            environ.pop(key, None)
        names += [""] * (count - len(names))
        return [(names[n], SD_LISTEN_FDS_START + n) for n in range(count)]

    def open_listeners(self, environ: dict | None = None) -> None:
        """Take the inherited sockets by name, or bind them (bypass mode)."""
        fds = self.inherited(environ)
        if fds is None:
            for listener in self.listeners.values():
                listener._socket = listener.bind()
            return
        by_name = dict(fds)
        for listener in self.listeners.values():
            if listener.name not in by_name:
                raise SystemExit(f"{self.name}: supervisord passed no socket named {listener.name!r} "
                                 f"(LISTEN_FDNAMES={':'.join(name for name, _ in fds)}); add {listener.name}=URL "
                                 f"to littleboss_sockets in [program:{self.name}]")
            listener._socket = socket.socket(fileno=by_name[listener.name])

    # --- sd_notify ----------------------------------------------------------------------
    def ready(self) -> None:
        """Tell supervisord this process serves (READY=1); a no-op when not under supervisord."""
        self.notify("READY=1")

    def status(self, text: str) -> None:
        """Show ``text`` as this process's status (STATUS=) in littleboss's program info."""
        self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        """Tell supervisord this process is alive (WATCHDOG=1), with ``littleboss_watchdog``: call
        it from the loop that must not block, at least every ``watchdog_seconds / 2``; a no-op
        without a watchdog."""
        if self.watchdog_seconds:
            self.notify("WATCHDOG=1")

    def notify(self, message: str) -> None:
        if not self.notify_socket:
            return
        address = self.notify_socket
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), address)
        except OSError:
            pass  # as sd_notify: a notification that cannot be sent is not the program's failure

    # --- --littleboss=reload|start|stop|status ------------------------------------------
    def control(self, mode: str) -> int:
        """Act on supervisord for this service; print one line; return the exit status."""
        from supervisor.xmlrpc import Faults  # only needed to talk to supervisord

        from .config import interface_missing
        from .faults import EXIT_FAILED, EXIT_REFUSED, exit_status
        from .outcome import done_line

        options = self._client_options()
        try:
            server = options.getServerProxy()
            if mode == "reload":
                result = server.littleboss.reload(self.name, os.path.realpath(sys.argv[0]))
                print(done_line(self.name, {**result, "kind": "reload"}))
            elif mode in ("start", "stop"):
                server.littleboss.getAPIVersion()  # without the interface it would run without its sockets
                # for NAME:* supervisord answers with each process's outcome, not a fault
                call = server.supervisor.startProcess if mode == "start" else server.supervisor.stopProcess
                results = call(f"{self.name}:*")  # only the processes not already started (stopped)
                failed = [r for r in results if r["status"] != Faults.SUCCESS]
                for result in failed:
                    print(f"{self.name}: ERROR: {result['name']}: {result['description']}", file=sys.stderr)
                if failed:
                    spawn_failed = (Faults.SPAWN_ERROR, Faults.ABNORMAL_TERMINATION)
                    return EXIT_FAILED if any(r["status"] in spawn_failed for r in failed) else EXIT_REFUSED
                done = "started" if mode == "start" else "stopped"
                print(f"{self.name}: {done}" if results else f"{self.name}: already {done}")  # 0, as supervisorctl
            else:
                info = server.littleboss.getProgramInfo(self.name)
                print(f"{self.name}: {info['statename']} pid {info['pid']} binary {info['path']}")
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == Faults.UNKNOWN_METHOD:
                print(f"{self.name}: ERROR: {interface_missing(options.serverurl, options.configfile)}",
                      file=sys.stderr)
                return EXIT_REFUSED
            print(f"{self.name}: ERROR: {fault.faultString}", file=sys.stderr)
            return exit_status(fault.faultCode)
        except OSError as exc:
            print(f"{self.name}: ERROR: cannot reach supervisord at {options.serverurl}: {exc}", file=sys.stderr)
            return exit_status(None)
        return 0

    def _client_options(self):
        """supervisorctl's options for this program's supervisord, found as supervisorctl finds it."""
        from supervisor.options import ClientOptions  # only needed to talk to supervisord

        argv = []
        if self.args.configuration:
            argv += ["-c", self.args.configuration]
        serverurl = self.args.serverurl
        if not serverurl and not self.args.configuration:
            serverurl = os.environ.get("SUPERVISOR_SERVER_URL")  # set by supervisord for its children
        if serverurl:
            argv += ["-s", serverurl]
        options = ClientOptions()
        options.realize(argv)
        return options

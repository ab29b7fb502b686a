"""Run uvicorn or hypercorn as a littleboss program.

    littleboss-serve [--grace S] [--stop-signal SIG] uvicorn APP [uvicorn options]
    littleboss-serve [--grace S] [--stop-signal SIG] hypercorn APP [hypercorn options]

(also ``python -m supervisor_littleboss.serve``); from Python, ``uvicorn(app, **settings)``
and ``hypercorn(app, config)``.

Under supervisord (``LISTEN_PID`` is this process) the server serves on every socket
supervisord passed, in order, as the socket it is (TCP, whose accepted connections get
``TCP_NODELAY``, or unix); its own address options are ignored. Run by hand, it binds
them as it would alone. Once it accepts, it sends ``READY=1`` (for
``littleboss_ready = notify``) and ``STATUS=serving on ADDRESSES, app FILE``: the file the
app's module was imported from, which it also logs, as a warning when that file is not the
launcher's release's own code (see ``AppOrigin``). On SIGTERM, SIGINT or ``--stop-signal``
it drains: it stops accepting (supervisord and the next process keep the socket open),
answers every further HTTP/1 request with ``Connection: close``, gives each connection
up to ``--grace`` seconds to send a request, then lets the server close idle
connections, finish the requests in flight and exit.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .program import Littleboss

GRACE = 1.0  # seconds a connection has, once the drain starts, to send its request
STEP = 0.01  # seconds between two looks at the connections while draining
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def inherited_sockets(lb: Littleboss) -> list[socket.socket] | None:
    """Every socket supervisord passed, in order, with its own family (AF_INET, AF_INET6,
    AF_UNIX); None when not run by supervisord."""
    fds = lb.inherited()
    if fds == []:
        raise SystemExit(f"{lb.name}: supervisord passed no socket (LISTEN_FDS=0): set littleboss_sockets")
    return None if fds is None else [socket.socket(fileno=fd) for _, fd in fds]


def describe(sockets: list[socket.socket]) -> str:
    """``127.0.0.1:8080, /run/app.sock``: what the sockets listen on."""
    def name(sock: socket.socket) -> str:
        address = sock.getsockname()
        if isinstance(address, str):
            return address
        return f"[{address[0]}]:{address[1]}" if sock.family == socket.AF_INET6 else f"{address[0]}:{address[1]}"
    return ", ".join(name(sock) for sock in sockets)


async def keep_pinging(lb: Littleboss) -> None:
    """WATCHDOG=1 from the event loop, three times per ``littleboss_watchdog``: a loop blocked
    (by a handler that never yields) stops it, and supervisord kills the process as hung."""
    while lb.watchdog_seconds:
        lb.watchdog()
        await asyncio.sleep(lb.watchdog_seconds / 3)


async def stop_accepting(servers: list[asyncio.AbstractServer]) -> None:
    """Close the listening ``servers`` (their sockets stay open in supervisord and the next
    process) without losing a connection accepted a moment before: asyncio accepts a batch
    at once and makes their transports a loop turn later, and a server closed in between
    drops those, to be reset. So first stop watching the sockets, let that turn run, then close."""
    loop = asyncio.get_running_loop()
    for server in servers:
        for sock in server.sockets or ():
            loop.remove_reader(sock)  # uvloop accepts and makes transports at once: nothing to do
    for _ in range(2):
        await asyncio.sleep(0)
    for server in servers:
        server.close()


async def settle(pending: Callable[[], bool], grace: float) -> None:
    """Wait until ``pending()`` is false or ``grace`` seconds passed. It looks after a first
    step, so connections accepted just before the listeners closed are counted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while True:
        await asyncio.sleep(STEP)
        if not pending() or loop.time() >= deadline:
            return


class ClosingApp:
    """ASGI middleware: while ``draining()``, each HTTP/1 response says ``Connection: close``,
    so a keep-alive client reconnects (to the next process) instead of finding its
    connection closed under it."""

    def __init__(self, app: Any, draining: Callable[[], bool]) -> None:
        self.app, self.draining = app, draining

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("http_version") not in ("1.0", "1.1"):
            return await self.app(scope, receive, send)

        async def closing(message: dict) -> None:
            if message["type"] == "http.response.start" and self.draining():
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        return await self.app(scope, receive, closing)


@contextlib.contextmanager
def replaced(module: Any, name: str, value: Any) -> Iterator[None]:
    """``module.name`` is ``value`` meanwhile: how the server's own command line is made to
    run with our server class. A server release that renamed it fails here, loudly."""
    if not hasattr(module, name):
        raise SystemExit(f"supervisor_littleboss.serve: {module.__name__}.{name} is gone: this release of "
                         f"{module.__name__.split('.')[0]} is not supported")
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


class AppOrigin:
    """Where the served app was imported from. A reload changes only the launcher (the first
    word of ``command``): its arguments and working directory stay, so an app found through
    them (``--app-dir``, ``directory=``, ``PYTHONPATH``, a ``current`` symlink) stays the
    code found there, whichever release's launcher runs it. The launcher's release is its
    virtualenv (``sys.prefix``) and the directory that holds it, less any other virtualenv
    there (a sibling release's); paths are compared with their symlinks resolved."""

    def __init__(self, program: str, module: str) -> None:
        file = getattr(sys.modules.get(module), "__file__", None)
        self.program, self.module, self.file = program, module, os.path.realpath(file) if file else None
        self.venv = os.path.realpath(sys.prefix)

    @property
    def foreign(self) -> bool:
        """The app's file is not in this launcher's release."""
        if self.file is None or inside(self.file, self.venv):
            return False
        home = os.path.dirname(self.venv)
        if not inside(self.file, home):
            return True
        top = os.path.join(home, os.path.relpath(self.file, home).split(os.sep)[0])
        return os.path.isfile(os.path.join(top, "pyvenv.cfg"))

    def status(self) -> str:
        """What ``STATUS=`` adds after the addresses."""
        if self.file is None:
            return ""
        return f", app {self.file}" + (f", NOT from this launcher's release {self.venv}" if self.foreign else "")

    def message(self) -> tuple[int, str]:
        """The log line: its level and text."""
        if self.file is None:
            return logging.INFO, f"Application module {self.module} has no file"
        if not self.foreign:
            return logging.INFO, f"Application imported from {self.file}"
        return logging.WARNING, (
            f"{self.program}: the application was imported from {self.file}, which is not in this launcher's "
            f"release (its virtualenv {self.venv}): a littleboss reload replaces only the launcher, so the "
            "arguments, directory= or PYTHONPATH that found it keep serving that code. Install the application "
            "into each release's virtualenv (README: uvicorn, hypercorn)")


def inside(path: str, directory: str) -> bool:
    """``path`` is ``directory`` or lies under it."""
    return os.path.commonpath((path, directory)) == directory


def refuse_many(lb: Littleboss, workers: int, reload: bool) -> None:
    """Several worker processes or a reloader cannot share supervisord's sockets this way."""
    if lb.supervised and (workers > 1 or reload):
        raise SystemExit("supervisor_littleboss.serve serves in one process under supervisord: "
                         "leave out --workers and --reload")


# --- uvicorn ------------------------------------------------------------------------------

@functools.cache
def uvicorn_server_class() -> type:
    """``uvicorn.Server`` that serves on the inherited sockets, says READY=1 and drains."""
    import logging

    import uvicorn

    logger = logging.getLogger("uvicorn.error")

    class Server(uvicorn.Server):
        def __init__(self, config: uvicorn.Config, lb: Littleboss, sockets: list[socket.socket] | None,
                     grace: float = GRACE, stop_signals: tuple[int, ...] = ()) -> None:
            super().__init__(config)
            self.lb, self.inherited, self.grace, self.stop_signals = lb, sockets, grace, stop_signals
            self.draining = False

        def run(self, sockets: list[socket.socket] | None = None) -> None:
            super().run(sockets=self.inherited if sockets is None else sockets)

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            for sig in self.stop_signals:  # beside uvicorn's own SIGINT and SIGTERM
                signal.signal(sig, lambda *_: setattr(self, "should_exit", True))
            await super().serve(sockets)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.config.loaded_app = ClosingApp(self.config.loaded_app, lambda: self.draining)
            await super().startup(sockets=sockets)
            if not self.started:
                return
            origin = AppOrigin(self.lb.name, module_of(self.config.app))
            logger.log(*origin.message())
            if sockets is not None:
                where = describe(sockets)
                logger.info("Uvicorn running on %s, the sockets supervisord passed", where)
                self.lb.status(f"serving on {where}{origin.status()}")
            self.lb.ready()
            self.pinging = asyncio.get_running_loop().create_task(keep_pinging(self.lb))

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            self.draining = True
            await stop_accepting(self.servers)
            self.lb.status("draining")
            await settle(lambda: any(map(waiting, self.server_state.connections)), self.grace)
            await super().shutdown(sockets=sockets)  # closes idle connections, waits for the rest
            if getattr(self, "pinging", None):
                self.pinging.cancel()

    def waiting(connection: Any) -> bool:
        """An open connection with no request in progress: uvicorn's own shutdown would close it."""
        cycle = getattr(connection, "cycle", None)
        return not connection.transport.is_closing() and (cycle is None or cycle.response_complete)

    return Server


def module_of(app: Any) -> str:
    """The module of an app given as "module:attribute"; of an app object, the program's (``__main__``)."""
    return app.partition(":")[0] if isinstance(app, str) else "__main__"


def uvicorn(app: Any, *, grace: float = GRACE, stop_signals: tuple[int, ...] = (), **settings: Any) -> None:
    """Serve ``app`` (an ASGI app or "module:attribute") with uvicorn, ``settings`` being
    ``uvicorn.Config``'s keyword arguments."""
    import uvicorn as server

    lb = Littleboss(os.environ.get("SUPERVISOR_PROCESS_NAME", "uvicorn"))
    sockets = inherited_sockets(lb)
    config = server.Config(app, **settings)
    refuse_many(lb, config.workers, config.should_reload)
    uvicorn_server_class()(config, lb, sockets, grace, stop_signals).run()


def uvicorn_command(args: list[str], grace: float, stop_signals: tuple[int, ...]) -> None:
    """uvicorn's own command line, run with our server class."""
    import importlib

    import uvicorn

    cli = importlib.import_module("uvicorn.main")  # the module: the package's ``main`` is the command

    lb = Littleboss(os.environ.get("SUPERVISOR_PROCESS_NAME", "uvicorn"))
    sockets = inherited_sockets(lb)

    def server(config: uvicorn.Config) -> uvicorn.Server:
        if not lb.supervised and (config.workers > 1 or config.should_reload):
            return uvicorn.Server(config)  # by hand, uvicorn's own processes as usual
        refuse_many(lb, config.workers, config.should_reload)
        return uvicorn_server_class()(config, lb, sockets, grace, stop_signals)

    with replaced(cli, "Server", server):
        cli.main.main(args=args, prog_name=f"{prog()} uvicorn")


# --- hypercorn ----------------------------------------------------------------------------

class TrackedConnection(asyncio.Protocol):
    """Wraps the protocol of one accepted connection to see when the client last sent
    something, and whether it has ended its side (hypercorn holds such a connection until
    its keep-alive timeout or shutdown)."""

    def __init__(self, inner: asyncio.Protocol, connections: set[TrackedConnection]) -> None:
        self.inner, self.connections = inner, connections
        self.heard, self.ended = 0.0, False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.loop = asyncio.get_running_loop()
        self.connections.add(self)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        self.ended = True
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


@functools.cache
def tracking_loop_class(base: type) -> type:
    """An event loop class that keeps the servers it creates and their connections."""
    class Loop(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tracked_servers: list[asyncio.AbstractServer] = []
            self.tracked_connections: set[TrackedConnection] = set()

        async def create_server(self, protocol_factory: Callable, *args: Any, **kwargs: Any) -> asyncio.AbstractServer:
            def tracked() -> TrackedConnection:
                return TrackedConnection(protocol_factory(), self.tracked_connections)
            server = await super().create_server(tracked, *args, **kwargs)
            self.tracked_servers.append(server)
            return server

    return Loop


def require_hypercorn() -> None:
    """hypercorn 0.17 or newer: older ones close keep-alive connections at
    ``keep_alive_max_requests`` without saying ``Connection: close``."""
    from importlib.metadata import version

    if tuple(int(part) for part in version("hypercorn").split(".")[:2]) < (0, 17):
        raise SystemExit("supervisor_littleboss.serve needs hypercorn 0.17 or newer")


def quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The loop's exception handler: requests still running when hypercorn's graceful
    timeout ends are cancelled, which is no error (asyncio would print a traceback for each)."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


def hypercorn(app: Any, config: Any = None, *, grace: float = GRACE, stop_signals: tuple[int, ...] = (),
              **settings: Any) -> None:
    """Serve ``app`` (an ASGI or WSGI app) with hypercorn: ``config`` a ``hypercorn.Config``,
    or ``settings`` its attributes."""
    from hypercorn.config import Config
    from hypercorn.utils import wrap_app

    require_hypercorn()
    config = config or Config.from_mapping(settings)
    lb = Littleboss(os.environ.get("SUPERVISOR_PROCESS_NAME", "hypercorn"))
    sockets = inherited_sockets(lb)
    serve_hypercorn(wrap_app(app, config.wsgi_max_body_size, None), "__main__", config, lb, sockets, grace,
                    stop_signals)


def hypercorn_module(path: str) -> str:
    """The module hypercorn imports for its APP argument (``[MODE:]MODULE[:ATTRIBUTE]``, MODULE
    a module name or a path), by hypercorn's rule."""
    name = path.split(":")[1] if path.count(":") == 2 else path.partition(":")[0]
    module = Path(name).resolve()
    return module.with_suffix("").name if module.is_file() else module.name


def serve_hypercorn(app: Any, module: str, config: Any, lb: Littleboss, inherited: list[socket.socket] | None,
                    grace: float, stop_signals: tuple[int, ...]) -> None:
    """Serve hypercorn's wrapped ``app`` (from ``module``) in this process, on the ``inherited``
    sockets (or those of its configuration)."""
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.config import Sockets

    refuse_many(lb, config.workers, config.use_reloader)
    if config.worker_class not in ("asyncio", "uvloop"):
        raise SystemExit(f"supervisor_littleboss.serve: hypercorn's {config.worker_class!r} worker class is "
                         "not supported: use asyncio or uvloop")
    if inherited is None:
        sockets = config.create_sockets()
    elif config.ssl_enabled:
        sockets = Sockets(inherited, [], [])
    else:
        sockets = Sockets([], inherited, [])
    listeners = sockets.secure_sockets + sockets.insecure_sockets

    async def shutdown_trigger() -> None:
        """Called once the servers serve; returns when hypercorn is to shut down."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (*STOP_SIGNALS, *stop_signals):
            loop.add_signal_handler(sig, stop.set)
        origin = AppOrigin(lb.name, module)
        await config.log.log(*origin.message())
        lb.status(f"serving on {describe(listeners)}{origin.status()}")
        lb.ready()
        pinging = loop.create_task(keep_pinging(lb))
        await stop.wait()
        pinging.cancel()
        await stop_accepting(loop.tracked_servers)
        config.keep_alive_max_requests = 0  # each further response says Connection: close
        lb.status("draining")
        began = loop.time()
        await settle(lambda: any(c.heard < began and not c.ended for c in loop.tracked_connections), grace)
        # returning, it lets hypercorn close the idle connections and finish the requests in flight

    if config.worker_class == "uvloop":
        import uvloop
        base = uvloop.Loop
    else:
        base = asyncio.SelectorEventLoop
    try:
        from asyncio import Runner
    except ImportError:  # Python 3.10: hypercorn depends on the backport
        from taskgroup import Runner
    with Runner(debug=config.debug, loop_factory=tracking_loop_class(base)) as runner:
        runner.get_loop().set_exception_handler(quiet_cancellation)
        runner.run(worker_serve(app, config, sockets=sockets, shutdown_trigger=shutdown_trigger))


def hypercorn_command(args: list[str], grace: float, stop_signals: tuple[int, ...]) -> int:
    """hypercorn's own command line, its configuration served by ``serve_hypercorn``."""
    import hypercorn.__main__
    from hypercorn.run import run as hypercorn_run
    from hypercorn.utils import load_application

    require_hypercorn()
    lb = Littleboss(os.environ.get("SUPERVISOR_PROCESS_NAME", "hypercorn"))
    sockets = inherited_sockets(lb)

    def run(config: Any) -> int:
        if not lb.supervised and (config.workers > 1 or config.use_reloader or config.worker_class == "trio"):
            return hypercorn_run(config)  # by hand, hypercorn's own processes as usual
        app = load_application(config.application_path, config.wsgi_max_body_size)
        serve_hypercorn(app, hypercorn_module(config.application_path), config, lb, sockets, grace, stop_signals)
        return 0

    with replaced(hypercorn.__main__, "run", run):
        return hypercorn.__main__.main(args)


# --- the command line ---------------------------------------------------------------------

def prog() -> str:
    """How the command was called, for usage lines: the script, or the module."""
    return "python -m supervisor_littleboss.serve" if sys.argv[0].endswith(".py") else os.path.basename(sys.argv[0])


def signal_named(name: str) -> signal.Signals:
    """``TERM``, ``SIGTERM`` or ``15``: the signal."""
    try:
        return signal.Signals(int(name)) if name.isdigit() else signal.Signals["SIG" + name.upper().removeprefix("SIG")]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"no such signal: {name}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog(),
        description="Run uvicorn or hypercorn on the sockets supervisord passed (littleboss), "
                    "say READY=1 once serving, and drain gracefully on the stop signal.")
    parser.add_argument("--grace", type=float, default=GRACE, metavar="SECONDS",
                        help=f"when stopping, how long a connection may take to send its request (default {GRACE:g})")
    parser.add_argument("--stop-signal", metavar="SIG", type=signal_named,
                        help="another signal that drains and stops, as the program's stopsignal "
                             "(SIGTERM and SIGINT always do)")
    parser.add_argument("server", choices=("uvicorn", "hypercorn"))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the server's own arguments: APP [options]")
    options = parser.parse_args(argv)
    if not options.args:
        parser.error(f"give {options.server} its app (module:attribute) and its own options")
    stop_signals = (options.stop_signal,) if options.stop_signal else ()
    if options.server == "uvicorn":
        uvicorn_command(options.args, options.grace, stop_signals)
        return 0
    return hypercorn_command(options.args, options.grace, stop_signals)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Test server: serves HTTP/1.1 on the sockets it inherits by the systemd convention.

``GET /`` answers ``VERSION PID SOCKETNAME``; ``GET /env`` answers JSON with the
``LISTEN_*`` variables and open fds it started with; ``GET /print?LINE`` prints LINE. Keep-alive connections are
served until SIGTERM; then it stops accepting, answers the next request on each open
connection with ``Connection: close``, closes idle ones, finishes in-flight requests
and exits 0. SIGUSR1: the same, but then it stays alive without accepting (so
connections queue in the kernel) and prints ``paused``.

Behaviour for reload tests (``--mode``, comma-separated): ``serve`` (default), ``crash`` (exit 3 at
once, with a message on stderr), ``never-ready`` (serve, never send READY=1),
``fork-ready`` (a forked child sends READY=1, not the main pid), ``crash-after-ready``
(send READY=1, after ``--after`` seconds stop as on SIGTERM but exit 4), ``ignore-term``
(ignore SIGTERM).
``--bind HOST:PORT`` makes it a plain program that binds its own socket; ``--warmup S``
makes it take S seconds before it accepts anything and is ready; ``--linger S`` makes it
wait S seconds to exit once it has stopped serving. ``GET /stream?S`` answers slowly: a line
every 0.1 s for S seconds. ``GET /health`` answers 200, or 503 once ``--unhealthy-after S``
seconds have passed since it started. With ``WATCHDOG_USEC`` set it sends ``WATCHDOG=1`` from its
main loop; ``--hang-after S`` blocks that loop after S seconds (its server threads answer on).
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

VERSION = os.environ.get("APP_VERSION", "v1")
DRAINING = threading.Event()
UNHEALTHY_AT = 0.0  # with --unhealthy-after: when GET /health starts answering 503


def open_fds() -> list:
    """The fds open in this process (without opening one to look)."""
    fds = []
    for fd in range(256):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    return fds


STARTUP = {"env": {k: v for k, v in os.environ.items() if k.startswith("LISTEN_")}, "fds": open_fds()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2  # idle keep-alive connections are closed after this

    def setup(self) -> None:
        # TCP_NODELAY: headers and body go out at once, no 40 ms delayed-ACK stall (TCP only)
        self.disable_nagle_algorithm = self.request.family != socket.AF_UNIX
        super().setup()

    def do_GET(self) -> None:
        if self.path.startswith("/stream?"):  # a slow response: a line every 0.1 s for SECONDS
            return self.stream(float(self.path.partition("?")[2]))
        if self.path == "/health" and UNHEALTHY_AT and time.monotonic() >= UNHEALTHY_AT:
            self.send_error(503, "unhealthy")  # the app's own answer: the connection is served
            return
        if self.path == "/env":
            body = json.dumps({**STARTUP, "pid": os.getpid()}).encode()
        elif self.path.startswith("/print?"):  # a line on stdout, for the tests of its log
            print(unquote(self.path.partition("?")[2]), flush=True)
            body = b"printed\n"
        elif self.path.startswith("/status?"):  # STATUS= over sd_notify, from a server thread
            notify(f"STATUS={unquote(self.path.partition('?')[2])}")
            body = b"notified\n"
        else:
            body = f"{VERSION} {os.getpid()} {self.server.socket_name}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if DRAINING.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def stream(self, seconds: float) -> None:
        lines = max(1, round(seconds * 10))
        line = f"{VERSION} {os.getpid()} streaming\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(line) * lines))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        for _ in range(lines):
            self.wfile.write(line)
            self.wfile.flush()
            time.sleep(0.1)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (TimeoutError, ConnectionError):
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for in-flight requests

    def __init__(self, name: str, sock: socket.socket) -> None:
        super().__init__(None, Handler, bind_and_activate=False)
        self.socket, self.socket_name = sock, name
        # a pool shares the socket: a process that loses the race for a connection must get EAGAIN,
        # not block in accept() where SIGTERM cannot end it (as the example's myblog does)
        sock.setblocking(False)


def listening_sockets(bind: str) -> dict:
    """The inherited sockets by name; with ``--bind HOST:PORT`` (a plain program), its own."""
    if bind:
        host, port = bind.rsplit(":", 1)
        return {"http": socket.create_server((host, int(port)), backlog=socket.SOMAXCONN)}
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.exit("httpapp: LISTEN_PID does not name this process")
    names = os.environ["LISTEN_FDNAMES"].split(":")
    assert len(names) == int(os.environ["LISTEN_FDS"])
    return {name: socket.socket(fileno=3 + i) for i, name in enumerate(names)}


def notify(message: str) -> None:
    """sd_notify: send ``message`` to NOTIFY_SOCKET if there is one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if address:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), "\0" + address[1:] if address.startswith("@") else address)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="serve")
    parser.add_argument("--after", type=float, default=1.0)
    parser.add_argument("--bind", default="")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds before it accepts and is ready")
    parser.add_argument("--linger", type=float, default=0.0, help="seconds it waits to exit once it has drained")
    parser.add_argument("--unhealthy-after", type=float, default=0.0, help="seconds before /health answers 503")
    parser.add_argument("--hang-after", type=float, default=0.0, help="seconds before its main loop blocks")
    args = parser.parse_args()
    global UNHEALTHY_AT
    UNHEALTHY_AT = time.monotonic() + args.unhealthy_after if args.unhealthy_after else 0.0
    modes = set(args.mode.split(","))
    if "crash" in modes:
        print(f"httpapp {VERSION}: cannot start: configuration is broken", file=sys.stderr, flush=True)
        sys.exit(3)
    time.sleep(args.warmup)
    servers = [Server(name, sock) for name, sock in listening_sockets(args.bind).items()]
    wake, paused = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, signal.SIG_IGN if "ignore-term" in modes else lambda *_: wake.set())
    signal.signal(signal.SIGUSR1, lambda *_: (paused.set(), wake.set()))
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    print(f"httpapp {VERSION} pid {os.getpid()} serving", flush=True)
    if "fork-ready" in modes:
        if os.fork() == 0:
            notify("READY=1")
            os._exit(0)
    elif "never-ready" not in modes:
        notify(f"READY=1\nSTATUS=httpapp {VERSION} serving")
    # short waits: SIGTERM may be delivered to any thread, and its Python handler runs
    # only when the main thread wakes
    deadline = time.monotonic() + args.after if "crash-after-ready" in modes else float("inf")
    # systemd's watchdog: WATCHDOG=1 from the main loop, three times per WATCHDOG_USEC; with
    # --hang-after S the main loop blocks after S seconds (the server threads go on answering)
    ping = int(os.environ.get("WATCHDOG_USEC", "0")) / 3e6
    hang_at, next_ping = time.monotonic() + args.hang_after if args.hang_after else float("inf"), 0.0
    while not wake.wait(0.05) and time.monotonic() < deadline:
        if time.monotonic() >= hang_at:
            threading.Event().wait()  # blocked for good
        if ping and time.monotonic() >= next_ping:
            notify("WATCHDOG=1")
            next_ping = time.monotonic() + ping
        # at the deadline, crash-after-ready "crashes": it drains and exits 4
    DRAINING.set()
    for server in servers:
        server.shutdown()
        server.server_close()
    if paused.is_set():
        print("paused", flush=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        while True:
            signal.pause()
    time.sleep(args.linger)
    sys.exit(4 if "crash-after-ready" in modes else 0)


if __name__ == "__main__":
    main()

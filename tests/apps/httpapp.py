#!/usr/bin/env python3
"""Test server: serves HTTP on the sockets it inherits by the systemd convention.

``GET /`` answers ``VERSION PID SOCKETNAME``; ``GET /env`` answers JSON with the
``LISTEN_*`` variables and open fds it started with. SIGTERM: stop accepting, finish
in-flight requests, exit 0. SIGUSR1: the same, but then stay alive without accepting
(so connections queue in the kernel) and print ``paused``.
``--bind HOST:PORT`` makes it a plain program that binds its own socket.
"""
import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "v1")


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
    def do_GET(self) -> None:
        if self.path == "/env":
            body = json.dumps({**STARTUP, "pid": os.getpid()}).encode()
        else:
            body = f"{VERSION} {os.getpid()} {self.server.socket_name}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for in-flight requests

    def __init__(self, name: str, sock: socket.socket) -> None:
        super().__init__(None, Handler, bind_and_activate=False)
        self.socket, self.socket_name = sock, name


def listening_sockets() -> dict:
    """The inherited sockets by name; with ``--bind HOST:PORT`` (a plain program), its own."""
    if sys.argv[1:2] == ["--bind"]:
        host, port = sys.argv[2].rsplit(":", 1)
        sock = socket.create_server((host, int(port)), backlog=socket.SOMAXCONN)
        return {"http": sock}
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.exit("httpapp: LISTEN_PID does not name this process")
    names = os.environ["LISTEN_FDNAMES"].split(":")
    assert len(names) == int(os.environ["LISTEN_FDS"])
    return {name: socket.socket(fileno=3 + i) for i, name in enumerate(names)}


def main() -> None:
    servers = [Server(name, sock) for name, sock in listening_sockets().items()]
    wake, paused = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: wake.set())
    signal.signal(signal.SIGUSR1, lambda *_: (paused.set(), wake.set()))
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    print(f"httpapp {VERSION} pid {os.getpid()} serving", flush=True)
    while not wake.wait(1):
        pass
    for server in servers:
        server.shutdown()
        server.server_close()
    if paused.is_set():
        print("paused", flush=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        while True:
            signal.pause()


if __name__ == "__main__":
    main()

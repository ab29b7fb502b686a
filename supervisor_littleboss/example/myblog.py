#!/usr/bin/env python3
"""myblog: the littleboss example, a small HTTP server on the standard library.

Under supervisord it serves on the socket supervisord holds (``littleboss_sockets``
names it ``http``) and sends READY=1 once it serves; run directly it binds
``--http=ADDR`` itself. On SIGTERM it stops accepting, answers the next request on
each keep-alive connection with ``Connection: close``, closes idle ones, finishes the
requests in flight and exits, while new connections wait for the next myblog.

    myblog --littleboss=reload -c example/supervisord.conf   # swap this binary in
"""
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

try:
    from supervisor_littleboss.program import Littleboss
except ModuleNotFoundError:  # the python3 on PATH lacks this package: supervisord was started from a
    # virtualenv's bin/ without activating it. Under supervisord, run again with the Python that runs it.
    parent, me = (os.fsdecode(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0])
                  for pid in (os.getppid(), "self"))
    if "SUPERVISOR_ENABLED" in os.environ and parent != me:
        os.execvp(parent, [parent, *sys.argv])
    sys.exit(f"{sys.argv[0]}: {sys.executable} has no supervisor_littleboss: run it with the virtualenv's "
             f"Python (activate the virtualenv, or run .venv/bin/python {sys.argv[0]})")

VERSION = "1"
draining = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # idle keep-alive connections are closed after this

    def setup(self) -> None:
        # TCP_NODELAY: headers and body go out at once, no 40 ms delayed-ACK stall (TCP only)
        self.disable_nagle_algorithm = self.request.family != socket.AF_UNIX
        super().setup()

    def do_GET(self) -> None:
        body = f"Hello from myblog version {VERSION}, pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if draining.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:  # the client went away (it gave up while it waited): no one to answer
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


def serve(lb: Littleboss, ctx) -> None:
    server = ThreadingHTTPServer(None, Handler, bind_and_activate=False)
    server.daemon_threads = False  # server_close() waits for the requests in flight
    server.socket = lb.listeners["http"].socket()
    # with numprocs, several processes accept on this socket: one that loses the race for a
    # connection must get EAGAIN, not block in accept() where the stop signal cannot end it
    server.socket.setblocking(False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    lb.status(f"myblog version {VERSION} serving")
    lb.ready()
    ctx.wait()
    draining.set()
    server.shutdown()
    server.server_close()


def main() -> None:
    lb = Littleboss("myblog")
    lb.listener("http", "tcp", "127.0.0.1:8080", "address to serve HTTP on")
    lb.run(lambda ctx: serve(lb, ctx))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""myblog: a tiny HTTP server that serves on the socket supervisord passes it (fd 3).

On SIGTERM it stops accepting, finishes the requests in flight and exits; new
connections wait in the socket supervisord keeps open until the next myblog runs.
"""
import os
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SD_LISTEN_FDS_START = 3


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"Hello from myblog, pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        raise SystemExit("myblog: run me as a littleboss program (LISTEN_FDS=1 for this pid)")
    server = ThreadingHTTPServer(None, Handler, bind_and_activate=False)
    server.daemon_threads = False  # server_close() waits for requests in flight
    server.socket = socket.socket(fileno=SD_LISTEN_FDS_START)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    print(f"myblog: pid {os.getpid()} serving", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()

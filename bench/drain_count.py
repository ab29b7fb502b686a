"""What one look at a draining process's connections costs supervisord, with many sockets on the host.

While a replaced process drains, littleboss asks every 0.2 s how many connections it still
holds to the program's ports (``connections.established_tcp``). This opens ``--held``
connections to a listener on 127.0.0.1 and leaves ``--time-wait`` more in TIME_WAIT (each
opened, accepted and closed by the client first: the client's end waits), as a busy host
has, then times one look through the kernel's ``sock_diag`` (what littleboss uses) and
through ``/proc/net/tcp`` (its fallback, and what it used before), median of ``--repeats``.
Traffic goes to 127.0.0.1 only; every socket is closed at the end (TIME_WAIT ends by itself).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import time

from supervisor_littleboss import connections


def cost_ms(look, repeats: int) -> float:
    """The median CPU time of one call of ``look``, in ms."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        look()
        times.append(time.process_time() - start)
    return round(statistics.median(times) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-wait", type=int, default=10000)
    parser.add_argument("--held", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    server = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    try:
        for _ in range(args.time_wait):
            client = socket.create_connection(("127.0.0.1", port))
            accepted, _ = server.accept()
            client.close()  # the client's end goes to TIME_WAIT
            accepted.close()
        for _ in range(args.held):
            held.append(socket.create_connection(("127.0.0.1", port)))
            held.append(server.accept()[0])
        ports = {(socket.AF_INET, port)}
        found = len(connections.established_tcp(ports))
        with open("/proc/net/tcp") as table:
            lines = sum(1 for _ in table) - 1
        diag = cost_ms(lambda: connections.established_tcp(ports), args.repeats)
        proc = cost_ms(lambda: connections._proc_established(socket.AF_INET, {port}), args.repeats)
        print(f"{lines} sockets in /proc/net/tcp ({args.time_wait} left in TIME_WAIT here), {found} accepted "
              f"connections held on the port")
        print(f"one look, CPU (median of {args.repeats}): sock_diag {diag} ms, /proc/net/tcp {proc} ms")
    finally:
        for sock in held:
            sock.close()
        server.close()


if __name__ == "__main__":
    main()

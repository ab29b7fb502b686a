#!/usr/bin/env python3
"""What clients see during `supervisorctl restart`: a plain [program:x] that binds its
own socket versus a littleboss program whose socket supervisord holds, same load, same run.

    python bench/restart.py [--restarts N] [--threads N]

Prints, per program: requests, failed requests by kind, max latency.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness import HTTPAPP, Supervisord, free_port  # noqa: E402
from load import Load  # noqa: E402


def measure(sv: Supervisord, name: str, port: int, restarts: int, threads: int):
    with Load(("127.0.0.1", port), threads=threads, duration=120, timeout=10) as load:
        load.wait_for_requests(200)
        for _ in range(restarts):
            pid = sv.wait_running(name)
            sv.ctl("restart", name, check=True)
            sv.wait_running(name, not_pid=pid)
            load.wait_for_requests(100)
    return load.result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sv = Supervisord(Path(tmp))
        plain_port, lb_port = free_port(), free_port()
        sv.program("plain", command=f"{HTTPAPP} --bind 127.0.0.1:{plain_port}")
        sv.program("littleboss", littleboss_sockets=f"http=tcp://127.0.0.1:{lb_port}")
        sv.start()
        try:
            print(f"{args.restarts} x supervisorctl restart under load ({args.threads} clients, "
                  "new connection per request)")
            print(f"{'program':<12} {'requests':>9} {'failed':>7}  {'by kind':<28} {'max latency':>11}")
            for name, port in (("plain", plain_port), ("littleboss", lb_port)):
                r = measure(sv, name, port, args.restarts, args.threads)
                kinds = ", ".join(f"{k} {v}" for k, v in sorted(r.failures.items())) or "-"
                print(f"{name:<12} {r.ok + r.failed:>9} {r.failed:>7}  {kinds:<28} {r.max_latency * 1000:>9.0f}ms")
        finally:
            sv.stop()


if __name__ == "__main__":
    main()

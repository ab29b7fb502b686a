"""A bounded HTTP load on 127.0.0.1 / ::1 / a unix socket that records what clients saw."""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from harness import KeepAliveClient


@dataclass
class LoadResult:
    ok: int = 0
    failures: Counter = field(default_factory=Counter)  # kind -> count
    errors: list[str] = field(default_factory=list)  # first few failure details
    bodies: Counter = field(default_factory=Counter)  # first word of each body (the version)
    max_latency: float = 0.0
    connections: int = 0  # connections opened (keep-alive: first ones plus graceful reconnects)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def __str__(self) -> str:
        return (f"{self.ok} ok, {self.failed} failed {dict(self.failures)}, "
                f"max latency {self.max_latency:.3f}s, versions {dict(self.bodies)} {self.errors[:5]}")


def classify(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError)):
        return "reset"
    if isinstance(exc, socket.timeout):
        return "timeout"
    return "other"


class Load:
    """``threads`` clients, each sending GET / on a new connection per request (or, with
    ``keepalive``, over one connection reopened only when the server closes it gracefully).

    Bounded: stops at ``stop()``, after ``duration`` seconds or ``max_requests`` requests.
    The count bound is far above what ``duration`` allows on a fast machine, so a test that
    needs the load flowing is limited by time, and told so when the load ran out.
    """

    def __init__(self, address, threads: int = 4, duration: float = 60, max_requests: int = 5_000_000,
                 timeout: float = 20, keepalive: bool = False) -> None:
        self.address = address
        self.keepalive = keepalive
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(threads)]
        self.deadline = time.monotonic() + duration
        self.budget = max_requests
        self.timeout = timeout
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self.threads:
            thread.join()
        return self.result

    def wait_for_requests(self, count: int, timeout: float = 15) -> None:
        """Wait until ``count`` more requests succeeded (the load is really flowing)."""
        target, deadline = self.result.ok + count, time.monotonic() + timeout
        while self.result.ok < target:
            if not self._running():
                raise AssertionError(f"the load ran out (duration or request bound) before {count} "
                                     f"more requests: {self.result}")
            if time.monotonic() > deadline:
                raise AssertionError(f"load did not reach {count} more requests: {self.result}")
            time.sleep(0.01)

    def _running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def _take(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self.budget <= 0 or time.monotonic() > self.deadline:
                return False
            self.budget -= 1
            return True

    def _client(self) -> None:
        client = KeepAliveClient(self.address, self.timeout)
        while self._take():
            started = time.monotonic()
            try:
                body = client.get()
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
                with self._lock:
                    self.result.failures[classify(exc)] += 1
                    self.result.errors.append(repr(exc))
                continue
            finally:
                if not self.keepalive:
                    client.close()
            with self._lock:
                self.result.ok += 1
                self.result.bodies[body.split(b" ", 1)[0].decode()] += 1
                self.result.max_latency = max(self.result.max_latency, time.monotonic() - started)
        client.close()
        with self._lock:
            self.result.connections += client.connections

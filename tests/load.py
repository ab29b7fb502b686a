"""A bounded HTTP load on 127.0.0.1 / ::1 / a unix socket that records what clients saw."""
from __future__ import annotations

import gc
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from harness import KeepAliveClient


@dataclass(slots=True)
class Sample:
    """One request: when it started and ended, and "ok" (with the version that answered) or
    the kind of failure."""
    start: float
    end: float
    kind: str
    version: str = ""


@dataclass
class LoadResult:
    ok: int = 0
    failures: Counter = field(default_factory=Counter)  # kind -> count
    errors: list[str] = field(default_factory=list)  # the first failures' details
    bodies: Counter = field(default_factory=Counter)  # the version each answer named
    max_latency: float = 0.0
    connections: int = 0  # connections opened (keep-alive: first ones plus graceful reconnects)
    broken: int = 0  # requests failed on a connection that had already served one

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
    if isinstance(exc, RuntimeError) and str(exc).startswith("HTTP 5"):
        return "5xx"
    return "other"


def first_word(body: bytes) -> str:
    """The test apps answer with their version first."""
    return body.split(b" ", 1)[0].decode(errors="replace")


class Load:
    """``threads`` clients, each sending GET / on a new connection per request (or, with
    ``keepalive``, over one connection reopened only when the server closes it gracefully).
    With ``record``, every request is kept as a ``Sample`` in ``samples`` (and cyclic GC is
    off meanwhile: a full collection over a million samples would stall every client).
    With ``rate``, each client starts at most ``rate`` requests a second, which leaves the
    machine headroom (each still waits for its answer before the next request); without
    it, each sends its next request at once.

    Bounded: stops at ``stop()``, after ``duration`` seconds or ``max_requests`` requests.
    The count bound is far above what ``duration`` allows on a fast machine, so a test that
    needs the load flowing is limited by time, and told so when the load ran out.
    """

    def __init__(self, address, threads: int = 4, duration: float = 60, max_requests: int = 5_000_000,
                 timeout: float = 20, keepalive: bool = False, record: bool = False,
                 version: Callable[[bytes], str] = first_word, rate: float = 0) -> None:
        self.address = address
        self.keepalive, self.record, self.version = keepalive, record, version
        self.interval = 1 / rate if rate else 0.0
        self.threads = [threading.Thread(target=self._client, args=(n / threads,), daemon=True)
                        for n in range(threads)]
        self.started = time.monotonic()
        self.deadline = self.started + duration
        self.budget = max_requests
        self.timeout = timeout
        self.result = LoadResult()
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def __enter__(self) -> Load:
        if self.record:
            gc.disable()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.record:
            gc.enable()

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self.threads:
            thread.join()
        return self.result

    def wait_for_requests(self, count: int, timeout: float = 15) -> None:
        """Wait until ``count`` more requests succeeded (the load is really flowing)."""
        target, deadline = self.result.ok + count, time.monotonic() + timeout
        while self.result.ok < target:
            if not self.running():
                raise AssertionError(f"the load stopped (duration or request bound, or a client died) before {count} "
                                     f"more requests: {self.result}")
            if time.monotonic() > deadline:
                raise AssertionError(f"load did not reach {count} more requests: {self.result}")
            time.sleep(0.01)

    def wait_done(self, timeout: float = 60) -> LoadResult:
        """Wait until the load ends by its own bound (``duration`` or ``max_requests``)."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.running():
            raise AssertionError(f"the load did not end within {timeout}s: {self.result}")
        return self.result

    def running(self) -> bool:
        """Whether any client still sends (the load has not reached a bound nor been stopped)."""
        return any(thread.is_alive() for thread in self.threads)

    def _take(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self.budget <= 0 or time.monotonic() > self.deadline:
                return False
            self.budget -= 1
            return True

    def _client(self, phase: float) -> None:
        """One client; paced clients start ``phase`` of an interval apart, so they never
        send in step."""
        client = KeepAliveClient(self.address, self.timeout)
        due = time.monotonic() + phase * self.interval
        while self._take():
            if self.interval:
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                due = max(due, time.monotonic()) + self.interval  # late: no burst to catch up
            started = time.monotonic()
            reused = client.sock is not None
            try:
                body = client.get()
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
                self._failed(Sample(started, time.monotonic(), classify(exc)), repr(exc), reused)
                continue
            finally:
                if not self.keepalive:
                    client.close()
            self._succeeded(Sample(started, time.monotonic(), "ok", self.version(body)))
        client.close()
        with self._lock:
            self.result.connections += client.connections

    def _failed(self, sample: Sample, error: str, reused: bool) -> None:
        with self._lock:
            self.result.failures[sample.kind] += 1
            if len(self.result.errors) < 20:
                self.result.errors.append(error)
            self.result.broken += reused
            if self.record:
                self.samples.append(sample)

    def _succeeded(self, sample: Sample) -> None:
        with self._lock:
            self.result.ok += 1
            self.result.bodies[sample.version] += 1
            self.result.max_latency = max(self.result.max_latency, sample.end - sample.start)
            if self.record:
                self.samples.append(sample)


def keepalive_rate(address, seconds: float = 1.5) -> float:
    """Requests a second that 4 keep-alive clients had answered over ``seconds``."""
    load = Load(address, threads=4, keepalive=True, duration=seconds)
    with load:
        for thread in load.threads:  # each stops at the load's deadline
            thread.join()
    assert load.result.failed == 0, load.result
    return load.result.ok / seconds

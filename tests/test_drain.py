"""A replaced process's drain counts its connections: a slow response started before a reload
completes in full on the old process while new connections reach the new one, and the drain
ends as soon as the old process holds no connection and no longer listens (it may still be
exiting). Real supervisord, real clients."""
from __future__ import annotations

import socket
import threading
import time

import pytest
from harness import HTTPAPP, KeepAliveClient, Supervisord, free_port, http_get, pid_alive, wait_for

pytestmark = pytest.mark.e2e  # real supervisords, programs and clients

LINGER = 6  # seconds the old process takes to exit once it stopped serving


def stream(port: int, seconds: float, into: list) -> threading.Thread:
    """GET /stream?SECONDS, once its answer has begun: ``into`` gets the whole answer (a thread
    reads the rest)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET /stream?{seconds} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    first = sock.recv(65536)

    def rest() -> None:
        with sock:
            into.append(first + b"".join(iter(lambda: sock.recv(65536), b"")))
    thread = threading.Thread(target=rest)
    thread.start()
    return thread


def draining(sv: Supervisord) -> list[dict]:
    return sv.rpc.littleboss.getProgramInfo("web")["draining"]


@pytest.fixture
def sv(tmp_path):
    sv = Supervisord(tmp_path)
    sv.port = free_port()
    sv.program("web", command=f"{HTTPAPP} --linger {LINGER}", littleboss_sockets=f"http=tcp://127.0.0.1:{sv.port}",
               littleboss_ready="notify", littleboss_lameduck=60, littleboss_fallback_window=0)
    sv.start()
    sv.old = sv.wait_running("web")
    yield sv
    sv.stop()


def test_a_slow_response_completes_on_the_old_process_and_the_drain_ends_when_it_is_done(sv):
    answers: list[bytes] = []
    thread = stream(sv.port, 3, answers)
    started = time.monotonic()
    reload = sv.rpc.littleboss.reload("web", "", False)
    new = wait_for(lambda: (info := sv.rpc.littleboss.getProgramInfo("web"))["pid"] != sv.old and info["pid"],
                   what="the new process to be promoted")
    assert http_get(("127.0.0.1", sv.port)).split()[1] == str(new).encode()  # new connections: the new one
    assert draining(sv) == [{"pid": sv.old, "connections": 1}]  # the stream, still on the old one
    last = wait_for(lambda: (info := sv.rpc.littleboss.getProgramInfo("web"))["last_reload"]["id"] == reload["id"]
                    and info["last_reload"]["phase"] == "done" and info["last_reload"], timeout=30,
                    what="the drain to end")
    ended = time.monotonic() - started
    thread.join(10)
    body = answers[0].partition(b"\r\n\r\n")[2]
    assert body == f"v1 {sv.old} streaming\n".encode() * 30  # all of it, from the old process
    assert ended < LINGER and last["drain_seconds"] < LINGER, (ended, last)  # not the linger, nor the lameduck
    assert pid_alive(sv.old)  # it is still exiting (its linger): drained is not exited
    assert f"pid {sv.old} holds no connection and no longer listens: drained" in sv.log.read_text()


def test_idle_keep_alive_connections_on_the_old_process_are_counted_until_they_close(sv):
    clients = [KeepAliveClient(("127.0.0.1", sv.port)) for _ in range(2)]
    try:
        for client in clients:
            assert client.get().split()[1] == str(sv.old).encode()
        sv.rpc.littleboss.reload("web", "", False)
        wait_for(lambda: draining(sv) == [{"pid": sv.old, "connections": 2}], what="2 connections counted")
        # the old process closes idle connections after 2 s: the count falls, and the drain ends
        wait_for(lambda: sv.rpc.littleboss.getProgramInfo("web")["last_reload"]["phase"] == "done",
                 what="the drain to end")
        assert pid_alive(sv.old)
    finally:
        for client in clients:
            client.close()


def test_without_littleboss_drain_connections_the_drain_lasts_until_the_old_process_exits(tmp_path):
    sv = Supervisord(tmp_path)
    port = free_port()
    sv.program("web", command=f"{HTTPAPP} --linger 2", littleboss_sockets=f"http=tcp://127.0.0.1:{port}",
               littleboss_ready="notify", littleboss_drain_connections="false", littleboss_fallback_window=0)
    sv.start()
    try:
        old = sv.wait_running("web")
        # RUNNING comes with startsecs; once it serves it lingers on SIGTERM (before, it dies of it at once)
        wait_for(lambda: f"pid {old} serving" in (tmp_path / "web.log").read_text(), what=f"pid {old} serving")
        result = sv.rpc.littleboss.reload("web", "")
        assert result["drain_seconds"] >= 2 and not pid_alive(old), result
    finally:
        sv.stop()

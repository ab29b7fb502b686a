"""UDP sockets: held and handed over like the others; a UDP program reloaded 10 times while a
client sends numbered datagrams gets exactly one answer for each, from the new version after
each reload."""
from __future__ import annotations

import socket
import sys
import threading
import time
from collections import defaultdict

import pytest
from harness import APPS, Supervisord, free_port, make_executable, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]

RATE = 500  # datagrams a second (bounded)


def release(root, version: str) -> str:
    return make_executable(root / "releases", version,
                           f"#!/bin/sh\nAPP_VERSION={version} exec {sys.executable} {APPS / 'udpapp.py'}\n")


class DatagramClient:
    """Sends datagrams numbered 0, 1, ... at ``RATE`` a second to ``address`` until stopped
    (or ``duration`` passes), and records every answer: number -> [(version, pid, when)]."""

    def __init__(self, address: tuple[str, int], duration: float = 90) -> None:
        self.address, self.deadline = address, time.monotonic() + duration
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.settimeout(0.2)
        self.sent = 0
        self.answers: dict[int, list[tuple[str, int, float]]] = defaultdict(list)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send), threading.Thread(target=self._receive)]

    def __enter__(self) -> DatagramClient:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.sock.close()

    def stop_sending(self) -> None:
        self.deadline = 0

    def _send(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            self.sock.sendto(str(self.sent).encode(), self.address)
            self.sent += 1
            due += 1 / RATE
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            version, pid, number = data.split()
            self.answers[int(number)].append((version.decode(), int(pid), time.monotonic()))

    def answered_after(self, since: float) -> set[str]:
        """The versions that answered since ``since``."""
        return {version for replies in list(self.answers.values()) for version, _, when in replies if when > since}


@pytest.fixture
def sv(tmp_path):
    sv = Supervisord(tmp_path)
    yield sv
    sv.stop()


def test_ten_reloads_of_a_udp_program_answer_every_datagram_exactly_once(sv, tmp_path):
    v1, v2 = release(tmp_path, "v1"), release(tmp_path, "v2")
    port = free_port(socket.AF_INET)
    sv.littleboss_program("udp", v1, f"dns=udp://127.0.0.1:{port}", f"{tmp_path}/releases/*/app",
                          littleboss_fallback_window=0, littleboss_lameduck=3, littleboss_socket_backlog=16)
    sv.start()
    sv.wait_running("udp")
    with DatagramClient(("127.0.0.1", port)) as client:
        wait_for(lambda: client.answers, what="a first answer")
        for n in range(10):
            target, version = (v2, "v2") if n % 2 == 0 else (v1, "v1")
            result = sv.rpc.littleboss.reload("udp", target)
            returned = time.monotonic()
            wait_for(lambda v=version, t=returned: v in client.answered_after(t),
                     what=f"{version} answering after reload {n}")
            assert client.answered_after(returned + 0.2) <= {version}, f"the old version answered after reload {n}"
            assert result["new_pid"] == sv.info("udp")["pid"]
        wait_for(lambda: client.sent > 1000, what="1000 datagrams sent")
        client.stop_sending()
        wait_for(lambda: len(client.answers) >= client.sent, timeout=10, what="an answer to every datagram")
        sent, answers = client.sent, dict(client.answers)
    missing = [n for n in range(sent) if n not in answers]
    repeated = {n: replies for n, replies in answers.items() if len(replies) > 1}
    assert sent > 1000 and not missing and not repeated, (sent, missing[:10], list(repeated.items())[:5])


def test_a_udp_port_in_use_is_reported_with_the_program_and_address(sv, tmp_path):
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        sv.program("udp", command=release(tmp_path, "v1"), littleboss_sockets=f"dns=udp://127.0.0.1:{port}",
                   startretries=0)
        sv.start()
        info = sv.wait_state("udp", "FATAL")
        assert f"cannot listen on dns=udp://127.0.0.1:{port}" in info["spawnerr"], info
        assert "Address already in use" in info["spawnerr"]
    finally:
        holder.close()


def test_udp_and_tcp_sockets_are_passed_in_order_with_their_names(sv, tmp_path):
    udp_port, tcp_port = free_port(socket.AF_INET), free_port()
    sv.program("both", command=f"{sys.executable} {APPS / 'fdreport.py'}",
               littleboss_sockets=f"dns=udp://127.0.0.1:{udp_port}, http=tcp://127.0.0.1:{tcp_port}, "
                                  f"dns6=udp://[::1]:{udp_port}")
    sv.start()
    sv.wait_running("both")
    log = wait_for(lambda: "fd 5" in (text := (tmp_path / "both.log").read_text()) and text, what="its report")
    assert f"fd 3 dns SOCK_DGRAM ('127.0.0.1', {udp_port})" in log, log
    assert f"fd 4 http SOCK_STREAM ('127.0.0.1', {tcp_port})" in log, log
    assert f"fd 5 dns6 SOCK_DGRAM ('::1', {udp_port}" in log, log

"""uvicorn and hypercorn as littleboss programs through the launcher
(``python -m supervisor_littleboss.serve``): reloads under load fail nothing, keep-alive
throughput keeps up with the server on its own port, the launcher's READY=1 promotes,
and a stop lets accepted connections send their request."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from harness import (
    APPS,
    VENV_ENV,
    KeepAliveClient,
    Releases,
    accept_queue,
    bind_options,
    free_port,
    http_get,
    make_asgi_release,
    pid_alive,
    served,
    served_alone,
    wait_for,
)
from load import Load

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # real supervisord, servers and clients

SERVERS = ["uvicorn", "hypercorn"]
RELOADS = 10  # per connection mode
ROUNDS, WINDOW = 3, 0.75  # the throughput check: rounds of WINDOW seconds of load on each side
RATIO = 0.7  # keep-alive requests with littleboss, at least this share of the server's alone


@pytest.fixture(params=SERVERS)
def server(request) -> str:
    return request.param


@pytest.fixture
def releases(tmp_path: Path, server: str) -> Releases:
    """v1 and v2 of the test ASGI app served by ``server``, and a patient one (--grace 30)."""
    releases = Releases(tmp_path, lambda directory, version: make_asgi_release(directory, server, version))
    releases.patient = make_asgi_release(releases.dir, server, "v3", served(server, "--grace", "30"))
    return releases


def serving(address) -> tuple[str, int]:
    """(version, pid) that answers at ``address`` now."""
    version, pid = http_get(address).split()
    return version.decode(), int(pid)


def keepalive_requests(address) -> int:
    """Requests answered over keep-alive connections in one WINDOW of load."""
    with Load(address, keepalive=True, duration=WINDOW) as load:
        result = load.wait_done()
    assert result.failed == 0, result
    return result.ok


def test_reloads_under_load_fail_nothing_and_keep_the_throughput_of_the_server_alone(supervisord, releases, server):
    port, alone = free_port(), free_port()
    supervisord.littleboss_program("app", releases.v1, port, releases.allow)
    supervisord.program("alone", command=served_alone(server, alone))  # its own port, no littleboss
    supervisord.start()
    address = ("127.0.0.1", port)
    wait_for(lambda: http_get(address) and http_get(("127.0.0.1", alone)), what=f"{server} to answer")
    for keepalive in (False, True):
        with Load(address, keepalive=keepalive) as load:
            load.wait_for_requests(50)
            for n in range(RELOADS):
                target, version = (releases.v2, "v2") if n % 2 == 0 else (releases.v1, "v1")
                result = supervisord.rpc.littleboss.reload("app", target)
                # it returned once the old process had drained (no connection, no listener); it exits then
                wait_for(lambda old=result["old_pid"]: not pid_alive(old), what="the drained old process to exit")
                assert serving(address) == (version, result["new_pid"])  # the new one answers
                load.wait_for_requests(20)
        assert load.result.failed == 0 and load.result.broken == 0, load.result
        assert set(load.result.bodies) == {"v1", "v2"}
    with_littleboss = without = 0
    for _ in range(ROUNDS):  # interleaved, so the machine's other work weighs on both alike
        with_littleboss += keepalive_requests(address)
        without += keepalive_requests(("127.0.0.1", alone))
    assert with_littleboss >= RATIO * without, (
        f"keep-alive: {with_littleboss} requests with littleboss, {without} on its own port")
    log = (supervisord.root / "app.log").read_text()
    assert "Traceback" not in log and "Error" not in log, log


def test_ready_from_the_launcher_promotes_and_every_socket_is_served(supervisord, releases, server, tmp_path):
    port, path = free_port(), str(tmp_path / "app.sock")
    sockets = f"http=tcp://127.0.0.1:{port}, local=unix://{path}"
    supervisord.littleboss_program("app", releases.v1, sockets, releases.allow, startsecs=300)
    supervisord.start()
    wait_for(lambda: http_get(("127.0.0.1", port)) and http_get(path), what=f"{server} to answer on both sockets")
    result = supervisord.rpc.littleboss.reload("app", releases.v2)
    # promoted long before startsecs (300s) passed: with littleboss_ready = notify, only the
    # new process's READY=1 promotes
    assert result["seconds"] < 300
    assert supervisord.rpc.littleboss.getProgramInfo("app")["notify_status"] == (
        f"serving on 127.0.0.1:{port}, {path}, app {APPS.resolve() / 'asgiapp.py'}")  # the file it imported
    assert serving(("127.0.0.1", port)) == serving(path) == ("v2", result["new_pid"])


def test_a_stop_answers_accepted_connections_with_connection_close(supervisord, releases, server):
    port = free_port()
    address = ("127.0.0.1", port)
    supervisord.littleboss_program("app", releases.patient, port, releases.allow)
    supervisord.start()
    wait_for(lambda: http_get(address), what=f"{server} to answer")
    old = supervisord.info("app")["pid"]
    with socket.create_connection(address) as fresh, KeepAliveClient(address) as idle:
        wait_for(lambda: accept_queue(port) == 0, what="the connection to be accepted")  # by the one process
        assert idle.get().startswith(b"v3 ")  # a keep-alive connection, idle from now on
        supervisord.rpc.littleboss.reload("app", releases.v1, False)
        wait_for(lambda: not Path(f"/proc/{old}/fd/3").exists(), what="the old process to stop accepting")
        assert pid_alive(old)  # it waits (up to --grace 30) for these two connections
        fresh.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        answer = b""
        while chunk := fresh.recv(65536):  # until the server closes it
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ") and b"\r\nconnection: close\r\n" in answer.lower()
        assert answer.endswith(f"v3 {old}\n".encode())
        assert idle.get() == f"v3 {old}\n".encode() and idle.sock is None  # answered, then closed
    wait_for(lambda: not pid_alive(old), what="the old process to exit, its connections done")
    assert serving(address)[0] == "v1"
    assert "Traceback" not in (supervisord.root / "app.log").read_text()


def test_run_by_hand_it_binds_like_the_server_and_drains_on_the_stop_signal(server):
    port = free_port()
    launcher = [sys.executable, "-m", "supervisor_littleboss.serve", "--stop-signal", "QUIT"]  # the module, too
    command = [*launcher, *served(server).split()[1:], *bind_options(server, port).split()]
    process = subprocess.Popen(command, env=VENV_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: serving(("127.0.0.1", port)), what=f"{server} by hand") == ("v1", process.pid)
        process.send_signal(signal.SIGQUIT)  # as a program's stopsignal = QUIT would
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and "Traceback" not in output, output

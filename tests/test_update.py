"""`supervisorctl update`, bind failures and supervisord's exit, each with a supervisord of its own."""
from __future__ import annotations

import os
import socket

import pytest
from harness import (
    HTTPAPP,
    Supervisord,
    free_port,
    http_get,
    listen_backlog,
    listening_inode,
    pid_alive,
    unix_listening_inode,
    wait_for,
)
from load import Load

pytestmark = pytest.mark.e2e  # each test starts a real supervisord


def test_update_after_an_unrelated_change_reuses_the_socket_under_load(supervisord: Supervisord):
    port = free_port()
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}", environment="APP_VERSION=v1")
    supervisord.start()
    pid = supervisord.wait_running("web")
    inode = listening_inode(port)
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}", environment="APP_VERSION=v2")
    with Load(("127.0.0.1", port)) as load:
        load.wait_for_requests(200)
        output = supervisord.ctl("update", check=True).stdout  # swapped in place (littleboss's ctl plugin)
        assert output.startswith("web: applied its new configuration ") and "stopped" not in output, output
        supervisord.wait_running("web", not_pid=pid)
        load.wait_for_requests(200)
    assert load.result.failed == 0, load.result
    assert listening_inode(port) == inode
    assert http_get(("127.0.0.1", port)).startswith(b"v2 ")


def test_reread_sees_a_change_of_littleboss_settings_alone(supervisord: Supervisord):
    port = free_port()
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}")
    supervisord.start()
    supervisord.wait_running("web")
    inode = listening_inode(port)
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}", littleboss_socket_backlog=64)
    assert supervisord.ctl("reread", check=True).stdout.strip() == "web: changed"
    supervisord.ctl("update", check=True)
    supervisord.wait_running("web")
    assert listening_inode(port) == inode  # the backlog is applied to the open socket
    assert listen_backlog(port) == 64


def test_update_closes_the_sockets_of_a_removed_program(supervisord: Supervisord):
    port, other = free_port(), free_port()
    path = str(supervisord.root / "web.sock")
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}, local=unix://{path}")
    supervisord.program("other", littleboss_sockets=f"http=tcp://127.0.0.1:{other}")
    supervisord.start()
    pid = supervisord.wait_running("web")
    supervisord.remove_program("web")
    assert "web: removed process group" in supervisord.ctl("update", check=True).stdout
    wait_for(lambda: not pid_alive(pid), what="web to exit")
    assert listening_inode(port) is None
    with pytest.raises(ConnectionRefusedError):
        http_get(("127.0.0.1", port))
    assert not os.path.exists(path)
    assert http_get(("127.0.0.1", other))  # the other program keeps its socket


@pytest.mark.parametrize("command", ["update", "reload"])
def test_moving_a_program_to_a_new_address_closes_the_old_one(supervisord: Supervisord, command):
    old, new = free_port(), free_port()
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{old}")
    supervisord.start()
    pid = supervisord.wait_running("web")
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{new}")
    if command == "reload":
        supervisord.hup()
    else:
        supervisord.ctl("update", check=True)
    supervisord.wait_running("web", not_pid=pid)
    # after reload, the old process drains (serving on the old address) before it closes
    wait_for(lambda: listening_inode(old) is None, what="the old address to close")
    assert http_get(("127.0.0.1", new))


def test_an_address_in_use_leaves_only_that_program_fatal_until_it_is_free(supervisord: Supervisord):
    taken, port = socket.socket(), free_port()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    supervisord.program("busy", littleboss_sockets=f"http=tcp://127.0.0.1:{busy}")
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}")
    supervisord.start()
    info = supervisord.wait_state("busy", "FATAL")
    status = supervisord.ctl("status", "busy").stdout
    reason = f"program 'busy' cannot listen on http=tcp://127.0.0.1:{busy}: [Errno 98] Address already in use"
    assert reason in status and reason in info["spawnerr"]
    assert reason in supervisord.log.read_text()
    assert http_get(("127.0.0.1", port))  # the other program is unaffected
    taken.close()
    supervisord.ctl("start", "busy", check=True)
    assert http_get(("127.0.0.1", busy)).split()[1] == str(supervisord.wait_running("busy")).encode()


def test_a_program_that_cannot_bind_every_socket_holds_none(supervisord: Supervisord):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy, port = taken.getsockname()[1], free_port()
        supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}, admin=tcp://127.0.0.1:{busy}")
        supervisord.start()
        supervisord.wait_state("web", "FATAL")
        assert listening_inode(port) is None  # clients are refused, not left waiting on a FATAL program


def test_a_regular_file_at_the_unix_path_is_never_removed(supervisord: Supervisord):
    path = supervisord.root / "data.sock"
    path.write_text("precious")
    supervisord.program("web", littleboss_sockets=f"http=unix://{path}")
    supervisord.start()
    info = supervisord.wait_state("web", "FATAL")
    assert f"{path} exists and is not a socket; refusing to remove it" in info["spawnerr"]
    assert path.read_text() == "precious"


def test_a_unix_socket_someone_listens_on_is_not_taken(supervisord: Supervisord):
    path = str(supervisord.root / "live.sock")
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen()
        supervisord.program("web", littleboss_sockets=f"http=unix://{path}")
        supervisord.start()
        info = supervisord.wait_state("web", "FATAL")
        assert f"another process is listening on {path}" in info["spawnerr"]
        assert unix_listening_inode(path) == f"socket:[{os.fstat(live.fileno()).st_ino}]"


def test_a_stale_unix_socket_file_is_replaced(supervisord: Supervisord):
    path = str(supervisord.root / "stale.sock")
    socket.socket(socket.AF_UNIX).bind(path)  # bound, never listened on, closed: stale
    supervisord.program("web", littleboss_sockets=f"http=unix://{path}")
    supervisord.start()
    assert http_get(path).split()[1] == str(supervisord.wait_running("web")).encode()


def test_supervisord_exit_closes_sockets_and_removes_unix_socket_files(supervisord: Supervisord):
    port, path = free_port(), str(supervisord.root / "web.sock")
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}, local=unix://{path}")
    supervisord.start()
    supervisord.wait_running("web")
    assert listening_inode(port) and unix_listening_inode(path)
    supervisord.stop()
    assert listening_inode(port) is None
    assert not os.path.exists(path)


def test_two_supervisords_cannot_share_a_port(tmp_path):
    port = free_port()
    first, second = Supervisord(tmp_path / "a"), Supervisord(tmp_path / "b")
    try:
        for sv in (first, second):
            sv.program("web", command=HTTPAPP, littleboss_sockets=f"http=tcp://127.0.0.1:{port}")
            sv.start()
        first_pid = first.wait_running("web")
        assert "Address already in use" in second.wait_state("web", "FATAL")["spawnerr"]
        assert http_get(("127.0.0.1", port)).split()[1] == str(first_pid).encode()
    finally:
        first.stop()
        second.stop()


"""Sockets held by a real supervisord: handed over by the systemd convention, never closed
while the program crashes, restarts or supervisord reloads, with real clients under load."""
from __future__ import annotations

import grp
import json
import os
import pwd
import signal
import socket
import stat
import sys
import xmlrpc.client

import pytest
from harness import (
    GUNICORN,
    Supervisord,
    accept_queue,
    free_port,
    http_get,
    listening_inode,
    socket_inode,
    unix_listening_inode,
    wait_for,
)
from load import Load

from supervisor_littleboss.faults import LittlebossFaults

pytestmark = pytest.mark.e2e  # real supervisords, programs and clients

PORT, ADMIN_PORT, GUNICORN_PORT, MULTI_PORT = (free_port() for _ in range(4))
V6_PORT = free_port(socket.AF_INET6, "::1")
# as root, hand the unix socket to another user; otherwise to ourselves
OWNER = ("nobody", "nogroup") if os.geteuid() == 0 else (pwd.getpwuid(os.getuid()).pw_name,
                                                         grp.getgrgid(os.getgid()).gr_name)


@pytest.fixture(scope="module")
def sv(tmp_path_factory) -> Supervisord:
    """One supervisord for the module: tests restart, crash, kill and reload programs and
    supervisord itself, but each waits for what it uses to run again and asserts only
    what any run of it must show (its sockets, its fds, the pids it finds then), so the
    tests pass alone and in any order."""
    root = tmp_path_factory.mktemp("lifetime")
    sv = Supervisord(root, inet_http=True)  # two HTTP servers: the RPC factory runs twice
    sv.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{PORT}, admin=tcp://127.0.0.1:{ADMIN_PORT}")
    sv.program("gweb", command=GUNICORN, littleboss_sockets=f"http=tcp://127.0.0.1:{GUNICORN_PORT}")
    sv.program("multi", numprocs=2, process_name="%(program_name)s_%(process_num)s",
               littleboss_sockets=f"http=tcp://127.0.0.1:{MULTI_PORT}")
    sv.program("v6", littleboss_sockets=f"http=tcp://[::1]:{V6_PORT}")
    sv.program("unixweb", littleboss_sockets=f"http=unix://{root}/web.sock",
               littleboss_socket_mode="0660", littleboss_socket_owner=":".join(OWNER))
    sv.program("plain", command="sleep 1000")
    sv.start()
    yield sv
    sv.stop()


def test_program_gets_its_sockets_on_fd3_and_up_with_listen_variables(sv):
    pid = sv.wait_running("web")
    seen = json.loads(http_get(("127.0.0.1", PORT), "/env"))
    assert seen["pid"] == pid
    assert seen["env"] == {"LISTEN_FDS": "2", "LISTEN_PID": str(pid), "LISTEN_FDNAMES": "http:admin"}
    assert seen["fds"] == [0, 1, 2, 3, 4]  # nothing else of supervisord's leaks into the child
    assert http_get(("127.0.0.1", ADMIN_PORT)).split()[2] == b"admin"


def test_plain_program_is_left_alone(sv):
    pid = sv.wait_running("plain")
    environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    assert not [var for var in environ if var.startswith(b"LISTEN_")]
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]


@pytest.mark.parametrize("name, port", [("web", PORT), ("gweb", GUNICORN_PORT)], ids=["stdlib", "gunicorn"])
def test_restart_under_load_refuses_and_resets_nothing(sv, name, port):
    pid = sv.wait_running(name)
    inode = listening_inode(port)
    with Load(("127.0.0.1", port)) as load:
        load.wait_for_requests(200)
        sv.ctl("restart", name, check=True)
        sv.wait_running(name, not_pid=pid)
        load.wait_for_requests(200)
    assert load.result.failed == 0, load.result
    assert listening_inode(port) == inode


def test_queued_connections_survive_a_crash_and_are_served_by_the_restarted_process(sv):
    pid = sv.wait_running("web")
    inode = listening_inode(PORT)
    with Load(("127.0.0.1", PORT), threads=4) as load:
        load.wait_for_requests(100)
        os.kill(pid, signal.SIGUSR1)  # the app finishes in-flight requests and stops accepting
        wait_for(lambda: accept_queue(PORT) >= 4, what="every client queued on the listening socket")
        served = load.result.ok
        os.kill(pid, signal.SIGKILL)
        new_pid = sv.wait_running("web", not_pid=pid)
        load.wait_for_requests(100)
    assert load.result.failed == 0, load.result
    assert load.result.ok > served
    assert socket_inode(new_pid) == listening_inode(PORT) == inode


def test_sigkill_under_load_refuses_nothing(sv):
    """A SIGKILL loses the requests the process had accepted, but no connection is refused."""
    pid = sv.wait_running("web")
    with Load(("127.0.0.1", PORT)) as load:
        load.wait_for_requests(200)
        os.kill(pid, signal.SIGKILL)
        sv.wait_running("web", not_pid=pid)
        load.wait_for_requests(200)
    assert load.result.failures["refused"] == 0, load.result
    assert load.result.failures["timeout"] == 0, load.result


def test_supervisorctl_reload_keeps_every_socket_open_and_every_process_running_under_load(sv):
    pids = {name: sv.wait_running(name) for name in ("web", "gweb", "unixweb")}
    unix_path = str(sv.root / "web.sock")

    def inodes():
        return listening_inode(PORT), listening_inode(GUNICORN_PORT), unix_listening_inode(unix_path)

    before = inodes()
    with Load(("127.0.0.1", PORT)) as load, Load(("127.0.0.1", GUNICORN_PORT), threads=2) as gload:
        load.wait_for_requests(200)
        gload.wait_for_requests(50)
        sv.hup()
        assert {name: sv.wait_running(name) for name in pids} == pids  # they ran on through it
        load.wait_for_requests(200)
        gload.wait_for_requests(50)
    assert load.result.failed == 0, load.result
    assert gload.result.failed == 0, gload.result
    assert inodes() == before
    assert sv.rpc.littleboss.getProgramInfo("web")["pid"] == pids["web"]


def test_every_process_of_a_numprocs_group_gets_the_same_socket(sv):
    pids = [sv.wait_running(f"multi:multi_{n}") for n in (0, 1)]
    assert socket_inode(pids[0]) == socket_inode(pids[1]) == listening_inode(MULTI_PORT)
    answered = set()

    def both_answered() -> bool:
        answered.add(int(http_get(("127.0.0.1", MULTI_PORT)).split()[1]))
        return answered == set(pids)

    wait_for(both_answered, what=f"both processes {pids} to answer on the shared socket")


@pytest.mark.skipif(not socket.has_ipv6, reason="this Python has no IPv6")
def test_ipv6_loopback(sv):
    pid = sv.wait_running("v6")
    assert http_get(("::1", V6_PORT)).split()[1] == str(pid).encode()
    assert sv.rpc.littleboss.getProgramInfo("v6")["sockets"][0]["url"] == f"tcp://[::1]:{V6_PORT}"


def test_unix_socket_gets_its_mode_and_owner(sv):
    pid = sv.wait_running("unixweb")
    path = str(sv.root / "web.sock")
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (pwd.getpwnam(OWNER[0]).pw_uid, grp.getgrnam(OWNER[1]).gr_gid)
    assert http_get(path).split()[1] == str(pid).encode()


def test_getProgramInfo_describes_the_program_and_its_sockets(sv):
    pid = sv.wait_running("web")
    info = sv.rpc.littleboss.getProgramInfo("web")
    assert info["pid"] == pid and info["statename"] == "RUNNING"
    assert info["path"] == os.path.realpath(sys.executable)  # the file it resolved to when spawned
    assert info["sockets"] == [
        {"name": "http", "url": f"tcp://127.0.0.1:{PORT}", "fd": 3},
        {"name": "admin", "url": f"tcp://127.0.0.1:{ADMIN_PORT}", "fd": 4},
    ]
    assert [p["name"] for p in sv.rpc.littleboss.getProgramInfo("multi")["processes"]] == ["multi_0", "multi_1"]


def test_getAllProgramInfo_lists_littleboss_programs_only(sv):
    names = [info["name"] for info in sv.rpc.littleboss.getAllProgramInfo()]
    assert names == ["gweb", "multi", "unixweb", "v6", "web"]
    assert sv.rpc.littleboss.getAPIVersion() == "1.0"


@pytest.mark.parametrize("name, code, text", [
    ("nope", LittlebossFaults.UNKNOWN_PROGRAM, "UNKNOWN_PROGRAM: no program named 'nope'"),
    ("plain", LittlebossFaults.NOT_LITTLEBOSS, "NOT_LITTLEBOSS: program 'plain' is not a littleboss program"),
])
def test_getProgramInfo_faults(sv, name, code, text):
    with pytest.raises(xmlrpc.client.Fault) as fault:
        sv.rpc.littleboss.getProgramInfo(name)
    assert fault.value.faultCode == code
    assert fault.value.faultString.startswith(text)


def test_methodHelp_serves_the_docstrings(sv):
    assert "@param string name" in sv.rpc.system.methodHelp("littleboss.getProgramInfo")
    assert "littleboss.getAllProgramInfo" in sv.rpc.system.listMethods()

"""littleboss_watchdog: systemd's watchdog protocol. A process that stops sending WATCHDOG=1 is
hung: within its binary's fallback window the program falls back; otherwise it is killed and
supervisord starts it again, on the held socket (nothing refused). One that pings is never
disturbed. Real supervisord, real clients under load."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from harness import Releases, Supervisord, free_port, http_get, make_asgi_release, wait_for
from load import Load
from test_upgrade import upgrade

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # real supervisords, programs and clients

WATCHDOG = 1.5  # seconds


def history(sv: Supervisord) -> list[dict]:
    return sv.rpc.littleboss.getProgramInfo("web")["history"]


@pytest.fixture
def sv(tmp_path):
    sv = Supervisord(tmp_path)
    sv.releases = Releases(tmp_path)
    sv.hangs = sv.releases.add("hangs", "v2", "--hang-after", "2")  # its main loop blocks 2 s after it starts
    sv.port = free_port()
    yield sv
    sv.stop()


def start(sv: Supervisord, command: str, window: float) -> int:
    sv.littleboss_program("web", command, sv.port, sv.releases.allow, littleboss_watchdog=WATCHDOG,
                          littleboss_fallback_window=window)
    sv.start()
    return sv.wait_running("web")


@pytest.mark.soak
def test_a_process_that_pings_is_never_disturbed_under_load(sv):
    pid = start(sv, sv.releases.v1, window=30)
    with Load(("127.0.0.1", sv.port), duration=20) as load:
        load.wait_done(timeout=40)  # 20 s of load: some 13 deadlines, each met
    assert load.result.failed == 0 and load.result.ok > 100, load.result
    assert sv.info("web")["pid"] == pid and history(sv) == []
    assert "is hung" not in sv.log.read_text()


def test_a_binary_that_hangs_after_promotion_is_rolled_back_within_the_window(sv):
    start(sv, sv.releases.v1, window=30)
    with Load(("127.0.0.1", sv.port)) as load:
        load.wait_for_requests(50)
        sv.rpc.littleboss.reload("web", sv.hangs)
        last = wait_for(lambda: history(sv)[-1]["kind"] == "fallback" and history(sv)[-1], timeout=20,
                        what="the fallback")
        wait_for(lambda: sv.rpc.littleboss.getProgramInfo("web")["path"] == sv.releases.v1, what="v1 back")
        load.wait_for_requests(50)
    assert load.result.failures["refused"] == 0, load.result  # a request on the killed process may be cut
    assert f"{sv.hangs} exited (hung: no WATCHDOG=1 for {WATCHDOG:g}s (littleboss_watchdog))" in last["outcome"]
    assert http_get(("127.0.0.1", sv.port)).startswith(b"v1 ")


def test_outside_the_window_a_hung_process_is_killed_and_started_again(sv):
    start(sv, sv.hangs, window=30)  # the configured binary hangs: there is no window to fall back in
    old = sv.info("web")["pid"]
    with Load(("127.0.0.1", sv.port)) as load:
        load.wait_for_requests(50)
        new = wait_for(lambda: (info := sv.info("web"))["statename"] == "RUNNING" and info["pid"] != old
                       and info["pid"], timeout=20, what="a new process")
        load.wait_for_requests(50)
    assert load.result.failures["refused"] == 0, load.result
    [entry] = history(sv)
    assert entry["kind"] == "watchdog" and entry["outcome"] == (
        f"pid {old} killed and restarted: no WATCHDOG=1 for {WATCHDOG:g}s (littleboss_watchdog)")
    assert new != old and f"pid {old} is hung" in sv.log.read_text()


def blocked_request(port: int) -> None:
    """GET /block?30: the process is killed before it answers."""
    with pytest.raises(EOFError):
        http_get(("127.0.0.1", port), "/block?30", timeout=60)


def test_littleboss_serve_catches_a_handler_that_blocks_the_event_loop(sv):
    pid = start(sv, make_asgi_release(sv.releases.dir, "uvicorn", "v1"), window=30)
    http_get(("127.0.0.1", sv.port))
    threading.Thread(target=blocked_request, args=(sv.port,), daemon=True).start()
    wait_for(lambda: (info := sv.info("web"))["statename"] == "RUNNING" and info["pid"] != pid,
             timeout=20, what="the blocked process to be replaced")
    # the one RUNNING answers (asked again if it changed meanwhile: a loaded machine can delay a ping)
    wait_for(lambda: http_get(("127.0.0.1", sv.port)).split()[1] == str(sv.info("web")["pid"]).encode(),
             what="the new process to answer")
    assert history(sv)[-1]["kind"] == "watchdog"


def notify_socket(pid: int) -> str:
    """The NOTIFY_SOCKET process ``pid`` was started with."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(v.partition(b"=")[2].decode() for v in environ if v.startswith(b"NOTIFY_SOCKET="))


def sockets_named(pid: int, name: str) -> int:
    """How many of process ``pid``'s fds are the unix socket bound to ``name`` (``@``: abstract)."""
    inodes = {f"socket:[{line.split()[6]}]" for line in Path("/proc/net/unix").read_text().splitlines()[1:]
              if line.split()[7:] == [name]}
    return sum(link(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd"))


def link(path: str) -> str:
    """Where the symbolic link ``path`` points; "" if it is gone (an fd closed meanwhile)."""
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return ""


def test_each_processs_notify_socket_is_read_through_supervisords_reload_and_upgrade(sv):
    """Every process has a NOTIFY_SOCKET of its own (one's messages never hold up another's),
    and supervisord reads them all through one polled fd: through SIGHUP and an in-place
    upgrade, each process's messages still count for it."""
    web2_port = free_port()
    sv.littleboss_program("web2", sv.releases.v1, web2_port, sv.releases.allow, littleboss_watchdog=WATCHDOG)
    web = start(sv, sv.releases.v1, window=0)
    web2 = sv.wait_running("web2")
    for name in ("web", "web2"):  # (then each runs the app, and its environment is the app's)
        wait_for(lambda name=name: sv.rpc.littleboss.getProgramInfo(name)["notify_status"] == "httpapp v1 serving",
                 what=f"{name}'s READY=1")
    addresses = [notify_socket(pid) for pid in (web, web2)]
    assert all(address.startswith("@") for address in addresses) and addresses[0] != addresses[1]
    for n, change in enumerate((sv.hup, lambda: upgrade(sv))):
        change()
        # a message sent now is read, and counted for the process that sent it
        for name, port in (("web", sv.port), ("web2", web2_port)):
            http_get(("127.0.0.1", port), f"/status?{name}-{n}")
            wait_for(lambda name=name, n=n: sv.rpc.littleboss.getProgramInfo(name)["notify_status"] == f"{name}-{n}",
                     what=f"{name}'s STATUS= after {('SIGHUP', 'the upgrade')[n]}")
        assert [sv.info(name)["pid"] for name in ("web", "web2")] == [web, web2]
        assert [sockets_named(sv.proc.pid, address) for address in addresses] == [1, 1]
    assert "is hung" not in sv.log.read_text() and history(sv) == []  # their WATCHDOG=1 was read throughout
    # a new process is ready on a socket of its own
    assert sv.rpc.littleboss.reload("web", sv.releases.v2)["phase"] == "done"
    assert notify_socket(sv.info("web")["pid"]) not in addresses
    assert http_get(("127.0.0.1", sv.port)).startswith(b"v2 ")
    wait_for(lambda: sockets_named(sv.proc.pid, addresses[0]) == 0, what="the old process's socket closed")

"""littleboss_watchdog: systemd's watchdog protocol. A process that stops sending WATCHDOG=1 is
hung: within its binary's fallback window the program falls back; otherwise it is killed and
supervisord starts it again, on the held socket (nothing refused). One that pings is never
disturbed. Real supervisord, real clients under load."""
from __future__ import annotations

import threading

import pytest
from harness import Releases, Supervisord, free_port, http_get, make_asgi_release, wait_for
from load import Load

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

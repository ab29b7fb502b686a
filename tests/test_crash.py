"""supervisord killed (-9) with a program running, mid-reload or after one: the supervisord
started next takes the listening socket back from the processes left running, stops
them, and serves: no orphan is left and no connection is refused."""
from __future__ import annotations

import pytest
from harness import Releases, Supervisord, free_port, http_get, pid_alive, wait_for
from load import Load

pytestmark = pytest.mark.e2e  # each test starts a real supervisord


@pytest.fixture
def web(supervisord: Supervisord) -> Releases:
    releases = Releases(supervisord.root)
    supervisord.port = free_port()
    # a long settle keeps a reload in progress until supervisord is killed
    supervisord.littleboss_program("web", releases.v1, supervisord.port, releases.allow, littleboss_settle=60,
                                   littleboss_lameduck=3)
    supervisord.start()
    supervisord.wait_running("web")
    return releases


def kill_and_restart(supervisord: Supervisord, load: Load, orphans: list[int]) -> int:
    """SIGKILL supervisord, see its programs serve on, start it again; the new pid of web."""
    supervisord.proc.kill()
    supervisord.proc.wait()
    load.wait_for_requests(50)  # the orphans serve on
    assert all(pid_alive(pid) for pid in orphans)
    supervisord.start()
    pid = supervisord.wait_running("web")
    wait_for(lambda: not any(pid_alive(p) for p in orphans), timeout=20, what="the orphans to be stopped")
    load.wait_for_requests(50)
    return pid


def serving(supervisord: Supervisord) -> str:
    return http_get(("127.0.0.1", supervisord.port)).split()[0].decode()


def test_killed_mid_reload_the_next_supervisord_takes_over_and_serves_the_old_binary(supervisord, web):
    old = supervisord.info("web")["pid"]
    with Load(("127.0.0.1", supervisord.port)) as load:
        load.wait_for_requests(50)
        supervisord.rpc.littleboss.reload("web", web.v2, False)
        info = wait_for(lambda: (i := supervisord.rpc.littleboss.getProgramInfo("web"))["phase"] == "settling" and i,
                        what="the candidate to be ready")
        pid = kill_and_restart(supervisord, load, [old, info["candidate_pid"]])
    assert load.result.failed == 0, load.result
    assert serving(supervisord) == "v1"  # the reload never finished
    assert supervisord.rpc.littleboss.getProgramInfo("web")["path"] == web.v1
    log = supervisord.log.read_text()
    assert (f"pid(s) {old}, {info['candidate_pid']} of an earlier supervisord still run: took back 1 of 1 "
            "socket(s) from them; stopping them (SIGTERM, SIGKILL after 3s)") in log, log
    def recorded() -> list[int]:
        return [record.pid for record in supervisord.saved_state("web").processes]

    wait_for(lambda: recorded() == [pid], what="the orphans to be forgotten once gone")
    assert supervisord.info("web")["pid"] == pid  # the new process is no orphan: never stopped


def test_killed_after_a_reload_the_next_supervisord_serves_the_new_binary(supervisord, web):
    supervisord.littleboss_program("web", web.v1, supervisord.port, web.allow, littleboss_lameduck=3)
    supervisord.ctl("update", check=True)
    supervisord.wait_running("web")
    with Load(("127.0.0.1", supervisord.port), keepalive=True) as load:
        load.wait_for_requests(50)
        new = supervisord.rpc.littleboss.reload("web", web.v2)["new_pid"]
        kill_and_restart(supervisord, load, [new])
    assert load.result.failed == 0, load.result
    assert serving(supervisord) == "v2"

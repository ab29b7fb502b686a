"""An idle littleboss program's group returns from supervisord's every pass at once
(``group.quiet``) until one of its processes changes state or a reload begins: what
supervisord must still do for it, it does."""
from __future__ import annotations

import os
import signal

import pytest
from harness import Releases, Supervisord, free_port, http_get, pid_alive, wait_for

pytestmark = pytest.mark.e2e  # a real supervisord and program


def test_an_idle_program_is_still_restarted_stopped_started_and_reloaded(supervisord: Supervisord):
    releases = Releases(supervisord.root)
    stubborn = releases.add("stubborn", "v1", "--mode", "ignore-term")  # only SIGKILL stops it
    port = free_port()
    # startsecs 0: RUNNING, and idle, at its first pass
    supervisord.littleboss_program("web", stubborn, port, releases.allow, startsecs=0, stopwaitsecs=1,
                                   autorestart="true")
    supervisord.start()
    first = supervisord.wait_running("web")
    wait_for(lambda: http_get(("127.0.0.1", port)).split()[0] == b"v1", what="web to serve")

    os.kill(first, signal.SIGKILL)  # its exit wakes the group: supervisord restarts it
    second = supervisord.wait_running("web", not_pid=first)
    wait_for(lambda: http_get(("127.0.0.1", port)).split()[0] == b"v1", what="web to serve again")

    # the stop wakes it: SIGTERM is ignored, so only a later pass's SIGKILL ends the stop
    assert supervisord.ctl("stop", "web", check=True).stdout.strip() == "web: stopped"
    assert supervisord.info("web")["statename"] == "STOPPED" and not pid_alive(second)
    assert f"killing 'web' ({second}) with SIGKILL" in supervisord.log.read_text()

    supervisord.ctl("start", "web", check=True)
    third = supervisord.wait_running("web")
    supervisord.rpc.littleboss.reload("web", releases.v2)  # a reload wakes it
    assert supervisord.wait_running("web", not_pid=third)
    assert http_get(("127.0.0.1", port)).split()[0] == b"v2"
    wait_for(lambda: not pid_alive(third), what="the replaced process to be stopped")

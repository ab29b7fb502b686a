"""The swapped-in binary survives update, `supervisorctl reload` and a supervisord restart;
the configuration wins when its command changes; event listeners hear a truthful story."""
from __future__ import annotations

import sys

import pytest
from harness import APPS, Releases, Supervisord, free_port, http_get, pid_alive, reload_fault, wait_for
from load import Load

pytestmark = pytest.mark.e2e  # each test starts a real supervisord


def web(supervisord: Supervisord, command: str, port: int, **keys) -> None:
    supervisord.littleboss_program("web", command, port, f"{supervisord.root}/releases/*/app", **keys)


def version(port: int) -> str:
    return http_get(("127.0.0.1", port)).split()[0].decode()


def test_the_swapped_in_binary_survives_update_reload_and_restart(supervisord: Supervisord):
    releases = Releases(supervisord.root)
    v1, v2 = releases.v1, releases.v2
    port = free_port()
    web(supervisord, v1, port)
    supervisord.start()
    supervisord.wait_running("web")
    supervisord.rpc.littleboss.reload("web", v2)
    assert supervisord.saved_state("web").path == v2

    with Load(("127.0.0.1", port)) as load:
        pid = supervisord.wait_running("web")
        supervisord.hup()
        assert supervisord.wait_running("web") == pid  # it ran on through supervisord's reload
        assert version(port) == "v2"
        web(supervisord, v1, port, environment="UNRELATED=1")
        assert "web: applied its new configuration" in supervisord.ctl("update", check=True).stdout
        supervisord.wait_running("web", not_pid=pid)
        assert version(port) == "v2"
        load.wait_for_requests(50)
    assert load.result.failed == 0, load.result

    supervisord.stop()
    supervisord.start()
    supervisord.wait_running("web")
    assert version(port) == "v2"
    info = supervisord.rpc.littleboss.getProgramInfo("web")
    assert (info["path"], info["previous_path"]) == (v2, v1)
    assert supervisord.rpc.littleboss.rollback("web")["new_path"] == v1


def test_a_changed_command_in_the_configuration_wins_and_history_says_so(supervisord: Supervisord):
    releases = Releases(supervisord.root)
    v1, v2 = releases.v1, releases.v2
    v1b = releases.add("v1b", "v1b")
    port = free_port()
    web(supervisord, v1, port)
    supervisord.start()
    supervisord.wait_running("web")
    supervisord.rpc.littleboss.reload("web", v2)
    web(supervisord, v1b, port)
    supervisord.ctl("update", check=True)
    supervisord.wait_running("web")
    assert version(port) == "v1b"
    info = supervisord.rpc.littleboss.getProgramInfo("web")
    assert info["path"] == v1b and info["previous_path"] == ""
    # update applied it in place: the swapped-in binary dropped, then the processes swapped to the new command
    assert [(entry["kind"], entry["outcome"]) for entry in info["history"][-2:]] == [
        ("config", "the configured command changed; the swapped-in binary is no longer used"),
        ("config", "succeeded")]


def test_event_listeners_hear_reload_events_and_no_stop_of_a_program_that_kept_serving(supervisord: Supervisord):
    releases = Releases(supervisord.root)
    v1, v2 = releases.v1, releases.v2
    crash = releases.add("crash", "v3", "--mode", "crash")
    events = supervisord.root / "events.log"
    port = free_port()
    web(supervisord, v1, port)
    (supervisord.confd / "recorder.conf").write_text(
        f"[eventlistener:recorder]\ncommand = {sys.executable} {APPS / 'listener.py'} {events}\n"
        "events = PROCESS_STATE, LITTLEBOSS_RELOAD\n")
    supervisord.start()
    supervisord.wait_running("web")
    wait_for(lambda: "PROCESS_STATE_RUNNING processname:web" in events.read_text(), what="web RUNNING event")
    seen = len(events.read_text().splitlines())

    result = supervisord.rpc.littleboss.reload("web", v2)
    reload_fault(lambda: supervisord.rpc.littleboss.reload("web", crash))
    lines = wait_for(lambda: (text := events.read_text()).count("LITTLEBOSS_RELOAD_") >= 4 and text,
                     what="four reload events").splitlines()[seen:]

    reload_events = [line.split()[0] for line in lines if line.startswith("LITTLEBOSS")]
    assert reload_events == ["LITTLEBOSS_RELOAD_STARTED", "LITTLEBOSS_RELOAD_SUCCEEDED",
                             "LITTLEBOSS_RELOAD_STARTED", "LITTLEBOSS_RELOAD_FAILED"]
    succeeded = next(line for line in lines if line.startswith("LITTLEBOSS_RELOAD_SUCCEEDED"))
    assert f"from:{v1} to:{v2} old_pid:{result['old_pid']} new_pid:{result['new_pid']}" in succeeded
    assert not [line for line in lines if line.startswith("PROCESS_STATE") and "processname:web" in line], lines
    wait_for(lambda old=result["old_pid"]: not pid_alive(old), what="the drained old process to exit")

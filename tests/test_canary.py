"""A canary reload of a pool: K processes first, a hold with the check watching them, then the
others; a canary that fails its check during the hold, or an abort, swaps them back. Real
supervisord, a pool of 4, real clients under load."""
from __future__ import annotations

from pathlib import Path

import pytest
from harness import Releases, Supervisord, free_port, make_executable, wait_for
from load import Load

pytestmark = pytest.mark.e2e  # real supervisords, programs and clients

SLOTS = 4
POOL = {"numprocs": SLOTS, "process_name": "%(program_name)s_%(process_num)s"}


def paths(sv: Supervisord) -> list[str]:
    return [Path(process["path"]).parent.name for process in slots(sv)]


def slots(sv: Supervisord) -> list[dict]:
    last = sv.rpc.littleboss.getProgramInfo("pool")["last_reload"]
    return [{"path": last["new_path"] if slot["phase"] in ("draining", "done") else last["old_path"]}
            for slot in last["slots"]]


def phase(sv: Supervisord) -> str:
    return sv.rpc.littleboss.getProgramInfo("pool")["phase"]


@pytest.fixture
def sv(tmp_path):
    sv, sv.releases = Supervisord(tmp_path), Releases(tmp_path)
    # the check fails for a release once the test creates fail.<release> (a process of it is then unhealthy)
    sv.failing = tmp_path / "fail"
    check = make_executable(tmp_path / "checks", "check", f'#!/bin/sh\nrelease=$(basename "$(dirname '
                            f'"$LITTLEBOSS_BINARY")")\ntest ! -e "{sv.failing}.$release"\n', "check")
    sv.port = free_port()
    sv.littleboss_program("pool", sv.releases.v1, sv.port, sv.releases.allow, littleboss_check=check,
                          littleboss_check_interval=0.5, littleboss_check_failures=2, **POOL)
    sv.start()
    wait_for(lambda: all(p["pid"] for p in sv.rpc.littleboss.getProgramInfo("pool")["processes"]), what="the pool")
    yield sv
    sv.stop()


def test_a_canary_holds_then_replaces_the_others(sv):
    with Load(("127.0.0.1", sv.port)) as load:
        load.wait_for_requests(50)
        result = sv.ctl("littleboss:reload", "pool", sv.releases.v2, "--canary", "1", "--hold", "2")
        load.wait_for_requests(50)
    assert result.returncode == 0, result.stdout
    assert "pool: canary: 1 of 4 processes run" in result.stdout and "holding until" in result.stdout
    assert load.result.failed == 0, load.result
    assert sv.rpc.littleboss.getProgramInfo("pool")["path"] == sv.releases.v2 and paths(sv) == ["v2"] * SLOTS
    assert "canary held" in sv.log.read_text()


def test_a_canary_held_until_promoted_and_one_that_fails_its_check_is_swapped_back(sv):
    sv.rpc.littleboss.reloadCanary("pool", sv.releases.v2, 2, -1, False)
    wait_for(lambda: phase(sv) == "holding", what="the canary to hold")
    assert paths(sv) == ["v2", "v2", "v1", "v1"]
    assert sv.ctl("littleboss:promote", "pool").returncode == 0
    wait_for(lambda: phase(sv) == "idle", what="the others to be replaced")
    assert paths(sv) == ["v2"] * SLOTS
    # the next canary turns unhealthy during its hold: swapped back, the others never touched
    with Load(("127.0.0.1", sv.port)) as load:
        load.wait_for_requests(50)
        sv.rpc.littleboss.reloadCanary("pool", sv.releases.v1, 1, 60, False)
        wait_for(lambda: phase(sv) == "holding", what="the canary to hold")
        Path(f"{sv.failing}.v1").touch()
        last = wait_for(lambda: (info := sv.rpc.littleboss.getProgramInfo("pool"))["phase"] == "idle"
                        and info["last_reload"], timeout=30, what="the canary to be swapped back")
        load.wait_for_requests(50)
    assert load.result.failed == 0, load.result
    assert last["phase"] == "failed" and "failed its check 2 times in a row during the canary's hold" in last["error"]
    assert sv.rpc.littleboss.getProgramInfo("pool")["path"] == sv.releases.v2


def test_an_aborted_canary_is_swapped_back(sv):
    sv.rpc.littleboss.reloadCanary("pool", sv.releases.v2, 1, -1, False)
    wait_for(lambda: phase(sv) == "holding", what="the canary to hold")
    result = sv.ctl("littleboss:abort", "pool")
    assert result.returncode == 0 and "swapped back" in result.stdout, result.stdout
    last = wait_for(lambda: (info := sv.rpc.littleboss.getProgramInfo("pool"))["phase"] == "idle"
                    and info["last_reload"], timeout=30, what="the canary to be swapped back")
    assert last["error"].endswith("aborted: littleboss:abort") or "aborted: littleboss:abort" in last["error"]
    assert sv.rpc.littleboss.getProgramInfo("pool")["path"] == sv.releases.v1
    assert sv.ctl("littleboss:promote", "pool").returncode == 1  # nothing holds now

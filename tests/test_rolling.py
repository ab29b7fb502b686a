"""Rolling reloads of numprocs = 4 programs against a real supervisord, under load.

Each process of a pool answers ``VERSION PID``; with a new connection per request the
kernel hands connections to every process accepting on the shared socket, so the pids
that answered over time show how many processes accepted at each moment.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from harness import HTTPAPP, Releases, Supervisord, free_port, http_get, pid_alive, wait_for
from load import Load, Sample

pytestmark = pytest.mark.e2e

SLOTS = 4
PORTS: dict[str, int] = {}
# the load's bound for ten rolling reloads: on a loaded 2-core machine they took over the default 60 s
LONG = 300
# requests a second per client, at most, in the rolling reloads: unbounded clients starve the pool's new
# processes and supervisord of the CPU on 2 cores, and a refusal would still fail many of their requests
RATE = 100


def per_slot(releases: Releases, name: str, slot: int, then: str) -> str:
    """A release whose process in ``slot`` runs ``then``; the others serve as v3."""
    return releases.script(name, f'if [ "$SLOT" = {slot} ]; then {then}; fi\nAPP_VERSION=v3 exec {HTTPAPP}')


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> Releases:
    releases = Releases(tmp_path_factory.mktemp("releases"))
    # the third process's candidate (SLOT=2) cannot start; the others can
    releases.broken_third = per_slot(releases, "brokenthird", 2, "echo 'slot 2: cannot start' >&2; exit 3")
    # the last process runs 1 s, then exits: after the rollout has completed
    releases.last_dies = per_slot(releases, "lastdies", SLOTS - 1,
                                  f"APP_VERSION=v3 exec {HTTPAPP} --mode crash-after-ready --after 1")
    return releases


def pool(sv: Supervisord, name: str, releases: Releases, **keys) -> None:
    PORTS[name] = free_port()
    keys = {"littleboss_settle": 0.3, "littleboss_fallback_window": 0, "littleboss_lameduck": 5, **keys}
    sv.littleboss_program(name, releases.v1, PORTS[name], releases.allow, numprocs=SLOTS,
                          process_name="%(program_name)s_%(process_num)s", environment='SLOT="%(process_num)s"',
                          **keys)


@pytest.fixture(scope="module")
def sv(tmp_path_factory, releases) -> Supervisord:
    """One supervisord for the module, a pool per kind of test: every test that reloads
    "pool" leaves it on v1, where each starts; surge1 and surge2 only alternate v1 and v2;
    "watched" is only reloaded by one test. The tests pass alone and in any order."""
    sv = Supervisord(tmp_path_factory.mktemp("rolling"))
    pool(sv, "surge1", releases)
    pool(sv, "surge2", releases, littleboss_surge=2)
    pool(sv, "pool", releases)
    pool(sv, "watched", releases, littleboss_fallback_window=30)
    sv.start()
    yield sv
    sv.stop()


def address(name: str) -> tuple[str, int]:
    return ("127.0.0.1", PORTS[name])


def processes(sv: Supervisord, name: str) -> list[dict]:
    return [p for p in sv.rpc.supervisor.getAllProcessInfo() if p["group"] == name]


def wait_all_running(sv: Supervisord, name: str) -> list[int]:
    def running():
        infos = processes(sv, name)
        return all(p["statename"] == "RUNNING" for p in infos) and [p["pid"] for p in infos]
    return wait_for(running, what=f"the {SLOTS} processes of {name} RUNNING")


def versions(sv: Supervisord, name: str) -> list[str]:
    """The release each process of ``name`` runs (its APP_VERSION, which the release's script sets)."""
    return [version(p["pid"]) for p in processes(sv, name)]


def version(pid: int, timeout: float = 15) -> str:
    """The APP_VERSION process ``pid`` runs with: its release's script sets it as it execs the app,
    which on a loaded machine may come a moment after the process is RUNNING (startsecs = 0).
    OSError if the process is gone (a caller's wait_for asks again)."""
    deadline = time.monotonic() + timeout
    while True:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        found = next((v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"APP_VERSION=")), None)
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {pid} did not exec its app within {timeout}s")
        time.sleep(0.02)


def fewest_accepting(samples: list[Sample], start: float, end: float) -> int:
    """Over [start, end], the fewest processes that were accepting at once; a process counts
    as accepting from the first answer it gave to the last."""
    spans: dict[str, list[float]] = {}
    for sample in samples:
        if sample.kind == "ok":
            span = spans.setdefault(sample.version, [sample.end, sample.end])
            span[0], span[1] = min(span[0], sample.end), max(span[1], sample.end)
    moments = sorted({t for span in spans.values() for t in span if start <= t <= end})
    return min(sum(lo <= t <= hi for lo, hi in spans.values()) for t in moments)


def first_answer(load: Load, pid: int) -> float:
    """When process ``pid`` first answered (waiting until it has)."""
    # the pool's processes race for each connection on the shared (non-blocking) socket: on a loaded
    # machine a new one may wait a while for its first
    def answered() -> float | None:
        if not load.running():
            raise AssertionError(f"the load ended (its bound) before pid {pid} answered: {load.result}")
        return min((s.end for s in list(load.samples) if s.version == str(pid)), default=None)
    return wait_for(answered, timeout=60, what=f"an answer from pid {pid}")


def pid_of_answer(body: bytes) -> str:
    return body.split()[1].decode()


@pytest.mark.parametrize("name, reloads", [
    pytest.param("surge1", 10, marks=pytest.mark.soak),
    pytest.param("surge2", 10, marks=pytest.mark.soak),
    ("surge1", 2),  # the same steps, where soak tests are left out
    ("surge2", 2),
])
def test_rolling_reloads_with_new_connections_keep_four_processes_accepting(sv, releases, name, reloads):
    pids = wait_all_running(sv, name)
    with Load(address(name), threads=6, record=True, version=pid_of_answer, duration=LONG, rate=RATE) as load:
        start = max(first_answer(load, pid) for pid in pids)
        for n in range(reloads):
            target, expected = (releases.v2, "v2") if n % 2 == 0 else (releases.v1, "v1")
            result = sv.rpc.littleboss.reload(name, target)
            assert (result["slots_done"], result["slots_total"]) == (SLOTS, SLOTS)
            assert versions(sv, name) == [expected] * SLOTS, f"reload {n}"
            # it returned once every replaced process had drained (no connection, no listener); they exit then
            wait_for(lambda old=[slot["old_pid"] for slot in result["slots"]]: not any(map(pid_alive, old)),
                     what="the drained processes to exit")
        final = wait_all_running(sv, name)
        for pid in final:
            first_answer(load, pid)
        load.wait_for_requests(100)
        end = min(max(s.end for s in list(load.samples) if s.version == str(pid)) for pid in final)
    assert load.result.failed == 0, load.result
    assert fewest_accepting(load.samples, start, end) >= SLOTS


@pytest.mark.soak
@pytest.mark.parametrize("name", ["surge1", "surge2"])
def test_ten_rolling_reloads_with_keepalive_connections_fail_no_request(sv, releases, name):
    wait_all_running(sv, name)
    with Load(address(name), threads=4, keepalive=True, duration=LONG, rate=RATE) as load:
        load.wait_for_requests(100)
        for n in range(10):
            target, expected = (releases.v2, "v2") if versions(sv, name)[0] == "v1" else (releases.v1, "v1")
            sv.rpc.littleboss.reload(name, target)
            assert versions(sv, name) == [expected] * SLOTS, f"reload {n}"
        load.wait_for_requests(100)
    assert load.result.failed == 0 and load.result.broken == 0, load.result


def test_a_failure_on_the_third_process_rolls_the_first_two_back(sv, releases):
    old_pids = wait_all_running(sv, "pool")
    with Load(address("pool"), threads=4) as load:
        load.wait_for_requests(100)
        result = sv.ctl("littleboss:reload", "pool", releases.broken_third)
        load.wait_for_requests(100)
    assert result.returncode == 7, result.stdout
    message = result.stdout.splitlines()[-1]
    assert message.startswith(f"ERROR: EXITED_BEFORE_READY: pool: reload to {releases.broken_third} failed: "
                              "pool_2 (slot 3 of 4) exited before it was ready (exit status 3; last output: "
                              "slot 2: cannot start)"), result.stdout
    assert f"the 2 switched processes (pool_0, pool_1) were rolled back to {releases.v1}" in message
    assert "pool: pool_0 (slot 1 of 4): promoted pid" in result.stdout
    assert versions(sv, "pool") == ["v1"] * SLOTS
    pids = [p["pid"] for p in processes(sv, "pool")]
    assert pids[2:] == old_pids[2:] and not set(pids[:2]) & set(old_pids)
    info = sv.rpc.littleboss.getProgramInfo("pool")
    assert info["path"] == releases.v1 and info["history"][-1]["outcome"].startswith("failed: pool_2 (slot 3 of 4)")
    assert load.result.failed == 0, load.result
    wait_for(lambda: not sv.zombie_children(), what="no zombie left")


def test_rollback_of_a_four_process_program(sv, releases):
    wait_all_running(sv, "pool")
    sv.rpc.littleboss.reload("pool", releases.v2)
    with Load(address("pool"), threads=4) as load:
        result = sv.ctl("littleboss:rollback", "pool")
        load.wait_for_requests(50)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].startswith(f"pool: rolled back {releases.v2} \u2192 {releases.v1} "
                                                     "(4 processes: pids ")
    assert versions(sv, "pool") == ["v1"] * SLOTS
    assert load.result.failed == 0, load.result


def test_a_process_that_exits_in_the_fallback_window_rolls_the_whole_program_back(sv, releases):
    wait_all_running(sv, "watched")
    with Load(address("watched"), threads=4) as load:
        sv.rpc.littleboss.reload("watched", releases.last_dies)

        def rolled_back():
            info = sv.rpc.littleboss.getProgramInfo("watched")
            return (info["phase"] == "idle" and not info["draining_pids"]
                    and versions(sv, "watched") == ["v1"] * SLOTS and info)

        info = wait_for(rolled_back, timeout=30, what="the automatic rollback of every process")
        load.wait_for_requests(50)
    assert [entry["kind"] for entry in info["history"][-2:]] == ["reload", "fallback"]
    assert "exited (exit status 4)" in info["history"][-1]["outcome"]
    assert info["last_reload"]["kind"] == "fallback" and info["last_reload"]["slots_total"] == SLOTS - 1
    assert load.result.failed == 0, load.result


def test_sighup_after_a_rollout_keeps_the_new_binary_on_every_process(tmp_path, releases):
    sv = Supervisord(tmp_path)  # its own: SIGHUP restarts every program of a supervisord
    pool(sv, "hup", releases)
    sv.start()
    try:
        wait_all_running(sv, "hup")
        sv.rpc.littleboss.reload("hup", releases.v2)
        sv.hup()
        wait_all_running(sv, "hup")
        assert versions(sv, "hup") == ["v2"] * SLOTS
        assert sv.rpc.littleboss.getProgramInfo("hup")["previous_path"] == releases.v1
    finally:
        sv.stop()


def test_stop_during_a_rollout_stops_every_process_and_the_next_start_runs_the_old_binary(sv, releases):
    wait_all_running(sv, "pool")
    sv.rpc.littleboss.reload("pool", releases.v2, False)
    wait_for(lambda: sv.rpc.littleboss.getProgramInfo("pool")["last_reload"]["slots_done"] >= 2,
             what="two processes switched")
    info = sv.rpc.littleboss.getProgramInfo("pool")
    running = [p["pid"] for p in info["processes"]] + info["candidate_pids"] + info["draining_pids"]
    result = sv.ctl("stop", "pool:*")
    assert result.returncode == 0, result.stdout
    assert not [pid for pid in running if pid and pid_alive(pid)]  # stop returned once every one was gone
    last = sv.rpc.littleboss.getProgramInfo("pool")["last_reload"]
    assert last["phase"] == "failed" and "aborted" in last["error"], last
    assert all(p["statename"] == "STOPPED" for p in processes(sv, "pool"))
    sv.ctl("start", "pool:*", check=True)
    wait_all_running(sv, "pool")
    assert versions(sv, "pool") == ["v1"] * SLOTS


def test_status_shows_each_new_pid_and_every_slot_answers(sv, releases):
    wait_all_running(sv, "pool")
    result = sv.rpc.littleboss.reload("pool", releases.v2)
    infos = processes(sv, "pool")
    assert sorted(p["pid"] for p in infos) == sorted(slot["candidate_pid"] for slot in result["slots"])
    status = sv.ctl("littleboss:status", "pool").stdout
    assert all(f"{p['name']} RUNNING pid {p['pid']}" in status for p in infos), status
    answering = {http_get(address("pool")).split()[1] for _ in range(40)}
    assert len(answering) > 1
    sv.rpc.littleboss.reload("pool", releases.v1)


def test_surge_more_than_numprocs_is_a_config_error(tmp_path, releases):
    sv = Supervisord(tmp_path)
    pool(sv, "toomany", releases, littleboss_surge=5)
    sv.start(wait=False)
    status, output = sv.exit_output()
    assert status != 0 and "littleboss_surge = 5 is more than its numprocs = 4" in output


def test_a_signal_to_one_process_mid_rollout_is_the_rollouts_failure(sv, releases):
    wait_all_running(sv, "pool")
    sv.rpc.littleboss.reload("pool", releases.v2, False)
    first = wait_for(lambda: (s := sv.rpc.littleboss.getProgramInfo("pool")["last_reload"]["slots"][0])["phase"]
                     in ("draining", "done") and s["candidate_pid"], what="the first process switched")
    os.kill(first, signal.SIGTERM)  # it drains and exits 0 on its own: supervisord did not stop it
    wait_for(lambda: sv.rpc.littleboss.getProgramInfo("pool")["last_reload"]["phase"] == "failed",
             what="the rollout to fail")
    wait_for(lambda: versions(sv, "pool") == ["v1"] * SLOTS, what="every process back on v1")


def test_a_process_stopped_on_purpose_stays_stopped_and_starts_on_the_new_binary(sv, releases):
    wait_all_running(sv, "pool")
    sv.ctl("stop", "pool:pool_3", check=True)
    result = sv.rpc.littleboss.reload("pool", releases.v2)
    assert result["slots_total"] == SLOTS - 1
    assert sv.info("pool:pool_3")["statename"] == "STOPPED"
    sv.ctl("start", "pool:pool_3", check=True)
    assert versions(sv, "pool") == ["v2"] * SLOTS
    sv.rpc.littleboss.reload("pool", releases.v1)

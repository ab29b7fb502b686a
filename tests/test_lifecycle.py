"""Unit tests of the reload lifecycle (swaps, rollouts, the fallback watch, launches of a
program that is not running) against a fake group, and of its ticker.

The fake group keeps what the lifecycle may change: each slot's process, the candidates,
the binary each slot's next spawn runs, and (as the binary record) what was committed or
recorded. Its ``accepting()`` counts the processes that accept on the sockets: the slots'
processes and the candidates that are ready (a draining or discarded process no longer
accepts). The fake and the real group are held to the lifecycle's protocols by a test.
"""
from __future__ import annotations

import inspect
import itertools
import os
import select
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from supervisor.states import ProcessStates

from supervisor_littleboss import lifecycle
from supervisor_littleboss.binaries import BinaryRecord
from supervisor_littleboss.config import ReloadSettings
from supervisor_littleboss.contract import DECIDING_PHASES, IDLE, SHOWN_PHASES, Kind, RolloutPhase, SwapPhase
from supervisor_littleboss.faults import LittlebossFaults as F
from supervisor_littleboss.faults import LittlebossRPCError
from supervisor_littleboss.group import LittlebossProcessGroup, extra_due_in
from supervisor_littleboss.lifecycle import Launch, Program, Record, Rollout, Slots
from supervisor_littleboss.process import Role
from supervisor_littleboss.rpcinterface import LittlebossNamespaceRPCInterface
from supervisor_littleboss.ticker import INTERVAL, SOONEST, Ticker
from supervisor_littleboss.web import Littleboss

T0 = 1000.0
OLD, NEW = "/srv/v1/app", "/srv/v2/app"
PIDS = itertools.count(100)


@dataclass
class Process:
    path: str
    startsecs: float = 1
    laststart: float = T0
    pid: int = field(default_factory=lambda: next(PIDS))
    last_pid: int = 0
    notify_ready: bool | None = None  # None: startsecs mode
    ready_at: float = 0.0
    report: str = "exit status 3"

    def __post_init__(self) -> None:
        self.last_pid = self.pid

    def is_ready(self, now: float) -> bool:
        if self.notify_ready is not None:
            return self.notify_ready
        return now - self.laststart >= self.startsecs

    def ready_due(self) -> float | None:
        return None if self.notify_ready is not None else self.laststart + self.startsecs

    def ready_since(self) -> float | None:
        return self.ready_at or None

    def exit_report(self) -> str:
        return self.report


class FakeGroup:
    name = "web"

    def __init__(self, slots: int = 1, **settings) -> None:
        self.settings = ReloadSettings(**settings)
        self.slots = [Process(OLD) for _ in range(slots)]
        self.next_path = [OLD] * slots
        self.candidates: list[Process] = []
        self.discarded: list[Process] = []
        self.committed: list[tuple] = []
        self.recorded: list[tuple] = []
        self.used: list[tuple] = []
        self.observed: list[tuple] = []  # (histogram, seconds)
        self.spawn_fails = set()  # candidate numbers (0-based) whose spawn fails
        self.starting = {}  # pid -> Process made ready by test steps
        self.mood_running = True
        self.lowest_accepting = slots
        self.states: dict[int, str] = {}  # a slot's supervisord state, where not RUNNING/EXITED by its pid
        self.start_fails: set[int] = set()  # slots whose start_slot fails
        self.logged: list[str] = []
        self.checks: list[FakeCheck] = []  # the check runs started, each ending as check_outcomes says
        self.check_outcomes: list = []

    def slot_count(self) -> int:
        return len(self.slots)

    def slot_name(self, slot: int) -> str:
        return f"web_{slot}"

    def serving(self, slot: int) -> Process:
        return self.slots[slot]

    def slot_path(self, slot: int) -> str:
        return self.slots[slot].path

    def start_candidate(self, slot: int, path: str, binary) -> Process:
        candidate = Process(path, laststart=self.now)
        if len(self.candidates) in self.spawn_fails:
            candidate.pid, candidate.report = 0, "spawn error: too many open files"
        self.candidates.append(candidate)
        return candidate

    def promote(self, slot: int, candidate: Process) -> Process:
        old, self.slots[slot] = self.slots[slot], candidate
        return old  # it drains until the test sets its pid to 0

    def discard(self, candidate: Process) -> None:
        self.discarded.append(candidate)
        candidate.pid = 0

    def run_slots_on(self, path: str) -> None:
        self.next_path = [path] * len(self.slots)

    def start_check(self, slot: int, candidate: Process, now: float) -> FakeCheck:
        self.checks.append(FakeCheck(self.check_outcomes))
        return self.checks[-1]

    def statename(self, slot: int) -> str:
        return self.states.get(slot) or ("RUNNING" if self.slots[slot].pid else "EXITED")

    def start_slot(self, slot: int, binary) -> str | None:
        if slot in self.start_fails:
            return "spawn error: no such file"
        self.slots[slot] = Process(self.next_path[slot])
        self.states.pop(slot, None)
        return None

    def supervisord_running(self) -> bool:
        return self.mood_running

    def drained(self, old) -> bool:
        return not old.pid

    # --- the binary record ---------------------------------------------------------
    previous = "/srv/v0/app"

    def commit(self, kind, old_path, new_path, seconds, now):
        self.committed.append((kind, old_path, new_path))
        return "/srv/v0/app"

    def failed(self, kind, old_path, new_path, outcome, seconds, now):
        self.recorded.append((kind, outcome))

    def use(self, path, kind, replaced, previous, outcome, now):
        self.used.append((path, kind, previous, outcome))

    def observe(self, name, seconds):
        self.observed.append((name, seconds))

    def log(self, message: str, error: bool) -> None:
        self.logged.append(message)

    def accepting(self, rollout: Rollout) -> int:
        ready = [s.candidate for s in rollout.swaps if s.phase is SwapPhase.SETTLING]
        return sum(1 for p in self.slots if p.pid) + len(ready)

    @property
    def program(self) -> Program:
        return Program(self, self, self.log)


@pytest.fixture(autouse=True)
def quiet_events(mocker):
    return mocker.patch("supervisor_littleboss.lifecycle.events.notify")


def begin(group: FakeGroup, kind: str = "reload", path: str = NEW) -> Rollout:
    group.now = T0
    rollout = Rollout(group.program, Kind(kind), path, T0)
    rollout.start(T0)
    return rollout


def run(group: FakeGroup, rollout: Rollout, until: float, tick: float = 0.25, drain: bool = True) -> float:
    """Step the rollout every ``tick`` until ``until``; replaced processes exit at once if ``drain``."""
    now = T0
    while now < until and (not rollout.finished or rollout.phase is RolloutPhase.DRAINING):
        now += tick
        group.now = now
        rollout.step(now)
        group.lowest_accepting = min(group.lowest_accepting, group.accepting(rollout))
        if drain:
            for swap in [*rollout.swaps, *(rollout.revert.swaps if rollout.revert else [])]:
                if swap.old is not None:
                    swap.old.pid = 0
    return now


# --- one slot ------------------------------------------------------------------
def test_startsecs_readiness_promotes_when_startsecs_have_passed():
    group = FakeGroup()
    rollout = begin(group)
    rollout.step(T0 + 0.5)
    assert rollout.shown_phase == "starting" and not group.committed
    rollout.step(T0 + 1)
    assert rollout.phase is RolloutPhase.DRAINING  # ready and promoted in the same step
    assert group.slots[0] is group.candidates[0]
    assert group.committed == [("reload", OLD, NEW)]


def test_notify_readiness_waits_for_ready_from_the_main_pid():
    group = FakeGroup(ready="notify")
    rollout = begin(group)
    candidate = group.candidates[0]
    candidate.notify_ready = False
    rollout.step(T0 + 5)
    assert rollout.shown_phase == "starting"
    candidate.notify_ready = True
    rollout.step(T0 + 5.01)
    assert rollout.phase is RolloutPhase.DRAINING


def test_settle_then_promote():
    group = FakeGroup(settle=2)
    rollout = begin(group)
    rollout.step(T0 + 1)
    assert rollout.shown_phase == "settling"
    rollout.step(T0 + 2.9)
    assert rollout.shown_phase == "settling"
    rollout.step(T0 + 3)
    assert rollout.phase is RolloutPhase.DRAINING


@pytest.mark.parametrize("settle, exit_at, code", [(0, T0 + 0.5, 1420), (2, T0 + 2, 1422)])
def test_a_candidate_that_exits_before_promotion_fails_the_reload(settle, exit_at, code):
    group = FakeGroup(settle=settle)
    rollout = begin(group)
    rollout.step(T0 + 1 if settle else T0 + 0.1)
    group.candidates[0].pid = 0
    rollout.step(exit_at)
    assert rollout.phase is RolloutPhase.FAILED and rollout.failure.code == code
    assert "exit status 3" in rollout.failure.text
    assert f"pid {group.slots[0].pid} keeps serving {OLD}" in rollout.failure.text
    assert group.discarded == group.candidates and not group.committed
    assert group.recorded == [("reload", f"failed: {rollout.reason}")]


def test_ready_timeout():
    group = FakeGroup(ready="notify", ready_timeout=5)
    rollout = begin(group)
    group.candidates[0].notify_ready = False
    rollout.step(T0 + 5)
    assert rollout.active
    rollout.step(T0 + 5.1)
    assert rollout.failure.code == 1421


def test_abort_only_before_promotion():
    group = FakeGroup()
    rollout = begin(group)
    rollout.abort("the program is being stopped", T0 + 2)
    assert rollout.failure.code == 1423 and "aborted: the program is being stopped" in rollout.failure.text
    assert group.recorded == [("reload", "failed: aborted: the program is being stopped")]
    promoted = begin(FakeGroup())
    promoted.step(T0 + 1)
    promoted.abort("too late", T0 + 2)
    assert promoted.phase is RolloutPhase.DRAINING and promoted.failure is None


def test_a_spawn_failure_fails_at_once():
    group = FakeGroup()
    group.spawn_fails = {0}
    rollout = begin(group)
    assert rollout.failure.code == 1424 and "too many open files" in rollout.failure.text


def test_draining_ends_when_the_old_process_exits():
    group = FakeGroup()
    rollout = begin(group)
    old = group.slots[0]
    rollout.step(T0 + 1)
    rollout.step(T0 + 1.1)
    assert rollout.phase is RolloutPhase.DRAINING and not rollout.finished
    old.pid = 0
    rollout.step(T0 + 1.2)
    assert rollout.phase is RolloutPhase.DONE and rollout.finished
    assert rollout.result(T0 + 30)["drain_seconds"] == pytest.approx(0.2)


def test_due_in_names_the_next_deadline_of_each_phase():
    startsecs = begin(FakeGroup(ready_timeout=60))  # startsecs = 1: promoted 1 s after the start
    assert startsecs.due_in(T0 + 0.25) == pytest.approx(0.75)
    group = FakeGroup(ready="notify", ready_timeout=60, settle=2)
    notify = begin(group)
    group.candidates[0].notify_ready = False
    assert notify.due_in(T0 + 10) == pytest.approx(50)  # only the ready timeout is timed
    group.candidates[0].notify_ready = True
    notify.step(T0 + 10)
    assert notify.shown_phase == "settling" and notify.due_in(T0 + 11.5) == pytest.approx(0.5)
    notify.step(T0 + 12)
    assert notify.phase is RolloutPhase.DRAINING and notify.due_in(T0 + 12) is None


def test_an_exit_within_the_fallback_window_starts_the_previous_binary():
    group = FakeGroup(fallback_window=30)
    rollout = begin(group)
    run(group, rollout, T0 + 5)
    assert rollout.phase is RolloutPhase.DONE and rollout.watch.until == pytest.approx(T0 + 31)
    group.slots[0].pid = 0
    rollout.serving_exited(0, "exit status 1")
    rollout.step(T0 + 10)
    assert rollout.phase is RolloutPhase.ROLLED_BACK and rollout.successor is None  # the only process restarted
    assert group.used == [(OLD, "fallback", "/srv/v0/app", f"rolled back automatically: {NEW} exited "
                                                            "(exit status 1)")]
    assert group.slots[0].path == OLD and group.slots[0].pid


def test_an_exit_after_the_fallback_window_is_left_to_supervisord():
    group = FakeGroup(fallback_window=30)
    rollout = begin(group)
    run(group, rollout, T0 + 5)
    rollout.step(T0 + 40)
    rollout.serving_exited(0, "exit status 1")
    rollout.step(T0 + 41)
    assert rollout.phase is RolloutPhase.DONE and not group.used


# --- several slots ---------------------------------------------------------------
@pytest.mark.parametrize("surge", [1, 2, 4])
def test_a_rollout_replaces_every_slot_never_more_than_surge_at_once_nor_fewer_than_n_accepting(surge):
    group = FakeGroup(slots=4, surge=surge)
    rollout = begin(group)
    most = 0
    now = T0
    while rollout.phase is not RolloutPhase.DONE and now < T0 + 20:
        most = max(most, sum(swap.in_flight for swap in rollout.swaps))
        now = run(group, rollout, now + 0.25)
    assert rollout.phase is RolloutPhase.DONE and most == surge
    assert [p.path for p in group.slots] == [NEW] * 4 and group.slots == group.candidates
    assert group.lowest_accepting == 4
    assert group.committed == [("reload", OLD, NEW)]  # once, when the last slot is promoted
    result = rollout.result(T0 + 30)
    assert (result["slots_done"], result["slots_total"]) == (4, 4)
    assert [slot["phase"] for slot in result["slots"]] == ["done"] * 4


def test_slots_start_in_order_each_after_the_one_before_is_promoted():
    group = FakeGroup(slots=3)
    rollout = begin(group)
    assert [s.phase for s in rollout.swaps] == [SwapPhase.STARTING, SwapPhase.WAITING, SwapPhase.WAITING]
    rollout.step(T0 + 1)  # slot 0 promoted, slot 1 started in the same step
    assert [s.phase for s in rollout.swaps] == [SwapPhase.DRAINING, SwapPhase.STARTING, SwapPhase.WAITING]
    assert group.committed == []


def test_a_failure_on_slot_3_of_4_swaps_the_switched_slots_back():
    group = FakeGroup(slots=4)
    old_pids = [p.pid for p in group.slots]
    group.spawn_fails = {2}
    rollout = begin(group)
    run(group, rollout, T0 + 20)
    assert rollout.phase is RolloutPhase.FAILED and rollout.failure.code == 1424
    text = rollout.failure.text
    assert text.startswith(f"SPAWN_FAILED: web: reload to {NEW} failed: web_2 (slot 3 of 4) could not spawn it")
    assert "the 2 switched processes (web_0, web_1) were rolled back to /srv/v1/app" in text
    assert [p.path for p in group.slots] == [OLD] * 4
    assert [p.pid for p in group.slots][2:] == old_pids[2:]  # never replaced
    assert group.lowest_accepting == 4
    assert group.committed == [] and len(group.recorded) == 1
    assert group.next_path == [OLD] * 4  # a respawn runs the old binary
    assert rollout.finished


def test_a_new_process_that_exits_mid_rollout_fails_it_and_its_slot_restarts_on_the_old_binary():
    group = FakeGroup(slots=3)
    rollout = begin(group)
    run(group, rollout, T0 + 1.1)  # slot 0 promoted
    group.slots[0].pid = 0
    rollout.serving_exited(0, "exit status 2")
    run(group, rollout, T0 + 10)
    assert rollout.failure.code == 1425 and "exit status 2" in rollout.failure.text
    assert [p.path for p in group.slots] == [OLD] * 3 and all(p.pid for p in group.slots)


def test_abort_mid_rollout_discards_candidates_and_leaves_the_old_binary_for_the_next_start():
    group = FakeGroup(slots=4)
    rollout = begin(group)
    run(group, rollout, T0 + 1.1)
    rollout.abort("the program is being stopped", T0 + 2)
    assert rollout.failure.code == 1423 and rollout.revert is None
    assert group.next_path == [OLD] * 4 and group.discarded == [group.candidates[1]]
    assert "its processes are stopped with the program" in rollout.failure.text


def test_a_fallback_restarts_the_dead_slot_and_swaps_the_living_ones_back():
    group = FakeGroup(slots=3, fallback_window=30)
    rollout = begin(group)
    run(group, rollout, T0 + 10)
    assert rollout.phase is RolloutPhase.DONE
    group.slots[1].pid = 0
    rollout.serving_exited(1, "exit status 1")
    rollout.step(T0 + 11)
    fallback = rollout.successor
    assert rollout.phase is RolloutPhase.ROLLED_BACK and fallback.kind == "fallback"
    assert [swap.slot for swap in fallback.swaps] == [0, 2]
    group.now = T0 + 11
    run(group, fallback, T0 + 30)
    assert fallback.phase is RolloutPhase.DONE and [p.path for p in group.slots] == [OLD] * 3
    assert [u[1] for u in group.used] == ["fallback"] and group.committed == [("reload", OLD, NEW)]


# --- the ticker ------------------------------------------------------------------
@pytest.fixture
def ticker(mocker):
    ticker = Ticker()
    ticker.settime = mocker.patch.object(ticker, "_settime")
    ticker.clock = mocker.patch("supervisor_littleboss.ticker.time.monotonic", return_value=100.0)
    yield ticker
    os.close(ticker.fd)


def test_each_pass_the_ticker_is_set_to_the_earliest_deadline_asked_for_in_the_pass_before(ticker, mocker):
    ticker.wake_in(None)
    assert not ticker.readable() and not ticker.settime.called  # idle: disarmed, not polled
    ticker.keep_ticking()  # a reload runs: a pass within INTERVAL at the latest
    for seconds in (0.5, 0.010, 0.015, 0.002, INTERVAL):  # a later deadline never puts off an earlier one
        ticker.wake_in(seconds)
    assert not ticker.settime.called  # set when the next pass begins
    assert ticker.readable() and ticker.settime.call_args_list == [mocker.call(pytest.approx(0.002))]
    ticker.clock.return_value = 100.5
    ticker.handle_read_event()  # gone off
    assert not ticker.readable()  # (asked again after its read: nothing changes before the next pass)
    ticker.wake_in(-1)  # overdue: soon, never at once
    assert ticker.readable() and ticker.settime.call_args[0] == (pytest.approx(SOONEST),)
    assert not ticker.readable() and ticker.settime.call_args[0] == (0,)  # nothing asked for: disarmed


def test_a_deadline_nobody_asks_for_any_more_wakes_nothing(ticker, mocker):
    ticker.keep_ticking()
    ticker.wake_in(0.2)  # say a drain poll, for a process that has exited by the next pass
    assert ticker.readable() and ticker.due == pytest.approx(100.2)
    ticker.clock.return_value = 100.01
    ticker.wake_in(1.0)  # still asked for: the reload's next deadline; the reload is over
    assert ticker.readable() and ticker.settime.call_args == mocker.call(pytest.approx(1.0))


@pytest.mark.parametrize(("role", "state", "delay", "poll", "due"), [
    (Role.DRAINING, ProcessStates.STOPPING, 130.0, 100.2, 0.2),  # its rollout's next drain poll
    (Role.DRAINING, ProcessStates.STOPPING, 130.0, 99.0, 30.0),  # a poll nobody asks for (no busy loop)
    (Role.DISCARDED, ProcessStates.STOPPING, 101.5, 0.0, 1.5),  # SIGKILL after the lameduck
    (Role.CANDIDATE, ProcessStates.STARTING, 101.0, 0.0, None),  # its reload moves it
], ids=["drain-poll", "drain-poll-not-asked", "lameduck", "candidate"])
def test_a_candidate_or_replaced_process_wakes_the_loop_only_for_its_own_deadlines(role, state, delay, poll, due):
    process = SimpleNamespace(role=role, state=state, delay=delay, next_drain_poll=poll, drained_at=0.0)
    assert extra_due_in(process, 100.0) == (None if due is None else pytest.approx(due))


def test_the_ticker_wakes_a_poll_when_its_deadline_comes():
    ticker = Ticker()
    try:
        poller = select.poll()
        poller.register(ticker.fd, select.POLLIN)
        assert poller.poll(0) == []
        ticker.wake_in(0.01)
        assert ticker.readable()  # a pass begins
        assert poller.poll(5000) == [(ticker.fd, select.POLLIN)]  # within 5 s: a deadline, not a sleep
        ticker.handle_read_event()
        assert not ticker.readable() and poller.poll(0) == []
        assert not ticker.readable()  # the next pass: nothing asked for
    finally:
        os.close(ticker.fd)


# --- littleboss_check ------------------------------------------------------------
class FakeCheck:
    """A check run that ends (passed or not) when the test says."""

    def __init__(self, outcomes: list) -> None:
        self.outcome, self.stopped = outcomes.pop(0) if outcomes else None, False

    def poll(self, now: float):
        return self.outcome

    def stop(self) -> None:
        self.stopped = True


def checked_group(outcomes: list, **settings) -> FakeGroup:
    group = FakeGroup(check=("/bin/check",), check_interval=1, **settings)
    group.check_outcomes = outcomes
    return group


def test_a_check_that_fails_twice_then_passes_holds_promotion_until_it_passes():
    group = checked_group([(False, "exit status 1"), (False, "exit status 1"), (True, "exit status 0")])
    rollout = begin(group)
    rollout.step(T0 + 1)  # ready: the first run starts, fails
    assert rollout.shown_phase == "checking" and len(group.checks) == 1
    rollout.step(T0 + 1.5)  # within the interval: no new run
    assert len(group.checks) == 1 and rollout.swaps[0].info()["check"] == "exit status 1"
    rollout.step(T0 + 2)
    rollout.step(T0 + 3)  # the third run passes; settle 0: promoted at once (and watched: a fourth)
    assert len(group.checks) == 4 and rollout.phase is RolloutPhase.DRAINING


def test_a_check_that_fails_after_promotion_within_the_window_rolls_the_program_back():
    passes, fails = (True, "exit status 0"), (False, "exit status 1; last output: 503")
    group = checked_group([passes, passes, passes, fails, fails, fails], fallback_window=30, check_failures=3)
    rollout = begin(group)
    run(group, rollout, T0 + 2)  # ready, checked, promoted; the watch's checks pass
    assert rollout.phase is RolloutPhase.DONE and group.used == []
    for tick in range(1, 25):  # then fail three times in a row
        rollout.step(T0 + 2 + tick / 4)
    assert rollout.phase is RolloutPhase.ROLLED_BACK and rollout.watch is None and rollout.successor is not None
    assert group.used == [(OLD, "fallback", "/srv/v0/app", f"rolled back automatically: {NEW} failed its check "
                           "3 times in a row after its promotion (last: exit status 1; last output: 503)")]
    assert "check failed after its promotion (2 of 3 in a row): exit status 1; last output: 503" in group.logged


@pytest.mark.parametrize("settings", [{"check_after_promotion": False}, {"fallback_window": 1}],
                         ids=["not-after-promotion", "after-the-window"])
def test_a_check_that_fails_after_promotion_but_unwatched_changes_nothing(settings):
    group = checked_group([(True, "exit status 0")] + [(False, "exit status 1")] * 20,
                          **{"fallback_window": 30, **settings})
    rollout = begin(group)
    run(group, rollout, T0 + 2)
    for tick in range(1, 40):
        rollout.step(T0 + 2 + tick / 4)
    assert rollout.phase is RolloutPhase.DONE and group.used == []


def test_a_check_that_never_passes_fails_the_reload_with_its_last_result():
    group = checked_group([(False, "exit status 2; last output: db down")] * 10, ready_timeout=5)
    rollout = begin(group)
    for t in range(1, 8):
        rollout.step(T0 + t)
    assert rollout.failure.code == 1426 and group.discarded == group.candidates
    assert "its check did not pass within 5s (littleboss_ready_timeout); last run: exit status 2; last output: " \
           "db down" in rollout.failure.text


def test_a_running_check_is_stopped_with_its_candidate():
    group = checked_group([None])  # a run that never ends by itself
    rollout = begin(group)
    rollout.step(T0 + 1)
    rollout.abort("the program is being stopped", T0 + 2)
    assert group.checks[0].stopped and rollout.failure.code == 1423


# --- the protocols -----------------------------------------------------------------
def members(protocol: type) -> dict[str, inspect.Signature | None]:
    """A protocol's members: each method's signature, None for an attribute or a property."""
    names = [*vars(protocol).get("__annotations__", {}),
             *(name for name in vars(protocol) if not name.startswith("_"))]
    return {name: inspect.signature(value) if inspect.isfunction(value := vars(protocol).get(name)) else None
            for name in names}


def parameters(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


@pytest.mark.parametrize(("implementation", "protocol"), [
    (LittlebossProcessGroup, Slots), (FakeGroup, Slots), (BinaryRecord, Record), (FakeGroup, Record),
    (LittlebossNamespaceRPCInterface, Littleboss)])
def test_every_implementation_has_every_member_of_its_protocol(implementation, protocol):
    """The group, the binary record and the fake for the lifecycle; the XML-RPC namespace for the page."""
    for name, signature in members(protocol).items():
        assert hasattr(implementation, name) or name in implementation.__init__.__code__.co_names, name
        if signature is not None:
            assert parameters(getattr(implementation, name)) == parameters(getattr(protocol, name)), name


def test_the_method_help_names_every_phase_and_kind():
    """system.methodHelp serves these docstrings: they name what getProgramInfo and reload answer."""
    info, reload = (getattr(LittlebossNamespaceRPCInterface, name).__doc__ for name in ("getProgramInfo", "reload"))
    assert all(phase in info for phase in (IDLE, *DECIDING_PHASES))
    words = {*SHOWN_PHASES, *(phase.value for phase in SwapPhase), *(kind.value for kind in Kind
                                                                       if kind.asked_for or kind is Kind.FALLBACK)}
    assert [word for word in sorted(words - {IDLE}) if word not in " ".join(reload.split())] == []


def test_a_phase_changes_only_along_the_edge_table():
    rollout = begin(FakeGroup())
    with pytest.raises(RuntimeError, match="Swap cannot go from starting to done"):
        rollout.swaps[0]._to(SwapPhase.DONE)
    with pytest.raises(RuntimeError, match="Rollout cannot go from running to done"):
        rollout._to(RolloutPhase.DONE)


# --- a program that is not running ---------------------------------------------------
class Binary:
    path, closed = NEW, False

    def close(self) -> None:
        self.closed = True


def launch(group: FakeGroup, *states: str, kind: Kind = Kind.RELOAD) -> Launch:
    group.states = dict(enumerate(states))
    for slot, state in enumerate(states):
        if state != "RUNNING":
            group.slots[slot].pid = 0
    binary = Binary()
    started = lifecycle.begin(group.program, kind, binary, T0)
    assert isinstance(started, Launch) and binary.closed
    return started


def test_a_stopped_program_only_records_the_binary_for_its_next_start():
    group = FakeGroup(slots=2)
    started = launch(group, "STOPPED", "STOPPED")
    assert started.finished and started.failure is None and group.next_path == [NEW, NEW]
    assert group.used == [(NEW, Kind.RELOAD, OLD, "recorded for the next start (it was STOPPED)")]
    result = started.result(T0)
    assert (result["phase"], result["slots_total"], result["new_path"]) == ("recorded", 0, NEW)
    assert result["message"] == f"web: is STOPPED: nothing was started; {NEW} is the binary " \
                                "`supervisorctl start web` runs"


def test_a_failed_program_is_started_on_the_new_binary_and_followed_until_it_runs():
    group = FakeGroup(slots=2)
    started = launch(group, "FATAL", "STOPPED")
    assert group.slots[0].path == NEW and group.slots[0].pid and not group.slots[1].pid  # a stopped slot stays
    assert group.used == [(NEW, Kind.RELOAD, "/srv/v0/app", "started (it was FATAL)")]
    group.states[0] = "STARTING"
    assert not started.finished
    group.states[0] = "RUNNING"
    assert started.finished and started.failure is None
    result = started.result(T0)
    assert (result["phase"], result["new_pid"], result["slots_done"]) == ("started", group.slots[0].pid, 1)
    assert set(result) == set(begin(FakeGroup()).result(T0))  # one shape for every reload


def test_a_started_program_that_does_not_reach_running_fails_the_launch():
    group = FakeGroup()
    started = launch(group, "EXITED")
    group.states[0] = "BACKOFF"
    assert started.finished and started.failure.code == F.EXITED_BEFORE_READY
    assert started.failure.text == f"EXITED_BEFORE_READY: web: {NEW} did not start: web_0 is BACKOFF (exit status 3)"


def test_a_launch_whose_process_cannot_spawn_is_refused_at_once():
    group = FakeGroup()
    group.start_fails = {0}
    with pytest.raises(LittlebossRPCError, match=f"SPAWN_FAILED: web: could not start {NEW}: spawn error"):
        launch(group, "FATAL")


def test_a_rollback_of_a_stopped_program_keeps_the_binary_it_leaves_as_previous():
    group = FakeGroup()
    launch(group, "STOPPED", kind=Kind.ROLLBACK)
    assert group.used == [(NEW, Kind.ROLLBACK, OLD, "recorded for the next start (it was STOPPED)")]


# --- a canary ------------------------------------------------------------------------
def canary(group: FakeGroup, count: int, hold: float | None) -> Rollout:
    group.now = T0
    rollout = Rollout(group.program, Kind.RELOAD, NEW, T0, slots=list(range(group.slot_count())), canary=count,
                      hold=hold)
    rollout.start(T0)
    return rollout


def step_until(group: FakeGroup, rollout: Rollout, until: float, since: float = T0) -> None:
    for tick in range(1, round((until - since) * 4) + 1):
        group.now = since + tick / 4
        rollout.step(since + tick / 4)
        for swap in rollout.swaps:
            if swap.old is not None:
                swap.old.pid = 0


def test_a_canary_swaps_its_slots_holds_then_goes_on_with_the_others():
    group = FakeGroup(slots=4)
    rollout = canary(group, 1, hold=5)
    step_until(group, rollout, T0 + 3)
    assert rollout.phase is RolloutPhase.HOLDING and [swap.promoted for swap in rollout.swaps] == [True] + [False] * 3
    assert rollout.info(T0 + 3)["held_until"] == pytest.approx(rollout.held_since + 5)
    assert rollout.due_in(T0 + 3) == pytest.approx(rollout.held_since + 5 - (T0 + 3))
    step_until(group, rollout, T0 + 12, since=T0 + 3)
    assert rollout.phase is RolloutPhase.DONE and all(swap.promoted for swap in rollout.swaps)
    assert any(line.startswith("canary: 1 process of 4 run") for line in group.logged)


def test_a_canary_held_until_promoted_waits_for_promote():
    group = FakeGroup(slots=3)
    rollout = canary(group, 2, hold=None)
    step_until(group, rollout, T0 + 60)
    assert rollout.phase is RolloutPhase.HOLDING and rollout.info(T0 + 60)["held_until"] == -1
    rollout.promote()
    step_until(group, rollout, T0 + 65, since=T0 + 60)
    assert rollout.phase is RolloutPhase.DONE


def test_a_canary_that_fails_its_check_during_the_hold_is_swapped_back():
    passes, fails = (True, "exit status 0"), (False, "exit status 1")
    group = checked_group([passes, fails, fails, fails] + [passes] * 5, slots=4, check_failures=3)  # then the revert
    rollout = canary(group, 1, hold=30)
    step_until(group, rollout, T0 + 10)
    assert rollout.phase is RolloutPhase.FAILED and rollout.failure.code == 1426
    assert "failed its check 3 times in a row during the canary's hold" in rollout.failure.text
    assert all(swap.phase is SwapPhase.FAILED for swap in rollout.swaps[1:])  # the others never started
    assert rollout.revert is not None and rollout.revert.kind is Kind.REVERT


def test_an_aborted_canary_is_swapped_back():
    group = FakeGroup(slots=2)
    rollout = canary(group, 1, hold=None)
    step_until(group, rollout, T0 + 3)
    rollout.cancel("littleboss:abort", T0 + 3)
    step_until(group, rollout, T0 + 8, since=T0 + 3)
    assert rollout.phase is RolloutPhase.FAILED and rollout.failure.code == 1423
    assert [group.slots[slot].path for slot in range(2)] == [OLD, OLD]

"""Unit tests (pytest-mock) of the reload state machine's transitions and its ticker."""
from __future__ import annotations

import os

import pytest

from supervisor_littleboss.config import ReloadSettings
from supervisor_littleboss.reload import Phase, Reload
from supervisor_littleboss.ticker import INTERVAL, Ticker

T0 = 1000.0


@pytest.fixture
def make(mocker):
    def make(**settings) -> tuple[Reload, object, object]:
        mocker.patch("supervisor_littleboss.reload.events.notify")
        group = mocker.Mock()
        group.config.name = "web"
        group.config.littleboss.reload = ReloadSettings(**settings)
        group.current = mocker.Mock(pid=100)
        group.current_path.return_value = "/srv/v1/app"
        candidate = mocker.Mock(pid=200, last_pid=200, laststart=T0, notify=None, spawnerr=None)
        candidate.config.startsecs = 1
        candidate.spawn.return_value = 200
        candidate.exit_report.return_value = "exit status 3"
        group.make_candidate.return_value = candidate
        reload = Reload(group, mocker.Mock(path="/srv/v2/app"))
        reload.started_at = T0
        reload.start()
        return reload, group, candidate
    return make


def test_startsecs_readiness_promotes_when_startsecs_have_passed(make):
    reload, group, candidate = make()
    reload.step(T0 + 0.5)
    assert reload.phase is Phase.STARTING and not group.promote.called
    reload.step(T0 + 1)
    assert reload.phase is Phase.DRAINING  # ready and promoted in the same step
    group.promote.assert_called_once_with(candidate, group.current)
    group.remember_swap.assert_called_once_with("/srv/v1/app", "/srv/v2/app")


def test_notify_readiness_waits_for_ready_from_the_main_pid(make, mocker):
    reload, group, candidate = make(ready="notify")
    candidate.notify = mocker.Mock(ready=False)
    reload.step(T0 + 5)
    assert reload.phase is Phase.STARTING
    candidate.notify.ready = True
    reload.step(T0 + 5.01)
    assert reload.phase is Phase.DRAINING


def test_settle_then_promote(make):
    reload, group, candidate = make(settle=2)
    reload.step(T0 + 1)
    assert reload.phase is Phase.SETTLING
    reload.step(T0 + 2.9)
    assert reload.phase is Phase.SETTLING
    reload.step(T0 + 3)
    assert reload.phase is Phase.DRAINING


@pytest.mark.parametrize("settle, exit_at, code", [(0, T0 + 0.5, 1420), (2, T0 + 2, 1422)])
def test_a_candidate_that_exits_before_promotion_fails_the_reload(make, settle, exit_at, code):
    reload, group, candidate = make(settle=settle)
    reload.step(T0 + 1 if settle else T0 + 0.1)
    candidate.pid = 0
    reload.step(exit_at)
    assert reload.phase is Phase.FAILED and reload.failure.code == code
    assert "exit status 3" in reload.failure.text
    group.discard_candidate.assert_called_once_with(candidate)
    assert not group.promote.called


def test_ready_timeout(make, mocker):
    reload, group, candidate = make(ready="notify", ready_timeout=5)
    candidate.notify = mocker.Mock(ready=False)
    reload.step(T0 + 5)
    assert reload.phase is Phase.STARTING
    reload.step(T0 + 5.1)
    assert reload.failure.code == 1421


def test_abort_only_before_promotion(make):
    reload, group, candidate = make()
    reload.abort("the program is being stopped")
    assert reload.failure.code == 1423 and "aborted: the program is being stopped" in reload.failure.text
    promoted, _, _ = make()
    promoted.step(T0 + 1)
    promoted.abort("too late")
    assert promoted.phase is Phase.DRAINING and promoted.failure is None


def test_a_spawn_failure_fails_at_once(make, mocker):
    mocker.patch("supervisor_littleboss.reload.events.notify")
    reload, group, candidate = make()
    candidate.spawn.return_value = None
    candidate.spawnerr = "too many open files"
    reload.start()
    assert reload.failure.code == 1424 and "too many open files" in reload.failure.text


def test_draining_ends_when_the_old_process_exits(make):
    reload, group, candidate = make()
    reload.step(T0 + 1)
    reload.step(T0 + 1.1)
    assert reload.phase is Phase.DRAINING
    group.current.pid = 0
    reload.step(T0 + 1.2)
    assert reload.phase is Phase.DONE
    assert reload.result()["drain_seconds"] == pytest.approx(0.2)


def test_due_in_names_the_next_deadline_of_each_phase(make, mocker):
    startsecs, _, _ = make(ready_timeout=60)  # startsecs = 1: promoted 1 s after the start
    assert startsecs.due_in(T0 + 0.25) == pytest.approx(0.75)
    notify, _, candidate = make(ready="notify", ready_timeout=60, settle=2)
    assert notify.due_in(T0 + 10) == pytest.approx(50)  # only the ready timeout is timed
    candidate.notify = mocker.Mock(ready=True)
    notify.step(T0 + 10)
    assert notify.phase is Phase.SETTLING and notify.due_in(T0 + 11.5) == pytest.approx(0.5)
    notify.step(T0 + 12)
    assert notify.phase is Phase.DRAINING and notify.due_in(T0 + 12) is None


@pytest.fixture
def ticker(mocker):
    ticker = Ticker()
    ticker.settime = mocker.patch.object(ticker, "_settime")
    yield ticker
    os.close(ticker.fd)


def test_the_ticker_comes_early_only_for_a_deadline_before_its_next_tick(ticker, mocker):
    ticker.wake_in(0.005)
    ticker.settime.assert_not_called()  # idle: not armed, nothing to move
    ticker.keep_ticking()
    ticker.settime.assert_called_once_with(INTERVAL, INTERVAL)
    for seconds in (None, 0, -1, INTERVAL, 0.5):
        ticker.wake_in(seconds)
    ticker.wake_in(0.005)
    assert ticker.settime.call_args_list[1:] == [mocker.call(0.005, INTERVAL)]


def test_a_later_deadline_of_another_program_never_puts_off_an_earlier_one(ticker, mocker):
    ticker.keep_ticking()
    ticker.wake_in(0.010)
    ticker.wake_in(0.015)  # another program's settle ends later: the early tick stays
    ticker.wake_in(0.002)  # and one ending sooner brings it forward
    assert ticker.settime.call_args_list[1:] == [mocker.call(0.010, INTERVAL), mocker.call(0.002, INTERVAL)]

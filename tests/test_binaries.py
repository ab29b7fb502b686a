"""Unit tests of a program's binary record: which binary runs, what rollback returns to, the history."""
from __future__ import annotations

import pytest

from supervisor_littleboss.binaries import BinaryRecord
from supervisor_littleboss.contract import Kind
from supervisor_littleboss.state import HISTORY_LIMIT, ProgramState

CONFIGURED, V2, V3 = "/srv/releases/1/app", "/srv/releases/2/app", "/srv/releases/3/app"
COMMAND = f"{CONFIGURED} --port 8000"
T0 = 1700000000.0


class Saves:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def saves() -> Saves:
    return Saves()


def record(saves: Saves, configured: str = COMMAND, **state) -> BinaryRecord:
    """A record of a program whose configured command is ``configured``, with the state saved as ``state``."""
    return BinaryRecord(ProgramState(**state), configured, lambda: CONFIGURED, saves)


def never_refused(path: str) -> None:
    return None


def test_a_commit_makes_the_new_binary_current_and_the_old_one_previous(saves):
    binaries = record(saves)
    assert binaries.commit(Kind.RELOAD, CONFIGURED, V2, 1.23456, T0) is None
    assert (binaries.swapped_in, binaries.previous, binaries.state.command) == (V2, CONFIGURED, COMMAND)
    assert binaries.history == [{"time": T0, "kind": "reload", "from": CONFIGURED, "to": V2,
                                 "outcome": "succeeded", "seconds": 1.235}]
    assert saves.count == 1


def test_a_commit_back_to_the_configured_binary_keeps_no_swapped_in_path(saves):
    binaries = record(saves, path=V2, previous=CONFIGURED, command=COMMAND)
    assert binaries.commit(Kind.ROLLBACK, V2, CONFIGURED, 1, T0) == CONFIGURED  # the previous it replaced
    assert (binaries.swapped_in, binaries.previous) == (None, V2)


def test_a_re_exec_of_the_same_file_leaves_previous_alone(saves):
    binaries = record(saves, path=V2, previous=CONFIGURED, command=COMMAND)
    binaries.commit(Kind.RELOAD, V2, V2, 1, T0)
    assert (binaries.swapped_in, binaries.previous) == (V2, CONFIGURED)


def test_a_failed_reload_only_adds_history(saves):
    binaries = record(saves, path=V2, previous=CONFIGURED, command=COMMAND)
    binaries.failed(Kind.RELOAD, V2, V3, "failed: it exited", 0.5, T0)
    assert (binaries.swapped_in, binaries.previous) == (V2, CONFIGURED)
    assert binaries.history[-1]["outcome"] == "failed: it exited" and saves.count == 1


def test_use_sets_binary_and_previous_without_a_swap(saves):
    binaries = record(saves, path=V3, previous=V2, command=COMMAND)
    binaries.use(V2, Kind.FALLBACK, V3, CONFIGURED, "rolled back automatically", T0)
    assert (binaries.swapped_in, binaries.previous) == (V2, CONFIGURED)
    assert binaries.history[-1] == {"time": T0, "kind": "fallback", "from": V3, "to": V2,
                                    "outcome": "rolled back automatically"}  # no seconds: nothing ran


def test_the_history_keeps_the_newest_entries(saves):
    binaries = record(saves)
    for i in range(HISTORY_LIMIT + 5):
        binaries.failed(Kind.RELOAD, CONFIGURED, V2, f"failed {i}", 1, T0 + i)
    assert len(binaries.history) == HISTORY_LIMIT and binaries.history[-1]["outcome"] == f"failed {HISTORY_LIMIT + 4}"


def test_a_changed_command_wins_over_the_swapped_in_binary(saves):
    binaries = record(saves, f"{CONFIGURED} --port 9000", path=V2, previous=CONFIGURED, command=COMMAND)
    assert binaries.reconcile(never_refused, T0) is None
    assert (binaries.swapped_in, binaries.previous) == (None, None)
    assert binaries.history[-1]["kind"] == "config" and binaries.history[-1]["to"] == f"{CONFIGURED} --port 9000"


def test_an_unchanged_command_keeps_the_swapped_in_binary(saves):
    binaries = record(saves, path=V2, previous=CONFIGURED, command=COMMAND)
    assert binaries.reconcile(never_refused, T0) is None
    assert (binaries.swapped_in, binaries.previous, binaries.history, saves.count) == (V2, CONFIGURED, [], 0)


@pytest.mark.parametrize(("refused", "runs"), [({V3}, V2), ({V3, V2}, None)])
def test_a_refused_swapped_in_binary_gives_way_to_the_previous_else_the_configured(saves, refused, runs):
    binaries = record(saves, path=V3, previous=V2, command=COMMAND)
    warning = binaries.reconcile(lambda path: f"NO_FILE: {path}" if path in refused else None, T0)
    assert warning == f"the swapped-in binary cannot run (NO_FILE: {V3}); starting {runs or CONFIGURED} instead"
    assert (binaries.swapped_in, binaries.previous) == (runs, None)
    assert binaries.history[-1]["kind"] == "refused" and binaries.history[-1]["outcome"] == warning

"""The words littleboss's public output is made of: reload kinds, phases, history entries.

Every kind and phase that reaches XML-RPC, the state file, events, supervisorctl or the
page is a member of an enum here (str-valued: ``Kind.RELOAD == "reload"``); what goes out
is always its ``.value``, so the output stays plain strings (XML-RPC cannot marshal a str
subclass). The sentences people read are in ``outcome.py``.
"""
from __future__ import annotations

import enum


class Kind(str, enum.Enum):
    """Why a program's binary changed (or was to change): a reload's and a history entry's kind."""

    RELOAD = "reload"  # asked for: littleboss.reload
    ROLLBACK = "rollback"  # asked for: littleboss.rollback
    FALLBACK = "fallback"  # a new binary exited within littleboss_fallback_window
    REVERT = "revert"  # a failed rollout swapping its switched slots back (never recorded)
    CONFIG = "config"  # the configuration changed: applied by a swap, or the swapped-in binary dropped
    REFUSED = "refused"  # the state file's binary would be refused now: another one started
    WATCHDOG = "watchdog"  # a process missed its littleboss_watchdog deadline and was restarted

    @property
    def asked_for(self) -> bool:
        """Asked for by an operator (a reload, a rollback, a changed configuration): recorded,
        announced by events, swapped back on failure, watched."""
        return self in (Kind.RELOAD, Kind.ROLLBACK, Kind.CONFIG)


class SwapPhase(str, enum.Enum):
    """One slot's swap (``lifecycle.Swap``)."""

    WAITING = "waiting"  # not started yet
    STARTING = "starting"  # the candidate runs; not ready yet
    CHECKING = "checking"  # ready; littleboss_check has not passed yet
    SETTLING = "settling"  # ready (and checked): staying up littleboss_settle seconds
    DRAINING = "draining"  # promoted; the replaced process finishes its work
    DONE = "done"  # the replaced process has exited
    FAILED = "failed"  # stopped before promotion: the slot's process stays

    @property
    def in_flight(self) -> bool:
        """A candidate runs that is not promoted yet."""
        return self in (SwapPhase.STARTING, SwapPhase.CHECKING, SwapPhase.SETTLING)

    @property
    def promoted(self) -> bool:
        return self in (SwapPhase.DRAINING, SwapPhase.DONE)


class RolloutPhase(str, enum.Enum):
    """A rollout over a program's slots (``lifecycle.Rollout``), and a start of a program that
    was not running (``lifecycle.Launch``)."""

    RUNNING = "running"  # swaps under way (shown as the phase of the first slot under way)
    HOLDING = "holding"  # a canary: its first slots promoted, the others wait (a time, or a promote)
    DRAINING = "draining"  # every slot promoted; replaced processes finish their work
    DONE = "done"
    ROLLING_BACK = "rolling back"  # a failed rollout swapping its switched slots back
    FAILED = "failed"
    ROLLED_BACK = "rolled back"  # a new process exited within the fallback window
    STARTED = "started"  # a program that had failed was started on the new binary
    RECORDED = "recorded"  # a STOPPED program: the binary its next start runs was recorded

    @property
    def active(self) -> bool:
        """The reload still decides: until every slot is promoted, or the failure's slots are back."""
        return self in (RolloutPhase.RUNNING, RolloutPhase.HOLDING, RolloutPhase.ROLLING_BACK)


IDLE = "idle"  # getProgramInfo's phase when no reload is under way
# every phase getProgramInfo's ``phase`` and a result's ``phase`` can read
SHOWN_PHASES = (IDLE, *(p.value for p in SwapPhase if p is not SwapPhase.WAITING), *(p.value for p in RolloutPhase
                                                                                     if p is not RolloutPhase.RUNNING))
# the phases of a reload that is still deciding (a slot's swap in flight, or swapping back)
DECIDING_PHASES = (*(p.value for p in SwapPhase if p.in_flight), RolloutPhase.HOLDING.value,
                   RolloutPhase.ROLLING_BACK.value)


def history_entry(kind: Kind, old_path: str, new_path: str, outcome: str, now: float,
                  seconds: float | None = None) -> dict:
    """One entry of a program's reload history, as the state file keeps it and getProgramInfo
    returns it: time, kind, from, to, outcome and, for a reload that ran, seconds."""
    entry = {"time": round(now, 3), "kind": kind.value, "from": old_path, "to": new_path, "outcome": outcome}
    if seconds is not None:
        entry["seconds"] = round(seconds, 3)
    return entry


# a history entry's outcome, by how it begins, as the metrics label it (any other: refused)
OUTCOME_LABELS = (("succeeded", "succeeded"), ("failed", "failed"), ("rolled back", "rolled_back"),
                  ("started", "started"), ("recorded", "recorded"))


def outcome_label(outcome: str) -> str:
    """A history entry's outcome as a metric label: succeeded, failed, rolled_back, started,
    recorded or refused."""
    return next((label for prefix, label in OUTCOME_LABELS if outcome.startswith(prefix)), "refused")

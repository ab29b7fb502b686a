"""The whole life of a reload: every way a program gets a new binary.

A program has N slots (its processes ``x:x_0`` ... ``x:x_{N-1}``; N = numprocs). One
slot's **swap** (``SwapPhase``):

    waiting -> starting -> [checking ->] settling -> draining -> done
                   \\            \\             \\
                    `------------`-------------`--> failed(code, reason)

``starting``: a candidate with the new binary runs beside the slot's process on the same
sockets until it answers that it is ready (``startsecs`` up, or ``READY=1`` from its main
pid). ``checking``, with ``littleboss_check``: the command runs every
``littleboss_check_interval`` until it passes. ``settling``: it must stay up
``littleboss_settle`` more seconds. Then it is promoted into the slot and the process it
replaces drains (``draining``, with the lameduck) until it exits (``done``). A failure
before promotion discards the candidate and leaves the slot's process untouched.

The **rollout** (``RolloutPhase``) runs the swaps of every slot in order, at most
``littleboss_surge`` of them before promotion at once, so that at no moment do fewer than
N processes accept:

    running -> draining -> done
        \\          \\        \\
         \\          `--------`--> rolled back (an exit in the fallback window)
          `--> rolling back --> failed  (and running --> failed)

A failed swap stops the rollout: candidates not yet promoted are discarded, and the
slots already switched are swapped back to the old binary by a ``revert`` rollout (zero
downtime), so the program ends on one binary. The binary record (``binaries.py``) changes
once per rollout: when its last slot is promoted, or when it failed. A new process that
exits on its own while the rollout runs fails it the same way. After the last promotion a
``FallbackWatch`` watches the program through ``littleboss_fallback_window``: a new process
that exits on its own in it rolls the whole program back to the previous binary (its dead
slots restart on it at once, the living ones are swapped back by a ``fallback`` rollout).

A program that is not running is not swapped: ``Launch`` starts the slots that failed
(EXITED, BACKOFF, FATAL) on the new binary, or, when every slot was stopped on purpose,
records it for the next start. ``begin()`` chooses; both answer the same result shape.

Everything moves in ``step(now)``, called from the group's ``transition()`` in supervisord's
main loop, and in ``abort()`` and ``serving_exited()``; the time is always passed in. Every
phase change goes through an edge table. The lifecycle talks to the program only through
``Program``: the group's ``Slots``, the binary ``Record`` and a log; it asks processes only
the ``Candidate`` questions, and never reads their internals.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from supervisor import events

from .config import ReloadSettings
from .contract import Kind, RolloutPhase, SwapPhase
from .events import ReloadFailedEvent, ReloadRolledBackEvent, ReloadStartedEvent, ReloadSucceededEvent
from .faults import LittlebossFaults as F
from .faults import LittlebossRPCError
from .outcome import plural, slot_part, step_line
from .validate import CheckedBinary

# supervisord's state names (``statename``) as the lifecycle reads them
SWAPPABLE = ("RUNNING", "STARTING")  # a reload replaces the process (a STARTING one too)
EXITED_ON_ITS_OWN = ("EXITED", "BACKOFF")  # not stopped by supervisord
STARTABLE = ("STOPPED", "EXITED", "BACKOFF", "FATAL")  # not running: a reload starts it, or records


class Candidate(Protocol):
    """What the lifecycle asks of a process (a candidate, or a slot's process)."""

    pid: int  # 0 once it has exited (or if it never started)
    last_pid: int  # its pid, kept after it exited

    def is_ready(self, now: float) -> bool: ...
    def ready_due(self) -> float | None: ...  # when it is ready by time alone (None: only its word)
    def ready_since(self) -> float | None: ...  # when it said READY=1
    def exit_report(self) -> str: ...  # how it ended, with its last output lines


class Check(Protocol):
    """One run of the program's check against a candidate."""

    def poll(self, now: float) -> tuple[bool, str] | None: ...  # (passed, how) once over
    def stop(self) -> None: ...


class Slots(Protocol):
    """What the lifecycle asks of a program's group (``group.LittlebossProcessGroup``)."""

    name: str
    settings: ReloadSettings

    def slot_count(self) -> int: ...
    def slot_name(self, slot: int) -> str: ...  # its process name, e.g. web_2
    def statename(self, slot: int) -> str: ...  # supervisord's state of the slot's process
    def serving(self, slot: int) -> Candidate: ...
    def slot_path(self, slot: int) -> str: ...  # the binary the slot's process runs
    def start_candidate(self, slot: int, path: str, binary: CheckedBinary | None) -> Candidate: ...
    def start_check(self, slot: int, candidate: Candidate, now: float) -> Check: ...
    def promote(self, slot: int, candidate: Candidate) -> Candidate: ...  # returns the replaced process
    def discard(self, candidate: Candidate) -> None: ...
    def run_slots_on(self, path: str) -> None: ...  # the binary every slot's next spawn runs
    def start_slot(self, slot: int, binary: CheckedBinary | None) -> str | None: ...  # why it did not spawn
    def supervisord_running(self) -> bool: ...
    def drained(self, old: Candidate) -> bool: ...  # a replaced process serves no one any more


class Record(Protocol):
    """The program's binary record (``binaries.BinaryRecord``)."""

    @property
    def previous(self) -> str | None: ...
    def commit(self, kind: Kind, old_path: str, new_path: str, seconds: float, now: float) -> str | None: ...
    def failed(self, kind: Kind, old_path: str, new_path: str, outcome: str, seconds: float, now: float) -> None: ...
    def use(self, path: str, kind: Kind, replaced: str, previous: str | None, outcome: str, now: float) -> None: ...
    def observe(self, name: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class Program:
    """Everything the lifecycle works with: the group's slots, the binary record, and a log
    (``log(message, error)``, a line in supervisord's log naming the program)."""

    slots: Slots
    record: Record
    log: Callable[[str, bool], None]

    @property
    def name(self) -> str:
        return self.slots.name


def _move(machine: Swap | Rollout | Launch, phase, edges: dict) -> None:
    """Change ``machine``'s phase along an edge of ``edges``: any other change is a bug."""
    if phase not in edges[machine.phase]:
        raise RuntimeError(f"littleboss: {type(machine).__name__} cannot go from {machine.phase.value} "
                           f"to {phase.value}")
    machine.phase = phase


S = SwapPhase
SWAP_EDGES = {
    S.WAITING: {S.STARTING, S.FAILED}, S.STARTING: {S.CHECKING, S.SETTLING, S.FAILED},
    S.CHECKING: {S.SETTLING, S.FAILED}, S.SETTLING: {S.DRAINING, S.FAILED}, S.DRAINING: {S.DONE},
    S.DONE: set(), S.FAILED: set(),
}
R = RolloutPhase
ROLLOUT_EDGES = {
    R.RUNNING: {R.DRAINING, R.HOLDING, R.ROLLING_BACK, R.FAILED}, R.HOLDING: {R.RUNNING, R.ROLLING_BACK, R.FAILED},
    R.ROLLING_BACK: {R.FAILED},
    R.DRAINING: {R.DONE, R.ROLLED_BACK}, R.DONE: {R.ROLLED_BACK}, R.FAILED: set(), R.ROLLED_BACK: set(),
}
LAUNCH_EDGES = {R.STARTED: {R.FAILED}, R.RECORDED: set(), R.FAILED: set()}
IDS = itertools.count(1)  # every reload's id, of rollouts and launches alike


class Swap:
    """Replace the process of one slot by a candidate running ``path``."""

    def __init__(self, program: Program, slot: int, path: str) -> None:
        self.program, self.group, self.slot, self.path = program, program.slots, slot, path
        self.settings = self.group.settings
        self.phase = SwapPhase.WAITING
        self.old_pid = self.group.serving(slot).pid
        self.old: Candidate | None = None  # the process it replaced, once promoted
        self.candidate: Candidate | None = None
        self.started_at = self.ready_at = self.promoted_at = self.next_check = self.check_started = 0.0
        self.check: Check | None = None  # the check run under way
        self.checked = ""  # how its last check run ended
        self.code, self.reason = 0, ""

    @property
    def part(self) -> str:
        """The slot, when the program has several: ``web_2 (slot 3 of 4)``."""
        return slot_part(self.group.slot_name(self.slot), self.slot, self.group.slot_count())

    @property
    def why(self) -> str:
        """Its failure, naming the slot when the program has several: ``web_2 (slot 3 of 4) exited ...``."""
        part, reason = self.part, self.reason
        if not part:
            return reason
        return f"{part} {reason[3:]}" if reason.startswith("it ") else f"{part} {reason}"

    @property
    def in_flight(self) -> bool:
        return self.phase.in_flight

    @property
    def promoted(self) -> bool:
        return self.phase.promoted

    @property
    def gone(self) -> bool:
        """Nothing of it runs that should not: the candidate (failed) or the old process (promoted)."""
        if self.promoted:
            return self.group.drained(self.old)
        return self.phase is SwapPhase.FAILED and not (self.candidate and self.candidate.pid)

    def _to(self, phase: SwapPhase) -> None:
        _move(self, phase, SWAP_EDGES)

    def _say(self, step: str) -> None:
        part = self.part
        self.program.log(f"{part}: {step}" if part else step, False)

    def start(self, binary: CheckedBinary | None, now: float) -> None:
        self._to(SwapPhase.STARTING)
        self.started_at = now
        self.candidate = self.group.start_candidate(self.slot, self.path, binary)
        if not self.candidate.pid:
            self.fail(F.SPAWN_FAILED, f"could not spawn it: {self.candidate.exit_report()}")
        else:
            self._say(step_line("started", self.candidate.pid))

    def step(self, now: float) -> None:
        candidate, settings = self.candidate, self.settings
        if self.phase is SwapPhase.STARTING:
            if not candidate.pid:
                self.fail(F.EXITED_BEFORE_READY, f"it exited before it was ready ({candidate.exit_report()})")
            elif candidate.is_ready(now):
                self._to(SwapPhase.CHECKING if settings.check else SwapPhase.SETTLING)
                self.ready_at = self.next_check = now
                self.program.record.observe("ready", now - self.started_at)
                self._say(step_line("ready", candidate.pid))
            elif now - self.started_at > settings.ready_timeout:
                self.fail(F.READY_TIMEOUT, f"it was not ready within {settings.ready_timeout:g}s "
                                           f"(littleboss_ready = {settings.ready})")
        if self.phase is SwapPhase.CHECKING:
            self._check(now)
        if self.phase is SwapPhase.SETTLING:
            if not candidate.pid:
                self.fail(F.SETTLE_FAILED, f"it exited {now - self.ready_at:.1f}s after it was ready, "
                                           f"within littleboss_settle ({candidate.exit_report()})")
            elif now - self.ready_at >= settings.settle:
                self._to(SwapPhase.DRAINING)
                self.promoted_at = now
                self.old = self.group.promote(self.slot, candidate)
                self.old_pid = self.old.last_pid if self.old.pid else self.old_pid
                self._say(step_line("promoted", candidate.pid, self.old_pid))
        if self.phase is SwapPhase.DRAINING and self.group.drained(self.old):
            self._to(SwapPhase.DONE)
            self.program.record.observe("drain", now - self.promoted_at)
            self._say(f"old pid {self.old_pid} " + ("is drained" if self.old.pid else "has exited"))

    def _check(self, now: float) -> None:
        """Run the check every interval until it passes; the ready timeout bounds it all."""
        candidate, settings = self.candidate, self.settings
        if not candidate.pid:
            return self.fail(F.EXITED_BEFORE_READY, f"it exited before it passed its check "
                                                    f"({candidate.exit_report()})")
        if self.check is None and now >= self.next_check:
            self.check = self.group.start_check(self.slot, candidate, now)
            self.check_started, self.next_check = now, now + settings.check_interval
        outcome = self.check.poll(now) if self.check is not None else None
        if outcome is not None:
            self.check = None
            passed, self.checked = outcome
            if passed:
                self._to(SwapPhase.SETTLING)
                self.ready_at = now
                self._say(f"candidate pid {candidate.pid} passed its check")
                return
            self._say(f"check of candidate pid {candidate.pid} failed: {self.checked}")
        if now - self.started_at > settings.ready_timeout:
            self.fail(F.CHECK_FAILED, f"its check did not pass within {settings.ready_timeout:g}s "
                                      f"(littleboss_ready_timeout); last run: {self.checked or 'none finished'}")

    def due_in(self, now: float) -> float | None:
        """Seconds until it moves on by time alone (None: only an event moves it)."""
        if self.phase is SwapPhase.CHECKING:
            due = self.started_at + self.settings.ready_timeout
            run_ends = self.check_started + self.settings.check_timeout
            return min(due, self.next_check if self.check is None else run_ends) - now
        if self.phase is SwapPhase.SETTLING:
            return self.ready_at + self.settings.settle - now
        if self.phase is SwapPhase.STARTING:
            due = self.started_at + self.settings.ready_timeout
            ready = self.candidate.ready_due()
            return (due if ready is None else min(due, ready)) - now
        return None

    def fail(self, code: int, reason: str) -> None:
        """Stop before promotion: the candidate (if any) is discarded, the slot's process stays."""
        self._to(SwapPhase.FAILED)
        self.code, self.reason = code, reason
        if self.check is not None:
            self.check.stop()
            self.check = None
        if self.candidate is not None:
            self.group.discard(self.candidate)

    def info(self) -> dict:
        candidate = self.candidate
        return {"slot": self.slot, "process": self.group.slot_name(self.slot), "phase": self.phase.value,
                "old_pid": self.old_pid, "candidate_pid": candidate.last_pid if candidate else 0,
                "check": self.checked, "error": self.reason}


class CheckWatch:
    """``littleboss_check`` run against each promoted process of the program that runs ``path``,
    every ``littleboss_check_interval``; each slot's failures in a row are counted."""

    def __init__(self, program: Program, path: str, when: str) -> None:
        self.program, self.path, self.when = program, path, when  # when: "after its promotion", ...
        self.checks: dict[int, Check] = {}  # the check running against each slot's process
        self.next_check: dict[int, float] = {}
        self.failures: dict[int, int] = {}

    def step(self, now: float) -> tuple[int, str] | None:
        """(a slot, why) once the slot's process failed its check littleboss_check_failures times
        in a row; None meanwhile."""
        group, settings = self.program.slots, self.program.slots.settings
        for slot in range(group.slot_count()):
            process = group.serving(slot)
            if not process.pid or group.slot_path(slot) != self.path:
                continue
            if slot not in self.checks and now >= self.next_check.get(slot, 0.0):
                self.checks[slot] = group.start_check(slot, process, now)
                self.next_check[slot] = now + settings.check_interval
            outcome = self.checks[slot].poll(now) if slot in self.checks else None
            if outcome is None:
                continue
            del self.checks[slot]
            passed, how = outcome
            self.failures[slot] = 0 if passed else self.failures.get(slot, 0) + 1
            if passed:
                continue
            failures, part = self.failures[slot], slot_part(group.slot_name(slot), slot, group.slot_count())
            self.program.log(f"{part + ': ' if part else ''}check failed {self.when} ({failures} of "
                             f"{settings.check_failures} in a row): {how}", True)
            if failures >= settings.check_failures:
                self.stop()
                return slot, f"failed its check {failures} times in a row {self.when} (last: {how})"
        return None

    def due_in(self, now: float) -> float | None:
        """Seconds until the next check is due (None: none is)."""
        dues = [due - now for slot, due in self.next_check.items() if slot not in self.checks]
        return max(0.0, min(dues)) if dues else None

    def stop(self) -> None:
        """No check runs any more."""
        for check in self.checks.values():
            check.stop()
        self.checks.clear()


class FallbackWatch:
    """After a completed rollout to ``failed_path``: until ``until``, a new process that exits
    on its own, or (with ``littleboss_check``) fails its check ``littleboss_check_failures``
    times in a row, rolls the whole program back to ``previous`` (with ``restore``, the binary
    that was previous before the rollout, previous again)."""

    def __init__(self, program: Program, failed_path: str, previous: str, restore: str | None, until: float) -> None:
        self.program, self.failed_path, self.previous, self.restore = program, failed_path, previous, restore
        self.until = until
        settings = program.slots.settings
        self.checking = CheckWatch(program, failed_path, "after its promotion") \
            if settings.check and settings.check_after_promotion else None
        self.fallback: Rollout | None = None  # once its check failed: the rollout swapping back

    def covers(self, now: float) -> bool:
        return now <= self.until

    def step(self, now: float) -> bool:
        """Watch through the check; once a process failed it, fall back (True; ``fallback`` is the
        rollout that swaps the living processes back, if any)."""
        failed = self.checking.step(now) if self.checking is not None else None
        if failed is None:
            return False
        self.fallback = self.fall_back(*failed, now)
        return True

    def due_in(self, now: float) -> float | None:
        return self.checking.due_in(now) if self.checking is not None else None

    def stop(self) -> None:
        """The window is over, or the program falls back: no check runs any more."""
        if self.checking is not None:
            self.checking.stop()

    def fall_back(self, slot: int, why: str, now: float) -> Rollout | None:
        """Start ``previous`` again (``slot``'s new process ``why``: it exited, or failed its
        check): the dead slots at once; returns the ``fallback`` rollout that swaps the living
        ones back, if any."""
        program, group, failed, previous = self.program, self.program.slots, self.failed_path, self.previous
        part = slot_part(group.slot_name(slot), slot, group.slot_count())
        who = f"{part}: " if part else ""
        program.log(f"{who}{failed} {why} within littleboss_fallback_window of its promotion; "
                    f"starting {previous} again", True)
        program.record.use(previous, Kind.FALLBACK, group.slot_path(0), self.restore,
                           f"rolled back automatically: {failed} {why}", now)
        group.run_slots_on(previous)
        restarted = restart_exited(group)
        events.notify(ReloadRolledBackEvent(program.name, **{"from": failed, "to": previous},
                                            slots=group.slot_count()))
        living = [slot for slot in range(group.slot_count())
                  if slot not in restarted and group.serving(slot).pid and group.slot_path(slot) == failed]
        if not living:
            return None
        fallback = Rollout(program, Kind.FALLBACK, previous, now, slots=living)
        fallback.start(now)
        return fallback


def restart_exited(group: Slots) -> list[int]:
    """Start again, on their command's binary, the slots whose process exited on its own."""
    slots = [slot for slot in range(group.slot_count()) if group.statename(slot) in EXITED_ON_ITS_OWN]
    for slot in slots:
        group.start_slot(slot, None)
    return slots


class Rollout:
    """Replace the processes of ``slots`` (default: every slot) by ones running ``new_path``.

    Reloads and rollbacks (``kind.asked_for``) are recorded, announced by events, swapped
    back when they fail and watched after they complete; a ``revert`` (swapping a failed
    rollout's switched slots back) and a ``fallback`` only run their swaps.
    """

    def __init__(self, program: Program, kind: Kind, new_path: str, now: float,
                 binary: CheckedBinary | None = None, slots: list[int] | None = None,
                 canary: int = 0, hold: float | None = None) -> None:
        self.id = next(IDS)
        self.program, self.group, self.kind, self.new_path, self.binary = program, program.slots, kind, new_path, binary
        self.settings = self.group.settings
        slots = list(range(self.group.slot_count())) if slots is None else slots
        self.old_path = self.group.slot_path(slots[0])
        self.swaps = [Swap(program, slot, new_path) for slot in slots]
        self.phase = RolloutPhase.RUNNING
        self.started_at = now
        self.finished_at: float | None = None  # every slot promoted, or failed
        self.drained_at: float | None = None  # every replaced process exited
        self.code, self.reason = 0, ""  # why it failed
        self.failure: LittlebossRPCError | None = None
        self.revert: Rollout | None = None
        self.exits: list[tuple[int, str]] = []  # (slot, how) of processes that exited on their own
        self._settled = False
        self.watch: FallbackWatch | None = None  # after it completed, through the fallback window
        self.successor: Rollout | None = None  # the fallback rollout that follows it
        self.stopping = True  # aborted because the program is being stopped (else its processes run on)
        # a canary: its first ``canary`` slots are swapped, then it holds ``hold`` seconds (None:
        # until promote()) with the check watching them, before it goes on with the others
        self.canary = canary if 0 < canary < len(self.swaps) else 0
        self.hold, self.held_since, self.promoted_by_hand = hold, 0.0, False
        self.holding: CheckWatch | None = None

    @property
    def name(self) -> str:
        return self.program.name

    @property
    def active(self) -> bool:
        """Until every slot is promoted, or the rollout failed and its slots are back."""
        return self.phase.active

    @property
    def finished(self) -> bool:
        """Nothing runs that should not: no candidate of a failure, no replaced process."""
        if self.active:
            return False
        return all(swap.gone for swap in self.swaps) and (self.revert is None or self.revert.finished)

    @property
    def settled(self) -> bool:
        """Over, and nothing can move it on but a new reload: every process it replaced or
        discarded is gone, its outcome recorded, no fallback window open. Asked every pass of
        supervisord's loop: once true it stays so (none of that comes back) until a slot's
        process exits (``serving_exited``)."""
        if not self._settled:
            self._settled = self.phase in (RolloutPhase.DONE, RolloutPhase.FAILED, RolloutPhase.ROLLED_BACK) \
                and self.watch is None and not self.exits and self.finished
        return self._settled

    @property
    def shown_phase(self) -> str:
        """Its phase as operators read it: a running rollout shows its first slot under way."""
        if self.phase is RolloutPhase.RUNNING:
            return next((swap.phase.value for swap in self.swaps if swap.in_flight), SwapPhase.STARTING.value)
        if self.phase is RolloutPhase.DRAINING and all(swap.gone for swap in self.swaps):
            return RolloutPhase.DONE.value  # the last old process exited since the last step
        return self.phase.value

    def _to(self, phase: RolloutPhase) -> None:
        _move(self, phase, ROLLOUT_EDGES)

    # --- moving on ----------------------------------------------------------------
    def start(self, now: float) -> None:
        if self.kind.asked_for:
            count = len(self.swaps)
            self.program.log(f"{self.kind.value} started: {self.old_path} -> {self.new_path}"
                             + (f" ({count} processes)" if count > 1 else ""), False)
            events.notify(ReloadStartedEvent(self.name, **{"from": self.old_path, "to": self.new_path},
                                             slots=count))
        self.step(now)

    def step(self, now: float) -> None:
        while self.exits:
            self._exited(*self.exits.pop(0), now)
        for swap in self.swaps:
            if swap.phase is SwapPhase.DRAINING:
                swap.step(now)
        if self.revert is not None:
            self.revert.step(now)
            if self.phase is RolloutPhase.ROLLING_BACK and not self.revert.active:
                self._failed(now)
        if self.phase is RolloutPhase.HOLDING:
            self._held(now)
        if self.phase is RolloutPhase.RUNNING:
            self._run(now)
        if self.phase is RolloutPhase.DRAINING and all(swap.gone for swap in self.swaps):
            self._to(RolloutPhase.DONE)
            self.drained_at = now
        if self.watch is not None and not self.watch.covers(now):
            self.watch.stop()
            self.watch = None
        if self.watch is not None and self.group.supervisord_running() and self.watch.step(now):
            self.watch, self.successor = None, self.watch.fallback  # its check failed: it fell back
            self._to(RolloutPhase.ROLLED_BACK)

    def _run(self, now: float) -> None:
        for swap in self.swaps:
            if swap.in_flight:
                swap.step(now)
            if swap.phase is SwapPhase.FAILED:
                return self._fail(swap.code, swap.why, now)
        waiting = self.swaps[:self.canary] if self.canary else self.swaps  # a canary: its slots first
        if self.canary and all(swap.promoted for swap in waiting):
            return self._hold(now)
        for swap in waiting:  # start the next slots, as many as the surge allows
            if swap.phase is SwapPhase.WAITING and sum(s.in_flight for s in self.swaps) < self.settings.surge:
                swap.start(self.binary, now)
                if swap.phase is SwapPhase.FAILED:
                    return self._fail(swap.code, swap.why, now)
        if all(swap.promoted for swap in self.swaps):
            self._complete(now)

    def _hold(self, now: float) -> None:
        """The canary's slots are promoted: hold, the check watching them, before the others."""
        self._to(RolloutPhase.HOLDING)
        self.held_since = now
        if self.settings.check:
            self.holding = CheckWatch(self.program, self.new_path, "during the canary's hold")
        until = f"for {self.hold:g}s" if self.hold is not None else f"until littleboss:promote {self.name}"
        self.program.log(f"canary: {plural(self.canary, 'process')} of {len(self.swaps)} run {self.new_path}; "
                         f"holding {until} (littleboss:abort {self.name} swaps them back)", False)

    def _held(self, now: float) -> None:
        failed = self.holding.step(now) if self.holding is not None else None
        if failed is not None:
            slot, why = failed
            swap = next(swap for swap in self.swaps if swap.slot == slot)
            return self._fail(F.CHECK_FAILED, f"{swap.part + ' ' if swap.part else ''}{self.new_path} {why}", now)
        if self.promoted_by_hand or (self.hold is not None and now >= self.held_since + self.hold):
            if self.holding is not None:
                self.holding.stop()
            self.canary = 0  # every slot now
            self._to(RolloutPhase.RUNNING)
            self.program.log(f"canary held {now - self.held_since:.1f}s: going on with the other "
                             f"{plural(len(self.swaps) - sum(swap.promoted for swap in self.swaps), 'process')}",
                             False)

    def promote(self) -> None:
        """A canary holding until promoted: go on with the other slots (at the next step)."""
        self.promoted_by_hand = True

    def cancel(self, why: str, now: float) -> None:
        """Give up the rollout and swap the slots already switched back (a canary aborted)."""
        if self.active:
            if self.holding is not None:
                self.holding.stop()
            self._fail(F.ABORTED, f"aborted: {why}", now)

    def _complete(self, now: float) -> None:
        self._to(RolloutPhase.DRAINING)
        self.finished_at = now
        self._close_binary()
        if not self.kind.asked_for:
            return
        self.group.run_slots_on(self.new_path)  # a slot left out (stopped) starts on it too
        restore = self.program.record.commit(self.kind, self.old_path, self.new_path, self.seconds(now), now)
        window = self.settings.fallback_window
        if window and self.new_path != self.old_path:
            self.watch = FallbackWatch(self.program, self.new_path, self.old_path, restore, now + window)
        events.notify(ReloadSucceededEvent(self.name, **self._event_values()))

    def _fail(self, code: int, reason: str, now: float) -> None:
        """A swap failed: discard the other candidates, swap the switched slots back."""
        self.code, self.reason = code, reason
        self._stop_swaps("stopped: another process failed")
        if not self.kind.asked_for:  # a revert or fallback: what runs stays; the failure is told
            return self._failed(now)
        self.group.run_slots_on(self.old_path)  # any respawn, from now on, runs the old binary
        restarted = restart_exited(self.group)
        switched = [swap.slot for swap in self.swaps if swap.promoted and swap.slot not in restarted]
        if not switched or not self.group.supervisord_running():
            return self._failed(now)
        self._to(RolloutPhase.ROLLING_BACK)
        self.program.log(f"{self.kind.value} failed: {reason}; swapping {plural(len(switched), 'switched process')}"
                         f" back to {self.old_path}", True)
        self.revert = Rollout(self.program, Kind.REVERT, self.old_path, now, slots=switched)
        self.revert.start(now)
        if not self.revert.active:
            self._failed(now)

    def _failed(self, now: float) -> None:
        self._to(RolloutPhase.FAILED)
        self.finished_at = now
        aftermath = self._aftermath()
        self.failure = LittlebossRPCError(
            self.code, f"{self.name}: {self.kind.value} to {self.new_path} failed: {self.reason}; {aftermath}")
        if not self.kind.asked_for:
            return
        self.program.log(f"{self.kind.value} failed: {self.reason}; {aftermath}", True)
        outcome = f"failed: {self.reason}" + (f"; {aftermath}" if self.revert is not None else "")
        self.program.record.failed(self.kind, self.old_path, self.new_path, outcome, self.seconds(now), now)
        events.notify(ReloadFailedEvent(self.name, reason=self.reason, **self._event_values()))

    def _aftermath(self) -> str:
        """What runs after a failure."""
        group = self.group
        count = group.slot_count()
        if self.code == F.ABORTED:
            fate = "is stopped with the program" if self.stopping else "runs on"
            return f"pid {self.swaps[0].old_pid} {fate}" if count == 1 else \
                f"its processes {'are stopped with the program' if self.stopping else 'run on'}"
        if count == 1:
            old = group.serving(0)
            return f"pid {old.pid} keeps serving {self.old_path}" if old.pid else "the old process is gone"
        said, stuck = [], []
        if self.revert is not None:
            back = [group.slot_name(s.slot) for s in self.revert.swaps if s.promoted]
            stuck = [s for s in self.revert.swaps if not s.promoted]
            if back:
                said.append(f"the {plural(len(back), 'switched process')} ({', '.join(back)}) "
                            f"{'were' if len(back) > 1 else 'was'} rolled back to {self.old_path}")
            said += [f"{group.slot_name(s.slot)} could not be rolled back ({s.reason}): it runs "
                     f"{self.new_path}" for s in stuck]
        pids = ", ".join(str(group.serving(slot).pid) for slot in range(count) if group.serving(slot).pid)
        said.append(f"pids {pids} serve" + ("" if stuck else f" {self.old_path}"))
        return "; ".join(said)

    def abort(self, why: str, now: float, stopping: bool = True) -> None:
        """Stop the rollout before it completes (stop, restart, update, shutdown; supervisord's
        own reload, ``stopping`` false: the processes run on): candidates are discarded and no
        slot is swapped back."""
        if not self.active:
            return
        self.stopping = stopping
        if self.revert is not None:
            self.revert.abort(why, now, stopping)
        self._stop_swaps(f"aborted: {why}")
        if self.kind.asked_for:
            self.group.run_slots_on(self.old_path)  # its next start runs the binary it ran before
        self.code, self.reason = F.ABORTED, f"aborted: {why}"
        self._failed(now)

    def resume(self, program: Program) -> None:
        """Go on with ``program`` (its binary record and log in supervisord's next run, after a
        restart that kept its processes): the fallback window, if open, goes on watching."""
        self.program = program
        for swap in self.swaps:
            swap.program = program
        if self.watch is not None:
            self.watch.program = program
            if self.watch.checking is not None:
                self.watch.checking.program = program

    def serving_exited(self, slot: int, how: str) -> None:
        """A slot's process exited on its own (not stopped by supervisord); acted on in step()."""
        self.exits.append((slot, how))
        self._settled = False

    def _exited(self, slot: int, how: str, now: float) -> None:
        swap = next((swap for swap in self.swaps if swap.slot == slot), None)
        if self.phase in (RolloutPhase.RUNNING, RolloutPhase.HOLDING) and swap is not None and swap.promoted \
                and self.kind.asked_for:
            self._fail(F.EXITED_AFTER_PROMOTION, f"{swap.part + ' ' if swap.part else ''}{self.new_path} exited "
                                                 f"after its promotion ({how})", now)
        elif self.watch is not None and self.watch.covers(now):
            watch, self.watch = self.watch, None
            if self.group.supervisord_running():
                watch.stop()
                self.successor = watch.fall_back(slot, f"exited ({how})", now)
                self._to(RolloutPhase.ROLLED_BACK)

    def due_in(self, now: float) -> float | None:
        """Seconds until the rollout moves on by time alone (None: only an event moves it)."""
        dues = [swap.due_in(now) for swap in self.swaps]
        if self.revert is not None:
            dues.append(self.revert.due_in(now))
        if self.watch is not None:
            dues.append(self.watch.due_in(now))
        if self.phase is RolloutPhase.HOLDING:
            dues.append(self.holding.due_in(now) if self.holding is not None else None)
            dues.append(None if self.hold is None else max(0.0, self.held_since + self.hold - now))
        return min((due for due in dues if due is not None), default=None)

    def _stop_swaps(self, reason: str) -> None:
        """No slot goes on: candidates before promotion are discarded (``ABORTED``, ``reason``),
        slots not started never start, and the checked binary is closed."""
        for swap in self.swaps:
            if swap.in_flight:
                swap.fail(F.ABORTED, reason)
            elif swap.phase is SwapPhase.WAITING:
                swap._to(SwapPhase.FAILED)
        self._close_binary()

    def _close_binary(self) -> None:
        if self.binary is not None:
            self.binary.close()

    # --- what it tells ------------------------------------------------------------
    def seconds(self, now: float) -> float:
        """From its start to its last promotion, or its failure (or now, while it runs)."""
        return (self.finished_at or now) - self.started_at

    def _event_values(self) -> dict:
        first = self.swaps[0]
        return {"from": self.old_path, "to": self.new_path, "old_pid": first.old_pid,
                "new_pid": first.candidate.last_pid if first.candidate else 0, "slots": len(self.swaps)}

    def result(self, now: float) -> dict:
        """What ``littleboss.reload`` returns: ``seconds`` to the last promotion, ``drain_seconds``
        for the replaced processes to exit; a struct per slot."""
        first = self.swaps[0]
        complete = self.phase in (RolloutPhase.DRAINING, RolloutPhase.DONE, RolloutPhase.ROLLED_BACK)
        drained = (self.drained_at or now) - self.finished_at if complete else 0
        return reload_result(
            self, self.shown_phase, first.old_pid, first.candidate.last_pid if first.candidate else 0,
            self.old_path, self.seconds(now), drained, sum(swap.promoted for swap in self.swaps), len(self.swaps),
            [swap.info() for swap in self.swaps], "")

    def info(self, now: float) -> dict:
        """Progress, for ``getProgramInfo`` (``ready_to_promotion``: READY=1 to the promotion of
        the first slot, notify mode)."""
        first = self.swaps[0]
        ready_since = first.candidate.ready_since() if first.candidate and first.promoted else None
        return {
            "ready_to_promotion": round(first.promoted_at - ready_since, 4) if ready_since else 0,
            **self.result(now),
            "error": self.failure.text if self.failure else "",
            "fault_code": self.failure.code if self.failure else 0,
            "watched_until": self.watch.until if self.watch is not None else 0.0,
            "canary": self.canary,
            "held_until": (self.held_since + self.hold if self.hold is not None else -1.0)
            if self.phase is RolloutPhase.HOLDING else 0.0,
        }

    def candidates(self) -> list[Candidate]:
        """The candidates before promotion, of the rollout or of its revert."""
        swaps = [*self.swaps, *(self.revert.swaps if self.revert else [])]
        return [swap.candidate for swap in swaps if swap.in_flight]


def reload_result(reload: Rollout | Launch, phase: str, old_pid: int, new_pid: int, old_path: str, seconds: float,
           drain_seconds: float, slots_done: int, slots_total: int, slots: list[dict], message: str) -> dict:
    """The one shape of every reload's result (rollouts and launches alike)."""
    return {
        "id": reload.id, "name": reload.name, "kind": reload.kind.value, "phase": phase, "old_pid": old_pid,
        "new_pid": new_pid, "old_path": old_path, "new_path": reload.new_path, "seconds": round(seconds, 3),
        "drain_seconds": round(drain_seconds, 3), "slots_done": slots_done, "slots_total": slots_total,
        "slots": slots, "message": message,
    }


class Launch:
    """A reload of a program that is not running: a way out for one that failed (the slots
    EXITED, BACKOFF or FATAL start on ``binary``: ``started``); one stopped on purpose (every
    slot STOPPED) only records ``binary`` for its next start (``recorded``).

    ``start()`` raises SPAWN_FAILED if a slot cannot even spawn; ``finished`` turns true once
    no slot is STARTING any more, with ``failure`` set if one did not reach RUNNING."""

    def __init__(self, program: Program, kind: Kind, binary: CheckedBinary, statenames: list[str]) -> None:
        self.id = next(IDS)
        self.program, self.group, self.kind, self.binary = program, program.slots, kind, binary
        self.new_path = binary.path
        self.failed_slots = [slot for slot, name in enumerate(statenames) if name != "STOPPED"]
        self.statename = statenames[self.failed_slots[0]] if self.failed_slots else "STOPPED"
        self.phase = RolloutPhase.STARTED if self.failed_slots else RolloutPhase.RECORDED
        self.old_path, self.message = self.group.slot_path(0), ""
        self.failure: LittlebossRPCError | None = None

    @property
    def name(self) -> str:
        return self.program.name

    def start(self, now: float) -> None:
        """Record the binary, and start the slots that failed on it; the binary is closed after."""
        name, path, record = self.name, self.new_path, self.program.record
        self.group.run_slots_on(path)
        try:
            if self.phase is RolloutPhase.RECORDED:  # it ran well: it is what rollback returns to
                previous = self.old_path if self.old_path != path else record.previous
                record.use(path, self.kind, self.old_path, previous, "recorded for the next start (it was STOPPED)",
                           now)
                self.message = (f"{name}: is STOPPED: nothing was started; {path} is the binary "
                                f"`supervisorctl start {name}` runs")
                return
            previous = record.previous if record.previous != path else None  # a failed binary is no rollback target
            record.use(path, self.kind, self.old_path, previous, f"started (it was {self.statename})", now)
            for slot in self.failed_slots:
                error = self.group.start_slot(slot, self.binary)
                if error is not None:
                    _move(self, RolloutPhase.FAILED, LAUNCH_EDGES)
                    raise LittlebossRPCError(F.SPAWN_FAILED, f"{name}: could not start {path}: {error}")
            pids = ", ".join(str(self.group.serving(slot).pid) for slot in self.failed_slots)
            self.message = f"{name}: was {self.statename}; started {path} (pid {pids})"
        finally:
            self.binary.close()  # its processes were spawned from it (or failed to be)

    @property
    def finished(self) -> bool:
        if self.phase is not RolloutPhase.STARTED:
            return True
        names = [self.group.statename(slot) for slot in self.failed_slots]
        if "STARTING" in names:
            return False
        for slot, statename in zip(self.failed_slots, names, strict=True):
            if statename != "RUNNING":
                self.failure = LittlebossRPCError(
                    F.EXITED_BEFORE_READY, f"{self.name}: {self.new_path} did not start: "
                    f"{self.group.slot_name(slot)} is {statename} ({self.group.serving(slot).exit_report()})")
                break
        return True

    def result(self, now: float) -> dict:
        slots = [{"slot": slot, "process": self.group.slot_name(slot), "phase": self.phase.value, "old_pid": 0,
                  "candidate_pid": self.group.serving(slot).last_pid, "check": "", "error": ""}
                 for slot in self.failed_slots if self.phase is RolloutPhase.STARTED]
        return reload_result(self, self.phase.value, 0, slots[0]["candidate_pid"] if slots else 0, self.old_path, 0, 0,
                      len(slots), len(slots), slots, self.message)

    def info(self, now: float) -> dict:
        return {"ready_to_promotion": 0, **self.result(now), "error": self.failure.text if self.failure else "",
                "fault_code": self.failure.code if self.failure else 0, "watched_until": 0.0}


def refusal(group: Slots) -> str | None:
    """Why the program cannot be reloaded now (a process neither running nor stopped), or None."""
    for slot in range(group.slot_count()):
        statename = group.statename(slot)
        if statename not in (*SWAPPABLE, *STARTABLE):
            process = "" if group.slot_count() == 1 else f"{group.name}:{group.slot_name(slot)} "
            return f"{group.name}: {process}is {statename}; try again once it is RUNNING or stopped"
    return None


def begin(program: Program, kind: Kind, binary: CheckedBinary, now: float, canary: int = 0,
          hold: float | None = None) -> Rollout | Launch:
    """Give ``program`` the checked ``binary``: a rollout over its running slots (a slot stopped
    on purpose stays stopped and starts on it later; ``canary`` slots first, then a ``hold``),
    or, when none runs, a launch. The binary is closed once every slot has spawned from it."""
    group = program.slots
    statenames = [group.statename(slot) for slot in range(group.slot_count())]
    if all(name in STARTABLE for name in statenames):
        launch = Launch(program, kind, binary, statenames)
        launch.start(now)
        return launch
    slots = [slot for slot, name in enumerate(statenames) if name != "STOPPED"]
    rollout = Rollout(program, kind, binary.path, now, binary, slots, canary, hold)
    rollout.start(now)
    return rollout

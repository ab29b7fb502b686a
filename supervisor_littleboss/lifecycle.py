"""The whole life of a reload: one swap per slot, driven by a rollout, watched to the end.

A program has N slots (its processes ``x:x_0`` ... ``x:x_{N-1}``; N = numprocs). One
slot's **swap**:

    starting -> [checking ->] settling -> draining -> done
        \\            \\             \\
         `------------`-------------`--> failed(code, reason)

``starting``: a candidate with the new binary runs beside the slot's process on the same
sockets until it answers that it is ready (``startsecs`` up, or ``READY=1`` from its main
pid). ``checking``, with ``littleboss_check``: the command runs every
``littleboss_check_interval`` until it passes. ``settling``: it must stay up
``littleboss_settle`` more seconds. Then it is
promoted into the slot and the process it replaces drains (``draining``, with the
lameduck) until it exits (``done``). A failure before promotion discards the candidate and
leaves the slot's process untouched.

The **rollout** runs the swaps of every slot in order, at most ``littleboss_surge`` of them
before promotion at once, so that at no moment do fewer than N processes accept. Its own
states:

    running -> draining -> done -> (watched until littleboss_fallback_window ends)
        \\                              \\
         `--> rolling back --> failed     `--> rolled back (a ``fallback`` rollout follows)

A failed swap stops the rollout: candidates not yet promoted are discarded, and the
slots already switched are swapped back to the old binary the same way (zero downtime),
so the program ends on one binary. The durable record (state file, history, events)
changes once per rollout: when its last slot is promoted, or when it failed. A new
process that exits on its own while the rollout runs fails it the same way; one that
exits within the fallback window after the rollout rolls the whole program back to the
previous binary: its dead slots restart on it at once, the living ones are swapped back.

Everything moves in ``step()``, called from the group's ``transition()`` in supervisord's
main loop, and in ``abort()`` and ``serving_exited()``. The lifecycle talks to the group
only through the ``Slots`` interface below and asks candidates only the ``Candidate``
questions: it never reads a process's internals.
"""
from __future__ import annotations

import enum
import itertools
import time
from typing import Protocol

from supervisor import events

from .config import ReloadSettings
from .events import ReloadFailedEvent, ReloadRolledBackEvent, ReloadStartedEvent, ReloadSucceededEvent
from .faults import LittlebossFaults as F
from .faults import LittlebossRPCError
from .validate import CheckedBinary


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
    """What the lifecycle asks of a program's group."""

    name: str
    settings: ReloadSettings

    def slot_count(self) -> int: ...
    def slot_name(self, slot: int) -> str: ...  # its process name, e.g. web_2
    def serving(self, slot: int) -> Candidate: ...
    def slot_path(self, slot: int) -> str: ...  # the binary the slot's process runs
    def start_candidate(self, slot: int, path: str, binary: CheckedBinary | None) -> Candidate: ...
    def start_check(self, slot: int, candidate: Candidate, now: float) -> Check: ...
    def promote(self, slot: int, candidate: Candidate) -> Candidate: ...  # returns the replaced process
    def discard(self, candidate: Candidate) -> None: ...
    def run_slots_on(self, path: str) -> None: ...  # the binary every slot's next spawn runs
    def restart_exited(self) -> list[int]: ...  # respawn slots that exited on their own; their numbers
    # persist a completed rollout; returns the previous binary it replaced (a fallback's previous)
    def commit(self, kind: str, old_path: str, new_path: str, seconds: float) -> str | None: ...
    def record(self, kind: str, old_path: str, new_path: str, outcome: str, seconds: float) -> None: ...
    def use_binary(self, path: str, kind: str, previous: str | None, outcome: str) -> str: ...
    def supervisord_running(self) -> bool: ...
    def log(self, message: str, error: bool = False) -> None: ...


class Phase(enum.Enum):
    WAITING = "waiting"  # a slot whose swap has not started
    STARTING = "starting"
    CHECKING = "checking"  # ready; littleboss_check has not passed yet
    SETTLING = "settling"
    RUNNING = "running"  # a rollout with swaps under way
    DRAINING = "draining"
    DONE = "done"
    ROLLING_BACK = "rolling back"  # a failed rollout swapping its switched slots back
    FAILED = "failed"
    ROLLED_BACK = "rolled back"  # a new process exited within the fallback window


class Swap:
    """Replace the process of one slot by a candidate running ``path``."""

    def __init__(self, group: Slots, slot: int, path: str) -> None:
        self.group, self.slot, self.path = group, slot, path
        self.settings = group.settings
        self.phase = Phase.WAITING
        self.old_pid = group.serving(slot).pid
        self.old: Candidate | None = None  # the process it replaced, once promoted
        self.candidate: Candidate | None = None
        self.started_at = self.ready_at = self.promoted_at = self.next_check = self.check_started = 0.0
        self.check: Check | None = None  # the check run under way
        self.checked = ""  # how its last check run ended
        self.code, self.reason = 0, ""

    @property
    def label(self) -> str:
        count = self.group.slot_count()
        return "" if count == 1 else f"{self.group.slot_name(self.slot)} (slot {self.slot + 1} of {count}) "

    @property
    def why(self) -> str:
        """Its failure, naming the slot when the program has several: ``web_2 (slot 3 of 4) exited ...``."""
        label = self.label
        return f"{label}{self.reason[3:]}" if label and self.reason.startswith("it ") else f"{label}{self.reason}"

    @property
    def in_flight(self) -> bool:
        return self.phase in (Phase.STARTING, Phase.CHECKING, Phase.SETTLING)

    @property
    def promoted(self) -> bool:
        return self.phase in (Phase.DRAINING, Phase.DONE)

    @property
    def gone(self) -> bool:
        """Nothing of it runs that should not: the candidate (failed) or the old process (promoted)."""
        if self.promoted:
            return not self.old.pid
        return self.phase is Phase.FAILED and not (self.candidate and self.candidate.pid)

    def start(self, binary: CheckedBinary | None, now: float) -> None:
        self.phase, self.started_at = Phase.STARTING, now
        self.candidate = self.group.start_candidate(self.slot, self.path, binary)
        if not self.candidate.pid:
            self.fail(F.SPAWN_FAILED, f"could not spawn it: {self.candidate.exit_report()}")
        else:
            self.group.log(f"{self.label}candidate pid {self.candidate.pid} started")

    def step(self, now: float) -> None:
        candidate, settings = self.candidate, self.settings
        if self.phase is Phase.STARTING:
            if not candidate.pid:
                self.fail(F.EXITED_BEFORE_READY, f"it exited before it was ready ({candidate.exit_report()})")
            elif candidate.is_ready(now):
                self.phase = Phase.CHECKING if settings.check else Phase.SETTLING
                self.ready_at = self.next_check = now
                self.group.log(f"{self.label}candidate pid {candidate.pid} is ready")
            elif now - self.started_at > settings.ready_timeout:
                self.fail(F.READY_TIMEOUT, f"it was not ready within {settings.ready_timeout:g}s "
                                           f"(littleboss_ready = {settings.ready})")
        if self.phase is Phase.CHECKING:
            self._check(now)
        if self.phase is Phase.SETTLING:
            if not candidate.pid:
                self.fail(F.SETTLE_FAILED, f"it exited {now - self.ready_at:.1f}s after it was ready, "
                                           f"within littleboss_settle ({candidate.exit_report()})")
            elif now - self.ready_at >= settings.settle:
                self.phase, self.promoted_at = Phase.DRAINING, now
                self.old = self.group.promote(self.slot, candidate)
                self.old_pid = self.old.last_pid if self.old.pid else self.old_pid
                self.group.log(f"{self.label}promoted pid {candidate.pid}; old pid {self.old_pid} is draining")
        if self.phase is Phase.DRAINING and not self.old.pid:
            self.phase = Phase.DONE
            self.group.log(f"{self.label}old pid {self.old_pid} has exited")

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
                self.phase, self.ready_at = Phase.SETTLING, now
                self.group.log(f"{self.label}candidate pid {candidate.pid} passed its check")
                return
            self.group.log(f"{self.label}check of candidate pid {candidate.pid} failed: {self.checked}")
        if now - self.started_at > settings.ready_timeout:
            self.fail(F.CHECK_FAILED, f"its check did not pass within {settings.ready_timeout:g}s "
                                      f"(littleboss_ready_timeout); last run: {self.checked or 'none finished'}")

    def due_in(self, now: float) -> float | None:
        """Seconds until it moves on by time alone (None: only an event moves it)."""
        if self.phase is Phase.CHECKING:
            due = self.started_at + self.settings.ready_timeout
            run_ends = self.check_started + self.settings.check_timeout
            return min(due, self.next_check if self.check is None else run_ends) - now
        if self.phase is Phase.SETTLING:
            return self.ready_at + self.settings.settle - now
        if self.phase is Phase.STARTING:
            due = self.started_at + self.settings.ready_timeout
            ready = self.candidate.ready_due()
            return (due if ready is None else min(due, ready)) - now
        return None

    def fail(self, code: int, reason: str) -> None:
        """Stop before promotion: the candidate (if any) is discarded, the slot's process stays."""
        self.phase, self.code, self.reason = Phase.FAILED, code, reason
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


class Rollout:
    """Replace the processes of ``slots`` (default: every slot) by ones running ``new_path``.

    ``kind``: ``reload`` and ``rollback`` are asked for; a ``fallback`` follows a new binary
    that exited in the fallback window; a ``revert`` swaps a failed rollout's switched slots
    back. Only reloads and rollbacks are recorded, announced, swapped back and watched.
    """

    ids = itertools.count(1)

    def __init__(self, group: Slots, kind: str, new_path: str, binary: CheckedBinary | None = None,
                 slots: list[int] | None = None) -> None:
        self.id = next(self.ids)
        self.group, self.kind, self.new_path, self.binary = group, kind, new_path, binary
        self.settings = group.settings
        slots = list(range(group.slot_count())) if slots is None else slots
        self.old_path = group.slot_path(slots[0])
        self.swaps = [Swap(group, slot, new_path) for slot in slots]
        self.phase = Phase.RUNNING
        self.started_at = time.time()
        self.finished_at: float | None = None  # every slot promoted, or failed
        self.drained_at: float | None = None  # every replaced process exited
        self.code, self.reason = 0, ""  # why it failed
        self.failure: LittlebossRPCError | None = None
        self.revert: Rollout | None = None
        self.exits: list[tuple[int, str]] = []  # (slot, how) of processes that exited on their own
        self.watch_until = 0.0  # end of the fallback window
        self.restore: str | None = None  # the previous binary before this rollout: a fallback's previous
        self.successor: Rollout | None = None  # the fallback rollout that follows it

    @property
    def name(self) -> str:
        return self.group.name

    @property
    def announced(self) -> bool:
        return self.kind in ("reload", "rollback")

    @property
    def active(self) -> bool:
        """Until every slot is promoted, or the rollout failed and its slots are back."""
        return self.phase in (Phase.RUNNING, Phase.ROLLING_BACK)

    @property
    def finished(self) -> bool:
        """Nothing runs that should not: no candidate of a failure, no replaced process."""
        if self.active:
            return False
        return all(swap.gone for swap in self.swaps) and (self.revert is None or self.revert.finished)

    @property
    def shown_phase(self) -> str:
        """Its phase as operators read it: a running rollout shows its first slot under way."""
        if self.phase is Phase.RUNNING:
            return next((swap.phase.value for swap in self.swaps if swap.in_flight), Phase.STARTING.value)
        return self.phase.value

    # --- moving on ----------------------------------------------------------------
    def start(self) -> None:
        if self.announced:
            count = len(self.swaps)
            self.group.log(f"{self.kind} started: {self.old_path} -> {self.new_path}"
                           + (f" ({count} processes)" if count > 1 else ""))
            events.notify(ReloadStartedEvent(self.name, **{"from": self.old_path, "to": self.new_path},
                                             slots=count))
        self.step(time.time())

    def step(self, now: float) -> None:
        while self.exits:
            self._exited(*self.exits.pop(0), now)
        for swap in self.swaps:
            if swap.phase is Phase.DRAINING:
                swap.step(now)
        if self.revert is not None:
            self.revert.step(now)
            if self.phase is Phase.ROLLING_BACK and not self.revert.active:
                self._failed()
        if self.phase is Phase.RUNNING:
            self._run(now)
        if self.phase is Phase.DRAINING and all(swap.gone for swap in self.swaps):
            self.phase, self.drained_at = Phase.DONE, now
        if self.watch_until and now > self.watch_until:
            self.watch_until = 0.0

    def _run(self, now: float) -> None:
        for swap in self.swaps:
            if swap.in_flight:
                swap.step(now)
            if swap.phase is Phase.FAILED:
                return self._fail(swap.code, swap.why)
        for swap in self.swaps:  # start the next slots, as many as the surge allows
            if swap.phase is Phase.WAITING and sum(s.in_flight for s in self.swaps) < self.settings.surge:
                swap.start(self.binary, now)
                if swap.phase is Phase.FAILED:
                    return self._fail(swap.code, swap.why)
        if all(swap.promoted for swap in self.swaps):
            self._complete(now)

    def _complete(self, now: float) -> None:
        self.phase, self.finished_at = Phase.DRAINING, now
        self._close_binary()
        if not self.announced:
            return
        self.group.run_slots_on(self.new_path)  # a slot left out (stopped) starts on it too
        self.restore = self.group.commit(self.kind, self.old_path, self.new_path, self.seconds)
        window = self.settings.fallback_window
        if window and self.new_path != self.old_path:
            self.watch_until = now + window
        events.notify(ReloadSucceededEvent(self.name, **self._event_values()))

    def _fail(self, code: int, reason: str) -> None:
        """A swap failed: discard the other candidates, swap the switched slots back."""
        self.code, self.reason = code, reason
        self._stop_swaps("stopped: another process failed")
        if not self.announced:  # a revert or fallback: what runs stays; the failure is told
            return self._failed()
        self.group.run_slots_on(self.old_path)  # any respawn, from now on, runs the old binary
        restarted = self.group.restart_exited()
        switched = [swap.slot for swap in self.swaps if swap.promoted and swap.slot not in restarted]
        if not switched or not self.group.supervisord_running():
            return self._failed()
        self.phase = Phase.ROLLING_BACK
        self.group.log(f"{self.kind} failed: {reason}; swapping {len(switched)} switched process(es) back "
                       f"to {self.old_path}", error=True)
        self.revert = Rollout(self.group, "revert", self.old_path, slots=switched)
        self.revert.start()
        if not self.revert.active:
            self._failed()

    def _failed(self) -> None:
        self.phase, self.finished_at = Phase.FAILED, time.time()
        aftermath = self._aftermath()
        self.failure = LittlebossRPCError(
            self.code, f"{self.name}: {self.kind} to {self.new_path} failed: {self.reason}; {aftermath}")
        if not self.announced:
            return
        self.group.log(f"{self.kind} failed: {self.reason}; {aftermath}", error=True)
        outcome = f"failed: {self.reason}" + (f"; {aftermath}" if self.revert is not None else "")
        self.group.record(self.kind, self.old_path, self.new_path, outcome, self.seconds)
        events.notify(ReloadFailedEvent(self.name, reason=self.reason, **self._event_values()))

    def _aftermath(self) -> str:
        """What runs after a failure."""
        count, group = self.group.slot_count(), self.group
        if self.code == F.ABORTED:
            return f"pid {self.swaps[0].old_pid} is stopped with the program" if count == 1 else \
                "its processes are stopped with the program"
        if count == 1:
            old = group.serving(0)
            return f"pid {old.pid} keeps serving {self.old_path}" if old.pid else "the old process is gone"
        said, stuck = [], []
        if self.revert is not None:
            back = [group.slot_name(s.slot) for s in self.revert.swaps if s.promoted]
            stuck = [s for s in self.revert.swaps if not s.promoted]
            if back:
                said.append(f"the {len(back)} switched process{'es' if len(back) > 1 else ''} "
                            f"({', '.join(back)}) {'were' if len(back) > 1 else 'was'} rolled back to {self.old_path}")
            said += [f"{group.slot_name(s.slot)} could not be rolled back ({s.reason}): it runs "
                     f"{self.new_path}" for s in stuck]
        pids = ", ".join(str(group.serving(slot).pid) for slot in range(count) if group.serving(slot).pid)
        said.append(f"pids {pids} serve" + ("" if stuck else f" {self.old_path}"))
        return "; ".join(said)

    def abort(self, why: str) -> None:
        """Stop the rollout before it completes (stop, restart, update, shutdown): candidates
        are discarded and no slot is swapped back (the program is being stopped)."""
        if not self.active:
            return
        if self.revert is not None:
            self.revert.abort(why)
        self._stop_swaps(f"aborted: {why}")
        if self.announced:
            self.group.run_slots_on(self.old_path)  # its next start runs the binary it ran before
        self.code, self.reason = F.ABORTED, f"aborted: {why}"
        self._failed()

    def serving_exited(self, slot: int, how: str) -> None:
        """A slot's process exited on its own (not stopped by supervisord); acted on in step()."""
        self.exits.append((slot, how))

    def _exited(self, slot: int, how: str, now: float) -> None:
        swap = next((swap for swap in self.swaps if swap.slot == slot), None)
        if self.phase is Phase.RUNNING and swap is not None and swap.promoted and self.announced:
            self._fail(F.EXITED_AFTER_PROMOTION, f"{swap.label}{self.new_path} exited after its promotion ({how})")
        elif self.watch_until and now <= self.watch_until:
            self._fall_back(slot, how)

    def _fall_back(self, slot: int, how: str) -> None:
        """A new process exited within the fallback window: the whole program goes back."""
        self.watch_until = 0.0
        if not self.group.supervisord_running():
            return
        group, failed, previous = self.group, self.new_path, self.old_path
        who = group.slot_name(slot) + ": " if group.slot_count() > 1 else ""
        group.log(f"{who}{failed} exited ({how}) within littleboss_fallback_window of its promotion; "
                  f"starting {previous} again", error=True)
        group.use_binary(previous, "fallback", self.restore, f"rolled back automatically: {failed} exited ({how})")
        restarted = group.restart_exited()
        events.notify(ReloadRolledBackEvent(self.name, **{"from": failed, "to": previous},
                                            slots=group.slot_count()))
        self.phase = Phase.ROLLED_BACK
        living = [slot for slot in range(group.slot_count())
                  if slot not in restarted and group.serving(slot).pid and group.slot_path(slot) == failed]
        if living:
            self.successor = Rollout(group, "fallback", previous, slots=living)
            self.successor.start()

    def due_in(self, now: float) -> float | None:
        """Seconds until the rollout moves on by time alone (None: only an event moves it)."""
        dues = [swap.due_in(now) for swap in self.swaps]
        if self.revert is not None:
            dues.append(self.revert.due_in(now))
        return min((due for due in dues if due is not None), default=None)

    def _stop_swaps(self, reason: str) -> None:
        """No slot goes on: candidates before promotion are discarded (``ABORTED``, ``reason``),
        slots not started never start, and the checked binary is closed."""
        for swap in self.swaps:
            if swap.in_flight:
                swap.fail(F.ABORTED, reason)
            elif swap.phase is Phase.WAITING:
                swap.phase = Phase.FAILED
        self._close_binary()

    def _close_binary(self) -> None:
        if self.binary is not None:
            self.binary.close()

    # --- what it tells ------------------------------------------------------------
    @property
    def seconds(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def _event_values(self) -> dict:
        first = self.swaps[0]
        return {"from": self.old_path, "to": self.new_path, "old_pid": first.old_pid,
                "new_pid": first.candidate.last_pid if first.candidate else 0, "slots": len(self.swaps)}

    def result(self) -> dict:
        """What ``littleboss.reload`` returns: ``seconds`` to the last promotion, ``drain_seconds``
        for the replaced processes to exit; a struct per slot."""
        first = self.swaps[0]
        complete = self.phase in (Phase.DRAINING, Phase.DONE, Phase.ROLLED_BACK)
        drained = (self.drained_at or time.time()) - self.finished_at if complete else 0
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "phase": self.shown_phase,
            "old_pid": first.old_pid, "new_pid": first.candidate.last_pid if first.candidate else 0,
            "old_path": self.old_path, "new_path": self.new_path, "seconds": round(self.seconds, 3),
            "drain_seconds": round(drained, 3), "slots_done": sum(swap.promoted for swap in self.swaps),
            "slots_total": len(self.swaps), "slots": [swap.info() for swap in self.swaps],
        }

    def info(self) -> dict:
        """Progress, for ``getProgramInfo`` (``ready_to_promotion``: READY=1 to the promotion of
        the first slot, notify mode)."""
        first = self.swaps[0]
        ready_since = first.candidate.ready_since() if first.candidate and first.promoted else None
        return {
            "ready_to_promotion": round(first.promoted_at - ready_since, 4) if ready_since else 0,
            **self.result(),
            "error": self.failure.text if self.failure else "",
            "fault_code": self.failure.code if self.failure else 0,
            "watched_until": self.watch_until,
        }

    def candidates(self) -> list[Candidate]:
        """The candidates before promotion, of the rollout or of its revert."""
        swaps = [*self.swaps, *(self.revert.swaps if self.revert else [])]
        return [swap.candidate for swap in swaps if swap.in_flight]

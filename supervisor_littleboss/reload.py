"""One zero-downtime reload of a littleboss program, as an explicit state machine.

    starting -> settling -> draining -> done
        \\           \\
         `-----------`--> failed(reason)

``starting``: the candidate runs beside the old process on the same sockets, until it
is ready (``startsecs`` up, or ``READY=1`` from its main pid). ``settling``: it must
stay up ``littleboss_settle`` more seconds. Then it is promoted: it becomes the
program and the old process is stopped with ``littleboss_lameduck`` seconds to drain
(``draining`` until it exits). Phases move only in ``step()``, called from the group's
``transition()`` in supervisord's main loop, and in ``abort()``. A failure before
promotion kills the candidate's process group and leaves the old process untouched.
"""
from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING

from supervisor import events

from .events import ReloadFailedEvent, ReloadStartedEvent, ReloadSucceededEvent
from .faults import LittlebossFaults as F
from .faults import LittlebossRPCError

if TYPE_CHECKING:
    from .process import LittlebossProcessGroup, LittlebossSubprocess
    from .validate import CheckedBinary


class Phase(enum.Enum):
    STARTING = "starting"
    SETTLING = "settling"
    DRAINING = "draining"
    DONE = "done"
    FAILED = "failed"


class Reload:
    """Replace ``group``'s running process by one running ``new_path``."""

    def __init__(self, group: LittlebossProcessGroup, binary: CheckedBinary, kind: str = "reload") -> None:
        self.group = group
        self.kind = kind  # "reload" or "rollback"
        self.settings = group.config.littleboss.reload
        self.old: LittlebossSubprocess = group.current
        self.old_pid = self.old.pid
        self.old_path = group.current_path()
        self.new_path = binary.path
        self.candidate: LittlebossSubprocess = group.make_candidate(binary)
        self.phase = Phase.STARTING
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.finished_at: float | None = None  # promoted, or failed
        self.drained_at: float | None = None  # the old process exited after promotion
        self.failure: LittlebossRPCError | None = None

    @property
    def name(self) -> str:
        return self.group.config.name

    @property
    def finished(self) -> bool:
        """Failed with the candidate gone, or promoted with the old process gone."""
        if self.phase is Phase.FAILED:
            return not self.candidate.pid
        return self.phase in (Phase.DRAINING, Phase.DONE) and not self.old.pid

    @property
    def active(self) -> bool:
        """True until the candidate is promoted or the reload failed."""
        return self.phase in (Phase.STARTING, Phase.SETTLING)

    def start(self) -> None:
        self._log(f"{self.kind} started: {self.old_path} -> {self.new_path}")
        events.notify(ReloadStartedEvent(self.name, **{"from": self.old_path, "to": self.new_path}))
        if not self.candidate.spawn():
            self._fail(F.SPAWN_FAILED, f"could not spawn it: {self.candidate.spawnerr}")
        else:
            self._log(f"candidate pid {self.candidate.pid} started")

    def step(self, now: float) -> None:
        """Move on as far as the candidate's state allows (same main-loop pass as READY=1)."""
        candidate = self.candidate
        if self.phase is Phase.STARTING:
            if not candidate.pid:
                self._fail(F.EXITED_BEFORE_READY, f"it exited before it was ready ({candidate.exit_report()})")
            elif self._ready(now):
                self.ready_at = now
                self.phase = Phase.SETTLING
                self._log(f"candidate pid {candidate.pid} is ready")
            elif now - self.started_at > self.settings.ready_timeout:
                self._fail(F.READY_TIMEOUT, f"it was not ready within {self.settings.ready_timeout:g}s "
                                            f"(littleboss_ready = {self.settings.ready})")
        if self.phase is Phase.SETTLING:
            if not candidate.pid:
                self._fail(F.SETTLE_FAILED, f"it exited {now - self.ready_at:.1f}s after it was ready, "
                                            f"within littleboss_settle ({candidate.exit_report()})")
            elif now - self.ready_at >= self.settings.settle:
                self._promote(now)
        if self.phase is Phase.DRAINING and not self.old.pid:
            self.phase = Phase.DONE
            self.drained_at = now
            self._log(f"old pid {self.old_pid} has exited")

    def due_in(self, now: float) -> float | None:
        """Seconds until the reload moves on by time alone (None: only an event moves it)."""
        if self.phase is Phase.SETTLING:
            return self.ready_at + self.settings.settle - now
        if self.phase is Phase.STARTING:
            due = self.started_at + self.settings.ready_timeout
            if self.settings.ready != "notify":
                due = min(due, self.candidate.laststart + self.candidate.config.startsecs)
            return due - now
        return None

    def abort(self, why: str) -> None:
        """Stop the reload before promotion (stop, restart, update, shutdown)."""
        if self.active:
            self._fail(F.ABORTED, f"aborted: {why}")

    def _ready(self, now: float) -> bool:
        if self.settings.ready == "notify":
            return self.candidate.notify is not None and self.candidate.notify.ready
        return now - self.candidate.laststart >= self.candidate.config.startsecs

    def _promote(self, now: float) -> None:
        self.finished_at = now
        self.phase = Phase.DRAINING
        self.group.promote(self.candidate, self.old)
        self._log(f"promoted pid {self.candidate.pid}; old pid {self.old_pid} is draining")
        self._record("succeeded")
        self.group.remember_swap(self.old_path, self.new_path)
        events.notify(ReloadSucceededEvent(self.name, **self._event_values()))

    def _fail(self, code: int, reason: str) -> None:
        self.phase = Phase.FAILED
        self.finished_at = time.time()
        self.group.discard_candidate(self.candidate)
        if code == F.ABORTED:  # every abort stops the program: the old process with it
            still = f"pid {self.old_pid} is stopped with the program"
        else:
            still = f"pid {self.old_pid} keeps serving {self.old_path}" if self.old.pid else "the old process is gone"
        self.failure = LittlebossRPCError(
            code, f"{self.name}: {self.kind} to {self.new_path} failed: {reason}; {still}"
        )
        self._log(f"{self.kind} failed: {reason}", error=True)
        self._record(f"failed: {reason}")
        self.group.save_state()
        events.notify(ReloadFailedEvent(self.name, reason=reason, **self._event_values()))

    def _record(self, outcome: str) -> dict:
        return self.group.program_state.record(
            kind=self.kind, **{"from": self.old_path, "to": self.new_path}, outcome=outcome,
            seconds=round(self.seconds, 3),
        )

    def _event_values(self) -> dict:
        return {"from": self.old_path, "to": self.new_path, "old_pid": self.old_pid,
                "new_pid": self.candidate.last_pid}

    @property
    def seconds(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def result(self) -> dict:
        """What ``littleboss.reload`` returns: ``seconds`` to promotion, ``drain_seconds`` for the old to exit."""
        return {
            "name": self.name, "kind": self.kind, "phase": self.phase.value, "old_pid": self.old_pid,
            "new_pid": self.candidate.last_pid, "old_path": self.old_path, "new_path": self.new_path,
            "seconds": round(self.seconds, 3),
            "drain_seconds": round((self.drained_at or time.time()) - self.finished_at, 3) if self.finished_at else 0,
        }

    def info(self) -> dict:
        """Progress, for ``getProgramInfo`` (``ready_to_promotion``: READY=1 to promotion, notify mode)."""
        notify = self.candidate.notify
        promoted = self.phase in (Phase.DRAINING, Phase.DONE)
        return {
            "ready_to_promotion": round(self.finished_at - notify.ready_at, 4) if promoted and notify else 0,
            **self.result(),
            "error": self.failure.text if self.failure else "",
            "fault_code": self.failure.code if self.failure else 0,
        }

    def _log(self, message: str, error: bool = False) -> None:
        logger = self.group.config.options.logger
        (logger.error if error else logger.info)(f"littleboss: {self.name}: {message}")

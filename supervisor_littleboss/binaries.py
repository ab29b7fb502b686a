"""A program's binary record: the binary in use, the previous one, and the reload history.

The binary in use is the swapped-in one (``None`` in the state file: the configured
command's); ``previous`` is what ``littleboss:rollback`` returns to. Every change of
either, and every reload that ran, leaves a history entry (``contract.history_entry``),
and the record is saved at once. Everything here works on values: the program's
``ProgramState``, the configured command, the file its path resolves to now, and a
function saying why a binary would be refused.
"""
from __future__ import annotations

from collections.abc import Callable

from .contract import Kind, history_entry, outcome_label
from .metrics import observe
from .state import HISTORY_LIMIT, ProgramState


class BinaryRecord:
    """The binaries of one program, kept in its ``ProgramState`` and saved by ``save``."""

    def __init__(self, state: ProgramState, configured_command: str, configured_path: Callable[[], str],
                 save: Callable[[], None]) -> None:
        self.state, self.configured_command = state, configured_command
        self.configured_path, self.save = configured_path, save  # configured_path: resolved when asked

    @property
    def swapped_in(self) -> str | None:
        """The binary in use when it is not the configured one."""
        return self.state.path

    @property
    def previous(self) -> str | None:
        return self.state.previous

    @property
    def history(self) -> list[dict]:
        return list(self.state.history)

    # --- at a group's creation ---------------------------------------------------------
    def reconcile(self, refusal: Callable[[str], str | None], now: float) -> str | None:
        """Which binary a new group runs: if the operator changed ``command`` since a binary
        was swapped in, the configuration wins; a swapped-in binary that would be refused now
        (the state file is not trusted blindly) gives way to the previous one, if it passes,
        else to the configured one. Returns what to warn about, if anything."""
        state = self.state
        if state.path and state.command != self.configured_command:
            self._add(history_entry(Kind.CONFIG, state.path, self.configured_command,
                                    "the configured command changed; the swapped-in binary is no longer used", now))
            state.path = state.previous = None
            self.save()
        why = refusal(state.path) if state.path else None
        if why is None:
            return None
        gone = state.path
        target = state.previous if state.previous and refusal(state.previous) is None else self.configured_path()
        self._use(target)
        state.previous = None
        outcome = f"the swapped-in binary cannot run ({why}); starting {target} instead"
        self._add(history_entry(Kind.REFUSED, gone, target, outcome, now))
        self.save()
        return outcome

    # --- what reloads change ----------------------------------------------------------
    def commit(self, kind: Kind, old_path: str, new_path: str, seconds: float, now: float) -> str | None:
        """A completed reload to ``new_path``: it is the binary in use, and ``old_path`` the
        previous (unless it re-executed the same file, or applied a new configuration:
        rollback still goes back one release). Returns the previous binary it replaced (what
        a fallback makes previous again)."""
        before = self.state.previous
        self._add(history_entry(kind, old_path, new_path, "succeeded", now, seconds))
        if new_path != old_path and kind is not Kind.CONFIG:
            self.state.previous = old_path
        self._use(new_path)
        self.save()
        return before

    def failed(self, kind: Kind, old_path: str, new_path: str, outcome: str, seconds: float, now: float) -> None:
        """A reload that ran and failed: only the history changes."""
        self._add(history_entry(kind, old_path, new_path, outcome, now, seconds))
        self.save()

    def use(self, path: str, kind: Kind, replaced: str, previous: str | None, outcome: str, now: float) -> None:
        """``path`` replaces ``replaced`` without a swap (a fallback, a start of a program that
        was not running), with ``previous`` the binary rollback returns to."""
        self._use(path)
        self.state.previous = previous
        self._add(history_entry(kind, replaced, path, outcome, now))
        self.save()

    def _use(self, path: str) -> None:
        state = self.state
        state.path = None if path == self.configured_path() else path
        state.command = self.configured_command

    def _add(self, entry: dict) -> None:
        """Add a history entry, and count it in the program's metrics."""
        self.state.history = [*self.state.history, entry][-HISTORY_LIMIT:]
        reloads = self.state.metrics["reloads"]
        key = f"{entry['kind']} {outcome_label(entry['outcome'])}"
        reloads[key] = reloads.get(key, 0) + 1
        if "seconds" in entry:
            observe(self.state.metrics["duration"], entry["seconds"])

    def note(self, kind: Kind, path: str, outcome: str, now: float) -> None:
        """Something that happened to the program's processes, not to its binary: history only."""
        self._add(history_entry(kind, path, path, outcome, now))
        self.save()

    def observe(self, name: str, seconds: float) -> None:
        """Count how long a step of a reload took (metrics.HISTOGRAMS: ready, drain)."""
        observe(self.state.metrics[name], seconds)
        self.save()

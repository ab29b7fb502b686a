"""The durable record of swapped-in binaries and reload history.

One JSON file (``state_file`` in ``[rpcinterface:littleboss]``), replaced atomically
on every change, so a swapped-in binary survives ``update``, ``supervisorctl reload``
and a supervisord restart.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field

HISTORY_LIMIT = 20


@dataclass
class ProgramState:
    """What littleboss remembers about one program."""

    path: str | None = None  # the swapped-in executable; None: the configured one
    previous: str | None = None  # the executable before the last successful reload
    command: str | None = None  # the configured command when ``path`` was swapped in
    history: list[dict] = field(default_factory=list)

    def record(self, **entry) -> dict:
        """Append a history entry (with the time), keeping the newest HISTORY_LIMIT."""
        entry = {"time": round(time.time(), 3), **entry}
        self.history = [*self.history, entry][-HISTORY_LIMIT:]
        return entry


class StateStore:
    """Every program's ProgramState, loaded from and saved to ``path``."""

    def __init__(self, path: str, logger=None) -> None:
        self.path = path
        self.programs: dict[str, ProgramState] = {}
        try:
            with open(path) as file:
                raw = json.load(file)
            self.programs = {name: ProgramState(**state) for name, state in raw["programs"].items()}
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            aside = f"{path}.corrupt-{int(time.time())}"
            os.replace(path, aside)
            if logger:
                logger.error(f"littleboss: state file {path} is unreadable ({exc}); moved it to {aside}")

    def program(self, name: str) -> ProgramState:
        return self.programs.setdefault(name, ProgramState())

    def save(self) -> None:
        """Write the whole state to a temporary file beside ``path``, then rename it over."""
        directory = os.path.dirname(self.path) or "."
        data = json.dumps({"programs": {name: asdict(state) for name, state in self.programs.items()}}, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=".littleboss-", dir=directory)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise

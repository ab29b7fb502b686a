"""The durable record of swapped-in binaries and reload history (``binaries.py`` changes it).

One JSON file (``state_file`` in ``[rpcinterface:littleboss]``), replaced atomically
on every change (temporary file, fsync, rename, fsync of the directory), so a
swapped-in binary survives ``update``, ``supervisorctl reload`` and a supervisord restart.
Each program's part of the file is encoded again only when that program's state was said
to have changed (``changed(name)``, which every change of a program's state is followed
by): with 500 programs, encoding them all at every save cost supervisord tens of ms of CPU
per save, and comparing them all with what was last written a few ms.

The file is validated whole when it is loaded. One entry of the wrong shape or type
makes the whole file invalid: keeping the rest of a damaged file could run a binary
its operator had since replaced, and the configured binaries are always a safe start.
An invalid or unreadable file (or a directory) at the path is moved aside to
``<path>.corrupt-<timestamp>`` (left in place if it cannot be moved) with one error
line in supervisord's log, and littleboss starts from an empty state.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field

from .metrics import HISTOGRAMS, new_histogram, valid_histogram
from .orphans import ProcessRecord

HISTORY_LIMIT = 20
MAX_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC: the last time ``status --history`` can print
ENTRY_STRINGS = ("kind", "from", "to", "outcome")  # history entry fields besides time and seconds
SUPERVISORD_COUNTS = ("starts", "reloads", "upgrades")  # supervisord's own, for the metrics


def _invalid(where: str, what: str) -> ValueError:
    return ValueError(f"{where} is not {what}")


def _object(value: object, where: str, keys: tuple[str, ...]) -> dict:
    """``value`` if it is a JSON object whose keys are all among ``keys``."""
    if not isinstance(value, dict):
        raise _invalid(where, "an object")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ValueError(f"{where} has an unknown key {unknown[0]!r}")
    return value


def _number(value: object, where: str, high: float = math.inf) -> float:
    """``value`` as a float, if it is a JSON number from 0 to ``high`` (and finite)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            if math.isfinite(float(value)) and 0 <= value <= high:
                return float(value)
        except OverflowError:  # an integer too large for a float
            pass
    raise _invalid(where, f"a number from 0 to {high:.0f}" if math.isfinite(high) else "a finite number, 0 or more")


def _history_entry(value: object, where: str) -> dict:
    """A checked copy of a history entry (as ``contract.history_entry`` makes them)."""
    entry = _object(value, where, ("time", *ENTRY_STRINGS, "seconds"))
    missing = [key for key in ("time", *ENTRY_STRINGS) if key not in entry]
    if missing:
        raise ValueError(f"{where} has no {missing[0]!r}")
    checked = {"time": _number(entry["time"], f"{where}.time", MAX_TIME)}
    for key in ENTRY_STRINGS:
        if not isinstance(entry[key], str):
            raise _invalid(f"{where}.{key}", "a string")
        checked[key] = entry[key]
    if "seconds" in entry:
        checked["seconds"] = _number(entry["seconds"], f"{where}.seconds")
    return checked


def _process(value: object, where: str) -> ProcessRecord:
    data = _object(value, where, ("pid", "start"))
    try:
        return ProcessRecord.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def new_metrics() -> dict:
    """A program's metrics kept across supervisord's restarts: reloads counted by ``kind
    outcome``, and the HISTOGRAMS."""
    return {"reloads": {}, **{name: new_histogram() for name in HISTOGRAMS}}


def _metrics(value: object, where: str) -> dict:
    data = _object(value, where, ("reloads", *HISTOGRAMS))
    reloads = data.get("reloads", {})
    if not isinstance(reloads, dict) or not all(type(n) is int and n >= 0 for n in reloads.values()):
        raise _invalid(f"{where}.reloads", "an object of counts")
    checked = {"reloads": dict(reloads)}
    for name in HISTOGRAMS:
        histogram = data.get(name, new_histogram())
        if not valid_histogram(histogram):
            raise _invalid(f"{where}.{name}", "a histogram")
        checked[name] = histogram
    return checked


@dataclass
class ProgramState:
    """What littleboss remembers about one program."""

    path: str | None = None  # the swapped-in executable; None: the configured one
    previous: str | None = None  # the executable before the last successful reload
    command: str | None = None  # the configured command when ``path`` was swapped in
    history: list[dict] = field(default_factory=list)  # the newest HISTORY_LIMIT entries, oldest first
    processes: list[ProcessRecord] = field(default_factory=list)  # running now, to find after a crash
    metrics: dict = field(default_factory=new_metrics)  # counted since the state file was made

    @classmethod
    def from_dict(cls, value: object, where: str) -> ProgramState:
        """The state saved as ``value``; ValueError names what is wrong, and ``where``.

        Missing keys take their defaults; unknown keys and wrong types are errors.
        """
        data = _object(value, where, ("path", "previous", "command", "history", "processes", "metrics"))
        for key in ("path", "previous", "command"):
            if not isinstance(data.get(key), (str, type(None))):
                raise _invalid(f"{where}.{key}", "a string or null")
        history = data.get("history", [])
        if not isinstance(history, list):
            raise _invalid(f"{where}.history", "a list")
        processes = data.get("processes", [])
        if not isinstance(processes, list):
            raise _invalid(f"{where}.processes", "a list")
        return cls(data.get("path"), data.get("previous"), data.get("command"),
                   [_history_entry(entry, f"{where}.history[{i}]") for i, entry in enumerate(history)],
                   [_process(entry, f"{where}.processes[{i}]") for i, entry in enumerate(processes)],
                   _metrics(data.get("metrics", {}), f"{where}.metrics"))


def _no_constant(name: str) -> None:
    raise ValueError(f"not valid JSON: {name}")


def parse(text: str) -> dict[str, ProgramState]:
    """Every program's state in a state file's ``text``; ValueError says what is wrong, and where."""
    return parse_all(text)[0]


def parse_all(text: str) -> tuple[dict[str, ProgramState], dict[str, int]]:
    """Every program's state, and supervisord's counts, in a state file's ``text``."""
    try:
        raw = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None
    if "programs" not in _object(raw, "the top level", ("programs", "supervisord")):
        raise ValueError("the top level has no programs")
    programs = raw["programs"]
    if not isinstance(programs, dict):
        raise _invalid("programs", "an object")
    counts = _object(raw.get("supervisord", {}), "supervisord", SUPERVISORD_COUNTS)
    if not all(type(n) is int and n >= 0 for n in counts.values()):
        raise _invalid("supervisord", "an object of counts")
    return ({name: ProgramState.from_dict(state, f"programs.{name}") for name, state in programs.items()},
            {**dict.fromkeys(SUPERVISORD_COUNTS, 0), **counts})


def _aside_name(path: str) -> str:
    """``<path>.corrupt-<unix time>``, with a ``.N`` suffix if an earlier one has that name."""
    aside = stamp = f"{path}.corrupt-{int(time.time())}"
    number = 0
    while os.path.lexists(aside):
        number += 1
        aside = f"{stamp}.{number}"
    return aside


def _indented(value: object, depth: int) -> str:
    """``value`` as ``json.dumps(..., indent=1)`` writes it nested ``depth`` levels deep."""
    return json.dumps(value, indent=1).replace("\n", "\n" + " " * depth)  # a string's newlines are escaped


class StateStore:
    """Every program's ProgramState, loaded from and saved to ``path``."""

    def __init__(self, path: str, logger=None) -> None:
        self.path = path
        self.programs: dict[str, ProgramState]
        self.supervisord: dict[str, int]  # supervisord's starts, reloads (SIGHUP) and in-place upgrades
        self.programs, self.supervisord = self._load(logger)
        self._texts: dict[str, str] = {}  # each program's line of the file, its state as last encoded
        self._changed: set[str] = set()  # programs whose state changed since

    def _load(self, logger) -> tuple[dict[str, ProgramState], dict[str, int]]:
        empty = ({}, dict.fromkeys(SUPERVISORD_COUNTS, 0))
        try:
            with open(self.path, encoding="utf-8") as file:
                return parse_all(file.read())
        except FileNotFoundError:
            return empty
        except OSError as exc:
            problem = f"cannot be read: {exc.strerror or exc}"
        except ValueError as exc:  # including UnicodeDecodeError
            problem = f"is invalid: {exc}"
        aside = _aside_name(self.path)
        try:
            os.replace(self.path, aside)
            outcome = f"moved it to {aside}"
        except OSError as exc:
            outcome = f"cannot move it aside ({exc}), ignoring it"
        if logger:
            logger.error(f"littleboss: the state file {self.path} {problem}; {outcome}; "
                         "the programs start with their configured binaries")
        return empty

    def program(self, name: str) -> ProgramState:
        return self.programs.setdefault(name, ProgramState())

    def changed(self, name: str) -> None:
        """Program ``name``'s state changed: the next save encodes it again."""
        self._changed.add(name)

    def text(self) -> str:
        """The state file's text: ``json.dumps`` of every program's state and supervisord's
        counts, ``indent=1``. Only the programs said to have changed since the last call (and
        those never encoded) are encoded again."""
        texts = self._texts
        for name in self._changed | (self.programs.keys() - texts.keys()):
            if name in self.programs:
                texts[name] = f"  {json.dumps(name)}: {_indented(asdict(self.programs[name]), 2)}"
        self._changed = set()
        programs = ["{\n", ",\n".join([texts[name] for name in self.programs]), "\n }"] if self.programs else ["{}"]
        # one join: concatenating the 0.4 MB of 500 programs piece by piece costs 20 times more
        return "".join(['{\n "programs": ', *programs, ',\n "supervisord": ', _indented(self.supervisord, 1), "\n}"])

    def save(self) -> None:
        """Write the whole state to a temporary file beside ``path``, rename it over, fsync the directory."""
        directory = os.path.dirname(self.path) or "."
        data = self.text()
        fd, tmp = tempfile.mkstemp(prefix=".littleboss-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)  # the rename itself survives a crash
        finally:
            os.close(fd)

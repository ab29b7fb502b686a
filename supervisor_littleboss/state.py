"""The durable record of swapped-in binaries and reload history (``binaries.py`` changes it).

``state_file`` in ``[rpcinterface:littleboss]`` names the state file: supervisord's counts
(``{"format": 2, "supervisord": {...}}``), and beside it the directory
``<state_file>.programs`` with one file per program, ``<program>.json`` (``file_name``: the
name %-encoded; the file holds the name too). A file is replaced atomically (temporary file,
fsync, rename, fsync of its directory) when its text changed, so a swapped-in binary
survives ``update``, ``supervisorctl reload`` and a supervisord restart, and a save writes
only the programs whose state was said to have changed (``changed(name)``, which every
change of a program's state is followed by): with 500 programs in one file, every save
wrote and fsynced 0.4 MB, most of supervisord's CPU for a reload.

A state file of the first format (every program under ``"programs"``) is read; the first
save writes each of its programs to its own file, removes the files of any other program,
then writes the state file in the new format. Until that is done the state file of the first
format is the truth (a save that fails writes it whole, as that format did).

Each file is validated whole when it is loaded. One entry of the wrong shape or type makes
the whole file invalid: keeping the rest of a damaged program's state could run a binary its
operator had since replaced, and the configured binaries are always a safe start. An invalid
or unreadable file (or a directory) is moved aside to ``<file>.corrupt-<timestamp>`` (left in
place if it cannot be moved) with one error line in supervisord's log: its program (every
program, for a state file of the first format) starts from an empty state.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar
from urllib.parse import quote, unquote

from .metrics import HISTOGRAMS, new_histogram, valid_histogram
from .orphans import ProcessRecord

HISTORY_LIMIT = 20
MAX_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC: the last time ``status --history`` can print
ENTRY_STRINGS = ("kind", "from", "to", "outcome")  # history entry fields besides time and seconds
SUPERVISORD_COUNTS = ("starts", "reloads", "upgrades")  # supervisord's own, for the metrics
FORMAT = 2  # the state file holds supervisord's counts; each program has its own file
DIRECTORY_SUFFIX = ".programs"  # the programs' directory: the state file's path, then this
SUFFIX = ".json"  # of a program's file
TEMPORARY = (".littleboss-", ".tmp")  # a temporary file's name begins and ends so
NAME_LIMIT = 200  # characters of a program file's name before its suffix, at most
T = TypeVar("T")


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

    def to_dict(self) -> dict:
        """As ``dataclasses.asdict``, sharing the lists and dicts (only to be encoded), in a
        tenth of the time."""
        return {"path": self.path, "previous": self.previous, "command": self.command, "history": self.history,
                "processes": [record.to_dict() for record in self.processes], "metrics": self.metrics}

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


def _json(text: str) -> object:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None


def parse_all(text: str) -> tuple[dict[str, ProgramState] | None, dict[str, int]]:
    """The programs' states in a state file's ``text`` (None: the file is of the current
    format, and they are in their own files) and supervisord's counts."""
    raw = _object(_json(text), "the top level", ("format", "programs", "supervisord"))
    if "format" in raw:  # the current format: no programs
        if raw["format"] != FORMAT or isinstance(raw["format"], bool):
            raise ValueError(f"the top level's format is not {FORMAT}")
        if "programs" in raw:
            raise ValueError(f"the top level has programs in format {FORMAT}")
        programs = None
    elif "programs" not in raw:
        raise ValueError("the top level has no programs")
    elif not isinstance(raw["programs"], dict):
        raise _invalid("programs", "an object")
    else:
        programs = {name: ProgramState.from_dict(state, f"programs.{name}") for name, state in raw["programs"].items()}
    counts = _object(raw.get("supervisord", {}), "supervisord", SUPERVISORD_COUNTS)
    if not all(type(n) is int and n >= 0 for n in counts.values()):
        raise _invalid("supervisord", "an object of counts")
    return programs, {**dict.fromkeys(SUPERVISORD_COUNTS, 0), **counts}


def file_name(name: str) -> str:
    """The name of program ``name``'s file: its name, %-encoded but for letters, digits and
    ``_.-~``; one longer than NAME_LIMIT is cut, a hash of the whole name after it."""
    encoded = quote(name.encode("utf-8", "surrogatepass"), safe="")
    if len(encoded) > NAME_LIMIT:
        encoded = f"{encoded[:NAME_LIMIT - 65]}~{hashlib.sha256(encoded.encode()).hexdigest()}"
    return f"{encoded}{SUFFIX}"


def program_file(path: str, name: str) -> str:
    """Where program ``name``'s state is kept, for the state file ``path``."""
    return os.path.join(f"{path}{DIRECTORY_SUFFIX}", file_name(name))


def program_text(name: str, state: ProgramState) -> str:
    """Program ``name``'s file: its name, then each field of its state, one a line."""
    fields = {"name": name, **state.to_dict()}
    return "{\n" + ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in fields.items()) + "\n}\n"


def parse_program(text: str) -> tuple[str, ProgramState]:
    """The program's name and state in the text of its file."""
    raw = _json(text)
    if not isinstance(raw, dict):
        raise _invalid("the top level", "an object")
    if not isinstance(raw.get("name"), str):
        raise _invalid("the top level's name", "a string")
    name = raw["name"]
    return name, ProgramState.from_dict({key: value for key, value in raw.items() if key != "name"}, name)


def _program_in(entry: str, text: str) -> tuple[str, ProgramState, str]:
    """The program's name, its state and ``text``, the text of its file ``entry``."""
    name, state = parse_program(text)
    if file_name(name) != entry:
        raise ValueError(f"it holds the state of {name!r}, whose file is {file_name(name)}")
    return name, state, text


def _aside_name(path: str) -> str:
    """``<path>.corrupt-<unix time>``, with a ``.N`` suffix if an earlier one has that name."""
    aside = stamp = f"{path}.corrupt-{int(time.time())}"
    number = 0
    while os.path.lexists(aside):
        number += 1
        aside = f"{stamp}.{number}"
    return aside


def _set_aside(path: str, problem: str, consequence: str, logger) -> None:
    """Move the damaged ``path`` aside, and say so in one error line."""
    aside = _aside_name(path)
    try:
        os.replace(path, aside)
        outcome = f"moved it to {aside}"
    except OSError as exc:
        outcome = f"cannot move it aside ({exc}), ignoring it"
    if logger:
        logger.error(f"littleboss: the state file {path} {problem}; {outcome}; {consequence}")


def _read(path: str, parse: Callable[[str], T], consequence: str, logger) -> T | None:
    """``parse`` of the file at ``path``; None if there is none, or it was damaged (set aside)."""
    try:
        with open(path, encoding="utf-8") as file:
            return parse(file.read())
    except FileNotFoundError:
        return None
    except OSError as exc:
        problem = f"cannot be read: {exc.strerror or exc}"
    except ValueError as exc:  # including UnicodeDecodeError
        problem = f"is invalid: {exc}"
    _set_aside(path, problem, consequence, logger)
    return None


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # the renames and removals in it survive a crash
    finally:
        os.close(fd)


def _replace_file(directory: str, name: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=TEMPORARY[0], suffix=TEMPORARY[1], dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(text.encode("utf-8", "surrogatepass"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        os.unlink(tmp)
        raise


def replace_files(directory: str, texts: dict[str, str]) -> dict[str, OSError]:
    """Replace each file ``texts`` names in ``directory`` with its text, atomically (a temporary
    file written, fsynced and renamed over; one fd open at a time), then fsync the directory.
    The files that could not be replaced, each with its error (naming the file)."""
    failed = {}
    for name, text in texts.items():
        try:
            _replace_file(directory, name, text)
        except OSError as exc:
            failed[name] = OSError(exc.errno, exc.strerror, os.path.join(directory, name))
    if len(failed) < len(texts):
        _fsync_directory(directory)
    return failed


class StateStore:
    """Every program's ProgramState, loaded from and saved to the state file ``path`` and its
    directory ``<path>.programs``."""

    def __init__(self, path: str, logger=None) -> None:
        self.path = path
        self.directory = f"{path}{DIRECTORY_SUFFIX}"
        self.supervisord: dict[str, int]  # supervisord's starts, reloads (SIGHUP) and in-place upgrades
        self._texts: dict[str, str] = {}  # each program's file as last read or written
        programs, self.supervisord = self._load_state_file(logger)
        self.migrating = programs is not None  # a state file of the first format: its programs
        self.programs: dict[str, ProgramState] = self._load_programs(logger) if programs is None else programs
        self._changed: set[str] = set()  # programs whose state changed since their file was written
        self._index: str | None = None  # the state file's text as last written; None: to write
        self._directory_made = os.path.isdir(self.directory)  # and its creation fsynced

    def _load_state_file(self, logger) -> tuple[dict[str, ProgramState] | None, dict[str, int]]:
        consequence = ("the programs start with their configured binaries" if not os.path.isdir(self.directory)
                       else f"the programs' states in {self.directory} are kept")
        loaded = _read(self.path, parse_all, consequence, logger)
        return loaded or (None, dict.fromkeys(SUPERVISORD_COUNTS, 0))

    def _load_programs(self, logger) -> dict[str, ProgramState]:
        try:
            entries = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            _set_aside(self.directory, f"cannot be read: {exc.strerror or exc}",
                       "the programs start with their configured binaries", logger)
            return {}
        programs = {}
        for entry in entries:
            path = os.path.join(self.directory, entry)
            if entry.startswith(TEMPORARY[0]) and entry.endswith(TEMPORARY[1]):
                with contextlib.suppress(OSError):
                    os.unlink(path)  # a save cut short by a crash; supervisord is the only writer
            elif entry.endswith(SUFFIX):
                loaded = _read(path, partial(_program_in, entry), f"{unquote(entry[:-len(SUFFIX)])} starts with "
                               "its configured binary", logger)
                if loaded is not None:
                    name, programs[name], self._texts[name] = loaded
        return programs

    def program(self, name: str) -> ProgramState:
        return self.programs.setdefault(name, ProgramState())

    def changed(self, name: str) -> None:
        """Program ``name``'s state changed: the next save writes its file again."""
        self._changed.add(name)

    def index_text(self) -> str:
        """The state file's text: the format and supervisord's counts."""
        return json.dumps({"format": FORMAT, "supervisord": self.supervisord}, indent=1)

    def save(self) -> None:
        """Write the file of each program that changed (or has none yet) if its text changed,
        then the state file if supervisord's counts changed. A program whose file could not be
        written is written at the next save. OSError (naming a file) if a file could not be
        written; while the programs of a state file of the first format are moved to their own
        files, that state file is then written whole, as that format did, and stays the truth."""
        try:
            self._save()
        except OSError:
            if self.migrating:
                with contextlib.suppress(OSError):
                    self._write_state_file(json.dumps(
                        {"programs": {name: state.to_dict() for name, state in self.programs.items()},
                         "supervisord": self.supervisord}, indent=1))
            raise

    def _write_state_file(self, text: str) -> None:
        """Replace the state file with ``text``; OSError (naming it) if it cannot be."""
        failed = replace_files(os.path.dirname(self.path) or ".", {os.path.basename(self.path): text})
        if failed:
            raise next(iter(failed.values()))

    def _save(self) -> None:
        pending = (self._changed | (self.programs.keys() - self._texts.keys())) & self.programs.keys()
        texts = {name: program_text(name, self.programs[name]) for name in sorted(pending)}
        texts = {name: text for name, text in texts.items() if text != self._texts.get(name)}
        self._changed -= pending - texts.keys()  # encoded the same as their files
        if texts:
            if not self._directory_made:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                _fsync_directory(os.path.dirname(os.path.abspath(self.directory)))
                self._directory_made = True
            files = {name: file_name(name) for name in texts}
            failed = replace_files(self.directory, {files[name]: text for name, text in texts.items()})
            for name, text in texts.items():
                if files[name] not in failed:
                    self._texts[name] = text
                    self._changed.discard(name)
            if failed:
                raise next(iter(failed.values()))
        if self.migrating and self._directory_made:  # the first format's programs are in their files
            wanted = {file_name(name) for name in self.programs}
            stale = [entry for entry in os.listdir(self.directory) if entry.endswith(SUFFIX) and entry not in wanted]
            for entry in stale:  # a file of a program the state file of the first format has no state of
                os.unlink(os.path.join(self.directory, entry))
            if stale:
                _fsync_directory(self.directory)
        index = self.index_text()
        if index != self._index:
            self._write_state_file(index)
            self._index = index
            self.migrating = False

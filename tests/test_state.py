"""A damaged state file is moved aside with one error line, and supervisord starts with the
configured binaries; a valid one round-trips; every save is atomic and durable, and encodes
again only the programs whose state changed."""
from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from harness import Releases, Supervisord, free_port, http_get, wait_for

from supervisor_littleboss import state as state_module
from supervisor_littleboss.contract import Kind, history_entry
from supervisor_littleboss.metrics import observe
from supervisor_littleboss.orphans import ProcessRecord
from supervisor_littleboss.plugin import Plugin
from supervisor_littleboss.state import ProgramState, StateStore, parse

ENTRY = {"time": 1700000000.5, "kind": "reload", "from": "/r/v1/app", "to": "/r/v2/app",
         "outcome": "succeeded", "seconds": 0.25}


class Logger:
    """Collects what supervisord's logger would log, one (level, line) a call."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str):
        return lambda line: self.lines.append((level, line))


def with_web(web: object) -> str:
    return json.dumps({"programs": {"web": web}})


MISSING = object()


def with_entry(**changes) -> str:
    """A history of four entries whose last (index 3) has ``changes`` (MISSING: remove the key)."""
    entry = {key: value for key, value in {**ENTRY, **changes}.items() if value is not MISSING}
    return with_web({"path": None, "history": [ENTRY, ENTRY, ENTRY, entry]})


BAD_SECONDS = "programs.web.history[3].seconds is not a finite number, 0 or more"
DAMAGED = {
    "not JSON": ("{programs", "not valid JSON: Expecting property name"),
    "empty": ("", "not valid JSON: Expecting value"),
    "NaN": (with_entry(time=float("nan")), "not valid JSON: NaN"),
    "too deep": ("[" * 100_000, "not valid JSON: nested too deeply"),
    "a list": ("[]", "the top level is not an object"),
    "no programs": ("{}", "the top level has no programs"),
    "unknown top key": ('{"programs": {}, "version": 2}', "the top level has an unknown key 'version'"),
    "programs a list": ('{"programs": []}', "programs is not an object"),
    "program a string": (with_web("web"), "programs.web is not an object"),
    "path a number": (with_web({"path": 5}), "programs.web.path is not a string or null"),
    "previous a list": (with_web({"previous": []}), "programs.web.previous is not a string or null"),
    "command true": (with_web({"command": True}), "programs.web.command is not a string or null"),
    "unknown program key": (with_web({"colour": "red"}), "programs.web has an unknown key 'colour'"),
    "history a number": (with_web({"history": 5}), "programs.web.history is not a list"),
    "history an object": (with_web({"history": {"0": ENTRY}}), "programs.web.history is not a list"),
    "history a string": (with_web({"history": "reloaded"}), "programs.web.history is not a list"),
    "entry a list": (with_web({"history": [ENTRY, []]}), "programs.web.history[1] is not an object"),
    "kind a number": (with_entry(kind=5), "programs.web.history[3].kind is not a string"),
    "from null": (with_entry(**{"from": None}), "programs.web.history[3].from is not a string"),
    "outcome missing": (with_entry(outcome=MISSING), "programs.web.history[3] has no 'outcome'"),
    "time a string": (with_entry(time="yesterday"), "programs.web.history[3].time is not a number from 0 to"),
    "time missing": (with_entry(time=MISSING), "programs.web.history[3] has no 'time'"),
    "time true": (with_entry(time=True), "programs.web.history[3].time is not a number"),
    "time negative": (with_entry(time=-1), "programs.web.history[3].time is not a number"),
    "time too late": (with_entry(time=1e300), "programs.web.history[3].time is not a number"),
    "seconds huge": (with_entry(seconds=10**400), BAD_SECONDS),
    "seconds 1e400": (with_entry(seconds=1).replace('"seconds": 1', '"seconds": 1e400'), BAD_SECONDS),
    "seconds a string": (with_entry(seconds="1.5"), BAD_SECONDS),
    "unknown entry key": (with_entry(pid=12), "programs.web.history[3] has an unknown key 'pid'"),
    "processes an object": (with_web({"processes": {}}), "programs.web.processes is not a list"),
    "process pid a string": (with_web({"processes": [{"pid": "12", "start": 5}]}),
                             "programs.web.processes[0]: a process record's pid is a positive integer"),
    "process start missing": (with_web({"processes": [{"pid": 12}]}), "programs.web.processes[0]: a process record"),
    "process unknown key": (with_web({"processes": [{"pid": 12, "start": 5, "uid": 0}]}),
                            "programs.web.processes[0] has an unknown key 'uid'"),
}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "supervisord-littleboss.json"


def asides(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


def assert_moved_aside(path: Path, logger: Logger, problem: str) -> Path:
    """One error line names the file, the problem and where it went, which holds it now."""
    [aside] = asides(path)
    [(level, line)] = logger.lines
    assert level == "error"
    assert line.startswith(f"littleboss: the state file {path} ")
    assert problem in line and f"moved it to {aside};" in line, line
    assert not os.path.lexists(path)
    return aside


@pytest.mark.parametrize("text, problem", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_file_is_moved_aside_with_one_error_line(path: Path, text: str, problem: str):
    path.write_text(text)
    logger = Logger()
    assert StateStore(str(path), logger).programs == {}
    aside = assert_moved_aside(path, logger, f"is invalid: {problem}")
    assert aside.read_text() == text


def test_invalid_utf8_is_moved_aside(path: Path):
    path.write_bytes(b'{"programs": {"w\xffb": {}}}')
    logger = Logger()
    assert StateStore(str(path), logger).programs == {}
    assert_moved_aside(path, logger, "is invalid: 'utf-8' codec can't decode byte 0xff")


def test_a_directory_at_the_path_is_moved_aside(path: Path):
    (path / "inside").mkdir(parents=True)
    logger = Logger()
    store = StateStore(str(path), logger)
    aside = assert_moved_aside(path, logger, "cannot be read: Is a directory")
    assert (aside / "inside").is_dir()
    store.program("web").path = "/r/v2/app"
    store.save()
    assert parse(path.read_text())["web"].path == "/r/v2/app"


def test_an_unreadable_file_is_moved_aside(path: Path, mocker):
    path.write_text(with_web({"path": "/r/v2/app"}))
    mocker.patch.object(state_module, "open", side_effect=PermissionError(13, "Permission denied"), create=True)
    logger = Logger()
    assert StateStore(str(path), logger).programs == {}
    assert_moved_aside(path, logger, "cannot be read: Permission denied")


def test_a_second_damaged_file_in_the_same_second_keeps_the_first(path: Path, mocker):
    mocker.patch.object(state_module.time, "time", return_value=1700000000.25)
    for text in ("[]", "{}"):
        path.write_text(text)
        StateStore(str(path), Logger())
    assert [(p.name, p.read_text()) for p in asides(path)] == [
        (f"{path.name}.corrupt-1700000000", "[]"), (f"{path.name}.corrupt-1700000000.1", "{}")]


def test_a_directory_that_cannot_be_moved_is_ignored_and_saving_logs_instead_of_crashing(path: Path, mocker):
    path.mkdir()
    mocker.patch.object(state_module.os, "replace", side_effect=PermissionError(13, "Permission denied"))
    logger = Logger()
    store = StateStore(str(path), logger)
    [(level, line)] = logger.lines
    assert level == "error" and f"the state file {path} cannot be read: Is a directory" in line
    assert "cannot move it aside ([Errno 13] Permission denied), ignoring it" in line
    mocker.stopall()

    store.program("web").path = "/r/v2/app"
    Plugin.flush_state(SimpleNamespace(state=store, options=SimpleNamespace(logger=logger), unsaved=True))
    level, line = logger.lines[1]
    assert level == "error" and line.startswith(f"littleboss: cannot write the state file {path}: [Errno 21]")
    assert path.is_dir() and os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_a_missing_file_is_an_empty_state_and_says_nothing(path: Path):
    logger = Logger()
    assert StateStore(str(path), logger).programs == {}
    assert logger.lines == [] and not os.path.lexists(path)


def test_a_valid_state_round_trips(path: Path):
    store = StateStore(str(path), Logger())
    web = store.program("web")
    web.path, web.previous, web.command = "/r/v2/app", "/r/v1/app", "/r/v1/app --port 1"
    web.history = [history_entry(Kind.RELOAD, "/r/v1/app", "/r/v2/app", "succeeded", 1700000000.5, 1.234),
                   history_entry(Kind.CONFIG, "/r/v2/app", "/r/v1b/app", "the command changed", 1700000001.25)]
    web.processes = [ProcessRecord(1234, 56789), ProcessRecord(1240, 56790)]
    store.program("plain")
    store.save()
    logger = Logger()
    assert StateStore(str(path), logger).programs == store.programs
    assert logger.lines == [] and asides(path) == []


def test_integer_times_and_seconds_are_valid():
    [entry] = parse(with_web({"history": [{**ENTRY, "time": 1700000000, "seconds": 2}]}))["web"].history
    assert entry == {**ENTRY, "time": 1700000000.0, "seconds": 2.0}


def test_from_dict_fills_missing_keys_with_defaults():
    assert ProgramState.from_dict({"path": "/r/v2/app"}, "programs.web") == ProgramState(path="/r/v2/app")


def whole_encoding(store: StateStore) -> str:
    """The state file's text as every save wrote it before programs' texts were kept."""
    return json.dumps({"programs": {name: asdict(state) for name, state in store.programs.items()},
                       "supervisord": store.supervisord}, indent=1)


def test_only_a_changed_program_is_encoded_again_and_the_file_is_as_before(path: Path, mocker):
    store = StateStore(str(path), Logger())
    store.save()
    assert path.read_text() == whole_encoding(store)  # no program yet
    for n in range(5):
        store.program(f"app{n}").processes = [ProcessRecord(100 + n, 5000)]
    web = store.program('w\u00e9b "\n"')  # a name JSON escapes
    web.history = [history_entry(Kind.RELOAD, "/r/v1/app", "/r/v2/app", "succeeded", 1700000000.5, 1.234)]
    encode = mocker.spy(state_module, "asdict")
    store.save()
    assert path.read_text() == whole_encoding(store) and encode.call_count == 6
    changes = [  # every way littleboss changes a program's state: in place or by a new value
        ("app1", lambda: store.program("app1").processes.append(ProcessRecord(7, 8))),
        ("app2", lambda: observe(store.program("app2").metrics["ready"], 0.3)),
        ("app3", lambda: store.program("app3").metrics["reloads"].update({"reload succeeded": 1})),
        ('w\u00e9b "\n"', lambda: setattr(web, "history", [*web.history, {**web.history[0], "outcome": "x"}])),
        ("app4", lambda: setattr(store.program("app4"), "path", "/r/v2/app")),
        (None, lambda: store.supervisord.update(reloads=3)),  # supervisord's counts: no program's
    ]
    for n, (name, change) in enumerate(changes):
        encode.reset_mock()
        change()
        if name is not None:
            store.changed(name)
        store.save()
        assert path.read_text() == whole_encoding(store), n
        assert encode.call_args_list == ([mocker.call(store.programs[name])] if name else []), n
    encode.reset_mock()
    store.program("new")
    store.save()  # a new program, alone encoded
    assert path.read_text() == whole_encoding(store) and encode.call_count == 1
    assert parse(path.read_text()) == store.programs


def test_save_fsyncs_the_file_then_the_directory_after_the_rename(path: Path, mocker):
    fsync, synced = os.fsync, []

    def spy(fd: int) -> None:
        is_directory = stat.S_ISDIR(os.fstat(fd).st_mode)
        synced.append((is_directory, is_directory and path.read_text()))
        fsync(fd)

    mocker.patch.object(state_module.os, "fsync", side_effect=spy)
    store = StateStore(str(path), Logger())
    store.program("web").path = "/r/v2/app"
    store.save()
    assert synced == [(False, False), (True, path.read_text())]  # the directory: after the rename
    assert '"/r/v2/app"' in path.read_text()


# --- end to end --------------------------------------------------------------------
def write_directory(path: Path) -> None:
    path.mkdir()
    (path / "inside").write_text("not a state")


E2E = {
    "wrong shape": lambda path: path.write_text('{"programs": {"web": {"path": 5}}}'),
    "a directory": write_directory,
    "history not a list": lambda path: path.write_text(with_web({"path": None, "history": {"0": ENTRY}})),
}


@pytest.mark.e2e
@pytest.mark.parametrize("damage", E2E.values(), ids=E2E.keys())
def test_supervisord_starts_with_the_configured_binary_despite_a_damaged_state_file(supervisord: Supervisord,
                                                                                       damage):
    releases = Releases(supervisord.root)
    v1, v2 = releases.v1, releases.v2
    port = free_port()
    supervisord.littleboss_program("web", v1, port, releases.allow, ready=None)
    path = supervisord.root / "supervisord-littleboss.json"
    damage(path)
    supervisord.start()
    supervisord.wait_running("web")
    assert http_get(("127.0.0.1", port)).split()[0] == b"v1"
    assert supervisord.ctl("littleboss:status", "--history", "web", check=True).stdout.splitlines()[1:] == [
        "  no reloads yet"]

    def errors() -> list[str]:
        return [line for line in supervisord.log.read_text().splitlines() if " ERRO " in line]

    [error] = wait_for(errors, what="the state file's error line")
    [aside] = asides(path)
    assert f"littleboss: the state file {path} " in error and f"moved it to {aside};" in error
    assert parse(path.read_text())["web"].path is None  # a fresh, valid state (it records the running pid)

    supervisord.rpc.littleboss.reload("web", v2)
    assert http_get(("127.0.0.1", port)).split()[0] == b"v2"
    assert parse(path.read_text())["web"].path == v2
    supervisord.hup()  # a new plugin loads the fresh file: the swapped-in binary, no new error
    supervisord.wait_running("web")
    assert http_get(("127.0.0.1", port)).split()[0] == b"v2"
    [_, line] = supervisord.ctl("littleboss:status", "--history", "web", check=True).stdout.splitlines()
    assert f"reload   {v1} \u2192 {v2}  succeeded" in line
    assert errors() == [error] and asides(path) == [aside]


def test_changes_are_written_once_per_pass_of_the_main_loop(mocker):
    plugin = SimpleNamespace(state=mocker.Mock(), options=SimpleNamespace(logger=Logger()), unsaved=False)
    for _ in range(500):  # 500 programs changed in one pass
        Plugin.save_state(plugin)
    Plugin.flush_state(plugin)
    Plugin.flush_state(plugin)  # the next pass: nothing changed
    assert plugin.state.save.call_count == 1

"""A damaged state file is moved aside with one error line, and supervisord starts with the
configured binaries; a valid one round-trips; every save is atomic and durable, and encodes
again only the programs whose state changed."""
from __future__ import annotations

import json
import os
import shutil
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
from supervisor_littleboss.state import (
    ProgramState,
    StateStore,
    file_name,
    parse_all,
    parse_program,
    program_file,
)

ENTRY = {"time": 1700000000.5, "kind": "reload", "from": "/r/v1/app", "to": "/r/v2/app",
         "outcome": "succeeded", "seconds": 0.25}


class Logger:
    """Collects what supervisord's logger would log, one (level, line) a call."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str):
        return lambda line: self.lines.append((level, line))


def with_web(web: object) -> str:
    """A state file of the first format: program web's state is ``web``."""
    return json.dumps({"programs": {"web": web}})


MISSING = object()


def with_entry(**changes) -> dict:
    """Program web's state: a history of four entries whose last (index 3) has ``changes``
    (MISSING: remove the key)."""
    entry = {key: value for key, value in {**ENTRY, **changes}.items() if value is not MISSING}
    return {"path": None, "history": [ENTRY, ENTRY, ENTRY, entry]}


BAD_SECONDS = ".history[3].seconds is not a finite number, 0 or more"
PROGRAM_DAMAGED = {  # a program's state, and what is wrong with it, after the program's name
    "program a string": ("web", " is not an object"),
    "path a number": ({"path": 5}, ".path is not a string or null"),
    "previous a list": ({"previous": []}, ".previous is not a string or null"),
    "command true": ({"command": True}, ".command is not a string or null"),
    "unknown program key": ({"colour": "red"}, " has an unknown key 'colour'"),
    "history a number": ({"history": 5}, ".history is not a list"),
    "history an object": ({"history": {"0": ENTRY}}, ".history is not a list"),
    "history a string": ({"history": "reloaded"}, ".history is not a list"),
    "entry a list": ({"history": [ENTRY, []]}, ".history[1] is not an object"),
    "kind a number": (with_entry(kind=5), ".history[3].kind is not a string"),
    "from null": (with_entry(**{"from": None}), ".history[3].from is not a string"),
    "outcome missing": (with_entry(outcome=MISSING), ".history[3] has no 'outcome'"),
    "time a string": (with_entry(time="yesterday"), ".history[3].time is not a number from 0 to"),
    "time missing": (with_entry(time=MISSING), ".history[3] has no 'time'"),
    "time true": (with_entry(time=True), ".history[3].time is not a number"),
    "time negative": (with_entry(time=-1), ".history[3].time is not a number"),
    "time too late": (with_entry(time=1e300), ".history[3].time is not a number"),
    "seconds huge": (with_entry(seconds=10**400), BAD_SECONDS),
    "seconds a string": (with_entry(seconds="1.5"), BAD_SECONDS),
    "unknown entry key": (with_entry(pid=12), ".history[3] has an unknown key 'pid'"),
    "processes an object": ({"processes": {}}, ".processes is not a list"),
    "process pid a string": ({"processes": [{"pid": "12", "start": 5}]},
                             ".processes[0]: a process record's pid is a positive integer"),
    "process start missing": ({"processes": [{"pid": 12}]}, ".processes[0]: a process record"),
    "process unknown key": ({"processes": [{"pid": 12, "start": 5, "uid": 0}]},
                            ".processes[0] has an unknown key 'uid'"),
}
DAMAGED = {  # a state file's text, and what is wrong with it
    "not JSON": ("{programs", "not valid JSON: Expecting property name"),
    "empty": ("", "not valid JSON: Expecting value"),
    "NaN": (with_web(with_entry(time=float("nan"))), "not valid JSON: NaN"),
    "too deep": ("[" * 100_000, "not valid JSON: nested too deeply"),
    "a list": ("[]", "the top level is not an object"),
    "no programs": ("{}", "the top level has no programs"),
    "unknown top key": ('{"programs": {}, "version": 2}', "the top level has an unknown key 'version'"),
    "programs a list": ('{"programs": []}', "programs is not an object"),
    "seconds 1e400": (with_web(with_entry(seconds=1)).replace('"seconds": 1', '"seconds": 1e400'),
                      "programs.web" + BAD_SECONDS),
    "format 3": ('{"format": 3, "supervisord": {}}', "the top level's format is not 2"),
    "format true": ('{"format": true}', "the top level's format is not 2"),
    "format with programs": ('{"format": 2, "programs": {}}', "the top level has programs in format 2"),
    "counts negative": ('{"format": 2, "supervisord": {"starts": -1}}', "supervisord is not an object of counts"),
    **{name: (with_web(web), f"programs.web{problem}") for name, (web, problem) in PROGRAM_DAMAGED.items()},
}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "supervisord-littleboss.json"


def web_file(path: Path, name: str = "web") -> Path:
    return Path(program_file(str(path), name))


def saved(path: Path, name: str) -> ProgramState:
    """Program ``name``'s state as its file holds it."""
    saved_name, state = parse_program(web_file(path, name).read_text())
    assert saved_name == name
    return state


def asides(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


def assert_moved_aside(path: Path, logger: Logger, problem: str, consequence: str) -> Path:
    """One error line names the file, the problem, where it went (which holds it now) and
    what follows."""
    [aside] = asides(path)
    [(level, line)] = logger.lines
    assert level == "error"
    assert line.startswith(f"littleboss: the state file {path} {problem}"), line  # the problem, in part
    assert line.endswith(f"; moved it to {aside}; {consequence}"), line
    assert not os.path.lexists(path)
    return aside


EVERY_PROGRAM = "the programs start with their configured binaries"


@pytest.mark.parametrize("text, problem", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_state_file_is_moved_aside_with_one_error_line(path: Path, text: str, problem: str):
    path.write_text(text)
    logger = Logger()
    assert StateStore(str(path), logger).programs == {}
    aside = assert_moved_aside(path, logger, f"is invalid: {problem}", EVERY_PROGRAM)
    assert aside.read_text() == text


FILE_DAMAGED = {  # a program's file, and what is wrong with it
    **{name: ({"name": "web", **web}, f"web{problem}") for name, (web, problem) in PROGRAM_DAMAGED.items()
       if isinstance(web, dict)},
    "a list": (["web"], "the top level is not an object"),
    "no name": ({"path": None}, "the top level's name is not a string"),
    "name a number": ({"name": 5}, "the top level's name is not a string"),
    "another program's": ({"name": "api"}, "it holds the state of 'api', whose file is api.json"),
}


@pytest.mark.parametrize("web, problem", FILE_DAMAGED.values(), ids=FILE_DAMAGED.keys())
def test_a_damaged_program_file_is_moved_aside_and_the_others_are_kept(path: Path, web: object, problem: str):
    api = StateStore(str(path))
    api.program("api").path = "/r/v2/api"
    api.save()
    web_file(path).write_text(json.dumps(web))
    logger = Logger()
    store = StateStore(str(path), logger)
    assert store.programs == {"api": ProgramState(path="/r/v2/api")}
    assert_moved_aside(web_file(path), logger, f"is invalid: {problem}", "web starts with its configured binary")
    store.program("web").path = "/r/v3/app"
    store.save()  # a new file, alone
    assert saved(path, "web").path == "/r/v3/app" and len(asides(web_file(path))) == 1


def test_invalid_utf8_is_moved_aside(path: Path):
    path.write_bytes(b'{"programs": {"w\xffb": {}}}')
    logger = Logger()
    assert StateStore(str(path), logger).programs == {}
    assert_moved_aside(path, logger, "is invalid: 'utf-8' codec can't decode byte 0xff in position 16: invalid "
                       "start byte", EVERY_PROGRAM)


def test_a_directory_at_the_path_is_moved_aside(path: Path):
    (path / "inside").mkdir(parents=True)
    logger = Logger()
    store = StateStore(str(path), logger)
    aside = assert_moved_aside(path, logger, "cannot be read: Is a directory", EVERY_PROGRAM)
    assert (aside / "inside").is_dir()
    store.program("web").path = "/r/v2/app"
    store.save()
    assert saved(path, "web").path == "/r/v2/app" and parse_all(path.read_text())[0] is None


def test_a_file_in_place_of_the_programs_directory_is_moved_aside(path: Path):
    web_file(path).parent.write_text("not a directory")
    logger = Logger()
    store = StateStore(str(path), logger)
    assert_moved_aside(web_file(path).parent, logger, "cannot be read: Not a directory", EVERY_PROGRAM)
    store.program("web").path = "/r/v2/app"
    store.save()
    assert saved(path, "web").path == "/r/v2/app"


def test_a_damaged_state_file_keeps_the_programs_files(path: Path):
    store = StateStore(str(path))
    store.program("web").path = "/r/v2/app"
    store.save()
    path.write_text("{")
    logger = Logger()
    assert StateStore(str(path), logger).programs == store.programs
    assert_moved_aside(path, logger, "is invalid: not valid JSON: Expecting property name enclosed in double "
                       "quotes: line 1 column 2 (char 1)", f"the programs' states in {web_file(path).parent} are kept")


def test_an_unreadable_file_is_moved_aside(path: Path, mocker):
    path.write_text(with_web({"path": "/r/v2/app"}))
    mocker.patch.object(state_module, "open", side_effect=PermissionError(13, "Permission denied"), create=True)
    logger = Logger()
    assert StateStore(str(path), logger).programs == {}
    assert_moved_aside(path, logger, "cannot be read: Permission denied", EVERY_PROGRAM)


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
    assert level == "error" and line.startswith(f"littleboss: cannot write the state file {path}: Is a directory;")
    assert saved(path, "web").path == "/r/v2/app"  # the program's own file is written
    assert sorted(os.listdir(path.parent)) == [path.name, f"{path.name}.programs"]  # no temporary file left behind
    assert os.listdir(path) == [] and os.listdir(web_file(path).parent) == ["web.json"]


def test_a_missing_file_is_an_empty_state_and_says_nothing(path: Path):
    logger = Logger()
    assert StateStore(str(path), logger).programs == {}
    assert logger.lines == [] and not os.path.lexists(path)


NAMES = ["web", "plain", 'w\u00e9b"%', "..", ".hidden", "x.json", "a" * 300, "\u540d" * 100]  # names supervisord takes


def test_a_valid_state_round_trips_each_program_in_its_own_file(path: Path):
    store = StateStore(str(path), Logger())
    web = store.program("web")
    web.path, web.previous, web.command = "/r/v2/app", "/r/v1/app", "/r/v1/app --port 1"
    web.history = [history_entry(Kind.RELOAD, "/r/v1/app", "/r/v2/app", "succeeded", 1700000000.5, 1.234),
                   history_entry(Kind.CONFIG, "/r/v2/app", "/r/v1b/app", "the command changed", 1700000001.25)]
    web.processes = [ProcessRecord(1234, 56789), ProcessRecord(1240, 56790)]
    for name in NAMES[1:]:
        store.program(name).path = f"/r/{name}"
    store.supervisord["starts"] = 3
    store.save()
    (web_file(path).parent / ".littleboss-left.tmp").write_text("{")  # a crash's leftover: removed
    logger = Logger()
    loaded = StateStore(str(path), logger)
    assert loaded.programs == store.programs and loaded.supervisord == {"starts": 3, "reloads": 0, "upgrades": 0}
    assert sorted(os.listdir(web_file(path).parent)) == sorted(map(file_name, NAMES))
    assert file_name('w\u00e9b"%') == "w%C3%A9b%22%25.json" and file_name("..") == "...json"
    assert all(len(file_name(name).encode()) < 255 for name in NAMES)  # a file name's limit
    assert json.loads(path.read_text()) == {"format": 2, "supervisord": loaded.supervisord}
    assert stat.S_IMODE(os.stat(web_file(path).parent).st_mode) == 0o700
    assert logger.lines == [] and asides(path) == []


def test_integer_times_and_seconds_are_valid():
    text = json.dumps({"name": "web", "history": [{**ENTRY, "time": 1700000000, "seconds": 2}]})
    [entry] = parse_program(text)[1].history
    assert entry == {**ENTRY, "time": 1700000000.0, "seconds": 2.0}


def test_from_dict_fills_missing_keys_with_defaults():
    assert ProgramState.from_dict({"path": "/r/v2/app"}, "web") == ProgramState(path="/r/v2/app")


def files(path: Path) -> dict[str, int]:
    """Each file of the state (the state file, the programs'), by name: its inode, which a
    save that replaces it changes."""
    return {name: os.stat(directory / name).st_ino
            for directory in (path.parent, web_file(path).parent) if directory.exists()
            for name in os.listdir(directory) if not os.path.isdir(directory / name)}


def test_a_save_writes_only_the_files_whose_state_changed(path: Path, mocker):
    store = StateStore(str(path), Logger())
    store.save()
    assert list(files(path)) == [path.name] and not web_file(path).parent.exists()  # no program yet
    for n in range(5):
        store.program(f"app{n}").processes = [ProcessRecord(100 + n, 5000)]
    web = store.program('w\u00e9b"')
    web.history = [history_entry(Kind.RELOAD, "/r/v1/app", "/r/v2/app", "succeeded", 1700000000.5, 1.234)]
    encode = mocker.spy(state_module, "program_text")
    store.save()
    assert encode.call_count == 6 and len(files(path)) == 7
    changes = [  # every way littleboss changes a program's state: in place or by a new value
        ("app1", lambda: store.program("app1").processes.append(ProcessRecord(7, 8))),
        ("app2", lambda: observe(store.program("app2").metrics["ready"], 0.3)),
        ("app3", lambda: store.program("app3").metrics["reloads"].update({"reload succeeded": 1})),
        ('w\u00e9b"', lambda: setattr(web, "history", [*web.history, {**web.history[0], "outcome": "x"}])),
        ("app4", lambda: setattr(store.program("app4"), "path", "/r/v2/app")),
    ]
    for n, (name, change) in enumerate(changes):
        before = files(path)
        encode.reset_mock()
        change()
        store.changed(name)
        store.save()
        after = files(path)
        assert [file for file in after if before.get(file) != after[file]] == [file_name(name)], n
        assert encode.call_count == 1, n
    unchanged = [  # what writes no program's file
        (path.name, 0, lambda: store.supervisord.update(reloads=3)),  # supervisord's counts: the state file
        (None, 1, lambda: store.changed("app0")),  # said to have changed, but the same: encoded, not written
        (None, 0, lambda: None),  # nothing changed
    ]
    for n, (name, encoded, change) in enumerate(unchanged):
        before = files(path)
        encode.reset_mock()
        change()
        store.save()
        after = files(path)
        assert [file for file in after if before.get(file) != after[file]] == ([name] if name else []), n
        assert encode.call_count == encoded, n
    store.program("new")
    store.save()  # a new program: written though never said to have changed
    assert saved(path, "new") == ProgramState()
    assert StateStore(str(path)).programs == store.programs


def test_a_file_that_cannot_be_written_leaves_the_others_written_and_is_written_at_the_next_save(path: Path, mocker):
    store = StateStore(str(path))
    store.save()
    for n in range(4):
        store.program(f"app{n}").path = f"/r/{n}"
    fsync = os.fsync

    def no_space_for_app2(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(web_file(path).parent / ".littleboss-")) \
                and b'"app2"' in os.pread(fd, 100, 0):
            raise OSError(28, "No space left on device")
        fsync(fd)

    mocker.patch.object(state_module.os, "fsync", side_effect=no_space_for_app2)
    with pytest.raises(OSError) as failed:
        store.save()
    assert (failed.value.filename, failed.value.strerror) == (str(web_file(path, "app2")), "No space left on device")
    assert sorted(os.listdir(web_file(path).parent)) == ["app0.json", "app1.json", "app3.json"]  # no temporary file
    mocker.stopall()
    before = files(path)
    store.save()
    after = files(path)
    assert [file for file in after if before.get(file) != after[file]] == ["app2.json"]
    assert StateStore(str(path)).programs == store.programs


def test_to_dict_is_asdict():
    state = ProgramState("/r/v2/app", "/r/v1/app", "/r/v1/app -x", [ENTRY], [ProcessRecord(12, 34)])
    observe(state.metrics["ready"], 0.5)
    assert state.to_dict() == asdict(state)


def test_save_fsyncs_each_file_before_its_rename_and_its_directory_after(path: Path, mocker):
    fsync, synced = os.fsync, []

    def spy(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((name, sorted(os.listdir(name)) if os.path.isdir(name) else None))
        fsync(fd)

    mocker.patch.object(state_module.os, "fsync", side_effect=spy)
    store = StateStore(str(path), Logger())
    store.program("web").path = "/r/v2/app"
    store.save()
    directory = str(web_file(path).parent)
    assert synced == [
        (str(path.parent), [f"{path.name}.programs"]),  # the programs' directory, made
        (synced[1][0], None), (directory, ["web.json"]),  # web's temporary file, then after its rename
        (synced[3][0], None), (str(path.parent), [path.name, f"{path.name}.programs"]),  # the state file's
    ]
    assert synced[1][0].startswith(f"{directory}/.littleboss-")
    assert synced[3][0].startswith(f"{path.parent}/.littleboss-")
    assert saved(path, "web").path == "/r/v2/app"


def first_format(path: Path) -> dict[str, ProgramState]:
    """A state file of the first format, with two programs and supervisord's counts, and a
    program's file that a later littleboss left (not in it: stale); its programs."""
    programs = {"web": ProgramState(path="/r/v2/app", previous="/r/v1/app", command="/r/v1/app"),
                "api": ProgramState(processes=[ProcessRecord(1234, 56789)])}
    path.write_text(json.dumps({"programs": {name: asdict(state) for name, state in programs.items()},
                                "supervisord": {"starts": 4}}, indent=1))
    web_file(path, "gone").parent.mkdir()
    web_file(path, "gone").write_text(json.dumps({"path": "/r/stale"}))
    return programs


def test_a_state_file_of_the_first_format_is_read_and_its_programs_moved_to_their_own_files(path: Path):
    programs = first_format(path)
    logger = Logger()
    store = StateStore(str(path), logger)
    assert store.programs == programs and store.supervisord == {"starts": 4, "reloads": 0, "upgrades": 0}
    store.save()
    assert sorted(os.listdir(web_file(path).parent)) == ["api.json", "web.json"]  # the stale one removed
    assert json.loads(path.read_text()) == {"format": 2, "supervisord": store.supervisord}
    loaded = StateStore(str(path), logger)
    assert loaded.programs == programs and loaded.supervisord == store.supervisord and logger.lines == []


def test_a_move_to_the_new_format_cut_short_keeps_the_state_file_of_the_first_format_whole_and_current(
        path: Path, mocker):
    programs = first_format(path)
    replace = os.replace
    index_writes = 0

    def cannot_write_the_state_file(source: str, target: str) -> None:
        nonlocal index_writes
        if target == str(path):
            index_writes += 1
            if index_writes == 1:  # the new format's; the first format's, whole, goes through
                raise OSError(5, "Input/output error")
        replace(source, target)

    mocker.patch.object(state_module.os, "replace", side_effect=cannot_write_the_state_file)
    store = StateStore(str(path))
    store.program("web").path = "/r/v3/app"  # changed after the load
    store.changed("web")
    with pytest.raises(OSError) as failed:
        store.save()
    assert (failed.value.filename, index_writes) == (str(path), 2)
    mocker.stopall()
    first, counts = parse_all(path.read_text())
    assert first == {**programs, "web": store.programs["web"]} and counts == store.supervisord
    assert StateStore(str(path)).programs == store.programs  # the first format's state file still decides
    store.save()  # the move, made again
    assert parse_all(path.read_text())[0] is None and StateStore(str(path)).programs == store.programs


def test_changes_are_written_once_per_pass_of_the_main_loop(mocker):
    plugin = SimpleNamespace(state=mocker.Mock(), options=SimpleNamespace(logger=Logger()), unsaved=False)
    for _ in range(500):  # 500 programs changed in one pass
        Plugin.save_state(plugin)
    Plugin.flush_state(plugin)
    Plugin.flush_state(plugin)  # the next pass: nothing changed
    assert plugin.state.save.call_count == 1


# --- end to end --------------------------------------------------------------------
def write_directory(path: Path) -> Path:
    path.mkdir()
    (path / "inside").write_text("not a state")
    return path


def write_program_file(path: Path) -> Path:
    web_file(path).parent.mkdir()
    web_file(path).write_text('{"name": "web", "path": "/r/v9/app", "history": 5}')
    return web_file(path)


E2E = {  # each damages the state (the state file ``path`` or a program's file) and returns the damaged file
    "wrong shape": lambda path: path.write_text('{"programs": {"web": {"path": 5}}}') and path,
    "a directory": write_directory,
    "history not a list": lambda path: path.write_text(with_web({"path": None, "history": {"0": ENTRY}})) and path,
    "a program's file": write_program_file,
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
    damaged = damage(path)
    supervisord.start()
    supervisord.wait_running("web")
    assert http_get(("127.0.0.1", port)).split()[0] == b"v1"
    assert supervisord.ctl("littleboss:status", "--history", "web", check=True).stdout.splitlines()[1:] == [
        "  no reloads yet"]

    def errors() -> list[str]:
        return [line for line in supervisord.log.read_text().splitlines() if " ERRO " in line]

    [error] = wait_for(errors, what="the state file's error line")
    [aside] = asides(damaged)
    assert f"littleboss: the state file {damaged} " in error and f"moved it to {aside};" in error
    assert saved(path, "web").path is None  # a fresh, valid state (it records the running pid)

    supervisord.rpc.littleboss.reload("web", v2)
    assert http_get(("127.0.0.1", port)).split()[0] == b"v2"
    assert saved(path, "web").path == v2
    supervisord.hup()  # a new plugin loads the fresh file: the swapped-in binary, no new error
    supervisord.wait_running("web")
    assert http_get(("127.0.0.1", port)).split()[0] == b"v2"
    [_, line] = supervisord.ctl("littleboss:status", "--history", "web", check=True).stdout.splitlines()
    assert f"reload   {v1} \u2192 {v2}  succeeded" in line
    assert errors() == [error] and asides(damaged) == [aside]


@pytest.mark.e2e
def test_a_state_file_of_the_first_format_is_taken_up_and_rewritten(supervisord: Supervisord):
    """A supervisord upgraded from a littleboss that kept every program in the state file
    runs the binary swapped in before, and rewrites the state one file per program."""
    releases = Releases(supervisord.root)
    v1, v2 = releases.v1, releases.v2
    port = free_port()
    supervisord.littleboss_program("web", v1, port, releases.allow, ready=None)
    path = supervisord.root / "supervisord-littleboss.json"
    supervisord.start()
    supervisord.wait_running("web")
    supervisord.rpc.littleboss.reload("web", v2)
    supervisord.stop()
    web = {key: value for key, value in json.loads(web_file(path).read_text()).items() if key != "name"}
    counts = json.loads(path.read_text())["supervisord"]
    path.write_text(json.dumps({"programs": {"web": web}, "supervisord": counts}))  # as the first format wrote it
    shutil.rmtree(web_file(path).parent)

    supervisord.start()
    supervisord.wait_running("web")
    assert http_get(("127.0.0.1", port)).split()[0] == b"v2"
    info = supervisord.rpc.littleboss.getProgramInfo("web")
    assert (info["path"], info["previous_path"]) == (v2, v1)
    assert json.loads(path.read_text()) == {"format": 2, "supervisord": {**counts, "starts": counts["starts"] + 1}}
    assert saved(path, "web").path == v2
    assert " ERRO " not in supervisord.log.read_text()

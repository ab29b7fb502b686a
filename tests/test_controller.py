"""The supervisorctl plugin, run as the real supervisorctl executable against a real supervisord."""
from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
from harness import EXAMPLE, VENV_ENV, Releases, Supervisord, free_port, pid_alive, wait_for
from load import Load
from supervisor.options import ClientOptions
from supervisor.supervisorctl import Controller

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # real supervisords, programs and clients

@pytest.fixture(scope="module")
def sv(tmp_path_factory) -> Supervisord:
    """One supervisord for the module: the tests that reload web go from whichever release
    it runs to the other (``other_release``) and the rest are refused or wait for their
    reload to end, and no test reloads multi, so the tests pass alone and in any order."""
    sv = Supervisord(tmp_path_factory.mktemp("ctl"))
    sv.port = free_port()
    releases = Releases(sv.root)
    sv.v1, sv.v2 = releases.v1, releases.v2
    sv.crash = releases.add("crash", "v3", "--mode", "crash")
    sv.never = releases.add("never", "v3", "--mode", "never-ready")
    # never-ready fails after 8 s: long enough for the Ctrl-C test to interrupt it first on a loaded machine
    sv.littleboss_program("web", sv.v1, sv.port, releases.allow, littleboss_ready_timeout=8)
    sv.program("plain", command="sleep 1000")
    sv.program("multi", command=sv.v1, numprocs=2, process_name="%(program_name)s_%(process_num)s",
               littleboss_sockets=f"http=tcp://127.0.0.1:{free_port()}")
    sv.start()
    yield sv
    sv.stop()


def without_uptime(text: str) -> str:
    return re.sub(r"uptime [0-9:]+", "uptime", text)


def other_release(sv) -> tuple[str, str]:
    """(current path, the other of v1/v2) of web."""
    current = sv.rpc.littleboss.getProgramInfo("web")["path"]
    return current, sv.v2 if current == sv.v1 else sv.v1


@pytest.mark.parametrize("spelling", ["littleboss:reload", "littleboss reload"])
def test_reload_prints_progress_and_a_final_line_and_exits_0(sv, spelling):
    old_pid = sv.wait_running("web")
    current, target = other_release(sv)
    with Load(("127.0.0.1", sv.port)) as load:
        result = sv.ctl(*spelling.split(), "web", target)
        load.wait_for_requests(50)
    assert result.returncode == 0, result.stdout
    new_pid = sv.info("web")["pid"]
    lines = result.stdout.splitlines()
    assert lines[0] == f"web: reload started: candidate pid {new_pid} running {target}"
    assert lines[1] == f"web: candidate pid {new_pid} is ready"
    assert lines[2] == f"web: promoted pid {new_pid}; old pid {old_pid} is draining"
    assert lines[3] == f"web: status httpapp {'v2' if target == sv.v2 else 'v1'} serving"  # its STATUS=
    assert lines[4].startswith(f"web: reloaded {current} \u2192 {target} (pid {old_pid} \u2192 {new_pid}) in ")
    assert load.result.failed == 0, load.result


def test_rollback(sv):
    sv.ctl("littleboss:reload", "web", other_release(sv)[1], check=True)
    current, previous = other_release(sv)
    result = sv.ctl("littleboss", "rollback", "web")
    assert result.returncode == 0
    assert f"web: rolled back {current} \u2192 {previous}" in result.stdout.splitlines()[-1]


@pytest.mark.parametrize("args, status, message", [
    (["web", "crash"], 7, "ERROR: EXITED_BEFORE_READY: web: reload to {crash} failed: it exited before it was "
                          "ready (exit status 3; last output: httpapp v3: cannot start: configuration is broken)"),
    (["web", "/usr/bin/env"], 1,
     "ERROR: NOT_ALLOWED: web: cannot reload to /usr/bin/env: it matches none of the allowed paths"),
    (["web", "relative"], 1, "ERROR: PATH_NOT_ABSOLUTE: web: cannot reload to relative: the path must be absolute"),
    (["nope"], 1, "ERROR: UNKNOWN_PROGRAM: no program named 'nope'"),
    (["plain"], 1, "ERROR: NOT_LITTLEBOSS: program 'plain' is not a littleboss program"),
    ([], 2, "Error: reload takes a program name and an optional path"),
    (["web", "/a", "/b"], 2, "Error: reload takes a program name and an optional path"),
])
def test_reload_failures_print_one_line_and_exit_by_kind(sv, args, status, message):
    pid = sv.wait_running("web")
    args = [getattr(sv, arg, arg) if arg == "crash" else arg for arg in args]
    result = sv.ctl("littleboss:reload", *args)
    assert result.returncode == status, result.stdout
    errors = [line for line in result.stdout.splitlines() if line.lower().startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(message.format(crash=sv.crash)), result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert sv.info("web")["pid"] == pid


def test_unknown_subcommand_and_no_previous_binary(sv, tmp_path):
    result = sv.ctl("littleboss:frobnicate")
    assert result.returncode == 2
    assert result.stdout.startswith("Error: unknown littleboss command 'frobnicate'")
    fresh = Supervisord(tmp_path)
    fresh.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{free_port()}")
    fresh.start()
    try:
        fresh.wait_running("web")
        result = fresh.ctl("littleboss:rollback", "web")
        assert result.returncode == 1
        assert result.stdout == "ERROR: NO_PREVIOUS: web: no previous binary to roll back to\n"
    finally:
        fresh.stop()


def test_a_reload_in_progress_is_refused(sv):
    sv.wait_running("web")
    sv.rpc.littleboss.reload("web", sv.never, False)
    result = sv.ctl("littleboss:reload", "web", sv.v2)
    assert result.returncode == 1
    assert result.stdout.startswith(f"ERROR: RELOAD_IN_PROGRESS: web: a reload to {sv.never} is in progress")
    wait_for(lambda: sv.rpc.littleboss.getProgramInfo("web")["phase"] == "idle", what="the reload to time out")


def test_status_and_history(sv):
    sv.wait_running("web")
    sv.ctl("littleboss:reload", "web", other_release(sv)[1], check=True)
    pid = sv.wait_running("web")
    info = sv.rpc.littleboss.getProgramInfo("web")
    everything = sv.ctl("littleboss:status")
    assert everything.returncode == 0
    assert [line.split()[0] for line in everything.stdout.splitlines()] == ["multi", "web"]
    result = sv.ctl("littleboss:status", "web")
    [line] = result.stdout.splitlines()
    assert line.startswith("web ") and " RUNNING " in line and f"pid {pid}, uptime " in line
    assert f"binary {info['path']}  previous {info['previous_path'] or '-'}  " in line
    assert f"sockets http=tcp://127.0.0.1:{sv.port}  reload idle" in line
    assert without_uptime(sv.ctl("littleboss", "status", "web").stdout) == without_uptime(result.stdout)
    history = sv.ctl("littleboss:status", "--history", "web")  # its status line, then its reloads
    assert history.returncode == 0
    header, *entries = history.stdout.splitlines()
    assert without_uptime(header) == without_uptime(line)
    assert len(entries) == len(info["history"]) and all(entry.startswith("  20") for entry in entries), entries
    assert " reload   " in entries[-1] and "succeeded" in entries[-1]
    assert sv.ctl("littleboss:status", "nope").returncode == 1
    every = sv.ctl("littleboss:status", "--history").stdout.splitlines()  # every program's, each under its own
    assert [line.split()[0] for line in every if not line.startswith(" ")] == ["multi", "web"], every
    assert every[1] == "  no reloads yet", every  # multi
    bogus = sv.ctl("littleboss:status", "--bogus")
    assert bogus.returncode == 2 and bogus.stdout.startswith("Error: status has no option --bogus"), bogus.stdout
    assert bogus.stdout.splitlines()[1].startswith("littleboss:status [name ...]\t"), bogus.stdout  # its usage


def test_without_the_rpc_interface_commands_say_which_section_to_add(supervisord):
    """A [program:x] with littleboss_* keys in a supervisord without [rpcinterface:littleboss]."""
    configured = supervisord.conf.read_text()
    supervisord.conf.write_text(configured.replace("[rpcinterface:littleboss]", "[x_unused_rpcinterface]"))
    for name in ("web", "api"):
        supervisord.program(name, littleboss_sockets=f"http=tcp://127.0.0.1:{free_port()}")
    supervisord.program("plain", command="sleep 1000")
    supervisord.start()
    missing = (f"supervisord at unix://{supervisord.sock} has not loaded the littleboss interface: add\n"
               "  [rpcinterface:littleboss]\n"
               "  supervisor.rpcinterface_factory = supervisor_littleboss.rpcinterface:make_littleboss_rpcinterface\n"
               f"to supervisord's configuration file ({supervisord.conf}) and run supervisorctl reload (it restarts "
               "every program; reread and update do not load the interface).\n"
               "Until then these run as plain programs, their littleboss_* settings ignored and no socket held "
               "for them: api, web.\n")
    for command in (["littleboss:status"], ["littleboss", "reload", "web"], ["littleboss:rollback", "web"]):
        result = supervisord.ctl(*command)
        assert (result.returncode, result.stdout) == (1, f"ERROR: {missing}"), result
    for mode in ("reload", "start", "status"):  # the program helper, as the program itself runs it
        helper = subprocess.run([str(EXAMPLE / "myblog.py"), f"--littleboss={mode}", "-c", str(supervisord.conf)],
                                capture_output=True, text=True, timeout=60, env=VENV_ENV)
        assert (helper.returncode, helper.stderr) == (1, f"myblog: ERROR: {missing}"), helper
    supervisord.conf.write_text(configured)  # the section is back, supervisord has not read it
    result = supervisord.ctl("littleboss:status")
    assert result.returncode == 1 and f"{supervisord.conf} has [rpcinterface:littleboss], but " in result.stdout
    supervisord.hup()  # supervisorctl reload loads it
    assert supervisord.ctl("littleboss:status", "web").returncode == 0


def test_interactive_shell_through_stdin(sv):
    sv.wait_running("web")
    target = other_release(sv)[1]
    shell = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(sv.conf)],
        input=f"littleboss status web\nlittleboss:reload web {target}\nlittleboss:status web\n",
        capture_output=True, text=True, timeout=60,
    )
    assert "web: reloaded " in shell.stdout and f"\u2192 {target}" in shell.stdout
    assert f"binary {target}" in shell.stdout.split("web: reloaded")[1]


def test_ctrl_c_stops_waiting_but_not_the_reload(sv):
    pid = sv.wait_running("web")
    client = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(sv.conf), "littleboss:reload", "web", sv.never],
        stdout=subprocess.PIPE, text=True,
        # a shell that ran us in the background ignores SIGINT, and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = client.stdout.readline()
    assert first.startswith("web: reload started: candidate pid ")
    client.send_signal(signal.SIGINT)
    rest, _ = client.communicate(timeout=30)
    assert client.returncode == 130  # neither refused (1) nor failed (7): the outcome is unknown here
    assert "web: stopped waiting; the reload goes on in supervisord (see: littleboss:status web)" in rest
    candidate = int(first.split("candidate pid ")[1].split()[0])
    assert sv.rpc.littleboss.getProgramInfo("web")["candidate_pid"] == candidate
    wait_for(lambda: sv.rpc.littleboss.getProgramInfo("web")["phase"] == "idle", what="the reload to time out")
    assert sv.info("web")["pid"] == pid
    wait_for(lambda: not pid_alive(candidate), what="the candidate to be stopped")


def test_tab_completion_offers_subcommands_and_program_names(sv):
    options = ClientOptions()
    options.realize(["-c", str(sv.conf)])
    controller = Controller(options)

    def completions(line: str) -> list[str]:
        text, found = line.split(" ")[-1], []
        while (match := controller.complete(text, len(found), line)) is not None:
            found.append(match)
        return found

    assert completions("littleboss:re") == ["littleboss:reload "]  # supervisorctl keeps ':' in the word
    assert completions("littleboss ") == ["reload ", "promote ", "abort ", "rollback ", "status ", "upgrade "]
    assert completions("littleboss:reload w") == ["web "]
    assert completions("littleboss:reload m") == ["multi "]
    assert completions("littleboss:upgrade ") == []  # it takes no program name
    assert "status " in completions("sta")  # supervisorctl's own completion still works

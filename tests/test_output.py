"""A littleboss process's output and stdin, with a real supervisord: its output is read through
littleboss's one polled fd (``readpoll``), not one fd per pipe in supervisord's loop, and reaches
its log files, stdout and stderr apart; input sent to its stdin arrives whole, even more than the
pipe takes at once; a process that exits has nothing left polled."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import Supervisord, free_port, make_executable, wait_for

pytestmark = pytest.mark.e2e  # a real supervisord and programs

INPUT = 300_000  # bytes: several times what a pipe takes at once (64 KiB)

# says a line on each output, counts what its stdin brings, then waits to be stopped
COUNTER = f"""#!/bin/sh
echo "out line"
echo "err line" >&2
echo "read $(head -c {INPUT} | wc -c) bytes"
exec sleep 3600
"""


def epoll_sets(pid: int) -> list[int]:
    """How many fds each epoll set of process ``pid`` holds."""
    sets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[eventpoll]":
                sets.append(Path(f"/proc/{pid}/fdinfo/{fd}").read_text().count("tfd:"))
        except FileNotFoundError:  # closed meanwhile
            pass
    return sets


def test_output_reaches_the_logs_and_stdin_arrives_whole(tmp_path: Path):
    sv = Supervisord(tmp_path)
    counter = make_executable(tmp_path / "bin", "counter", COUNTER)
    for name in ("one", "two"):
        sv.littleboss_program(name, counter, free_port(), ready=None, redirect_stderr="false",
                              stderr_logfile=tmp_path / f"{name}.err")
    try:
        sv.start()
        pids = [sv.wait_running(name) for name in ("one", "two")]
        logs = {name: (tmp_path / f"{name}.log", tmp_path / f"{name}.err") for name in ("one", "two")}
        for name, (out, err) in logs.items():
            wait_for(lambda out=out, err=err: "out line" in out.read_text() and "err line" in err.read_text(),
                     what=f"{name}'s output in its log files")
            assert "err line" not in out.read_text() and "out line" not in err.read_text()
        assert epoll_sets(sv.proc.pid) == [4]  # one set: each program's stdout and stderr
        for name in ("one", "two"):
            assert sv.rpc.supervisor.sendProcessStdin(name, "x" * INPUT) is True
        for name, (out, _) in logs.items():
            wait_for(lambda out=out: f"read {INPUT} bytes" in out.read_text(), what=f"{name}'s stdin read whole")
        sv.rpc.supervisor.stopProcess("one")
        assert sv.info("two")["pid"] == pids[1] and epoll_sets(sv.proc.pid) == [2]  # nothing of one's left
        sv.rpc.supervisor.startProcess("one")  # its new pipes are read
        wait_for(lambda: logs["one"][0].read_text().count("out line") == 2, what="the new process's output")
        assert epoll_sets(sv.proc.pid) == [4]
    finally:
        sv.stop()

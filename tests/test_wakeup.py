"""A signal wakes supervisord's main loop (``wakeup.py``): a child's exit is reaped in the pass
it wakes, not at the next 1 s poll timeout, in every run of supervisord (the pipe outlives SIGHUP)."""
from __future__ import annotations

import os
import select
import signal

import pytest
from harness import wait_for

from supervisor_littleboss import wakeup

WOKEN = "read event caused by <supervisor_littleboss.wakeup.Wakeup"


@pytest.fixture
def pipe(monkeypatch):
    """A fresh wakeup pipe in this process; Python's wakeup fd and the pipe undone after."""
    monkeypatch.setattr(wakeup, "_PIPE", None)
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    yield
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGUSR1, previous)
    for fd in wakeup.wakeup_fds():
        os.close(fd)


def test_a_signal_makes_the_pipe_readable_and_its_reader_drains_it_for_the_pass_to_reap(pipe, mocker):
    plugin = mocker.Mock(signalled=False)
    woken = wakeup.Wakeup(plugin)
    assert wakeup.wakeup_fds() == set(wakeup._PIPE) and woken.readable() and not woken.writable()
    assert wakeup.Wakeup(mocker.Mock()).fd == woken.fd  # one pipe for every run of the process
    poller = select.poll()
    poller.register(woken.fd, select.POLLIN)
    assert poller.poll(0) == []
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGUSR1)
    assert poller.poll(5000) == [(woken.fd, select.POLLIN)]
    woken.handle_read_event()
    assert poller.poll(0) == [] and plugin.signalled is True  # reaped by the pass's first littleboss group
    woken.close()  # the run ended: signals no longer write to it
    os.kill(os.getpid(), signal.SIGUSR1)
    assert poller.poll(0) == []


@pytest.mark.e2e
@pytest.mark.python_facing
def test_an_exit_wakes_supervisord_before_and_after_sighup(supervisord):
    supervisord.conf.write_text(supervisord.conf.read_text().replace("loglevel = debug", "loglevel = blather"))
    supervisord.program("plain", command="sleep 1000", autorestart="true")
    supervisord.start()

    def killed_and_restarted() -> None:
        old = supervisord.info("plain")["pid"]
        mark = supervisord.log.stat().st_size
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: supervisord.info("plain")["pid"] not in (0, old), what="plain to run again")
        log = supervisord.log.read_bytes()[mark:].decode()
        spawned = log.index("spawned: 'plain'", log.index("exited: plain (terminated by SIGKILL"))
        assert WOKEN in log[:spawned], log  # SIGCHLD woke the loop: not restarted at a poll timeout

    wait_for(lambda: supervisord.info("plain")["statename"] == "RUNNING", what="plain to run")
    killed_and_restarted()
    supervisord.ctl("reload", check=True)
    wait_for(lambda: supervisord.rpc.supervisor.getState()["statename"] == "RUNNING"
             and supervisord.info("plain")["statename"] == "RUNNING", what="supervisord's next run")
    killed_and_restarted()

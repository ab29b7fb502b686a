"""Unit tests of orphans.py with real processes: identity, taking listeners back, signals."""
from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import wait_for

from supervisor_littleboss.orphans import ProcessRecord, signal_group, start_time, still_alive, take_listener

NOBODY = 65534
TRICKY_NAME = "ho) 1 2 (ld"  # breaks a /proc/PID/stat parser that splits on spaces or the first ')'

# A process that listens and never accepts, as an orphaned server looks to us: it renames
# itself, holds an accepted connection on the listener's own address at a lower fd than the
# listener (which only SO_ACCEPTCONN tells apart), starts a child in its process group,
# answers SIGUSR1 with "pong", and reports {"address": ..., "child": pid} once ready.
HOLDER = r"""
import json, os, signal, socket, subprocess, sys
kind, path, nonblocking = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with open("/proc/self/comm", "w") as comm:
    comm.write(sys.argv[4])
family = {"inet": socket.AF_INET, "inet6": socket.AF_INET6, "unix": socket.AF_UNIX}[kind]
listener = socket.socket(family, socket.SOCK_STREAM)
listener.bind({"inet": ("127.0.0.1", 0), "inet6": ("::1", 0), "unix": path}[kind])
listener.listen(16)
listener.setblocking(not nonblocking)
client = socket.socket(family)
client.connect(listener.getsockname())
conn, _ = listener.accept()
address = listener.getsockname()
os.dup2(listener.fileno(), 60)
listener.close()
child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
signal.signal(signal.SIGUSR1, lambda *_: print("pong", flush=True))
print(json.dumps({"address": address, "child": child.pid}), flush=True)
while True:
    signal.pause()
"""


class Holder:
    """A running HOLDER process (its own session and process group) and its pipe."""

    def __init__(self, kind: str, tmp_path: Path, nonblocking: bool = False, name: str = "holder") -> None:
        self.path = str(tmp_path / "s.sock")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, kind, self.path, "1" if nonblocking else "0", name],
            stdout=subprocess.PIPE, start_new_session=True,
        )
        self.pid = self.proc.pid
        self._buffer = b""
        self.child: ProcessRecord | None = None
        try:
            ready = json.loads(self.readline())
            self.child = ProcessRecord.of(ready["child"])
            name = ready["address"]  # a path, or [host, port(, flowinfo, scope_id)]
            self.family = {"inet": socket.AF_INET, "inet6": socket.AF_INET6, "unix": socket.AF_UNIX}[kind]
            self.address: tuple[str, int] | str = name if kind == "unix" else (name[0], name[1])
            self.record = ProcessRecord.of(self.pid)
            assert self.record and self.child
        except BaseException:
            self.kill()  # no fixture would: it never gets this object
            raise

    def readline(self, timeout: float = 10) -> str:
        """The next line the holder prints; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                assert left > 0 and selector.select(left), "the holder printed nothing in time"
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                assert chunk, f"the holder exited with {self.proc.wait()}"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def ping(self) -> None:
        """Prove the holder still runs (a SIGKILL sent earlier would have ended it by now)."""
        os.kill(self.pid, signal.SIGUSR1)
        assert self.readline() == "pong"

    def kill(self) -> None:
        """SIGKILL the holder's group and reap the holder.

        Its group id is its pid, ours until we reap it; after that its child is killed by
        pid, only while the child's start time matches.
        """
        if self.proc.returncode is None:  # not reaped yet
            os.killpg(self.pid, signal.SIGKILL)
        elif self.child is not None and self.child.alive():
            os.kill(self.child.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[Callable[..., Holder]]:
    """Start holders with ``holders(kind, nonblocking=False)``; every one is killed afterwards."""
    started: list[Holder] = []

    def start(kind: str, **kwargs) -> Holder:
        started.append(Holder(kind, tmp_path, **kwargs))
        return started[-1]

    try:
        yield start
    finally:
        for holder in started:
            holder.kill()


def _stat_fields(pid: int, comm: str) -> list[str]:
    """/proc/PID/stat's fields from field 3 on, cut with the known command name."""
    prefix = f"{pid} ({comm}) "
    text = Path(f"/proc/{pid}/stat").read_text()
    assert text.startswith(prefix)
    return text[len(prefix):].split()


def _exchange(server: socket.socket, client: socket.socket, data: bytes) -> None:
    client.sendall(data)
    assert server.recv(64) == data
    server.sendall(data.upper())
    assert client.recv(64) == data.upper()


def test_start_time_is_field_22_of_proc_stat_even_with_a_tricky_name(holders):
    holder = holders("inet", name=TRICKY_NAME)
    expected = int(_stat_fields(holder.pid, TRICKY_NAME)[19])
    assert start_time(holder.pid) == expected == holder.record.start
    uptime_ticks = float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK")
    assert 0 <= uptime_ticks - expected < 60 * os.sysconf("SC_CLK_TCK")  # started moments ago
    assert holder.record.alive()


def test_start_time_is_none_for_a_zombie_and_for_no_process():
    proc = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    try:
        assert start_time(proc.pid) is not None
        proc.kill()
        wait_for(lambda: Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z",
                 10, "the killed child to be a zombie")
        assert start_time(proc.pid) is None
    finally:
        proc.kill()
        proc.wait()
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert start_time(pid_max + 1) is None


def test_process_record_round_trips_through_a_dict():
    record = ProcessRecord(1234, 567)
    assert record.to_dict() == {"pid": 1234, "start": 567}
    assert ProcessRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


@pytest.mark.parametrize("data", [
    None, [], {"pid": 1}, {"start": 1}, {"pid": 0, "start": 1}, {"pid": -5, "start": 1},
    {"pid": 1, "start": -1}, {"pid": "12", "start": 1}, {"pid": 1.0, "start": 1}, {"pid": True, "start": 1},
])
def test_process_record_from_dict_rejects_what_is_not_a_record(data):
    with pytest.raises(ValueError, match="process record"):
        ProcessRecord.from_dict(data)


def test_record_with_another_start_time_is_not_alive_and_never_signalled_or_taken(holders):
    holder = holders("inet")
    impostor = ProcessRecord(holder.pid, holder.record.start + 1)  # the same pid, another process
    assert not impostor.alive()
    assert still_alive([impostor, holder.record]) == [holder.record]
    assert signal_group(impostor, signal.SIGKILL) is False
    holder.ping()  # the SIGKILL was never sent
    reasons: list[str] = []
    assert take_listener(impostor, holder.family, holder.address, reasons.append) is None
    assert reasons == [f"cannot take back tcp://127.0.0.1:{holder.address[1]} from pid {holder.pid}: "
                       "the process is gone, or its pid now names another process"]


@pytest.mark.parametrize("kind", ["inet", "inet6", "unix"])
def test_take_listener_keeps_connections_flowing_through_the_holders_death(holders, kind):
    holder = holders(kind)
    taken = take_listener(holder.record, holder.family, holder.address)
    assert taken is not None
    try:
        assert taken.family == holder.family and taken.type == socket.SOCK_STREAM
        assert taken.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1  # not the accepted connection
        assert not taken.get_inheritable()
        # While both hold it: a connection is queued, not refused.
        early = socket.socket(holder.family)
        early.settimeout(5)
        early.connect(holder.address)
        holder.kill()
        assert not holder.record.alive()
        late = socket.socket(holder.family)
        late.settimeout(5)
        late.connect(holder.address)
        taken.settimeout(5)
        with early, late:
            for client, data in ((early, b"queued while both held it"), (late, b"made after the holder died")):
                server, _ = taken.accept()
                with server:
                    _exchange(server, client, data)
    finally:
        taken.close()


@pytest.mark.parametrize("nonblocking", [False, True])
def test_take_listener_leaves_the_shared_flags_as_they_are(holders, nonblocking):
    """O_NONBLOCK belongs to the open file the holder shares: taking it must not flip it,
    not even with a default timeout set (socket(fileno=) would then make it non-blocking)."""
    holder = holders("inet", nonblocking=nonblocking)
    default = socket.getdefaulttimeout()
    socket.setdefaulttimeout(120)
    try:
        taken = take_listener(holder.record, holder.family, holder.address)
    finally:
        socket.setdefaulttimeout(default)
    assert taken is not None
    with taken:
        assert bool(fcntl.fcntl(taken.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK) is nonblocking
        assert taken.gettimeout() == (0.0 if nonblocking else None)  # the object says what the fd is


def test_take_listener_matches_the_address_as_configured(holders):
    """An uncompressed IPv6 address, a host name and an unnormalised path find the listener."""
    inet6, inet, unix = holders("inet6"), holders("inet"), holders("unix")
    for holder, address in (
        (inet6, ("0:0:0:0:0:0:0:1", inet6.address[1])),
        (inet, ("localhost", inet.address[1])),
        (unix, str(Path(unix.address).parent / "." / ".." / Path(unix.address).parent.name / "s.sock")),
    ):
        taken = take_listener(holder.record, holder.family, address)
        assert taken is not None
        with taken:
            name = taken.getsockname()
            assert (name if holder is unix else name[:2]) == holder.address


@pytest.mark.parametrize("kind", ["inet", "inet6", "unix"])
def test_take_listener_returns_none_for_another_address(holders, kind):
    holder = holders(kind)
    if kind == "unix":
        others = [(socket.AF_UNIX, holder.address + ".other")]
    else:
        host, port = holder.address
        other_family, other_host = (socket.AF_INET6, "::1") if kind == "inet" else (socket.AF_INET, "127.0.0.1")
        others = [(holder.family, (host, port % 65535 + 1)), (other_family, (other_host, port))]
    for family, address in others:
        reasons: list[str] = []
        assert take_listener(holder.record, family, address, reasons.append) is None
        assert len(reasons) == 1
        assert reasons[0].endswith(f" from pid {holder.pid}: it holds no socket listening there")


def test_take_listener_closes_every_duplicate_it_does_not_return(holders):
    holder = holders("inet")
    before = set(os.listdir("/proc/self/fd"))
    assert take_listener(holder.record, holder.family, ("127.0.0.1", 1)) is None
    taken = take_listener(holder.record, holder.family, holder.address)
    assert taken is not None
    with taken:
        assert set(os.listdir("/proc/self/fd")) - before == {str(taken.fileno())}


def test_take_listener_returns_none_for_a_dead_process(holders):
    holder = holders("inet")
    holder.proc.kill()  # a zombie until reaped
    wait_for(lambda: not holder.record.alive(), 10, "the holder to die")
    assert take_listener(holder.record, holder.family, holder.address) is None
    holder.kill()
    assert take_listener(holder.record, holder.family, holder.address) is None


def test_signal_group_reaches_the_processes_children(holders):
    holder = holders("inet")
    assert signal_group(holder.record, signal.SIGTERM) is True
    assert holder.proc.wait(10) == -signal.SIGTERM
    wait_for(lambda: still_alive([holder.record, holder.child]) == [], 10, "the holder's child to die")
    assert signal_group(holder.record, signal.SIGTERM) is False  # gone: nothing is sent


def test_signal_group_signals_a_process_that_leads_no_group_alone(holders):
    holder = holders("inet")
    assert signal_group(holder.child, signal.SIGKILL) is True
    wait_for(lambda: still_alive([holder.record, holder.child]) == [holder.record], 10, "the child to die")
    holder.ping()


def test_take_listener_as_another_user_is_refused(holders):
    """A supervisord that is not root cannot take a socket from a process of another user."""
    holder = holders("inet")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: becomes nobody, reports, and never returns into pytest
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            reasons: list[str] = []
            taken = take_listener(holder.record, holder.family, holder.address, reasons.append)
            os.write(write_end, json.dumps({"taken": taken is not None, "reasons": reasons}).encode())
        finally:
            os._exit(0)
    try:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe, selectors.DefaultSelector() as selector:
            selector.register(pipe, selectors.EVENT_READ)
            assert selector.select(10), "the child running as nobody reported nothing in time"
            report = json.loads(pipe.read())  # everything, up to EOF: the child has exited or is exiting
    finally:
        if start_time(pid) is not None:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert report["taken"] is False
    assert len(report["reasons"]) == 1
    assert report["reasons"][0].endswith("needs ptrace rights over it: run supervisord as root)")
    holder.ping()

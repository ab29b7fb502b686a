"""The metrics, in-process: histograms and the text exposition format, the counts a program's
record keeps (and the state file keeps across restarts), and what the kernel says of a
listening socket's queue and of the connections a process holds."""
from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from supervisor_littleboss import connections
from supervisor_littleboss.binaries import BinaryRecord
from supervisor_littleboss.connections import accept_queue, held_connections, socket_inodes
from supervisor_littleboss.contract import Kind, outcome_label
from supervisor_littleboss.metrics import BUCKETS, Family, new_histogram, observe, render
from supervisor_littleboss.state import ProgramState, StateStore, parse_all


def test_a_histogram_counts_each_value_in_its_bucket_and_renders_cumulatively():
    histogram = new_histogram()
    for value in (0.003, 0.2, 0.2, 7, 1000):
        observe(histogram, value)
    assert histogram["count"] == 5 and histogram["sum"] == pytest.approx(1007.403)
    text = render([Family("x_seconds", "histogram", "h").add({"program": "web"}, histogram)])
    assert 'x_seconds_bucket{program="web",le="0.01"} 1\n' in text
    assert 'x_seconds_bucket{program="web",le="0.25"} 3\n' in text
    assert 'x_seconds_bucket{program="web",le="10"} 4\n' in text
    assert f'x_seconds_bucket{{program="web",le="{BUCKETS[-1]:g}"}} 4\n' in text
    assert 'x_seconds_bucket{program="web",le="+Inf"} 5\n' in text
    assert 'x_seconds_count{program="web"} 5\n' in text


def test_label_values_and_help_are_escaped():
    text = render([Family("x_info", "gauge", 'a \\ b\nc').add({"path": 'C:\\a "b"\nc'}, 1)])
    assert text == ('# HELP x_info a \\\\ b\\nc\n# TYPE x_info gauge\n'
                    'x_info{path="C:\\\\a \\"b\\"\\nc"} 1\n')


@pytest.mark.parametrize(("outcome", "label"), [
    ("succeeded", "succeeded"), ("failed: READY_TIMEOUT: ...", "failed"),
    ("rolled back automatically: x", "rolled_back"),
    ("started (it was FATAL)", "started"), ("recorded for the next start (it was STOPPED)", "recorded"),
    ("the swapped-in binary cannot run (gone); starting /a instead", "refused"),
])
def test_each_outcome_has_a_label(outcome, label):
    assert outcome_label(outcome) == label


def test_the_record_counts_reloads_and_durations_and_the_state_file_keeps_them(tmp_path):
    path = str(tmp_path / "state.json")
    store = StateStore(path)

    def save() -> None:  # as the group's save_state: the program's state changed
        store.changed("web")
        store.save()

    record = BinaryRecord(store.program("web"), "/srv/v1/app", lambda: "/srv/v1/app", save)
    record.commit(Kind.RELOAD, "/srv/v1/app", "/srv/v2/app", 0.4, 1.0)
    record.failed(Kind.RELOAD, "/srv/v2/app", "/srv/v3/app", "failed: READY_TIMEOUT: x", 30.0, 2.0)
    record.commit(Kind.ROLLBACK, "/srv/v2/app", "/srv/v1/app", 0.2, 3.0)
    record.observe("ready", 0.1)
    record.observe("drain", 2.0)
    store.supervisord["starts"] += 1
    store.save()
    saved = StateStore(path)
    metrics, counts = saved.programs["web"].metrics, saved.supervisord
    assert metrics["reloads"] == {"reload succeeded": 1, "reload failed": 1, "rollback succeeded": 1}
    assert metrics["duration"]["count"] == 3 and metrics["duration"]["sum"] == pytest.approx(30.6)
    assert metrics["ready"]["count"] == 1 and metrics["drain"]["count"] == 1
    assert counts == {"starts": 1, "reloads": 0, "upgrades": 0}


def test_a_state_file_from_before_the_metrics_reads_with_empty_ones():
    programs, counts = parse_all('{"programs": {"web": {"path": null}}}')
    assert programs["web"].metrics == ProgramState().metrics and counts["starts"] == 0


@pytest.mark.parametrize("metrics", [
    {"reloads": {"reload succeeded": -1}}, {"reloads": []}, {"duration": {"buckets": [], "sum": 0, "count": 0}},
    {"unknown": 1},
])
def test_metrics_of_the_wrong_shape_make_the_state_invalid(metrics):
    with pytest.raises(ValueError, match="programs.web.metrics"):
        parse_all(json.dumps({"programs": {"web": {"metrics": metrics}}}))


def exited_pid() -> int:
    """The pid of a child that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_listening_sockets_queue_and_the_connections_a_process_holds():
    server = socket.create_server(("127.0.0.1", 0), backlog=7)
    port = server.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        assert accept_queue(server) == (3, 7)
        accepted = [server.accept()[0] for _ in range(2)]
        assert accept_queue(server) == (1, 7)
        # the two accepted here count; the clients' own ends (to the port, not from it) do not;
        # a pid that is gone holds nothing
        me, gone = os.getpid(), exited_pid()
        assert str(os.fstat(server.fileno()).st_ino) in socket_inodes(me)
        mine = {me: socket_inodes(me), gone: socket_inodes(gone)}
        assert held_connections(mine, {(socket.AF_INET, port)}, set()) == {me: 2, gone: 0}
        other = port + 1 if port < 65535 else 1
        assert held_connections(mine, {(socket.AF_INET, other), (socket.AF_INET6, port)}, set()) == {me: 0, gone: 0}
        for sock in accepted:
            sock.close()
    finally:
        for sock in clients:
            sock.close()
        server.close()
    assert accept_queue(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) is None


@pytest.fixture
def connected():
    """Connections accepted on an IPv4 and an IPv6 listener (and one each on a port next to them,
    which must not count), and a unix socket's: {(family, port)} of the two, the unix path, and
    the inodes of the accepted ends."""
    sockets, accepted = [], []

    def accept(server, count):
        address = server.getsockname()
        sockets.append(server)
        sockets.extend(socket.create_connection(address[:2]) for _ in range(count))
        accepted.extend(server.accept()[0] for _ in range(count))
        return address[1]

    v4 = accept(socket.create_server(("127.0.0.1", 0)), 3)
    v6 = accept(socket.create_server(("::1", 0), family=socket.AF_INET6), 2)
    accept(socket.create_server(("127.0.0.1", 0)), 1)  # another program's
    yield {(socket.AF_INET, v4), (socket.AF_INET6, v6)}, {str(os.fstat(s.fileno()).st_ino) for s in accepted[:5]}
    for sock in sockets + accepted:
        sock.close()


def test_the_kernel_lists_the_established_connections_on_the_programs_ports_itself(connected):
    ports, inodes = connected
    assert sorted(connections.established_tcp(ports)) == sorted(inodes)
    # sock_diag's own filter (state, port range) answers, not the /proc fallback
    v4 = next(port for family, port in ports if family == socket.AF_INET)
    assert {inode for _, inode in connections._diag_established(socket.AF_INET, v4, v4)} < inodes


def test_without_sock_diag_the_kernels_tables_in_proc_tell_the_same(connected, mocker):
    ports, inodes = connected
    diag = mocker.patch.object(connections, "_diag_established", side_effect=OSError(2, "sock_diag: No such file"))
    assert sorted(connections.established_tcp(ports)) == sorted(inodes)
    assert diag.called

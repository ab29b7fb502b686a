"""Unit tests of the socket registry, URL parsing and the SIGHUP fd cleanup."""
from __future__ import annotations

import os
import re
import socket
import stat
from pathlib import Path

import pytest
from harness import free_port
from supervisor.options import ServerOptions
from supervisor.xmlrpc import Faults

from supervisor_littleboss.faults import LittlebossFaults, LittlebossRPCError
from supervisor_littleboss.glue import spare_fds_on_sighup
from supervisor_littleboss.sockets import (
    SocketOptions,
    SocketRegistry,
    SocketSpec,
    parse_socket_list,
    parse_socket_url,
    remove_stale_socket,
)


@pytest.mark.parametrize("url, canonical", [
    ("tcp://127.0.0.1:8000", "tcp://127.0.0.1:8000"),
    (" tcp://LOCALHOST:80 ", "tcp://localhost:80"),
    ("tcp://0.0.0.0:443", "tcp://0.0.0.0:443"),
    ("tcp://[0:0:0:0:0:0:0:1]:8443", "tcp://[::1]:8443"),
    ("tcp://[::]:80", "tcp://[::]:80"),
    ("unix:///run/app/../app.sock", "unix:///run/app.sock"),
])
def test_parse_socket_url_returns_the_canonical_form(url, canonical):
    assert parse_socket_url(url) == canonical


def test_parse_socket_list_keeps_the_order_of_names():
    assert parse_socket_list("b=tcp://127.0.0.1:2, a=unix:///x.sock") == (
        SocketSpec("b", "tcp://127.0.0.1:2"), SocketSpec("a", "unix:///x.sock"))


@pytest.fixture
def registry():
    registry = SocketRegistry()
    yield registry
    registry.close_all()


def test_registry_binds_once_and_hands_out_the_same_socket(registry):
    spec = SocketSpec("http", f"tcp://127.0.0.1:{free_port()}")
    first = registry.acquire(spec, SocketOptions())
    assert registry.acquire(spec, SocketOptions(backlog=8)).fileno() == first.fileno()
    assert first.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


def test_retain_only_closes_the_rest_and_removes_unix_socket_files(registry, tmp_path):
    keep, drop = SocketSpec("a", f"tcp://127.0.0.1:{free_port()}"), SocketSpec("b", f"unix://{tmp_path}/b.sock")
    kept, dropped = registry.acquire(keep, SocketOptions()), registry.acquire(drop, SocketOptions())
    assert registry.retain_only({keep.url}) == [drop.url]
    assert dropped.fileno() == -1
    assert not (tmp_path / "b.sock").exists()
    assert kept.fileno() != -1 and registry.is_held(keep.url)


def test_unix_socket_is_bound_0600_by_default_and_reconfigured_in_place(registry, tmp_path):
    spec = SocketSpec("a", f"unix://{tmp_path}/a.sock")
    registry.acquire(spec, SocketOptions())
    before = os.stat(tmp_path / "a.sock")
    assert stat.S_IMODE(before.st_mode) == 0o600
    registry.acquire(spec, SocketOptions(mode=0o666))
    after = os.stat(tmp_path / "a.sock")
    assert (after.st_ino, stat.S_IMODE(after.st_mode)) == (before.st_ino, 0o666)


def test_removing_mode_and_owner_restores_the_defaults(registry, tmp_path):
    spec = SocketSpec("a", f"unix://{tmp_path}/a.sock")
    registry.acquire(spec, SocketOptions(mode=0o666))
    registry.acquire(spec, SocketOptions())
    st = os.stat(tmp_path / "a.sock")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, os.geteuid(), os.getegid())


def test_a_failed_permission_change_is_reported_again_until_it_succeeds(registry, tmp_path, mocker):
    spec = SocketSpec("a", f"unix://{tmp_path}/a.sock")
    registry.acquire(spec, SocketOptions())
    mocker.patch("os.chown", side_effect=PermissionError(1, "Operation not permitted"))
    for _ in range(2):
        with pytest.raises(ValueError, match="Operation not permitted"):
            registry.acquire(spec, SocketOptions(owner=(12345, 12345)))


def test_a_failed_bind_holds_nothing(registry, tmp_path):
    (tmp_path / "file").write_text("data")
    spec = SocketSpec("a", f"unix://{tmp_path}/file")
    with pytest.raises(OSError, match="exists and is not a socket; refusing to remove it"):
        registry.acquire(spec, SocketOptions())
    assert not registry.is_held(spec.url)


def test_remove_stale_socket_leaves_a_listening_socket(tmp_path):
    path = str(tmp_path / "live.sock")
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen()
        with pytest.raises(OSError, match="another process is listening"):
            remove_stale_socket(path)
    remove_stale_socket(path)  # closed now: stale
    assert not os.path.exists(path)


def test_remove_stale_socket_does_not_block_on_a_listener_with_a_full_backlog(tmp_path):
    path = str(tmp_path / "full.sock")
    with socket.socket(socket.AF_UNIX) as live, socket.socket(socket.AF_UNIX) as waiting:
        live.bind(path)
        live.listen(0)
        waiting.connect(path)  # fills the backlog; nobody accepts
        with pytest.raises(OSError, match="another process is listening"):
            remove_stale_socket(path)


def test_sighup_fd_cleanup_spares_held_sockets(mocker):
    spare_fds_on_sighup(lambda: {3, 7, 9, 5000})
    closerange = mocker.patch("os.closerange")
    options = ServerOptions()
    options.minfds = 1024
    options.cleanup_fds()
    assert closerange.call_args_list == [mocker.call(5, 7), mocker.call(8, 9), mocker.call(10, 1024)]


def test_fault_codes_do_not_clash_with_supervisords():
    ours = {v for k, v in vars(LittlebossFaults).items() if k.isupper()}
    theirs = {v for k, v in vars(Faults).items() if k.isupper()}
    assert ours and not ours & theirs
    assert LittlebossRPCError(LittlebossFaults.NOT_LITTLEBOSS, "x").text == "NOT_LITTLEBOSS: x"


def test_readme_lists_every_fault_with_its_code():
    readme = (Path(__file__).parent.parent / "README.rst").read_text()
    listed = dict(re.findall(r"^``([A-Z_]+)``\s+(\d{4})\s", readme, re.MULTILINE))
    ours = {k: str(v) for k, v in vars(LittlebossFaults).items() if k.isupper()}
    assert listed == ours


def test_the_tests_free_ports_never_repeat():
    """Programs given ports one after another never collide (the 50-program cost run did)."""
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)

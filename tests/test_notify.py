"""The sd_notify receiver, in-process on real sockets: one socket for every process, each
message counted for the process whose pid the kernel names, a forked child's refused, and a
NOTIFY_SOCKET of its own that an older littleboss handed over read the same way."""
from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest

from supervisor_littleboss import upgrade
from supervisor_littleboss.handover import HandedProcess
from supervisor_littleboss.notify import Notifications, NotifyReceiver, address, open_socket


def send(to: str, message: str) -> None:
    """What ``sd_notify`` does: one datagram to ``to`` (``@``: abstract)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), "\0" + to[1:])


@pytest.fixture
def receiver(mocker):
    """A receiver on a new socket; this test's process is program ``web``'s process."""
    sock = open_socket()
    process = SimpleNamespace(config=SimpleNamespace(name="web"), pid=os.getpid(), notify=Notifications(address(sock)))
    receiver = NotifyReceiver(sock, {os.getpid(): process}.get, mocker.Mock())
    receiver.web = process
    yield receiver
    receiver.close()


def test_a_message_counts_for_the_process_that_sent_it(receiver):
    send(receiver.web.notify.address, "READY=1\nSTATUS=serving\nWATCHDOG=1")
    receiver.handle_read_event()
    notify = receiver.web.notify
    assert notify.ready and notify.status == "serving" and notify.pinged_at == notify.ready_at > 0
    receiver.logger.info.assert_called_once_with(f"littleboss: web (pid {os.getpid()}) sent READY=1")


def test_a_forked_childs_message_is_ignored_and_named_against_its_program(receiver):
    child = os.fork()
    if child == 0:  # a wrapper's child, say
        send(receiver.web.notify.address, "READY=1")
        os._exit(0)
    os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)  # sent; a zombie still: its parent can be read
    receiver.handle_read_event()
    os.waitpid(child, 0)
    assert not receiver.web.notify.ready
    receiver.logger.warn.assert_called_once_with(
        f"littleboss: web: ignored notification ['READY'] from pid {child}: only the main pid {os.getpid()} "
        "may send it")


def test_a_message_from_no_programs_process_is_ignored(mocker):
    sock = open_socket()
    receiver = NotifyReceiver(sock, {}.get, mocker.Mock())
    send(address(sock), "READY=1")
    receiver.handle_read_event()
    receiver.close()
    receiver.logger.warn.assert_called_once_with(
        f"littleboss: ignored notification ['READY'] from pid {os.getpid()}: only the main pid of a littleboss "
        "program's process may send it")


def test_a_notify_socket_of_its_own_handed_over_by_an_older_littleboss_is_read(mocker):
    """Format 1 records gave each process a NOTIFY_SOCKET of its own: the process taken up keeps
    it, read as the shared one, and closed when the process ends."""
    own = open_socket()
    handed = HandedProcess(0, "web", os.getpid(), 0, 1.0, "RUNNING", {}, "/srv/web", {}, {}, os.dup(own.fileno()),
                           True, 2.0, "serving")
    mocker.patch.object(upgrade, "take_up_pipes")
    mocker.patch.object(upgrade, "reap_with")
    process = mocker.Mock(dispatchers={})
    process.group.plugin.spawned = {os.getpid(): process}.get
    upgrade.take_up(process, handed)
    receiver = process.dispatchers[handed.notify]
    assert process.own_notify is receiver and process.notify.address == address(own)
    assert (process.notify.ready, process.notify.ready_at, process.notify.status) == (True, 2.0, "serving")
    send(address(own), "STATUS=still serving")
    receiver.handle_read_event()
    assert process.notify.status == "still serving"
    receiver.close()
    own.close()

"""The sd_notify receivers, in-process on real sockets: each process's own socket, all of them
read through one epoll set that supervisord's loop polls; a message counts only from the
process's own pid; a message that cannot be read closes that process's socket alone."""
from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest

from supervisor_littleboss.notify import NotifyReceiver
from supervisor_littleboss.readpoll import read_poll, read_poll_fds


def send(receiver: NotifyReceiver, message: str) -> None:
    """What ``sd_notify`` does: one datagram to the process's ``NOTIFY_SOCKET``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), "\0" + receiver.address[1:])


@pytest.fixture
def receivers(mocker):
    """``make(name)``: a receiver for program ``name``, whose process is this test's process."""
    made = []

    def make(name: str) -> NotifyReceiver:
        config = SimpleNamespace(name=name, options=SimpleNamespace(logger=mocker.Mock()))
        made.append(NotifyReceiver(SimpleNamespace(pid=os.getpid(), config=config)))
        return made[-1]
    yield make
    for receiver in made:
        receiver.close()


def logger(receiver: NotifyReceiver):
    return receiver.process.config.options.logger


def test_one_poll_reads_every_processs_own_socket(receivers):
    web, api = receivers("web"), receivers("api")
    assert web.address != api.address and {web.fd, api.fd, read_poll().fd} <= read_poll_fds()
    send(web, "READY=1\nSTATUS=serving\nWATCHDOG=1")
    send(api, "STATUS=warming up")
    read_poll().handle_read_event()
    assert web.ready and web.status == "serving" and web.pinged_at == web.ready_at > 0
    assert not api.ready and api.status == "warming up"
    logger(web).info.assert_called_once_with(f"littleboss: web (pid {os.getpid()}) sent READY=1")


def test_a_forked_childs_message_is_ignored_and_named_against_its_program(receivers):
    web = receivers("web")
    child = os.fork()
    if child == 0:  # a wrapper's child, say
        send(web, "READY=1")
        os._exit(0)
    os.waitpid(child, 0)
    read_poll().handle_read_event()
    assert not web.ready
    logger(web).warn.assert_called_once_with(
        f"littleboss: web: ignored notification ['READY'] from pid {child}: only the main pid {os.getpid()} "
        "may send it")


@pytest.mark.parametrize("value", ["²", "9" * 400])
def test_a_timeout_extension_that_is_no_number_is_ignored(receivers, value):
    web = receivers("web")
    send(web, f"EXTEND_TIMEOUT_USEC={value}\nSTATUS=still here")
    read_poll().handle_read_event()
    assert web.extended_until == 0 and web.status == "still here" and not web.closed


def test_a_socket_that_cannot_be_read_is_closed_alone(receivers, mocker):
    web, api = receivers("web"), receivers("api")
    mocker.patch.object(web, "receive", side_effect=ValueError("bad"))
    send(web, "READY=1")
    send(api, "READY=1")
    read_poll().handle_read_event()
    assert web.closed and web.fd not in read_poll_fds()
    logger(web).critical.assert_called_once()
    assert api.ready and not api.closed and api.fd in read_poll_fds()

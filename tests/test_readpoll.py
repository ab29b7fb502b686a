"""The one epoll set littleboss reads its processes' pipes through, in-process on real pipes:
each fd read by its own dispatcher, as supervisord's loop would; dropped at EOF or when its
dispatcher fails; and forgotten before its fd is closed, so that a copy a child still holds
never makes a new pipe under the same number look closed."""
from __future__ import annotations

import errno
import os

import pytest

from supervisor_littleboss.readpoll import ReadPoll


class PipeReader:
    """A dispatcher as supervisord's output dispatchers are: ``options.readfd`` takes a pipe
    that has nothing to read (EAGAIN) for its end, and the dispatcher closes."""

    def __init__(self, fd: int, fail: bool = False) -> None:
        self.fd, self.fail, self.read, self.closed, self.errors = fd, fail, b"", False, 0

    def readable(self) -> bool:
        return not self.closed

    def handle_read_event(self) -> None:
        if self.fail:
            raise ValueError("cannot read")
        try:
            data = os.read(self.fd, 65536)
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
            data = b""
        self.read += data
        self.closed = not data

    def handle_error(self) -> None:
        self.errors += 1
        self.closed = True


@pytest.fixture
def poll():
    poll = ReadPoll()
    yield poll
    poll.epoll.close()


def pipe() -> tuple[int, int]:
    read, write = os.pipe()
    os.set_blocking(read, False)
    return read, write


def test_each_fd_is_read_by_its_dispatcher_until_its_end(poll):
    (r1, w1), (r2, w2) = pipe(), pipe()
    one, two = PipeReader(r1), PipeReader(r2)
    poll.watch(r1, one)
    poll.watch(r2, two)
    os.write(w1, b"hello")
    poll.handle_read_event()
    assert (one.read, two.read) == (b"hello", b"") and poll.fds() == {poll.fd, r1, r2}
    os.close(w1)  # the process ended
    poll.handle_read_event()
    assert one.closed and poll.fds() == {poll.fd, r2}
    poll.handle_read_event()  # nothing left to read: no event
    for fd in (r1, r2, w2):
        os.close(fd)


def test_a_dispatcher_that_fails_is_dropped_alone(poll):
    (r1, w1), (r2, w2) = pipe(), pipe()
    bad, good = PipeReader(r1, fail=True), PipeReader(r2)
    poll.watch(r1, bad)
    poll.watch(r2, good)
    os.write(w1, b"x")
    os.write(w2, b"y")
    poll.handle_read_event()
    assert bad.errors == 1 and poll.fds() == {poll.fd, r2} and good.read == b"y"
    for fd in (r1, w1, r2, w2):
        os.close(fd)


def test_a_new_pipe_under_a_forgotten_number_is_read_though_a_child_holds_the_old_one(poll):
    old_read, old_write = pipe()
    old = PipeReader(old_read)
    poll.watch(old_read, old)
    copy = os.dup(old_read)  # as a child supervisord just forked holds it
    poll.forget(old_read, old)  # before the close, as a process's finish does
    os.close(old_read)
    os.close(old_write)  # the old pipe's writer is gone: its reader would report a hang-up
    new_read, new_write = pipe()  # the next os.pipe() gives the old number back, or it is made so
    if new_read != old_read:
        os.dup2(new_read, old_read)
        os.close(new_read)
    new = PipeReader(old_read)
    poll.watch(old_read, new)
    os.write(new_write, b"new")
    poll.handle_read_event()
    poll.handle_read_event()
    assert new.read == b"new" and not new.closed
    for fd in (copy, old_read, new_write):
        os.close(fd)

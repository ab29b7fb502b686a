"""A timer that wakes supervisord's main loop when a reload has something to do.

supervisord's loop sleeps up to 1 s in poll(). Events end that sleep by themselves (a
candidate's READY=1 on its notify socket, its output, a request, and a child's exit through
``wakeup.py``); what only time moves on does not: a readiness timeout, ``startsecs``, the
end of ``littleboss_settle``, the next drain poll, a lameduck's SIGKILL. ``wake_in(seconds)``
makes the loop pass then: this Linux timerfd, polled in every pass, is set at the start of
each pass to the earliest deadline a program asked for in the pass before (each asks in
every pass for what it still needs, so one no longer needed wakes nothing). While a reload
runs, a pass comes at least every ``INTERVAL`` besides, a safety net for a deadline nobody
asked for. Each pass goes over every program: the fewer, the cheaper a reload among many
programs. Idle, it is disarmed and costs nothing.

One ticker per supervisord process, made at its first run and kept through SIGHUP (its fd
spared), so that the main loop polls it under the same fd in every run.
"""
from __future__ import annotations

import ctypes
import os
import time

INTERVAL = 0.25  # while a reload runs, the longest the main loop sleeps
SOONEST = 0.001  # a deadline already past wakes the loop this soon (never at once: no busy loop)
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timespec(seconds: float) -> _Timespec:
    return _Timespec(int(seconds), int((seconds % 1) * 1e9))


class _LibcTimerfd:
    """timerfd through libc, for Pythons before 3.13 (which has os.timerfd_create)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)

    def create(self) -> int:
        fd = self.libc.timerfd_create(time.CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        return fd

    def settime(self, fd: int, initial: float) -> None:
        spec = _Itimerspec(_timespec(0), _timespec(initial))
        if self.libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")


class Ticker:
    """A supervisord dispatcher around a one-shot timerfd, set at the start of every pass of
    the main loop to the earliest deadline asked for in the pass before."""

    def __init__(self) -> None:
        if hasattr(os, "timerfd_create"):
            self.fd = os.timerfd_create(time.CLOCK_MONOTONIC, flags=TFD_NONBLOCK | TFD_CLOEXEC)
            self._settime = lambda initial: os.timerfd_settime(self.fd, initial=initial)
        else:
            libc = _LibcTimerfd()
            self.fd = libc.create()
            self._settime = lambda initial: libc.settime(self.fd, initial)
        self.due: float | None = None  # when the timer goes off (monotonic); None: disarmed
        self.asked: float | None = None  # the earliest deadline asked for since this pass began
        self.just_read = False  # (supervisord asks ``readable`` again right after a read)

    def keep_ticking(self) -> None:
        """A reload runs: the loop passes again within INTERVAL."""
        self.wake_in(INTERVAL)

    def wake_in(self, seconds: float | None) -> None:
        """Make the loop pass in ``seconds`` (None: no deadline), unless an earlier pass is
        asked for: every program shares this timer. A program asks in every pass for what it
        still needs; the timer is set when the next pass begins."""
        if seconds is None:
            return
        due = time.monotonic() + max(seconds, SOONEST)
        if self.asked is None or due < self.asked:
            self.asked = due

    def readable(self) -> bool:
        """Asked by supervisord's loop at the start of every pass, before it polls (and after
        this ticker's read): the timer is set to the earliest deadline the pass before asked
        for, or disarmed. A deadline nobody asks for any more (a reload over, a process gone)
        wakes nothing."""
        if self.just_read:
            self.just_read = False
            return False  # until the next pass begins
        due, self.asked = self.asked, None
        if due != self.due:
            self._settime(0 if due is None else max(due - time.monotonic(), SOONEST))  # (0 disarms it)
            self.due = due
        return due is not None

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        try:
            os.read(self.fd, 8)  # the expiry count; reading it clears the fd's readiness
        except BlockingIOError:
            pass
        self.just_read = True

    def handle_error(self) -> None:
        self._settime(0)  # disarmed
        self.due, self.just_read = None, False


_SHARED: Ticker | None = None


def shared_ticker() -> Ticker:
    """This supervisord process's ticker."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Ticker()
    return _SHARED


def ticker_fds() -> set[int]:
    """The ticker's fd, spared on SIGHUP (none before the first run made it)."""
    return {_SHARED.fd} if _SHARED else set()

"""A timer that wakes supervisord's main loop often while a reload needs it.

supervisord's loop sleeps up to 1 s in poll(), and a child's exit (SIGCHLD) does not
cut that short. While a reload runs, this Linux timerfd, registered like a process's
pipe, makes the loop pass every ``INTERVAL`` so readiness timeouts, promotion after
``startsecs``/``settle``, the old process's exit and the deferred XML-RPC answer are
seen within milliseconds. Idle, it is disarmed and costs nothing.
"""
from __future__ import annotations

import ctypes
import os
import time

INTERVAL = 0.02
LINGER = 0.5  # keep ticking this long after the last request (lets a deferred answer go out)
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

    def settime(self, fd: int, initial: float, interval: float) -> None:
        spec = _Itimerspec(_timespec(interval), _timespec(initial))
        if self.libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")


class Ticker:
    """A supervisord dispatcher around a timerfd; ``keep_ticking()`` arms it for a while."""

    def __init__(self) -> None:
        if hasattr(os, "timerfd_create"):
            self.fd = os.timerfd_create(time.CLOCK_MONOTONIC, flags=TFD_NONBLOCK | TFD_CLOEXEC)
            self._settime = lambda initial, interval: os.timerfd_settime(self.fd, initial=initial, interval=interval)
        else:
            libc = _LibcTimerfd()
            self.fd = libc.create()
            self._settime = lambda initial, interval: libc.settime(self.fd, initial, interval)
        self.armed = False
        self.until = 0.0
        self.early: float | None = None  # when an early tick is due (monotonic)

    def keep_ticking(self) -> None:
        """Tick for at least LINGER more seconds."""
        self.until = time.monotonic() + LINGER
        if not self.armed:
            self._settime(INTERVAL, INTERVAL)
            self.armed = True

    def wake_in(self, seconds: float | None) -> None:
        """Make the next tick come in ``seconds`` when that is sooner than the regular one,
        so a deadline (startsecs, settle, a timeout) is acted on when it falls due. Every
        reloading program shares this timer: an earlier deadline is never put off."""
        if not self.armed or seconds is None or not 0 < seconds < INTERVAL:
            return
        now = time.monotonic()
        if self.early is None or self.early <= now or now + seconds < self.early:
            self._settime(max(seconds, 1e-6), INTERVAL)  # (0, 0) would disarm it
            self.early = now + seconds

    def readable(self) -> bool:
        return self.armed

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        try:
            os.read(self.fd, 8)  # the expiry count; reading it re-arms the fd's readiness
        except BlockingIOError:
            pass
        now = time.monotonic()
        if self.early is not None and self.early <= now:
            self.early = None
        if now > self.until:
            self._disarm()

    def handle_error(self) -> None:
        self._disarm()

    def _disarm(self) -> None:
        self._settime(0, 0)
        self.armed = False
        self.early = None

"""The subprocess class of littleboss programs: a process that inherits its program's sockets.

Every process of a littleboss program receives the program's listening sockets on fds 3,
4, ... with ``LISTEN_FDS``, ``LISTEN_PID`` and ``LISTEN_FDNAMES`` set (the systemd
socket-activation convention), and, with ``littleboss_ready = notify``, a ``NOTIFY_SOCKET``
of its own. Each has a role: the slot's ``serving`` process, a ``candidate``, a
``draining`` one, a ``discarded`` one. It answers what the lifecycle asks of a candidate
(``lifecycle.Candidate``) and keeps the end of its output for failure reports; what it
needs of its program it asks its group (``group.py``).
"""
from __future__ import annotations

import enum
import os
import shlex
import time

from supervisor.options import ProcessException, decode_wait_status
from supervisor.process import ProcessGroup, Subprocess
from supervisor.states import STOPPED_STATES, ProcessStates

from .glue import ChildSetupSubprocess, close_loggers, output_dispatchers, share_loggers, silence_events, tap_output
from .notify import NotifyReceiver
from .orphans import kill_group
from .outcome import last_lines
from .readpoll import read_poll
from .validate import CheckedBinary

TAIL_BYTES = 2048


class Role(enum.Enum):
    SERVING = "serving"  # the program's process
    CANDIDATE = "candidate"  # a new binary, not yet promoted
    DRAINING = "draining"  # a replaced process finishing its work
    DISCARDED = "discarded"  # a failed candidate, killed, not yet reaped


def listen_environment(names: list[str]) -> dict[str, str]:
    """The systemd socket-activation variables for the calling (child) process."""
    return {
        "LISTEN_FDS": str(len(names)),
        "LISTEN_PID": str(os.getpid()),
        "LISTEN_FDNAMES": ":".join(names),
    }


def with_executable(command: str, path: str) -> str:
    """``command`` with its first word (the executable) replaced by ``path``."""
    return shlex.join([path, *shlex.split(command)[1:]])


class LittlebossSubprocess(ChildSetupSubprocess):
    """A supervisord subprocess that inherits its group's listening sockets."""

    group: ProcessGroup  # its LittlebossProcessGroup
    role = Role.SERVING
    notify: NotifyReceiver | None = None
    last_pid = 0
    last_exit = ""  # how its last run ended, e.g. "exit status 3"
    binary: CheckedBinary | None = None  # a checked new binary: its next spawn runs exactly that file
    running_path: str | None = None  # the file its last spawn ran, symlinks resolved then
    drained_at = 0.0  # replaced: when it was seen holding no connection and no longer listening
    hung = ""  # why it was killed as hung (littleboss_watchdog), until it is spawned again
    next_drain_poll = 0.0
    # it runs on settings older than its group's (kept through supervisord's reload) until a
    # ``config`` rollout replaces it, or it starts afresh (then on its group's, as any start)
    kept_settings = False

    def __init__(self, config, group: ProcessGroup, slot: int, role: Role = Role.SERVING) -> None:
        super().__init__(config)
        self.group, self.slot = group, slot
        self.tail = bytearray()  # the end of its stderr (stdout if redirected), for failure reports
        self.set_role(role)

    def change_state(self, new_state, expected=True):
        """supervisord's ``Subprocess.change_state`` (since 3.0), which every state change goes
        through: the group's next ``transition()`` looks at it again (``group.quiet``)."""
        self.group.wake()
        return super().change_state(new_state, expected)

    def set_role(self, role: Role) -> None:
        """Only the serving process's state changes are the program's; listeners hear no others."""
        self.role = role
        silence_events(self, role is not Role.SERVING)

    def spawn(self):
        opened = None  # the NOTIFY_SOCKET opened for this spawn
        if not self.pid:
            if self.kept_settings:
                self.config, self.kept_settings = self.group.slot_config(self.slot), False
            reason = self.group.bind_sockets()
            if reason:
                self._give_up(reason)
                return None
            self.notify = None  # (the last run's, closed: not this one's)
            if self.group.settings.ready == "notify" or self.group.settings.watchdog:
                try:
                    self.notify = opened = NotifyReceiver(self)
                except OSError as exc:
                    self._give_up(f"littleboss: program {self.config.name!r} cannot open its NOTIFY_SOCKET: {exc}")
                    return None
        self.running_path = self.binary.path if self.binary else self.resolved_command_path()
        self.hung = ""
        pid = None
        try:
            pid = super().spawn()
        finally:
            self.binary = None  # used once: a later respawn runs the path, as any start does
            if not pid and opened is not None:
                opened.close()
        if pid:
            self.last_pid = pid
            self.group.track(pid)
            self.watch_output()
        return pid

    def resolved_command_path(self) -> str:
        """The file its command's path resolves to now."""
        return os.path.realpath(executable_path(self))

    def watch_output(self) -> None:
        """In the parent, after a spawn: read its output (through ``readpoll``), keeping the
        tail of stderr (a candidate with the serving process's settings writes to its log files)."""
        if self.role is Role.CANDIDATE:
            serving = self.group.serving(self.slot)
            if same_logs(self.config, serving.config):  # else (new settings) its own log files
                share_loggers(self, serving)
        outputs = output_dispatchers(self)
        dispatcher = outputs.get("stdout" if self.config.redirect_stderr else "stderr")
        if dispatcher is not None:
            tap_output(dispatcher, self._keep_tail)
        for dispatcher in outputs.values():
            if dispatcher.readable():
                read_poll().watch(dispatcher.fd, dispatcher)

    def write(self, chars) -> None:
        """``sendProcessStdin``: what the pipe does not take at once is written when supervisord's
        loop finds it writable (``group.get_dispatchers``)."""
        super().write(chars)
        self.group.stdin_waiting = True

    def _keep_tail(self, data: bytes) -> None:
        self.tail.extend(data)
        del self.tail[:-TAIL_BYTES]

    def _give_up(self, reason: str) -> None:
        """Go to FATAL with ``reason`` shown by ``supervisorctl status``, as a failed spawn does."""
        self.laststart = time.time()
        self.change_state(ProcessStates.STARTING)
        self.record_spawnerr(reason)
        self.change_state(ProcessStates.BACKOFF)
        self.give_up()

    def inherited_fds(self) -> list[int]:
        return [sock.fileno() for sock in self.group.listeners]

    def exec_source_fd(self) -> int | None:
        """A checked binary is executed from the file that was checked; a script cannot be."""
        return self.binary.fd if self.binary and not self.binary.script else None

    def prepare_child(self) -> None:
        """In the child: refuse a script replaced since its check; the LISTEN_* variables."""
        if self.binary and self.binary.script and not self.binary.still_at_path():
            self.config.options.write(2, f"supervisor: littleboss: {self.binary.path} was replaced after it "
                                         "was checked; not running it\n")
            raise OSError(f"{self.binary.path} was replaced after it was checked")  # the child exits 127
        os.environ.update(listen_environment([spec.name for spec in self.group.sockets]))
        if self.notify:
            os.environ["NOTIFY_SOCKET"] = self.notify.address
        watchdog = self.group.settings.watchdog
        if watchdog:  # systemd's watchdog protocol (sd_watchdog_enabled): this pid is the program's once it execs
            os.environ.update(WATCHDOG_USEC=str(round(watchdog * 1e6)), WATCHDOG_PID=str(os.getpid()))

    def finish(self, pid, sts) -> None:
        dispatchers = list(self.dispatchers.values())
        # no longer read through readpoll, while the pipes are open: an epoll entry outlives
        # the close of its fd while a child just forked still holds a copy
        for dispatcher in dispatchers:
            read_poll().forget(dispatcher.fd, dispatcher)
        super().finish(pid, sts)  # logs what is left in the pipes, closes them, forgets the dispatchers
        self._end_run(dispatchers)
        self.group.untrack(pid)
        self.last_exit = decode_wait_status(sts)[1]
        if self.notify:
            self.notify.close()
        if self.role is Role.DISCARDED:
            self.kill_process_group()  # whatever it forked must not outlive it
        self.group.process_exited(self)

    def _end_run(self, dispatchers: list) -> None:
        """Release what the run's dispatchers hold now: close the loggers no other live process
        of the program writes through (a candidate writes through the serving process's: the
        last one to end closes them)."""
        close_loggers(dispatchers, keep=self.group.all_processes())

    def stop(self):
        if self.role is Role.SERVING:
            self.group.abort_rollout("the program is being stopped")
        return super().stop()

    def get_state(self) -> int:
        # a stopped program still has processes while its replaced ones drain: until they
        # exit it is STOPPING, so `stop`, `update` and shutdown wait for them
        if self.state in STOPPED_STATES and self.role is Role.SERVING and self.group.live_extras():
            return ProcessStates.STOPPING
        return self.state

    # --- what a reload asks of a candidate ------------------------------------------
    def is_ready(self, now: float) -> bool:
        """Ready by ``littleboss_ready``: READY=1 from its main pid, or ``startsecs`` up."""
        if self.group.settings.ready == "notify":
            return self.notify is not None and self.notify.ready
        return now - self.laststart >= self.config.startsecs

    def ready_due(self) -> float | None:
        return None if self.group.settings.ready == "notify" else self.laststart + self.config.startsecs

    def ready_since(self) -> float | None:
        return self.notify.ready_at if self.notify and self.notify.ready else None

    def watchdog_deadline(self) -> float | None:
        """When it is hung unless it sends WATCHDOG=1 (littleboss_watchdog): that long after its
        last WATCHDOG=1, its READY=1 or its start, whichever came last; None without a watchdog."""
        seconds, notify = self.group.settings.watchdog, self.notify
        if not seconds or not self.pid or notify is None:
            return None
        return max(max(notify.pinged_at, notify.ready_at, self.laststart) + seconds, notify.extended_until)

    def kill_process_group(self) -> None:
        """SIGKILL the process group it leads (it and any child it forked), if any is left."""
        if self.last_pid:
            kill_group(self.last_pid)

    def exit_report(self) -> str:
        """How it ended, with the last lines of its stderr (control characters, which XML
        cannot carry, shown as ``?``)."""
        lines = last_lines(bytes(self.tail), 5)
        report = self.last_exit or self.spawnerr or "not started"
        return report + (f"; last output: {lines}" if lines else "")


LOG_SETTINGS = ("stdout_logfile", "stderr_logfile", "redirect_stderr", "stdout_logfile_maxbytes",
                "stderr_logfile_maxbytes", "stdout_logfile_backups", "stderr_logfile_backups")


def same_logs(config, other) -> bool:
    """Whether two process configs log to the same files, the same way."""
    return all(getattr(config, name, None) == getattr(other, name, None) for name in LOG_SETTINGS)


def executable_path(process: Subprocess) -> str:
    """The executable the process runs (or would run), as supervisord resolves it."""
    try:
        return process.get_execv_args()[0]
    except ProcessException:
        return shlex.split(process.config.command)[0]

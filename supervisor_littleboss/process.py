"""The process group and subprocess classes of littleboss programs.

A littleboss program's group takes its listening sockets from the registry (bound
once, held by supervisord) and every process of the group receives them on fds
3, 4, ... with ``LISTEN_FDS``, ``LISTEN_PID`` and ``LISTEN_FDNAMES`` set: the
systemd socket-activation convention.
"""
from __future__ import annotations

import fcntl
import os
import socket
import time

from supervisor.process import ProcessGroup, Subprocess
from supervisor.states import ProcessStates

from .config import LittlebossGroupConfig
from .sockets import LISTEN_FDS_START, REGISTRY, SocketSpec


def listen_environment(names: list[str]) -> dict[str, str]:
    """The systemd socket-activation variables for the calling (child) process."""
    return {
        "LISTEN_FDS": str(len(names)),
        "LISTEN_PID": str(os.getpid()),
        "LISTEN_FDNAMES": ":".join(names),
    }


class LittlebossSubprocess(Subprocess):
    """A supervisord subprocess that inherits its group's listening sockets."""

    group: LittlebossProcessGroup

    def spawn(self):
        if not self.pid:
            reason = self.group.bind_sockets()
            if reason:
                self._give_up(reason)
                return None
        return super().spawn()

    def _give_up(self, reason: str) -> None:
        """Go to FATAL with ``reason`` shown by ``supervisorctl status``, as a failed spawn does."""
        self.laststart = time.time()
        self.change_state(ProcessStates.STARTING)
        self.record_spawnerr(reason)
        self.change_state(ProcessStates.BACKOFF)
        self.give_up()

    def _prepare_child_fds(self) -> None:
        """In the child: stdio pipes on 0-2, the sockets on 3, 4, ..., everything else closed."""
        options = self.config.options
        listeners = self.group.listeners
        first_free = LISTEN_FDS_START + len(listeners)
        # move the sockets above their targets first: a source fd may itself be 3 or 4
        moved = [fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD, first_free) for sock in listeners]
        options.dup2(self.pipes["child_stdin"], 0)
        options.dup2(self.pipes["child_stdout"], 1)
        options.dup2(self.pipes["child_stdout" if self.config.redirect_stderr else "child_stderr"], 2)
        for target, fd in enumerate(moved, LISTEN_FDS_START):
            options.dup2(fd, target)  # dup2'd fds are inheritable
        for fd in range(first_free, options.minfds):
            options.close_fd(fd)
        os.environ.update(listen_environment([spec.name for spec in self.group.config.littleboss.sockets]))


class LittlebossProcessGroup(ProcessGroup):
    """The group of a littleboss program: its processes share the program's sockets."""

    config: LittlebossGroupConfig

    def __init__(self, config: LittlebossGroupConfig) -> None:
        self.config = config
        self.processes = {}
        for pconfig in config.process_configs:
            process = LittlebossSubprocess(pconfig)
            process.group = self
            self.processes[pconfig.name] = process
        self.listeners: list[socket.socket] = []
        self.bind_sockets()  # bind early; a failure is reported when a process spawns

    @property
    def sockets(self) -> tuple[SocketSpec, ...]:
        return self.config.littleboss.sockets

    def bind_sockets(self) -> str | None:
        """Take every socket from the registry (binding what is not held yet).

        Returns None, or the reason a socket cannot be bound, naming program and address.
        """
        logger = self.config.options.logger
        listeners = []
        for spec in self.sockets:
            try:
                listeners.append(REGISTRY.acquire(spec, self.config.littleboss.socket_options, logger))
            except (OSError, ValueError) as exc:
                reason = f"littleboss: program {self.config.name!r} cannot listen on {spec.name}={spec.url}: {exc}"
                logger.error(reason)
                return reason
        self.listeners = listeners
        return None

    def before_remove(self) -> None:
        """``update`` removes this group: close the sockets no configured program still uses."""
        self.listeners = []
        self.config.options.littleboss.release_unused_sockets(leaving=self)

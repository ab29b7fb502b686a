"""The ``littleboss`` XML-RPC namespace, enabled by ``[rpcinterface:littleboss]``."""
from __future__ import annotations

import shlex

from supervisor.options import ProcessException, split_namespec
from supervisor.states import SupervisorStates, getProcessStateDescription
from supervisor.xmlrpc import Faults, RPCError

from .faults import LittlebossFaults, LittlebossRPCError
from .hooks import Plugin, install
from .process import LittlebossProcessGroup, LittlebossSubprocess
from .sockets import LISTEN_FDS_START

API_VERSION = "1.0"


def executable_path(process: LittlebossSubprocess) -> str:
    """The executable the process runs (or would run), as supervisord resolves it."""
    try:
        return process.get_execv_args()[0]
    except ProcessException:
        return shlex.split(process.config.command)[0]


def process_info(process: LittlebossSubprocess) -> dict:
    state = process.get_state()
    return {
        "name": process.config.name,
        "state": state,
        "statename": getProcessStateDescription(state),
        "pid": process.pid,
        "spawnerr": process.spawnerr or "",
    }


def program_info(group: LittlebossProcessGroup) -> dict:
    processes = sorted(group.processes.values(), key=lambda p: p.config.name)
    first = process_info(processes[0])
    return {
        "name": group.config.name,
        "state": first["state"],
        "statename": first["statename"],
        "pid": first["pid"],
        "path": executable_path(processes[0]),
        "command": processes[0].config.command,
        "sockets": [
            {"name": spec.name, "url": spec.url, "fd": fd}
            for fd, spec in enumerate(group.sockets, LISTEN_FDS_START)
        ],
        "processes": [process_info(p) for p in processes],
    }


class LittlebossNamespaceRPCInterface:
    """XML-RPC methods of the ``littleboss`` namespace."""

    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        self.supervisord = plugin.supervisord

    def _update(self, text: str) -> None:
        self.update_text = text
        mood = self.supervisord.options.mood
        if isinstance(mood, int) and mood < SupervisorStates.RUNNING:
            raise RPCError(Faults.SHUTDOWN_STATE)

    def _group(self, name: str) -> LittlebossProcessGroup:
        group_name, _ = split_namespec(name)
        group = self.supervisord.process_groups.get(group_name)
        if group is None:
            raise LittlebossRPCError(
                LittlebossFaults.UNKNOWN_PROGRAM,
                f"no program named {group_name!r} (supervisorctl avail lists the configured ones)",
            )
        if not isinstance(group, LittlebossProcessGroup):
            raise LittlebossRPCError(
                LittlebossFaults.NOT_LITTLEBOSS,
                f"program {group_name!r} is not a littleboss program (its [program:{group_name}] "
                "section has no littleboss_sockets)",
            )
        return group

    def getAPIVersion(self) -> str:
        """Return the version of the littleboss RPC API.

        @return string version
        """
        self._update("getAPIVersion")
        return API_VERSION

    def getProgramInfo(self, name: str) -> dict:
        """Return information about one littleboss program.

        @param string name  The program name (as in [program:name])
        @return struct info  name, state, statename, pid (of its first process), path
                             (the executable in use), command, sockets (each: name, url,
                             fd it is passed as) and processes (each: name, state,
                             statename, pid, spawnerr)
        """
        self._update("getProgramInfo")
        return program_info(self._group(name))

    def getAllProgramInfo(self) -> list:
        """Return information about every littleboss program, sorted by name.

        @return array result  An array of structs, as getProgramInfo returns
        """
        self._update("getAllProgramInfo")
        groups = self.plugin.littleboss_groups()
        return [program_info(group) for group in sorted(groups, key=lambda g: g.config.name)]


def make_littleboss_rpcinterface(supervisord, **config) -> LittlebossNamespaceRPCInterface:
    """Factory for ``[rpcinterface:littleboss]``: installs the plugin (idempotent) and serves it."""
    if config:
        supervisord.options.usage(f"[rpcinterface:littleboss] has unknown setting(s): {', '.join(sorted(config))}")
    return LittlebossNamespaceRPCInterface(install(supervisord))

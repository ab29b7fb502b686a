"""The ``littleboss`` XML-RPC namespace, enabled by ``[rpcinterface:littleboss]``."""
from __future__ import annotations

import time

from supervisor.http import NOT_DONE_YET
from supervisor.options import split_namespec
from supervisor.states import SupervisorStates, getProcessStateDescription
from supervisor.xmlrpc import Faults, RPCError

from . import events  # noqa: F401 - registers the LITTLEBOSS_RELOAD_* event types on import
from .config import LittlebossGroupConfig, check_before_install
from .contract import IDLE, Kind, RolloutPhase
from .exporter import PATH as METRICS_PATH
from .exporter import VIEW as METRICS_VIEW
from .faults import LittlebossFaults as F
from .faults import LittlebossRPCError
from .glue import DEFERRED_DELAY, LISTEN_FDS_START, add_web_view, check_groups_when_parsed, deferred, link_status_page
from .group import LittlebossProcessGroup
from .lifecycle import Launch, Rollout
from .plugin import Plugin, install
from .process import LittlebossSubprocess, Role
from .restart import apply
from .upgrade import begin, preflight, refusal, run_info
from .validate import check_binary
from .web import PAGE, littleboss_view

API_VERSION = "1.0"
ANSWER_POLL = 0.25  # seconds between polls of a rollout's deferred answer, in case its group's call is missed

# supervisord imports this module (the [rpcinterface:littleboss] factory's) while it reads its
# configuration, before it parses the programs: from then on a bad littleboss setting stops
# supervisord as a bad setting of its own does (one "Error:" line, exit 2)
check_groups_when_parsed(check_before_install)


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
    infos = [process_info(p) for p in processes]
    first = infos[0]
    rollout, now = group.rollout, time.time()
    active = rollout is not None and rollout.active
    candidates = rollout.candidates() if active else []
    return {
        "name": group.config.name,
        "state": first["state"],
        "statename": first["statename"],
        "pid": first["pid"],
        "path": group.current_path(),
        "previous_path": group.binaries.previous or "",
        "command": processes[0].config.command,
        "sockets": [
            {"name": spec.name, "url": spec.url, "fd": fd}
            for fd, spec in enumerate(group.sockets, LISTEN_FDS_START)
        ],
        "processes": infos,
        "notify_status": processes[0].notify.status if processes[0].pid and processes[0].notify else "",
        "phase": rollout.shown_phase if active else IDLE,
        "candidate_pid": candidates[0].pid if candidates else 0,
        "candidate_pids": [candidate.pid for candidate in candidates],
        "draining_pids": [p.pid for p in group.extras if p.role is Role.DRAINING and p.pid],
        "draining": [{"pid": pid, "connections": count} for pid, count in group.draining_connections().items()],
        "last_reload": rollout.info(now) if rollout else {},
        "history": group.binaries.history,
    }


XMLRPC_TYPES = {bool: "a boolean", int: "an int", float: "a double", str: "a string", list: "an array",
                dict: "a struct", bytes: "base64"}


def argument(value, kind: type, what: str):
    """``value``, if it is of XML-RPC type ``kind``; else INCORRECT_PARAMETERS naming ``what``."""
    if type(value) is not kind:
        received = XMLRPC_TYPES.get(type(value), type(value).__name__)
        raise RPCError(Faults.INCORRECT_PARAMETERS, f"{what} must be {XMLRPC_TYPES[kind]}, not {received}")
    return value


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
        group_name, process_name = split_namespec(argument(name, str, "name"))
        group = self.supervisord.process_groups.get(group_name)
        if group is None:
            raise LittlebossRPCError(
                F.UNKNOWN_PROGRAM, f"no program named {group_name!r} (supervisorctl avail lists the configured ones)"
            )
        if not isinstance(group, LittlebossProcessGroup):
            raise LittlebossRPCError(
                F.NOT_LITTLEBOSS,
                f"program {group_name!r} is not a littleboss program (its [program:{group_name}] "
                "section has no littleboss_sockets)",
            )
        if ":" in name and process_name is not None and process_name not in group.processes:
            raise RPCError(Faults.BAD_NAME, f"{name}: program {group_name!r} has no process {process_name!r}")
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
                             (the executable in use), previous_path (what rollback
                             returns to), command, sockets (each: name, url, fd it is
                             passed as), processes (each: name, state, statename, pid,
                             spawnerr), notify_status (its last STATUS=, while it runs), phase (idle,
                             or of a reload under way: starting, checking, settling,
                             holding, rolling back), candidate_pid (of the first slot under way),
                             candidate_pids, draining_pids, draining (each: pid,
                             connections it still holds), last_reload (struct, as
                             reload returns it) and history (array of structs: time,
                             kind, from, to, outcome, seconds)
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

    def reload(self, name: str, path: str = "", wait: bool = True):
        """Replace a running program by a new executable with zero downtime.

        The new executable starts beside the old process on the same sockets; once it
        is ready (littleboss_ready) and has settled (littleboss_settle) it becomes the
        program and the old process drains (littleboss_lameduck). If it fails before
        that, it is killed and the old process keeps serving. A program with several
        processes (numprocs) is replaced slot by slot, littleboss_surge slots at a
        time; a failure swaps the slots already switched back. A program that is not
        running is not replaced: if it failed (EXITED, BACKOFF, FATAL) it is started on
        the new executable; if it was stopped (STOPPED) nothing starts, and its next
        start runs the new executable (the result's phase says which: started, recorded).

        @param string name     The program name
        @param string path     Absolute path of the new executable (its arguments stay as
                               configured); empty: re-execute the path in the
                               program's command (resolved again: a flipped
                               ``current`` symlink takes the new release)
        @param boolean wait    Return once every slot is promoted and the old processes
                               have exited (true), or at once (false; follow it with
                               getProgramInfo)
        @return struct result  id, name, kind (reload, rollback, fallback, config), phase
                               (starting, checking, settling, holding (a canary),
                               rolling back while it runs; draining, done, failed, rolled back after;
                               started, recorded for a program not running), old_pid,
                               new_pid, old_path, new_path, seconds (to the last
                               promotion), drain_seconds (until the old processes
                               exited, or were drained: see littleboss_drain_connections),
                               slots_done, slots_total, slots (array of structs:
                               slot, process, phase (waiting, starting, checking,
                               settling, draining, done, failed), old_pid,
                               candidate_pid, check, error), message (for a program
                               not running)
        """
        self._update("reload")
        group = self._group(name)
        path, wait = argument(path, str, "path"), argument(wait, bool, "wait")
        return self._begin(group, path or group.command_path(), Kind.RELOAD, wait)

    def reloadCanary(self, name: str, path: str, canary: int, hold: float, wait: bool = False):
        """Reload a program of several processes as a canary: replace ``canary`` of its
        processes first, hold (the check and the watchdog watching them) for ``hold`` seconds,
        or until promote (``hold`` negative), then replace the others; if a canary fails its
        check (littleboss_check_failures in a row) or exits during the hold, or on abort, the
        canaries are swapped back to the old binary.

        @param string name     The program name
        @param string path     As for reload
        @param int canary      How many processes go first (1 to numprocs - 1)
        @param double hold     Seconds to hold after them; negative: until promote
        @param boolean wait    As for reload (true waits through the hold)
        @return struct result  As reload returns
        """
        self._update("reloadCanary")
        group = self._group(name)
        path, canary, wait = argument(path, str, "path"), argument(canary, int, "canary"), argument(wait, bool, "wait")
        hold = float(hold if type(hold) is int else argument(hold, float, "hold"))
        if not 0 < canary < group.slot_count():
            raise RPCError(Faults.BAD_ARGUMENTS, f"canary must be from 1 to {group.slot_count() - 1} (numprocs - 1) "
                                                 f"for {group.name}, not {canary}")
        return self._begin(group, path or group.command_path(), Kind.RELOAD, wait, canary,
                           None if hold < 0 else hold)

    def promote(self, name: str) -> dict:
        """Go on with a canary reload that holds: its other processes are replaced now.

        @param string name     The program name
        @return struct result  As reload returns (wait false)
        """
        self._update("promote")
        rollout = self._held(name)
        rollout.promote()
        return rollout.info(time.time())

    def abort(self, name: str) -> dict:
        """Give up a reload under way (a canary holding, or any other): the processes already
        switched are swapped back to the old binary, with zero downtime.

        @param string name     The program name
        @return struct result  As reload returns (wait false)
        """
        self._update("abort")
        group = self._group(name)
        rollout = group.rollout
        if rollout is None or not rollout.active:
            raise LittlebossRPCError(F.NOT_HOLDING, f"{group.name}: no reload is under way")
        rollout.cancel("littleboss:abort", time.time())
        return rollout.info(time.time())

    def _held(self, name: str) -> Rollout:
        group = self._group(name)
        rollout = group.rollout
        if rollout is None or rollout.phase is not RolloutPhase.HOLDING:
            raise LittlebossRPCError(F.NOT_HOLDING, f"{group.name}: no canary holds (littleboss:status {group.name} "
                                                    "shows its phase)")
        return rollout

    def rollback(self, name: str, wait: bool = True):
        """Reload a program back to its previous executable (before the last successful reload).

        @param string name     The program name
        @param boolean wait    As for reload
        @return struct result  As reload returns
        """
        self._update("rollback")
        group = self._group(name)
        wait = argument(wait, bool, "wait")
        previous = group.binaries.previous
        self._refuse_now(group)  # a reload under way comes first: after it, there may be a previous binary
        if not previous:
            raise LittlebossRPCError(F.NO_PREVIOUS, f"{group.config.name}: no previous binary to roll back to")
        return self._begin(group, previous, Kind.ROLLBACK, wait)

    def applyConfig(self, name: str, wait: bool = True):
        """Apply a program's changed configuration in place, as ``supervisorctl update`` does
        with littleboss's ctl plugin: after reloadConfig (``reread``), the program takes up its
        new configuration with its processes running; if the change reaches them (a setting
        they started with, the sockets) they are swapped for processes on the new settings by
        a ``config`` rollout, with zero downtime; processes added (numprocs) start, processes
        removed drain. If the rollout fails, the old processes keep serving on their old
        settings. NOT_IN_PLACE when it cannot be done in place (its process names changed, or
        it is no longer a littleboss program): ``update`` then stops and starts it.

        @param string name     The program name
        @param boolean wait    As for reload
        @return struct result  name, message, and reload (the config rollout's result, as
                               reload returns it; empty when nothing reached the running
                               processes)
        """
        self._update("applyConfig")
        group = self._group(name)
        wait = argument(wait, bool, "wait")
        new = next((config for config in self.supervisord.options.process_group_configs
                    if config.name == group.name), None)
        if not isinstance(new, LittlebossGroupConfig) or not group.config.can_take_up(new):
            raise LittlebossRPCError(F.NOT_IN_PLACE, f"{group.name}: its new configuration cannot be applied in "
                                                     "place (process names changed, or not a littleboss program)")
        if new == group.config:
            return {"name": group.name, "message": f"{group.name}: unchanged", "reload": {}}
        self._refuse_now(group)
        reload = apply(group, new)
        if reload is None:
            return {"name": group.name, "reload": {},
                    "message": f"{group.name}: applied; no running process needed a swap"}
        answer = {"name": group.name, "message": f"{group.name}: swapping to the new configuration"}
        if not wait:
            return {**answer, "reload": reload.info(time.time())}
        waiting = self._wait_for(reload)

        def finished():
            result = waiting()
            return result if result is NOT_DONE_YET else {**answer, "reload": result}

        return deferred(finished, self)

    def upgrade(self):
        """Upgrade supervisord in place: re-execute it in its own pid, running the supervisor,
        littleboss and Python installed now, with every littleboss program's processes running
        on through it (same pids, sockets and log files); other programs restart, as on
        supervisord's reload. The installed code is first tried in a process of its own
        (imports, configuration read as the new supervisord would read it): if that fails,
        nothing changes (PREFLIGHT_FAILED). Refused while a program reloads, or its fallback
        window is open (RELOAD_IN_PROGRESS). The answer comes before the exec: supervisord's
        HTTP servers then close for a moment; getRunInfo answers again once the new code runs
        (its upgrades count is this answer's upgrade).

        @return struct result  pid, upgrade (its number: getRunInfo's upgrades once done),
                               from and to (structs: supervisor, littleboss, python)
        """
        self._update("upgrade")
        refused = refusal(self.plugin, time.time())
        if refused:
            raise LittlebossRPCError(F.RELOAD_IN_PROGRESS, refused)
        check = preflight(self.plugin)

        def finished():
            if not check.done(time.time()):
                return NOT_DONE_YET
            return begin(self.plugin, check)

        return deferred(finished, self)

    def getRunInfo(self) -> dict:
        """Return what supervisord's process runs: its pid, since when this code runs in it
        (started, a UNIX time), its in-place upgrades so far (upgrades) and the supervisor,
        littleboss and Python versions it runs.

        @return struct info  pid, started, upgrades, supervisor, littleboss, python
        """
        self._update("getRunInfo")
        return run_info()

    @staticmethod
    def _refuse_now(group: LittlebossProcessGroup) -> None:
        """RELOAD_IN_PROGRESS or NOT_RUNNING when no reload can start now."""
        refusal = group.reload_refusal()
        if refusal is not None:
            in_progress = group.rollout is not None and group.rollout.active
            raise LittlebossRPCError(F.RELOAD_IN_PROGRESS if in_progress else F.NOT_RUNNING, refusal)

    def _begin(self, group: LittlebossProcessGroup, path: str, kind: Kind, wait: bool, canary: int = 0,
               hold: float | None = None):
        self._refuse_now(group)
        binary = check_binary(group.name, path, group.serving(0).config.uid, group.allowed())
        reload = group.begin_reload(binary, kind, canary, hold)
        if not wait:
            return reload.info(time.time())
        return self._wait_for(reload)

    def _wait_for(self, reload: Rollout | Launch):
        """A deferred result (supervisord keeps serving); the reload itself runs in the main loop."""
        def finished():
            # answer once the losers are gone: after a success no old process answers,
            # after a failure no candidate does
            if not reload.finished:
                return NOT_DONE_YET
            if reload.failure:
                raise reload.failure
            return reload.result(time.time())

        # a rollout's group has its answer polled in the pass after it finished: polled meanwhile
        # only in case that is missed (each poll costs supervisord a pass over every program)
        return deferred(finished, self, ANSWER_POLL if isinstance(reload, Rollout) else DEFERRED_DELAY)


def make_littleboss_rpcinterface(supervisord, **config) -> LittlebossNamespaceRPCInterface:
    """Factory for ``[rpcinterface:littleboss]``: installs the plugin (idempotent) and serves it.

    Settings: ``state_file``, where swapped-in binaries and reload history are kept
    (default: supervisord-littleboss.json beside supervisord's pidfile); an unknown one is a
    configuration error, found when the configuration was parsed (check_before_install).
    """
    try:
        plugin = install(supervisord, config.get("state_file"))
    except OSError as exc:  # supervisord would report it as "Cannot open an HTTP server"
        # supervisord logs this with its traceback, then stops: "Error: Could not make littleboss rpc interface"
        raise ValueError(f"littleboss cannot start: {exc}") from exc
    interface = LittlebossNamespaceRPCInterface(plugin)
    add_web_view(PAGE, littleboss_view(interface))  # /littleboss.html in supervisord's web UI,
    link_status_page(PAGE, "Littleboss")  # linked from its status page (once, however often this runs)
    add_web_view(METRICS_PATH, METRICS_VIEW)  # /littleboss/metrics, for Prometheus
    plugin.free_previous_run()  # the views above held the previous run's interface
    return interface

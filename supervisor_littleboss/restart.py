"""supervisord's restart (SIGHUP, ``supervisorctl reload``): littleboss programs run on through it.

supervisord restarts in the same process: it stops every group, reads its configuration
again, makes new groups and starts them. A littleboss group whose program the configuration
file, read as it is at that moment, still gives the same processes on the same sockets is
*kept*: its processes are not stopped, the fds supervisord reads them through (pipes,
NOTIFY_SOCKET, log files) are spared when the new run closes inherited fds, and the new run
takes the group up (``resume``) instead of making one. An unchanged program goes on as it
was; a changed one keeps its processes on their old settings until a ``config`` rollout
swaps them, with zero downtime, for processes on the new ones.
"""
from __future__ import annotations

import copy
import itertools
import os
import time

from supervisor import events
from supervisor.process import ProcessGroup
from supervisor.states import SupervisorStates

from .binaries import BinaryRecord
from .config import LittlebossGroupConfig, ProcessConfigs
from .contract import Kind
from .events import ReloadFailedEvent
from .faults import LittlebossRPCError
from .glue import logger_fds, reap_with
from .lifecycle import Program
from .validate import check_binary

# groups whose processes run on through supervisord's restart, by name: kept by the run that
# ends, taken up by the next (modules are not re-imported on SIGHUP)
KEPT: dict[str, ProcessGroup] = {}


def kept(group) -> bool:
    """Whether ``group``'s processes run on through supervisord's restart under way (decided
    once, when supervisord first stops it): only a reload under way is stopped (its candidates
    discarded)."""
    restarting = group.config.options.mood == SupervisorStates.RESTARTING
    if KEPT.get(group.name) is group:
        if restarting:
            return True
        # a shutdown came during the restart: it stops as every program does (now: supervisord may
        # already have counted it stopped, and will not ask it to stop again)
        del KEPT[group.name]
        group.stop_all()
        return False
    if not restarting:
        return False
    new = group.plugin.next_config(group.name)
    if new is None or not group.config.can_take_up(new):
        return False
    group.abort_rollout("supervisord is reloading its configuration", stopping=False)
    KEPT[group.name] = group
    running = [str(process.pid) for process in group.processes.values() if process.pid]
    group.log(f"pid(s) {', '.join(running) or 'none'} run on through supervisord's reload")
    return True


def moved(pconfig, options):
    """A copy of process config ``pconfig`` in supervisord's run of ``options``."""
    pconfig = copy.copy(pconfig)
    pconfig.options = options
    return pconfig


def resume(group, config: LittlebossGroupConfig):
    """In supervisord's next run: ``group``, its processes still running, with ``config``.
    Its processes go on as they were (same pids, log files, notify sockets; the history and
    the binary in use too). If ``config`` changes what they were started with (a process's
    settings, the sockets), they keep their settings until a ``config`` rollout, started at
    the group's first transition, swaps them for processes on the new ones. Slots added
    (numprocs grew) start as any process does; slots removed drain and stop."""
    options, old = config.options, group.config
    swap = old.reaches_processes(config)
    kept = len(group.slots)
    # a process's config unchanged stays the one it runs with (its AUTO log files stay its own)
    config.process_configs = ProcessConfigs(config.name, [
        moved(mine, options) if slot < kept and mine == theirs else created(theirs)
        for slot, (mine, theirs) in enumerate(itertools.zip_longest(old.process_configs[:len(config.process_configs)],
                                                                     config.process_configs))])
    group.config = config
    group.binaries = BinaryRecord(group.plugin.state.program(group.name), group.configured_command,
                                  group.configured_path, group.save_state)
    warning = group.binaries.reconcile(group.refusal, time.time())  # a changed command wins
    if warning:
        options.logger.warn(f"littleboss: {group.name}: {warning}")
    group.program = Program(group, group.binaries, group.log)
    # group.orphans goes on: those an earlier supervisord left, never its own processes
    removed = [group.serving(slot) for slot in range(len(config.process_configs), kept)]
    processes = {}
    for slot, pconfig in enumerate(config.process_configs):
        # a slot that runs nothing (stopped, exited, FATAL) starts afresh, as every program does in
        # a new run (autostart)
        process = group.serving(slot) if slot < kept and group.serving(slot).pid else group.new_process(slot)
        # a running process keeps its own settings, until swapped, if they changed now or before
        process.kept_settings = bool(process.pid) and (swap or process.kept_settings)
        process.config = moved(process.config, options) if process.kept_settings else group.slot_config(slot)
        if process.pid:
            reap_with(options, process.pid, process)  # the new run reaps it
        processes[pconfig.name] = process
    group.slots, group.processes = [pconfig.name for pconfig in config.process_configs], processes
    for process in removed:
        process.config = moved(process.config, options)
        if process.pid:
            reap_with(options, process.pid, process)
        group.retire(process)
    if group.rollout is not None:
        group.rollout.resume(group.program)
    group.bind_sockets()
    group.config_due = group.config_pending
    group.wake()
    return group


def created(pconfig):
    """A new process config, its AUTO log files made."""
    pconfig.create_autochildlogs()
    return pconfig


def apply(group, config: LittlebossGroupConfig):
    """``update`` of a program whose configuration changed, in place: ``group`` takes up
    ``config`` as a new run would (``resume``) and, if the change reaches its running
    processes, swaps them now; the reload, or None (nothing to swap). LittlebossRPCError if
    the swap cannot start (the running processes keep serving)."""
    resume(group, config)
    group.plugin.release_unused_sockets()
    return swap_to_config(group) if group.config_due else None


def swap_to_config(group):
    """Swap the processes that kept older settings for ones on the group's configuration (a
    ``config`` rollout) and return it; if it cannot start, the history, the log and an event
    say why, the running processes keep serving, and LittlebossRPCError is raised."""
    group.config_due = False
    path = group.binaries.swapped_in or group.configured_path()
    try:
        binary = check_binary(group.name, path, group.config.process_configs[0].uid, group.allowed())
    except LittlebossRPCError as exc:
        old = group.current_path()
        group.binaries.failed(Kind.CONFIG, old, path, f"failed: {exc.text}", 0, time.time())
        group.log(f"the new configuration cannot be applied: {exc.text}; the running processes keep their "
                  "settings", error=True)
        events.notify(ReloadFailedEvent(group.name, reason=exc.text, **{"from": old, "to": path},
                                        old_pid=group.serving(0).pid, new_pid=0, slots=group.slot_count()))
        raise
    return group.begin_reload(binary, Kind.CONFIG)


def abandon(logger) -> None:
    """The groups kept, but not taken up (the configuration changed again before the new run
    read it): their processes are sent their stop signal."""
    for group in KEPT.values():
        for process in group.all_processes():
            if process.notify:  # no longer read
                process.notify.close()
            if process.pid:
                logger.warn(f"littleboss: {group.name}: pid {process.pid} ran on through supervisord's reload, "
                            "but the program is no longer configured so: stopping it")
                try:
                    os.kill(process.pid, process.config.stopsignal)
                except ProcessLookupError:
                    pass
    KEPT.clear()


def kept_fds() -> set[int]:
    """The fds supervisord reads its kept processes through (pipes; their notify sockets are
    spared with ``readpoll.read_poll_fds``) and those of the log files it writes their output to."""
    return {fd for group in KEPT.values() for process in group.all_processes()
            for pipe, dispatcher in process.dispatchers.items() for fd in (pipe, *logger_fds(dispatcher))}


def kept_logs() -> set[str]:
    """The log files supervisord's kept processes write."""
    return {os.path.abspath(path) for group in KEPT.values() for process in group.all_processes()
            for path in (process.config.stdout_logfile, process.config.stderr_logfile) if isinstance(path, str)}

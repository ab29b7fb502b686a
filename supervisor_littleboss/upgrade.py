"""supervisord's in-place upgrade: the same pid runs the code installed now, its programs serving on.

``littleboss.upgrade`` first runs the installed code beside supervisord (``preflight``);
if it passes, supervisord reloads as on SIGHUP (plain programs stop; littleboss programs run
on, ``restart.kept``), but between its two runs it re-executes itself: the old code hands
what the littleboss programs' processes hold (``handover``) to the new code, which takes
them up as its own (``adopt``). A record it cannot read makes the new code recover the
processes as after a supervisord killed with -9.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from datetime import datetime

from supervisor.states import ProcessStates, SupervisorStates, getProcessStateDescription

from .config import LittlebossGroupConfig
from .faults import LittlebossFaults as F
from .faults import LittlebossRPCError
from .glue import fill_auto_logs, keep_logs_on_sighup, process_settings, reap_with, same_settings, take_up_pipes
from .handover import CHANNELS, ENVIRONMENT, FORMAT, LOGS, HandedProcess, HandedProgram, Handover
from .notify import NotifyReceiver
from .orphans import ProcessRecord
from .outcome import version_changes
from .preflight import LAUNCH_DIR, RUNNING, Preflight, command
from .restart import KEPT
from .sockets import REGISTRY

HANDOVER_FILE_NAME = "supervisord-littleboss.handover.json"  # beside the state file
STARTED = time.time()  # when this code started running in supervisord's process


class Arrival:
    """In a supervisord that re-executed itself: what its old code handed over, until taken up."""

    def __init__(self, record: Handover | None, problem: str = "") -> None:
        self.record, self.problem = record, problem
        self.done = False  # taken up (by the first run after the exec)
        self.programs = dict(record.programs) if record else {}
        self.handed = sum(len(program.processes) for program in self.programs.values())
        self.logs = record.log_files() if record else set()

    def program(self, name: str) -> HandedProgram | None:
        """The processes handed over for program ``name`` (once: then they are its group's)."""
        return self.programs.pop(name, None)

    def finish(self, logger) -> None:
        """Once every group is made: close what no program took up (their processes were left to
        the orphans' recovery, which stops them); say what happened."""
        for program in self.programs.values():
            for process in program.processes:
                for fd in process.fds():
                    with contextlib.suppress(OSError):
                        os.close(fd)
        self.programs, self.logs, self.done = {}, set(), True
        record = self.record
        if record is None:
            logger.error(f"littleboss: {self.problem}; the programs' processes are recovered as after a "
                         "supervisord killed with -9 (sockets taken back, programs started again)")
            return
        logger.warn(f"littleboss: supervisord (pid {record.pid}) upgraded in place: "
                    f"{version_changes(record.versions, RUNNING)}; {self.handed} process(es) of "
                    f"{len(record.programs)} littleboss program(s) handed over")


def arrive() -> Arrival | None:
    """What the old code handed over, if this supervisord re-executed itself (None if not). The
    record is read once and removed; if it cannot be read, the fds it would have named are
    closed (their processes then are orphans, recovered as after kill -9)."""
    path = os.environ.pop(ENVIRONMENT, None)
    if path is None:
        return None
    try:
        record = Handover.read(path)
    except (OSError, ValueError) as exc:
        record, problem = None, f"the in-place upgrade's record {path} cannot be read ({exc})"
    else:
        problem = "" if record.pid == os.getpid() else f"the record {path} is of pid {record.pid}, not this one"
    with contextlib.suppress(OSError):
        os.unlink(path)
    if problem:
        close_inherited_fds()
        return Arrival(None, problem)
    arrival = Arrival(record)
    keep_logs_on_sighup(lambda: arrival.logs)  # supervisord clears AUTO log files before it makes groups
    return arrival


def close_inherited_fds() -> None:
    """Close every inheritable fd from 3 up: what an unreadable record would have named (all
    that supervisord's own code opens is close-on-exec)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        with contextlib.suppress(OSError):
            if fd > 2 and os.get_inheritable(fd):
                os.close(fd)


ARRIVAL = arrive()  # supervisord imports littleboss as it reads its configuration: before anything else
UPGRADES = ARRIVAL.record.upgrades if ARRIVAL and ARRIVAL.record else 0
FAILED_EXEC: list[str] = []  # why a re-exec failed (supervisord then reloaded in its process)


def run_info() -> dict:
    return {"pid": os.getpid(), "started": STARTED, "upgrades": UPGRADES, **RUNNING}


# --- the old code: refuse, try the new code, reload, hand over, re-execute ---------------

def refusal(plugin, now: float) -> str | None:
    """Why supervisord cannot be upgraded now: an upgrade or a program's reload under way, or a
    reload's fallback window open (the window would close unwatched)."""
    if plugin.upgrade is not None or (plugin.preflight is not None and not plugin.preflight.done(now)):
        return "supervisord is already being upgraded"
    for group in plugin.littleboss_groups():
        rollout = group.rollout
        if group.live_extras() or (rollout and not rollout.finished):
            return f"{group.name}: a reload is in progress (see littleboss:status {group.name}); wait for it to finish"
        watch = rollout.watch if rollout else None
        if watch and watch.covers(now):
            until = datetime.fromtimestamp(watch.until).strftime("%H:%M:%S")
            return (f"{group.name}: the littleboss_fallback_window after its reload to {watch.failed_path} is open "
                    f"until {until}; upgrade once it has closed")
    return None


def preflight(plugin) -> Preflight:
    """Run the installed code against supervisord's arguments, in the background."""
    check = plugin.preflight = Preflight(sys.argv[1:], time.time())
    reap_with(plugin.options, check.pid, check)
    return check


def begin(plugin, check: Preflight) -> dict:
    """After the preflight ``check``: reload supervisord, to re-execute it between its two runs;
    the answer to ``littleboss.upgrade``. LittlebossRPCError if the installed code failed it."""
    said, output = check.result()
    if said is None:
        raise LittlebossRPCError(F.PREFLIGHT_FAILED, f"the installed code failed its preflight (nothing was "
                                 f"changed; supervisord {os.getpid()} runs on): {output}")
    if FORMAT not in said["reads"]:
        raise LittlebossRPCError(F.PREFLIGHT_FAILED, f"the installed littleboss {said['versions'].get('littleboss')} "
                                 f"cannot read this one's handover (format {FORMAT}): nothing was changed")
    refused = refusal(plugin, time.time())
    if refused:
        raise LittlebossRPCError(F.RELOAD_IN_PROGRESS, refused)
    plugin.upgrade = said["versions"]
    options = plugin.options
    options.logger.warn(f"littleboss: upgrading supervisord (pid {os.getpid()}) in place: "
                        f"{version_changes(RUNNING, said['versions'])}; littleboss programs run on, other programs "
                        "restart")
    options.mood = SupervisorStates.RESTARTING
    return {"pid": os.getpid(), "upgrade": UPGRADES + 1, "from": RUNNING, "to": said["versions"]}


def hand_over(plugin) -> None:
    """Once supervisord's run has ended for an upgrade: write what its kept programs hold and
    re-execute supervisord. If the exec fails, supervisord goes on in this process as after
    SIGHUP (the next run takes the kept programs up), and says why."""
    if plugin.upgrade is None or plugin.options.mood != SupervisorStates.RESTARTING:
        return
    plugin.flush_state()
    record = Handover(os.getpid(), os.getcwd(), UPGRADES + 1, RUNNING, REGISTRY.fds_by_url(),
                      {name: handed_program(group) for name, group in KEPT.items()})
    path = os.path.join(os.path.dirname(plugin.state.path), HANDOVER_FILE_NAME)
    fds = record.fds()
    try:
        record.write(path)
        for fd in [*fds, *standard_fds()]:
            os.set_inheritable(fd, True)
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # (None: a re-exec left it closed)
                stream.flush()
        os.chdir(LAUNCH_DIR)  # supervisord's arguments are relative to it
        os.execve(sys.executable, command(), {**os.environ, ENVIRONMENT: path})
    except OSError as exc:
        FAILED_EXEC.append(f"supervisord could not re-execute itself ({exc}): it reloaded in its process, "
                           "on the code it already ran")
        for fd in fds:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
        with contextlib.suppress(OSError):
            os.chdir(record.cwd)
            os.unlink(path)


def standard_fds() -> list[int]:
    """Fds 0, 1 and 2, where they hold supervisord's standard streams: kept through the exec. A
    daemonized supervisord opened ``/dev/null`` there with Python's ``open``, close-on-exec: the
    new code would start without them, and the files it opens next (its log, a socket) would
    take fds 0 to 2, where anything written to stderr would land."""
    streams = (sys.__stdin__, sys.__stdout__, sys.__stderr__)
    return [fd for fd, stream in enumerate(streams) if stream is not None and _fileno(stream) == fd]


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError):  # closed, or not backed by an fd
        return None


def handed_program(group) -> HandedProgram:
    processes = [handed for process in group.processes.values() if (handed := handed_process(process))]
    return HandedProgram([[spec.name, spec.url] for spec in group.sockets], processes)


def handed_process(process) -> HandedProcess | None:
    """What the new code needs to take ``process`` up; None if it does not run (or is not
    RUNNING or STARTING: it is then recovered as an orphan)."""
    record = ProcessRecord.of(process.pid) if process.pid else None
    if record is None or process.state not in (ProcessStates.RUNNING, ProcessStates.STARTING):
        return None
    dispatchers = process.dispatchers
    pipes = {channel: fd for channel in CHANNELS
             if (fd := process.pipes.get(channel)) is not None and fd in dispatchers and not dispatchers[fd].closed}
    notify = process.notify if process.notify is not None and not process.notify.closed else None
    config = process.config
    return HandedProcess(
        process.slot, config.name, process.pid, record.start, process.laststart,
        getProcessStateDescription(process.state), pipes, process.running_path or process.resolved_command_path(),
        process_settings(config), {key: getattr(config, key) for key in LOGS if isinstance(getattr(config, key), str)},
        notify.fd if notify else None, bool(notify and notify.ready), notify.ready_at if notify else 0.0,
        notify.status if notify else "")


# --- the new code: take the processes up ---------------------------------------------------

def take_up_sockets(logger) -> None:
    """Hold every listening socket the old code held (before any group binds)."""
    for url, fd in (ARRIVAL.record.sockets.items() if ARRIVAL and ARRIVAL.record else ()):
        try:
            REGISTRY.take_up(url, fd, logger)
        except (OSError, ValueError) as exc:
            logger.error(f"littleboss: the socket {url} handed over by the upgrade cannot be held: {exc}")
            with contextlib.suppress(OSError):
                os.close(fd)


def adopt(config: LittlebossGroupConfig, handed: HandedProgram):
    """The group of ``config`` with the handed processes that its slots take up (same slot and
    name, still running) as its own; a changed configuration is then swapped in (``config``
    rollout) as after SIGHUP. Processes not taken up stay in the state file's record of
    running processes, so the group stops them as a killed supervisord's orphans."""
    state = config.options.littleboss.state.program(config.name)
    pconfigs = config.process_configs
    taken = [process for process in handed.processes
             if process.slot < len(pconfigs) and pconfigs[process.slot].name == process.name
             and ProcessRecord(process.pid, process.start).alive()]
    pids = {process.pid for process in taken}
    state.processes = [record for record in state.processes if record.pid not in pids]
    for process in taken:
        fill_auto_logs(pconfigs[process.slot], process.logs)
    config.after_setuid()
    group = config.make_group()
    changed = handed.sockets != [[spec.name, spec.url] for spec in config.littleboss.sockets]
    for process in taken:
        subprocess = group.serving(process.slot)
        changed |= not same_settings(process.settings, process_settings(subprocess.config))
        take_up(subprocess, process)
        handed.processes.remove(process)  # its fds are the group's now
    for process in taken:
        group.serving(process.slot).kept_settings = changed
    group.config_due = group.config_pending
    return group


def take_up(process, handed: HandedProcess) -> None:
    """``process`` (not spawned) becomes the running process ``handed``."""
    process.pid = process.last_pid = handed.pid
    process.laststart = handed.laststart
    process.state = getattr(ProcessStates, handed.state)
    process.running_path = handed.running_path
    for fd in handed.fds():
        os.set_inheritable(fd, False)
    take_up_pipes(process, handed.pipes)
    if handed.notify is not None:
        process.notify = NotifyReceiver(process, socket.socket(fileno=handed.notify))
        process.notify.ready, process.notify.ready_at, process.notify.status = (
            handed.ready, handed.ready_at, handed.status)
        process.notify.pinged_at = time.time()  # littleboss_watchdog: counted afresh from the upgrade
    process.watch_output()
    reap_with(process.config.options, handed.pid, process)
    process.group.track(handed.pid)

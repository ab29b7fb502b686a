"""The process group of a littleboss program.

A littleboss program's group takes its listening sockets from the registry (bound
once, held by supervisord) and every process of the group (``process.py``) receives
them on fds 3, 4, ... by the systemd socket-activation convention.

A program has one slot per process (numprocs). During a reload the group runs more
processes than slots: one
``LittlebossSubprocess`` per pid, each with a role. Only the ``serving`` one is in
``group.processes`` (what ``supervisorctl status`` shows); the candidate and the
draining ones are the group's ``extras``: their output reaches the program's log,
supervisord waits for them on stop, update and shutdown, and event listeners are
not told about their state changes.

The group is supervisord's face of a program: its processes and their roles,
``transition()``, and the ``Slots`` adapter ``lifecycle.py`` drives reloads through. Which
binary runs is the binary record's business (``binaries.py``), reloads the lifecycle's.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import os
import signal
import socket
import time

from supervisor import events
from supervisor.process import ProcessGroup, Subprocess
from supervisor.states import ProcessStates, SupervisorStates, getProcessStateDescription

from . import restart
from .binaries import BinaryRecord
from .check import CheckRun, check_environment, mark_output
from .config import LittlebossGroupConfig, ReloadSettings
from .connections import held_connections, socket_inodes
from .contract import Kind
from .events import WatchdogEvent
from .faults import LittlebossRPCError
from .glue import answer_deferred_now, reap_now, reap_with, transition_due, write_program_log
from .lifecycle import EXITED_ON_ITS_OWN, Launch, Program, Rollout, begin, refusal
from .orphans import Orphans, ProcessRecord
from .outcome import slot_part
from .process import LittlebossSubprocess, Role, executable_path, with_executable
from .sockets import REGISTRY, SocketSpec, serving_addresses
from .validate import CheckedBinary, allowed_patterns, check_binary

DRAIN_POLL = 0.2  # seconds between two looks at what a draining process still holds


class LittlebossProcessGroup(ProcessGroup):
    """The group of a littleboss program: its processes share the program's sockets."""

    config: LittlebossGroupConfig

    def __init__(self, config: LittlebossGroupConfig) -> None:
        self.config = config
        state = self.plugin.state.program(config.name)
        self.binaries = BinaryRecord(state, self.configured_command, self.configured_path, self.save_state)
        warning = self.binaries.reconcile(self.refusal, time.time())
        if warning:
            self._warn(f"{self.name}: {warning}")
        self.program = Program(self, self.binaries, self.log)
        self.slots = [pconfig.name for pconfig in config.process_configs]  # slot i: the i-th process
        self.processes = {pconfig.name: self.new_process(slot) for slot, pconfig in enumerate(config.process_configs)}
        self.extras: list[LittlebossSubprocess] = []
        self.rollout: Rollout | None = None
        # after supervisord's restart: processes that run on settings older than the group's
        # (config_pending) are swapped at the next transition
        self.config_due = False
        self.answered: Rollout | None = None  # the last rollout seen finished
        # nothing to do in a pass until one of its processes changes state (``change_state``) or
        # the group changes (``wake``): its ``transition()`` returns at once
        self.quiet = False
        self.listeners: list[socket.socket] = []
        self.stdin_waiting = False  # a process's stdin has input to write (sendProcessStdin)
        self.orphans = Orphans(config.name, state.processes, self._warn, self._forget)
        state.processes = list(self.orphans.records)  # recorded until they are gone
        self.save_state()
        self.bind_sockets(self._take_over_orphans())  # bind early; a failure is reported when a process spawns

    @property
    def plugin(self):
        return self.config.options.littleboss

    @property
    def sockets(self) -> tuple[SocketSpec, ...]:
        return self.config.littleboss.sockets

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def settings(self) -> ReloadSettings:
        return self.config.littleboss.reload

    @property
    def configured_command(self) -> str:
        return self.config.process_configs[0].command

    # --- slots -----------------------------------------------------------------
    def slot_count(self) -> int:
        return len(self.slots)

    def slot_name(self, slot: int) -> str:
        return self.slots[slot]

    def serving(self, slot: int) -> LittlebossSubprocess:
        """The process that serves ``slot`` (what ``supervisorctl status`` shows)."""
        return self.processes[self.slots[slot]]

    def statename(self, slot: int) -> str:
        return getProcessStateDescription(self.serving(slot).get_state())

    def slot_path(self, slot: int) -> str:
        """The binary ``slot``'s process runs: the file its command's path resolved to when it
        was spawned (a ``current`` symlink flipped since does not change it); when it does not
        run, the file its next spawn would run."""
        process = self.serving(slot)
        return process.running_path if process.pid and process.running_path else process.resolved_command_path()

    def current_path(self) -> str:
        """The binary the program runs (its first slot's)."""
        return self.slot_path(0)

    def command_path(self) -> str:
        """The path in the program's command, as written: what a re-exec resolves again."""
        return executable_path(self.serving(0))

    def configured_path(self) -> str:
        """The file the configured command's path resolves to now."""
        return os.path.realpath(executable_path(Subprocess(self.config.process_configs[0])))

    # --- sockets ---------------------------------------------------------
    def bind_sockets(self, adopted: dict[str, socket.socket] | None = None) -> str | None:
        """Take every socket from the registry, all or nothing (binding what is not held yet,
        or holding the ``adopted`` socket for its URL); None, or why one cannot be bound."""
        listeners, reason = REGISTRY.acquire_all(self.name, self.sockets, self.config.littleboss.socket_options,
                                                 self.config.options.logger, adopted or {})
        if reason is None:
            self.listeners = listeners
        return reason

    # --- processes an earlier supervisord left running, and the record that finds them ---
    def _take_over_orphans(self) -> dict[str, socket.socket]:
        """Processes of this program that outlived a supervisord killed (-9): take their
        listening sockets back (by URL), so that no connection is refused, and stop them as
        replaced processes are stopped. A socket that cannot be taken back (supervisord not
        root) is bound once they have exited."""
        if not self.orphans:
            return {}
        pconfig = self.config.process_configs[0]
        free = [(spec.url, *spec.address) for spec in self.sockets if not REGISTRY.is_held(spec.url)]
        taken = self.orphans.take_over(free, pconfig.stopsignal, self.lameduck(pconfig), time.time(),
                                       len(self.sockets))
        if any(url not in taken for url, *_ in free):
            self.orphans.wait(time.time, time.sleep)  # they hold the address: it can be bound only once they are gone
        return taken

    def _warn(self, message: str) -> None:
        self.config.options.logger.warn(f"littleboss: {message}")

    def _forget(self, gone: list[ProcessRecord]) -> None:
        state = self.binaries.state
        state.processes = [r for r in state.processes if r not in gone]
        self.save_state()

    def track(self, pid: int) -> None:
        """Record a process just spawned, so a supervisord that crashes can be followed by one
        that finds it."""
        record = ProcessRecord.of(pid)
        if record is not None:
            self.binaries.state.processes.append(record)
            self.save_state()

    def untrack(self, pid: int) -> None:
        state = self.binaries.state
        state.processes = [r for r in state.processes if r.pid != pid]
        self.save_state()

    def before_remove(self) -> None:
        """``update`` removes this group: close the sockets no configured program still uses."""
        self.listeners = []
        self.plugin.release_unused_sockets(leaving=self)

    # --- supervisord's group interface, counting the extra processes --------
    def transition(self) -> None:
        plugin = self.plugin
        if self.quiet and not plugin.signalled and not plugin.unsaved:
            return  # supervisord's loop asks every program each pass: an idle one costs it nothing
        if plugin.signalled:
            plugin.reap_signalled()
        rollout = self.rollout
        if self.extras or self.orphans.records or self.config_due or self.config.littleboss.reload.watchdog \
                or (rollout is not None and (not rollout.settled or self.answered is not rollout)):
            self.quiet = False  # (already: a group with work under way is never quiet)
            self._move_on(time.time())
        else:  # nothing under way: quiet if no process has a step due, until one changes state
            now, quiet = time.time(), True
            for process in self.processes.values():
                if transition_due(process, now):
                    quiet = False
                    process.transition()
            self.quiet = quiet
        if plugin.unsaved:
            plugin.flush_state()

    def wake(self) -> None:
        """The group changed (a reload began, a process joined or left it, its configuration):
        its next ``transition()`` looks at it whole. What changes a group without a wake does so
        while it is not quiet: a rollout's steps, promote and abort (a rollout under way), the
        drain of its extras."""
        self.quiet = False

    def _move_on(self, now: float) -> None:
        """A pass of the main loop while something is under way: a reload, processes draining,
        orphans, a configuration to swap to, watchdogs. What only time moves on sets the ticker."""
        ticker = self.plugin.ticker
        if self.busy():
            ticker.keep_ticking()
            reap_now(self.plugin.supervisord)
        if self.orphans:
            self.orphans.reap(now)
        if self.config_due and self.supervisord_running():
            with contextlib.suppress(LittlebossRPCError):  # told in the history, the log and an event
                restart.swap_to_config(self)
        if self.rollout:
            self.rollout.step(now)
            if self.rollout.finished and self.answered is not self.rollout:
                self.answered = self.rollout  # a deferred answer waiting for it goes out in the next pass
                answer_deferred_now(self.config.options)
            self.rollout = self.rollout.successor or self.rollout
            ticker.wake_in(self.rollout.due_in(now))
        if self.settings.watchdog:
            self._watch_dogs(now)
        for process in self.all_processes():
            # an extra process only ever stops (SIGKILL after its lameduck): a candidate is moved
            # by its reload, and one that exited must never be respawned
            if process.role is Role.SERVING or process.state == ProcessStates.STOPPING:
                process.transition()
        self.extras = self.live_extras()
        for process in self.extras:
            ticker.wake_in(extra_due_in(process, now))

    def get_dispatchers(self) -> dict:
        """What supervisord's loop polls for the program itself, every pass: a process's stdin
        while input from ``sendProcessStdin`` waits to be written. Its processes' output and
        notify sockets are read through ``readpoll``: one fd for every program."""
        if not self.stdin_waiting:
            return {}
        waiting = {fd: dispatcher for process in self.all_processes()
                   for fd, dispatcher in process.dispatchers.items() if dispatcher.writable()}
        self.stdin_waiting = bool(waiting)
        return waiting

    def busy(self) -> bool:
        """A reload is under way or processes drain: the main loop must pass often."""
        rollout = self.rollout
        return bool(self.extras) or bool(rollout and (not rollout.finished or rollout.exits))

    def get_unstopped_processes(self) -> list:
        self.plugin.flush_state()  # supervisord stops: its last passes run no transition()
        if restart.kept(self):  # its serving processes run on through supervisord's restart
            return self.live_extras()
        return super().get_unstopped_processes() + self.live_extras()

    def stop_all(self) -> None:
        if restart.kept(self):
            return
        self.abort_rollout("supervisord is stopping the program")
        self.orphans.signal(signal.SIGKILL)  # still draining: none may outlive the program
        super().stop_all()

    def all_processes(self) -> list[LittlebossSubprocess]:
        """The serving processes, then the candidate and the replaced ones."""
        return [*self.processes.values(), *self.extras]

    def live_extras(self) -> list[LittlebossSubprocess]:
        """Candidates and replaced processes that have not been reaped yet."""
        return [p for p in self.extras if p.pid]

    # --- reloads: the lifecycle does them; what it asks of the group -----------------
    def reload_refusal(self) -> str | None:
        """Why no reload can start now (one under way; a process neither running nor stopped)."""
        rollout = self.rollout
        if rollout and rollout.active:
            return (f"{self.name}: a {rollout.kind.value} to {rollout.new_path} is in progress "
                    f"(phase {rollout.shown_phase}); wait for it to finish")
        return refusal(self)

    def begin_reload(self, binary: CheckedBinary, kind: Kind, canary: int = 0,
                     hold: float | None = None) -> Rollout | Launch:
        """Give the program ``binary`` (closed once every slot has spawned from it); ``canary``
        slots first, then a ``hold`` (seconds; None: until promoted)."""
        reload = begin(self.program, kind, binary, time.time(), canary, hold)
        if isinstance(reload, Rollout):
            self.rollout = reload
            self.plugin.ticker.keep_ticking()
        self.wake()
        return reload

    def abort_rollout(self, why: str, stopping: bool = True) -> None:
        """Abort the reload under way; ``stopping``: the program's processes are being stopped
        (else they run on)."""
        if self.rollout:
            self.rollout.abort(why, time.time(), stopping)
            self.wake()

    def start_candidate(self, slot: int, path: str, binary: CheckedBinary | None) -> LittlebossSubprocess:
        """Spawn a candidate for ``slot`` running ``binary`` (else ``path``), beside its process."""
        pconfig = self.config.process_configs[slot]
        candidate = LittlebossSubprocess(self.config_running(pconfig, path), self, slot, Role.CANDIDATE)
        candidate.binary = binary
        self.extras.append(candidate)
        self.wake()
        candidate.spawn()
        return candidate

    def start_slot(self, slot: int, binary: CheckedBinary | None) -> str | None:
        """Spawn ``slot``'s process (not running) on ``binary``, else on its command's binary;
        None, or why it could not spawn."""
        process = self.serving(slot)
        process.binary, process.backoff = binary, 0
        process.spawn()
        return None if process.pid else process.spawnerr or "it did not start"

    def start_check(self, slot: int, candidate: LittlebossSubprocess, now: float) -> CheckRun:
        """Run ``littleboss_check`` against ``slot``'s candidate; its output goes to the program's
        log, each line marked as the check's."""
        settings = self.settings
        env = check_environment(self.name, self.slot_name(slot), candidate.pid, candidate.running_path or "",
                                [(spec.name, spec.url) for spec in self.sockets])
        run = CheckRun(list(settings.check), env, settings.check_timeout, now,
                       functools.partial(self._log_check_output, slot))
        if run.pid:
            reap_with(self.config.options, run.pid, run)
        return run

    def _log_check_output(self, slot: int, lines: bytes) -> None:
        marked = mark_output(lines)
        if not write_program_log(self.serving(slot), marked):
            self.log(marked.decode(errors="replace").rstrip())

    def discard(self, candidate: LittlebossSubprocess) -> None:
        """Stop a candidate that will not be promoted, with every process it forked.

        It may have accepted connections: its process group gets the stop signal and the
        lameduck to finish them, then SIGKILL.
        """
        candidate.set_role(Role.DISCARDED)
        if not candidate.pid:
            candidate.kill_process_group()  # its main pid is gone; anything it forked goes too
            return
        candidate.config = copy.copy(candidate.config)
        candidate.config.stopasgroup = candidate.config.killasgroup = True
        candidate.kill(candidate.config.stopsignal)
        candidate.delay = time.time() + self.lameduck(candidate.config)

    def lameduck(self, pconfig) -> float:
        """Seconds a stopped process (of config ``pconfig``) has to finish its work before SIGKILL."""
        lameduck = self.settings.lameduck
        return pconfig.stopwaitsecs if lameduck is None else lameduck

    def promote(self, slot: int, candidate: LittlebossSubprocess) -> LittlebossSubprocess:
        """The candidate becomes ``slot``'s process; the one it replaces drains, then is killed."""
        old = self.serving(slot)
        self.extras = [p for p in self.extras if p is not candidate]  # by identity: Subprocess.__eq__ is priority
        self.processes[old.config.name] = candidate
        candidate.change_state(ProcessStates.RUNNING)  # quietly: the program never stopped running
        candidate.delay = candidate.backoff = 0
        candidate.set_role(Role.SERVING)
        self.retire(old)
        return old

    def retire(self, old: LittlebossSubprocess) -> None:
        """A process no slot has any more drains: the stop signal, SIGKILL after the lameduck."""
        old.set_role(Role.DRAINING)
        self.wake()
        if old.pid:
            self.extras.append(old)
            old.stop()
            old.delay = time.time() + self.lameduck(old.config)

    def drained(self, old: LittlebossSubprocess) -> bool:
        """Whether a replaced process serves no one any more: it has exited, or (with
        littleboss_drain_connections) it was told to stop, holds no connection to the program's
        sockets and no longer holds a listening one. It may still be finishing other work: it
        has until the end of its lameduck to exit, as always. Asked at most every DRAIN_POLL s."""
        if not old.pid or old.drained_at:
            return True
        now = time.time()
        if not self.settings.drain_connections or old.state != ProcessStates.STOPPING or now < old.next_drain_poll:
            return False
        old.next_drain_poll = now + DRAIN_POLL
        held = socket_inodes(old.pid)
        if any(str(os.fstat(sock.fileno()).st_ino) in held for sock in self.listeners):
            return False  # it may accept another: no need to count those it holds
        if held_connections({old.pid: held}, *serving_addresses(self.sockets))[old.pid]:
            return False
        old.drained_at = now
        self.log(f"pid {old.pid} holds no connection and no longer listens: drained (it has until its lameduck "
                 "ends to exit)")
        return True

    def draining_connections(self) -> dict[int, int]:
        """The connections each draining process still holds, by pid."""
        pids = [process.pid for process in self.extras if process.role is Role.DRAINING and process.pid]
        return held_connections({pid: socket_inodes(pid) for pid in pids}, *serving_addresses(self.sockets))

    def new_process(self, slot: int) -> LittlebossSubprocess:
        """A process for ``slot``, not started (it starts as any process does)."""
        return LittlebossSubprocess(self.slot_config(slot), self, slot)

    def slot_config(self, slot: int):
        """The settings ``slot``'s process starts with: the group's, running the binary in use."""
        return self.config_running(self.config.process_configs[slot], self.binaries.swapped_in)

    @property
    def config_pending(self) -> bool:
        """Whether a running process still runs on settings older than the group's."""
        return any(process.kept_settings and process.pid for process in self.processes.values())

    def run_slots_on(self, path: str) -> None:
        """Make ``path`` the binary every slot's next spawn runs (slots already on it keep their command)."""
        for slot, pconfig in enumerate(self.config.process_configs):
            if self.slot_path(slot) != path:
                self.serving(slot).config = self.config_running(pconfig, path)

    def supervisord_running(self) -> bool:
        return self.config.options.mood >= SupervisorStates.RUNNING

    def log(self, message: str, error: bool = False) -> None:
        logger = self.config.options.logger
        (logger.error if error else logger.info)(f"littleboss: {self.name}: {message}")

    def save_state(self) -> None:
        """The program's state (its binary record, its running processes) changed."""
        self.plugin.save_state(self.name)

    def process_exited(self, process: LittlebossSubprocess) -> None:
        """Called from a process's finish(): a slot's process that exited on its own."""
        if (process.role is Role.SERVING and self.rollout
                and getProcessStateDescription(process.state) in EXITED_ON_ITS_OWN):
            self.rollout.serving_exited(process.slot, f"hung: {process.hung}" if process.hung else process.last_exit)

    # --- the watchdog ----------------------------------------------------------------
    def _watch_dogs(self, now: float) -> None:
        """Kill a running process that missed its littleboss_watchdog deadline (or sent
        WATCHDOG=trigger); wake the main loop at the next deadline."""
        for process in self.processes.values():
            deadline = process.watchdog_deadline() if process.state == ProcessStates.RUNNING else None
            if deadline is None or process.hung:
                continue
            if process.notify.triggered or now > deadline:
                self._hung(process, now)
            else:
                self.plugin.ticker.wake_in(deadline - now)

    def _hung(self, process: LittlebossSubprocess, now: float) -> None:
        """A hung process is killed, as if it had crashed: within the fallback window of its
        binary's promotion the program falls back; otherwise supervisord starts it again."""
        process.hung = ("it sent WATCHDOG=trigger" if process.notify.triggered else
                        f"no WATCHDOG=1 for {self.settings.watchdog:g}s (littleboss_watchdog)")
        watch = self.rollout.watch if self.rollout is not None else None
        falls_back = watch is not None and watch.covers(now)
        part = slot_part(process.config.name, process.slot, self.slot_count())
        self.log(f"{part + ': ' if part else ''}pid {process.pid} is hung ({process.hung}): killing it; "
                 + ("the program falls back (littleboss_fallback_window)" if falls_back else "supervisord restarts it"),
                 error=True)
        if not falls_back:
            self.binaries.note(Kind.WATCHDOG, self.slot_path(process.slot),
                               f"pid {process.pid} killed and restarted: {process.hung}", now)
        events.notify(WatchdogEvent(self.name, pid=process.pid, path=self.slot_path(process.slot), reason=process.hung))
        process.kill_process_group()

    # --- which binaries may run --------------------------------------------------
    def allowed(self) -> tuple[str, ...]:
        """The patterns a new binary's resolved path must match."""
        return allowed_patterns(self.configured_path(), self.settings.allow)

    def refusal(self, path: str) -> str | None:
        """Why ``path`` could not be reloaded to now (None: it could)."""
        try:
            check_binary(self.config.name, path, self.config.process_configs[0].uid, self.allowed()).close()
        except LittlebossRPCError as exc:
            return exc.text
        return None

    def config_running(self, pconfig, path: str | None):
        """A copy of ``pconfig`` whose command runs ``path``; ``pconfig`` itself if None, or if its
        command's path already resolves to ``path`` (kept as written: a virtualenv's ``python``
        is a symlink, and runs in its virtualenv only when started by that name)."""
        if not path or path == os.path.realpath(executable_path(Subprocess(pconfig))):
            return pconfig
        running = copy.copy(pconfig)
        running.command = with_executable(pconfig.command, path)
        return running


def extra_due_in(process: LittlebossSubprocess, now: float) -> float | None:
    """Seconds until a candidate or replaced process must be looked at again by time alone: its
    next drain poll (one its rollout asked for: a poll nobody asks for is no deadline), or its
    SIGKILL at the end of its lameduck."""
    if process.state != ProcessStates.STOPPING:
        return None
    dues = [process.delay] if process.delay else []
    if process.role is Role.DRAINING and process.next_drain_poll > now and not process.drained_at:
        dues.append(process.next_drain_poll)
    return min(dues) - now if dues else None

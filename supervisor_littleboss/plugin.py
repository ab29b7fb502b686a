"""Installs littleboss into a running supervisord, once per supervisord run: the wiring.

``install()`` is where every connection between littleboss and supervisord is made: the
group class littleboss programs run with, the wrap of supervisord's config parsing, the
fds spared on SIGHUP, the groups replaced by ours (the web page is added by the RPC
interface's factory, which serves it).

supervisord calls the RPC interface factory once per HTTP server section and again,
with a new ``Supervisor`` and ``ServerOptions``, after every SIGHUP. At that moment
the process groups exist but nothing has been spawned, so littleboss programs'
groups can still be replaced by ours.
"""
from __future__ import annotations

import gc
import os

from .config import LittlebossGroupConfig, ProcessConfigs, littleboss_configs, parsed_configs, wrap_groups_from_parser
from .glue import (
    after_run,
    keep_logs_on_sighup,
    poll_in_every_pass,
    reap_now,
    reparse,
    replace_groups,
    spare_fds_on_sighup,
    stay_in_foreground,
    stop_polling,
)
from .group import LittlebossProcessGroup
from .readpoll import read_poll, read_poll_fds
from .restart import KEPT, abandon, kept_fds, kept_logs, resume
from .sockets import REGISTRY
from .state import StateStore
from .ticker import shared_ticker, ticker_fds
from .upgrade import ARRIVAL, FAILED_EXEC, adopt, hand_over, take_up_sockets
from .wakeup import Wakeup, wakeup_fds

STATE_FILE_NAME = "supervisord-littleboss.json"


class Plugin:
    """What littleboss adds to one supervisord run (one ``ServerOptions`` instance)."""

    def __init__(self, supervisord, state_file: str | None = None) -> None:
        self.supervisord = supervisord
        self.options = options = supervisord.options
        state_file = state_file or os.path.join(os.path.dirname(os.path.abspath(options.pidfile)), STATE_FILE_NAME)
        self.state = StateStore(state_file, options.logger)
        self.ticker = shared_ticker()
        self._next: dict[str, LittlebossGroupConfig] | None = None  # the next run's programs, once asked
        self.unsaved = False  # the state changed since it was last written
        self.upgrade: dict | None = None  # the versions supervisord is being upgraded to, once under way
        self.preflight = None  # the last upgrade's preflight
        self.previous_run_left = False  # a run that supervisord's SIGHUP ended left its objects
        self.signalled = False  # a signal woke the main loop: a child may have exited

    def next_config(self, name: str) -> LittlebossGroupConfig | None:
        """On supervisord's restart: the configuration the next run gives littleboss program
        ``name`` (None: it will not be one), from the configuration file as it is now."""
        if self._next is None:
            self._next = littleboss_configs(self.options.configfile)
        return self._next.get(name)

    def free_previous_run(self) -> None:
        """Free what supervisord's previous run (ended by SIGHUP) left, once the new run no
        longer refers to it (its RPC interface's web views replaced): its options, groups,
        processes and dispatchers, supervisord's and littleboss's alike, and the groups just
        replaced by ours, are held in reference cycles, which only a full collection of the
        cyclic GC frees. CPython makes one only when the objects that outlived younger
        collections reach a quarter of the long-lived ones: with many programs, once in several
        SIGHUPs, each run's garbage piling up meanwhile (supervisord's memory grew by about
        1 MB per SIGHUP with 100 programs). One collection per run keeps one run's worth."""
        if self.previous_run_left:
            self.previous_run_left = False
            gc.collect()

    def reap_signalled(self) -> None:
        """A signal woke the main loop (``wakeup.py``): reap the children that exited, from the
        first littleboss group's ``transition()`` of the pass, after the pass's reads and writes
        (reaping closes a process's pipes, and their dispatchers may still be read in this pass:
        a closed fd could have been reused meanwhile). Later groups see the exits in this pass;
        plain groups gone over before see them in the next, which then comes at once."""
        self.signalled = False
        reap_now(self.supervisord)
        groups = self.supervisord.process_groups.values()
        if any(not isinstance(group.config, LittlebossGroupConfig) for group in groups):
            self.ticker.wake_in(0)

    def save_state(self, program: str | None = None) -> None:
        """The state changed (``program``'s; None: supervisord's counts): it is written once per
        pass of supervisord's main loop (``flush_state``), however many programs changed: each
        changed program's file, and the state file if the counts changed."""
        if program is not None:
            self.state.changed(program)
        self.unsaved = True

    def flush_state(self) -> None:
        """Write the state if it changed since it was last written. Called from every group's
        ``transition`` (the pass a process is spawned in writes it, before anything else can
        happen to supervisord) and ``get_unstopped_processes`` (the passes of a stop)."""
        if not self.unsaved:
            return
        self.unsaved = False
        try:
            self.state.save()
        except OSError as exc:
            self.options.logger.error(
                f"littleboss: cannot write the state file {exc.filename or self.state.path}: {exc.strerror or exc}; "
                "a swapped-in binary will not survive a supervisord restart until it can be written"
            )

    def littleboss_groups(self) -> list:
        return [
            group for group in self.supervisord.process_groups.values()
            if isinstance(group.config, LittlebossGroupConfig)
        ]

    def adopt_groups(self) -> None:
        """Swap in our groups for littleboss programs, from supervisord's own read of its
        configuration (read again only if it did not load littleboss as it was read)."""
        configs = parsed_configs(self.options)
        replace_groups(self.supervisord, reparse(self.options) if configs is None else configs,
                       self._littleboss_group)

    @staticmethod
    def _littleboss_group(config, current) -> LittlebossProcessGroup | None:
        """The group of a littleboss program's new ``config`` (None for other programs): the one
        kept running through supervisord's restart, if any, else a new one."""
        if not isinstance(config, LittlebossGroupConfig):
            return None
        kept = KEPT.pop(config.name, None)
        if kept is not None and kept.config.can_take_up(config):
            return resume(kept, config)
        handed = ARRIVAL.program(config.name) if ARRIVAL else None
        if handed is not None:  # supervisord re-executed itself: its processes run on
            return adopt(config, handed)
        # (one that cannot be taken up, its configuration changed again since supervisord read it
        # at SIGHUP: the new group takes its processes, recorded in the state file, back as orphans)
        if config.process_configs == current.config.process_configs:
            # keep the already resolved AUTO log file names
            config.process_configs = ProcessConfigs(config.name, current.config.process_configs)
        else:
            config.after_setuid()
        return config.make_group()

    def addresses_in_use(self, leaving=None) -> set[str]:
        """URLs used by a configured littleboss program or a live group other than ``leaving``."""
        configs = [c for c in self.options.process_group_configs if isinstance(c, LittlebossGroupConfig)]
        configs += [g.config for g in self.littleboss_groups() if g is not leaving]
        return {spec.url for config in configs for spec in config.littleboss.sockets}

    def release_unused_sockets(self, leaving=None) -> None:
        REGISTRY.retain_only(self.addresses_in_use(leaving), self.options.logger)


def end_run(plugin: Plugin, wakeup: Wakeup) -> None:
    """A run of supervisord ended: nothing of this run is polled or woken any more (the next
    run may not load littleboss), then an upgrade under way hands over."""
    wakeup.close()
    for dispatcher in (wakeup, plugin.ticker, read_poll()):
        stop_polling(plugin.options, dispatcher.fd)
    hand_over(plugin)


def install(supervisord, state_file: str | None = None) -> Plugin:
    """Install littleboss into ``supervisord``; calling it again for the same run is a no-op."""
    options = supervisord.options
    plugin = getattr(options, "littleboss", None)
    if plugin is not None:
        return plugin
    LittlebossGroupConfig.group_class = LittlebossProcessGroup  # what littleboss programs run as
    spare_fds_on_sighup(REGISTRY.fds)  # before the next factory call: it runs on SIGHUP
    spare_fds_on_sighup(kept_fds)
    spare_fds_on_sighup(wakeup_fds)
    spare_fds_on_sighup(ticker_fds)
    spare_fds_on_sighup(read_poll_fds)
    keep_logs_on_sighup(kept_logs)
    plugin = options.littleboss = Plugin(supervisord, state_file)
    wakeup = Wakeup(plugin)  # a signal ends the main loop's poll: a child's exit is acted on at once
    read_poll().logger = options.logger
    for dispatcher in (wakeup, plugin.ticker, read_poll()):
        poll_in_every_pass(options, dispatcher.fd, dispatcher)
    arriving = ARRIVAL is not None and not ARRIVAL.done
    # this run of supervisord, counted for the metrics: after an upgrade, a start or a SIGHUP
    run = "upgrades" if arriving and ARRIVAL.record else "starts" if options.first else "reloads"
    plugin.state.supervisord[run] += 1
    plugin.save_state()
    if arriving:  # the first run after supervisord re-executed itself
        stay_in_foreground(options)
        if ARRIVAL.record:
            os.chdir(ARRIVAL.record.cwd)
        take_up_sockets(options.logger)
    wrap_groups_from_parser(options)
    plugin.adopt_groups()
    if arriving:
        ARRIVAL.finish(options.logger)
    while FAILED_EXEC:
        options.logger.error(f"littleboss: {FAILED_EXEC.pop()}")
    plugin.flush_state()  # what the new groups found (orphans, a refused binary) is written at once
    abandon(options.logger)  # kept, but the configuration changed again before this run read it
    plugin.release_unused_sockets()
    after_run(options, lambda: end_run(plugin, wakeup))
    plugin.previous_run_left = run == "reloads"
    return plugin

"""Every touch of supervisord's internals, in one place.

supervisord has no plugin API for what littleboss does; what it needs beyond the public
hooks (``[rpcinterface:x]`` and ``[ctlplugin:x]`` factories, ``ProcessGroup`` and
``Subprocess`` subclasses, ``events``) is here, each with what it touches, why, and the
supervisor versions it holds for (all checked against 4.2.2 and 4.3.0, the versions the
suite runs on). A supervisor upgrade is an audit of this file, helped by
``tests/test_supervisor_internals.py``, which asserts that every name used here still
exists with the expected shape. Nothing here knows littleboss's own classes.

Outside this file littleboss uses only what a supervisord plugin is given to use, as
supervisord's own ``rpcinterface.py`` and plugins such as supervisor_twiddler do: the
``Supervisor``'s ``process_groups`` and its options' ``mood``, ``logger`` and
``process_group_configs`` (``rpcinterface.py``, ``plugin.py``, ``group.py``);
``ProcessGroup``/``Subprocess`` overrides and the state they keep for subclasses
(``dispatchers``, ``pid``, ``state``, ``laststart``, ``delay``, ``backoff``,
``change_state``, ``record_spawnerr``, ``give_up``: ``process.py``, ``group.py``); the socket config
classes of ``supervisor.datatypes`` (``sockets.py``); ``MeldView`` (``web.py``);
``ControllerPluginBase`` (``controller.py``); ``events`` and ``RPCError``.
"""
from __future__ import annotations

import copy
import fcntl
import os
import socket
from collections.abc import Callable, Iterable

from supervisor.datatypes import Automatic
from supervisor.dispatchers import POutputDispatcher
from supervisor.http import deferring_http_channel
from supervisor.options import ServerOptions, UnhosedConfigParser
from supervisor.process import Subprocess
from supervisor.socket_manager import SocketManager
from supervisor.states import ProcessStates

LISTEN_FDS_START = 3  # the systemd convention: the first passed socket is fd 3
DEFERRED_DELAY = 0.05  # seconds between supervisord's polls of a deferred XML-RPC answer


# --- supervisor.options ---------------------------------------------------------------

_spared: list[Callable[[], set[int]]] = []


def spare_fds_on_sighup(held_fds: Callable[[], set[int]]) -> None:
    """``ServerOptions.cleanup_fds`` (class-wide, since 3.0): on SIGHUP supervisord closes
    every fd from 5 up, which would close the listening sockets it holds for programs
    behind their registry's back: the fds ``held_fds()`` returns are spared. Patched once
    per process (modules are not re-imported on SIGHUP, and the patch must be in place
    before the next factory call)."""
    if held_fds not in _spared:
        _spared.append(held_fds)
    if len(_spared) > 1:
        return
    original = ServerOptions.cleanup_fds

    def cleanup_fds(self: ServerOptions) -> None:
        held = set().union(*(spared() for spared in _spared))
        if not held:
            return original(self)
        start = 5
        for fd in sorted(fd for fd in held if start <= fd < self.minfds) + [self.minfds]:
            os.closerange(start, fd)
            start = fd + 1

    ServerOptions.cleanup_fds = cleanup_fds


_kept_logs: list[Callable[[], set[str]]] = []


def keep_logs_on_sighup(kept: Callable[[], set[str]]) -> None:
    """``ServerOptions.clear_autochildlogdir`` (class-wide, since 3.0): at each start, and on
    SIGHUP, supervisord deletes every ``AUTO`` log file in its childlogdir; the files
    ``kept()`` returns (those of processes that run on through the restart, still writing
    there) are left. Patched once per process."""
    if kept not in _kept_logs:
        _kept_logs.append(kept)
    original = ServerOptions.clear_autochildlogdir
    if getattr(original, "littleboss", False):
        return

    def clear_autochildlogdir(self: ServerOptions) -> None:
        paths = set().union(*(kept() for kept in _kept_logs))
        if not paths:
            return original(self)
        remove = self.remove
        self.remove = lambda path: None if os.path.abspath(path) in paths else remove(path)
        try:
            original(self)
        finally:
            del self.remove

    clear_autochildlogdir.littleboss = True
    ServerOptions.clear_autochildlogdir = clear_autochildlogdir


def wrap_groups_from_parser(options: ServerOptions, transform: Callable[[object, list], list]) -> None:
    """``options.process_groups_from_parser`` (this instance only, since 3.0): it receives
    supervisord's own parsed configuration (includes, ``%(here)s``, ``%(ENV_X)s``) and
    returns the group configs, at startup and on ``reread``/``update``; ``transform(parser,
    configs)`` may replace some. Not a class patch: other plugins' groups are untouched."""
    original = options.process_groups_from_parser

    def process_groups_from_parser(parser):
        return transform(parser, original(parser))

    options.process_groups_from_parser = process_groups_from_parser


def check_groups_when_parsed(check: Callable[[ServerOptions, UnhosedConfigParser, list], None]) -> None:
    """``ServerOptions.process_groups_from_parser`` (class-wide, since 3.0): ``read_config``
    imports the ``[rpcinterface:x]`` factories (``get_plugins``) before it calls this with
    the parsed configuration, so a factory's module, once imported, can ``check(options,
    parser, group configs)`` at that first parse. A ValueError raised there is what
    supervisord's own parser raises: ``process_config_file`` prints it once (``Error: ...``,
    exit 2), no traceback; unlike one from a factory, which ``make_http_servers`` logs with
    its traceback and replaces by ``Could not make x rpc interface``. Patched once per process."""
    original = ServerOptions.process_groups_from_parser
    if getattr(original, "littleboss_check", None) is check:
        return

    def process_groups_from_parser(self: ServerOptions, parser: UnhosedConfigParser) -> list:
        groups = original(self, parser)
        check(self, parser, groups)
        return groups

    process_groups_from_parser.littleboss_check = check
    ServerOptions.process_groups_from_parser = process_groups_from_parser


def read_server_config(path: str) -> tuple[ServerOptions, UnhosedConfigParser, list, list]:
    """``ServerOptions.read_config`` (since 3.0): supervisord's own parse of a configuration
    file (``[include]``, ``%(here)s``, ``%(ENV_X)s``), ``here`` set as ``process_config_file``
    sets it. Returns the options it was read with, the parser (taken through
    ``wrap_groups_from_parser``), the ``[rpcinterface:x]`` factories as (name, factory,
    settings) and the group configs. ValueError if supervisord would refuse the file."""
    options = ServerOptions()
    options.here = os.path.dirname(os.path.abspath(path))
    parsers = []
    wrap_groups_from_parser(options, lambda parser, groups: parsers.append(parser) or groups)
    section = options.read_config(path)
    return options, parsers[0], section.rpcinterface_factories, section.process_group_configs


def reap_now(supervisord) -> None:
    """``Supervisor.reap`` (since 3.0): reap the children that exited, now (the main loop
    does it once per pass, after the groups' ``transition``): a reload sees an exit in this
    pass, not up to 1 s later."""
    supervisord.reap()


def poll_in_every_pass(options: ServerOptions, fd: int, dispatcher: object) -> None:
    """``options.get_socket_map()`` (since 3.0): the dispatchers of supervisord's HTTP servers,
    which its main loop adds to every pass's map (polled, read when readable), the same dict
    through all its runs: ``dispatcher`` (``readable``, ``writable``, ``handle_read_event``,
    ``handle_error``) is polled from now on, taking the place of the one ``fd`` had."""
    options.get_socket_map()[fd] = dispatcher


def stop_polling(options: ServerOptions, fd: int) -> None:
    """What ``poll_in_every_pass`` began, ended (before the next run, which may not load littleboss)."""
    options.get_socket_map().pop(fd, None)


def reparse(options: ServerOptions) -> list:
    """``options.process_config`` (since 3.0): read the configuration file again and return
    the group configs (through a wrapped ``process_groups_from_parser``). A bad configuration
    ends supervisord as its own parser does (``options.usage``: the message, exit 2)."""
    try:
        options.process_config(do_usage=False)
    except ValueError as exc:
        options.logger.critical(str(exc))
        options.usage(str(exc))
    return options.process_group_configs


def replace_groups(supervisord, configs: list, replace: Callable[[object, object], object | None]) -> None:
    """The group swap after parsing (since 3.0): when a ``[rpcinterface:x]`` factory runs,
    supervisord has parsed its configuration and made its groups but spawned nothing. For
    each of ``configs`` (the group configs of that parse, some of them replaced) that
    ``replace(config, current_group)`` returns a group for, put that group in place
    (``supervisord.process_groups``, ``options.process_group_configs``)."""
    options, groups = supervisord.options, supervisord.process_groups
    replaced = []
    for config in configs:
        current = groups.get(config.name)
        group = replace(config, current) if current is not None else None
        if group is not None:
            groups[config.name] = group
            replaced.append(group.config)
        else:
            replaced.append(current.config if current is not None else config)
    options.process_group_configs = replaced


def after_run(options: ServerOptions, then: Callable[[], None]) -> None:
    """``options.close_logger`` (this instance only, since 3.0): ``supervisord.main()`` calls
    it once a run has ended (its programs stopped or kept, its HTTP servers closed, its pidfile
    and unix socket file removed), before the next run (SIGHUP) or the exit; ``then()`` runs
    right after the log is closed."""
    close_logger = options.close_logger

    def close_logger_then() -> None:
        close_logger()
        then()

    options.close_logger = close_logger_then


def stay_in_foreground(options: ServerOptions) -> None:
    """``options.first`` (since 3.0): ``Supervisor.run`` daemonizes (forks) only on the first
    run of the process. A supervisord that re-executed itself starts a first run again, but it
    was daemonized before (or never was): it must not fork, or its pid would change."""
    options.first = False


def process_settings(pconfig) -> dict[str, str]:
    """``ProcessConfig.req_param_names``/``optional_param_names`` (since 3.0): what a process
    was started with, as text, the way ``ProcessConfig.__eq__`` compares it; a setting left
    ``AUTO`` (a log file not created yet) is left out."""
    return {name: repr(getattr(pconfig, name)) for name in (*pconfig.req_param_names, *pconfig.optional_param_names)
            if getattr(pconfig, name, Automatic) is not Automatic}


def same_settings(mine: dict[str, str], theirs: dict[str, str]) -> bool:
    """Whether two ``process_settings`` are the same, over the settings both know (another
    supervisor version may add some)."""
    return all(mine[name] == theirs[name] for name in mine.keys() & theirs.keys())


AUTO_LOGS = ("stdout_logfile", "stderr_logfile")


def auto_logs(pconfig) -> tuple[str, ...]:
    """``stdout_logfile``/``stderr_logfile`` (since 3.0): the log settings of a process config
    left ``AUTO`` (a file ``after_setuid`` makes, with a name of its own, when the group is made)."""
    return tuple(key for key in AUTO_LOGS if getattr(pconfig, key, None) is Automatic)


def with_auto_logs(pconfig, keys: tuple[str, ...]):
    """A copy of ``pconfig`` with its log settings ``keys`` ``AUTO`` again, as supervisord read
    them before ``after_setuid`` made their files (since 3.0)."""
    pconfig = copy.copy(pconfig)
    for key in keys:
        setattr(pconfig, key, Automatic)
    return pconfig


def fill_auto_logs(pconfig, paths: dict[str, str]) -> None:
    """``stdout_logfile``/``stderr_logfile`` (since 3.0): an ``AUTO`` log file gets the name
    ``paths`` gives (the file a process taken up already writes) instead of a new one."""
    for key, path in paths.items():
        if getattr(pconfig, key, None) is Automatic:
            setattr(pconfig, key, path)


def take_up_pipes(process: Subprocess, pipes: dict[str, int | None]) -> None:
    """``ProcessConfig.make_dispatchers`` (since 3.0): a process supervisord did not spawn in
    this run, whose pipes' parent ends ``pipes`` (``stdin``, ``stdout``, ``stderr``) are open
    here, gets its dispatchers (its output logged as a spawned process's is) and ``pipes``,
    made as a spawn makes them, through ``options.make_pipes`` answering with those fds."""
    options = process.config.options
    handed = {"stdin": None, "stdout": None, "stderr": None, **pipes,
              "child_stdin": None, "child_stdout": None, "child_stderr": None}
    options.make_pipes = lambda stderr=True: handed
    try:
        process.dispatchers, process.pipes = process.config.make_dispatchers(process)
    finally:
        del options.make_pipes


# --- supervisor.process.Subprocess --------------------------------------------------------

def transition_due(process: Subprocess, now: float) -> bool:
    """``Subprocess.transition`` (the same from 3.0 to 4.3.0): supervisord's main loop calls it
    for every process in every pass; for a RUNNING process up for longer than its
    ``startsecs`` it does nothing (its one step for RUNNING moves a start that the system
    clock went back behind, within ``startsecs``). False for such a process: skipped, an idle
    program costs each pass less."""
    return process.state != ProcessStates.RUNNING or now < process.laststart + process.config.startsecs


class ChildSetupSubprocess(Subprocess):
    """supervisord's ``Subprocess`` with the two private steps of a spawn it has no option
    for: ``_prepare_child_fds`` (since 3.0; in the child, it closes every fd from 3 up)
    places ``inherited_fds()`` on 3, 4, ... and ``exec_source_fd()`` after them
    (close-on-exec), then calls ``prepare_child()``; ``_spawn_as_child(filename, argv)``
    (since 3.0) then executes that fd (``fexecve``) instead of ``filename``."""

    def inherited_fds(self) -> list[int]:
        """The fds the program inherits, in order, on 3, 4, ..."""
        return []

    def exec_source_fd(self) -> int | None:
        """An open file to execute instead of the command's path (None: the path)."""
        return None

    def prepare_child(self) -> None:
        """In the child, once its fds are in place: e.g. its environment."""

    def _exec_fd(self) -> int | None:
        return None if self.exec_source_fd() is None else LISTEN_FDS_START + len(self.inherited_fds())

    def _prepare_child_fds(self) -> None:
        options = self.config.options
        inherited, exec_source, exec_fd = self.inherited_fds(), self.exec_source_fd(), self._exec_fd()
        first_free = LISTEN_FDS_START + len(inherited) + (exec_fd is not None)
        # move the fds above their targets first: a source fd may itself be 3 or 4
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, first_free) for fd in inherited]
        options.dup2(self.pipes["child_stdin"], 0)
        options.dup2(self.pipes["child_stdout"], 1)
        options.dup2(self.pipes["child_stdout" if self.config.redirect_stderr else "child_stderr"], 2)
        for target, fd in enumerate(moved, LISTEN_FDS_START):
            options.dup2(fd, target)  # dup2'd fds are inheritable
        if exec_fd is not None:
            os.dup2(fcntl.fcntl(exec_source, fcntl.F_DUPFD, first_free), exec_fd, inheritable=False)
        for fd in range(first_free, options.minfds):
            options.close_fd(fd)
        self.prepare_child()

    def _spawn_as_child(self, filename, argv) -> None:
        exec_fd = self._exec_fd()
        super()._spawn_as_child(filename if exec_fd is None else exec_fd, argv)


def silence_events(process: Subprocess, silent: bool) -> None:
    """``Subprocess.event_map`` (since 3.0), per instance: with an empty map its state
    changes send no ``PROCESS_STATE_*`` event (a candidate's or a draining process's are
    not the program's); without the instance attribute, the class's map is back."""
    if silent:
        process.event_map = {}
    else:
        process.__dict__.pop("event_map", None)


# --- supervisor.dispatchers.POutputDispatcher ----------------------------------------------

def output_dispatchers(process: Subprocess) -> dict[str, POutputDispatcher]:
    """The process's output dispatchers by channel (``stdout``, ``stderr``)."""
    return {d.channel: d for d in process.dispatchers.values() if isinstance(d, POutputDispatcher)}


def tap_output(dispatcher: POutputDispatcher, tap: Callable[[bytes], None]) -> None:
    """``POutputDispatcher._log`` (private, since 3.0; per instance): every chunk of output
    also goes to ``tap``. The wrapper holds the dispatcher: ``untap_output`` breaks that
    cycle when the run ends, so its logger is freed then, not by a later GC."""
    log = dispatcher._log

    def tapped(data) -> None:
        if data:
            tap(data if isinstance(data, bytes) else data.encode())
        log(data)

    dispatcher._log = tapped


def untap_output(dispatcher) -> None:
    dispatcher.__dict__.pop("_log", None)


def loggers(dispatcher) -> list:
    """``normallog``/``capturelog`` (since 4.2.2; 4.2.0/4.2.1 have no ``normallog``): the
    loggers an output dispatcher writes through (stdin's and other dispatchers have none)."""
    return [log for log in (getattr(dispatcher, "normallog", None), getattr(dispatcher, "capturelog", None))
            if log is not None]


def logger_fds(dispatcher) -> set[int]:
    """``Handler.stream`` (since 3.0; file handlers only): the fds of the files ``dispatcher``'s
    loggers write (a syslog handler has none here)."""
    fds = set()
    for log in loggers(dispatcher):
        for handler in log.handlers:
            stream = getattr(handler, "stream", None)
            if stream is not None and not stream.closed:
                fds.add(stream.fileno())
    return fds


def share_loggers(process: Subprocess, serving: Subprocess) -> None:
    """``normallog``/``childlog`` (since 4.2.2): make ``process`` write its output through
    ``serving``'s loggers, one logger per file, so a rotation while both run does not split
    or misplace output. Its own logger is closed."""
    theirs = output_dispatchers(serving)
    for channel, mine in output_dispatchers(process).items():
        other = theirs.get(channel)
        if other is None or other.normallog is None or mine.normallog is None:
            continue
        if mine.childlog is mine.normallog:
            mine.childlog = other.normallog
        mine.normallog.close()
        mine.normallog = other.normallog


def close_loggers(dispatchers: Iterable, keep: Iterable[Subprocess]) -> None:
    """Close the loggers of a run's ``dispatchers`` (supervisord lets them go with the
    dispatchers, when a GC finds them) but those the ``keep`` processes still write through."""
    in_use = {id(log) for process in keep for dispatcher in process.dispatchers.values()
              for log in loggers(dispatcher)}
    for dispatcher in dispatchers:
        untap_output(dispatcher)
        for log in loggers(dispatcher):
            if id(log) not in in_use:
                log.close()


def write_program_log(process: Subprocess, data: bytes) -> bool:
    """``childlog`` (since 3.0): write ``data`` to the process's stdout log file, as its own
    output is written; False if it has none open."""
    for dispatcher in output_dispatchers(process).values():
        if dispatcher.channel == "stdout" and dispatcher.childlog is not None:
            dispatcher.childlog.info(data)
            return True
    return False


# --- supervisor.supervisord.Supervisor.reap ----------------------------------------------

def reap_with(options: ServerOptions, pid: int, child: object) -> None:
    """``ServerOptions.pidhistory`` (since 3.0): supervisord's reap() waits for any child and
    hands the exit status of one recorded there to its ``finish(pid, status)`` (else it logs
    "reaped unknown pid" and the status is lost): a child littleboss starts itself is
    recorded so."""
    options.pidhistory[pid] = child


# --- supervisor.socket_manager.SocketManager ----------------------------------------------

class HeldSocketManager(SocketManager):
    """supervisord's ``SocketManager`` (since 3.0), for a socket held as long as a program
    is configured: ``_close`` (private) first calls ``socket_config.unlink()`` where the
    config has one (a unix socket file is removed while it is surely ours); ``adopt``
    makes the first ``get_socket`` hold an existing listening socket instead of binding
    (``socket_config.create_and_bind``, per instance); ``release`` drops the holder's
    reference (``Proxy.on_delete``, ``ref_ctr``), which closes the socket."""

    def _close(self) -> None:
        unlink = getattr(self.socket_config, "unlink", None)
        if unlink is not None:
            unlink()  # first: once closed, its inode number may be reused
        super()._close()

    def adopt(self, sock: socket.socket) -> None:
        self.socket_config.create_and_bind = lambda: sock

    def use_logger(self, logger) -> None:
        """supervisord makes a new logger on SIGHUP; the one this was made with may be closed."""
        self.logger = logger

    def release(self, proxy, logger) -> None:
        self.use_logger(logger)
        proxy.on_delete = None
        self.ref_ctr.decrement()


# --- supervisor.xmlrpc / supervisor.http ---------------------------------------------------

def deferred(poll: Callable[[], object], rpcinterface: object, delay: float = DEFERRED_DELAY) -> Callable[[], object]:
    """A deferred XML-RPC answer (since 3.0, as ``startProcess`` with ``wait``): supervisord
    calls ``poll`` at once, then every ``delay`` seconds (each poll a pass of its main loop)
    until it returns something other than ``NOT_DONE_YET`` (or raises a fault), serving other
    requests meanwhile; ``answer_deferred_now`` has it polled in the next pass. If the client
    goes away, polling stops: never drive work from ``poll``."""
    poll.delay = delay
    poll.rpcinterface = rpcinterface
    return poll


def answer_deferred_now(options: ServerOptions) -> None:
    """``deferring_http_channel.last_writable_check`` (since 3.0, the same to 4.3.0): a channel
    whose deferred answer said ``NOT_DONE_YET`` polls it again once ``DEFERRED_DELAY`` has passed
    since its last poll, asked when a pass begins (``writable``); reset, it polls in the next
    pass. An answer now ready goes out at once, not up to DEFERRED_DELAY later, after a pass
    that only waited for it."""
    for dispatcher in options.get_socket_map().values():
        if isinstance(dispatcher, deferring_http_channel) and dispatcher.delay:
            dispatcher.last_writable_check = 0


# --- supervisor.supervisorctl.Controller ---------------------------------------------------

def wrap_completer(controller, command: str, complete: Callable[[str, str], list[str]]) -> None:
    """``Controller.complete`` (since 3.0; per instance): tab completion of a plugin's
    command (supervisorctl completes only its own). ``complete(text, line)`` returns the
    matches for lines that start with ``command``; other lines complete as before."""
    original = controller.complete

    def complete_with_plugin(text, state, line=None):
        if line is None:
            import readline

            line = readline.get_line_buffer()
        if not line.startswith(command):
            return original(text, state, line)
        matches = complete(text, line)
        return matches[state] if state < len(matches) else None

    controller.complete = complete_with_plugin


def wrap_help(controller, plugin_help: Callable[[str], bool]) -> None:
    """``Controller.do_help`` (since 3.0; per instance): supervisorctl hands ``help TOPIC``
    to every plugin's ``do_help``, and each one without help on the topic prints ``*** No
    help on TOPIC``, the default plugin first, so help on a plugin's command would start
    with that line. ``plugin_help(topic)`` prints the help on the topics it knows and returns
    True; every other topic goes to supervisorctl's own ``do_help``."""
    original = controller.do_help

    def do_help(arg):
        if not plugin_help(arg):
            original(arg)

    controller.do_help = do_help


def wrap_update(controller, before: Callable[[str], None]) -> None:
    """``DefaultControllerPlugin.do_update`` (since 3.0; per instance): supervisorctl's
    ``update`` stops, removes and adds every changed group itself, and a plugin cannot take the
    command over (the default plugin answers first). Its instance is already in
    ``controller.options.plugins`` when a later plugin's factory runs: ``before(arg)`` runs
    first (and may apply some changes, so that ``update`` finds nothing left to do for them)."""
    for plugin in controller.options.plugins:
        original = getattr(plugin, "do_update", None)
        if original is not None:
            def do_update(arg: str, original=original) -> None:
                before(arg)
                original(arg)

            plugin.do_update = do_update
            return


def one_shot_words(controller) -> list[str]:
    """``Controller.options.args`` (since 3.0): in one-shot mode, the words of the command
    as the shell split them (supervisorctl joins them with spaces before ``onecmd``)."""
    return list(getattr(controller.options, "args", None) or [])


# --- supervisor.web --------------------------------------------------------------------

def add_web_view(name: str, view: dict) -> None:
    """``supervisor.web.VIEWS`` (a module-level dict since 3.0): supervisord's web server
    serves a path named there (``supervisor_ui_handler.match`` looks it up on each request),
    behind the same authentication as its own pages. ``view`` is ``{"template": absolute
    path, "view": a MeldView taking the context}``."""
    from supervisor import web

    web.VIEWS[name] = view


def link_status_page(href: str, label: str) -> None:
    """``VIEWS["index.html"]`` (supervisord's status page, ``StatusView``) and its
    ``MeldView.clone`` (checked in 4.2.2 and 4.3.0): supervisord's page has no link to a
    plugin's page. The view registered there is replaced by a subclass whose ``clone`` (the
    template's tree, which ``render`` fills in) repeats the first item of its ``<ul
    id="buttons">`` (Refresh, Restart All, Stop All) as a link to ``href``. Idempotent: the
    factory runs once per HTTP server and again on SIGHUP, the module keeps its views."""
    from supervisor import web

    entry = web.VIEWS["index.html"]
    if any(vars(cls).get("linked_page") == href for cls in entry["view"].__mro__):
        return

    class LinkedStatusView(entry["view"]):
        linked_page = href

        def clone(self):
            root = super().clone()
            buttons = root.findwithattrib("id", "buttons")
            if buttons and len(buttons[0]):
                item = buttons[0][0].clone(buttons[0])
                for anchor in item.findwithattrib("href"):
                    anchor.attributes(href=href)
                    anchor.content(label)
            return root

    web.VIEWS["index.html"] = {**entry, "view": LinkedStatusView}


def request_header(request, name: str) -> str:
    """A header of the request a view answers (``context.request``, medusa's ``http_request``:
    ``get_header``, the same in 4.2.2 and 4.3.0, gives None for one it lacks); '' if absent."""
    return request.get_header(name) or ""


def send_at_once(request, size: int) -> None:
    """Let the channel answering ``request`` send ``size`` bytes in one go. supervisord's
    HTTP channel (``http.deferring_http_channel``, an ``asynchat_25.async_chat``) sends at
    most ``ac_out_buffer_size`` bytes (4096, its class attribute) per ``initiate_send``, one
    per pass of supervisord's main loop when the socket is writable, and every pass walks
    every process: a 2 MB response (the metrics of 500 programs) took 500 passes and 1.7 s
    of supervisord's CPU. Set on the channel (this connection) only, never lowered; the
    socket still takes what it can per send (4.2.2 and 4.3.0 alike)."""
    channel = request.channel
    if channel.ac_out_buffer_size < size:
        channel.ac_out_buffer_size = size

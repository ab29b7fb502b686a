"""Every supervisord internal littleboss relies on still exists, with the shape it expects.

supervisord has no plugin API for what littleboss does, so the plugin subclasses, wraps
and calls its internals. A supervisor release that moves one fails here, in a test
named after the module and the internal, instead of deep inside a reload. Each test
covers one area; "uses" checks that supervisord itself still calls what littleboss
overrides or wraps (the names its code refers to). Upgrading supervisor: run this file
first, then audit each failure against littleboss's code.
"""
from __future__ import annotations

import inspect
import re
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from supervisor import (
    datatypes,
    dispatchers,
    events,
    http,
    loggers,
    options,
    process,
    socket_manager,
    states,
    supervisorctl,
    xmlrpc,
)
from supervisor import supervisord as supervisord_module

from supervisor_littleboss.glue import answer_deferred_now, transition_due


def dotted(owner: object) -> str:
    """``owner``'s dotted name (its class's, for an instance), for failure messages."""
    if inspect.ismodule(owner):
        return owner.__name__
    cls = owner if isinstance(owner, type) else type(owner)
    return f"{cls.__module__}.{cls.__qualname__}"


def assert_params(owner: object, name: str, expected: str) -> None:
    """``owner.name`` exists and takes exactly the parameters ``expected`` (comma separated)."""
    where = f"{dotted(owner)}.{name}"
    func = getattr(owner, name, None)
    assert callable(func), f"{where} is gone"
    want = [p.strip() for p in expected.split(",") if p.strip()]
    got = list(inspect.signature(func).parameters)
    assert got == want, f"{where}{inspect.signature(func)} changed: littleboss expects ({', '.join(want)})"


def assert_uses(func, *names: str) -> None:
    """supervisord's ``func`` still refers to ``names`` (calls them, or reads them)."""
    missing = [name for name in names if name not in func.__code__.co_names]
    assert not missing, f"{func.__module__}.{func.__qualname__} no longer uses {missing}: littleboss relies on it"


def assert_attributes(owner: object, *names: str) -> None:
    """``owner`` (a class, a module or an instance) has every attribute in ``names``."""
    missing = [name for name in names if not hasattr(owner, name)]
    assert not missing, f"{dotted(owner)} has no {missing}"


@pytest.fixture
def server_options(tmp_path: Path) -> options.ServerOptions:
    """supervisord's options, realized from a minimal configuration, as supervisord does."""
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"[unix_http_server]\nfile = {tmp_path / 'sock'}\n\n[supervisord]\n"
                    f"logfile = {tmp_path / 'log'}\npidfile = {tmp_path / 'pid'}\n\n"
                    "[program:web]\ncommand = /bin/cat\n")
    opts = options.ServerOptions()
    opts.realize(["-c", str(conf)])
    return opts


def test_options_ServerOptions_hooks_and_attributes(server_options):
    """plugin.py spares held sockets in cleanup_fds (a class patch), re-reads the config with
    process_config and wraps process_groups_from_parser on the instance; group.py's child
    side uses dup2/close_fd/write and execve (which must accept an fd: fexecve)."""
    cls = options.ServerOptions
    assert_params(cls, "cleanup_fds", "self")
    assert_uses(supervisord_module.Supervisor.main, "cleanup_fds")
    assert_params(cls, "process_config", "self, do_usage")
    assert_params(cls, "process_groups_from_parser", "self, parser")
    assert_uses(cls.read_config, "process_groups_from_parser")
    assert_params(cls, "usage", "self, msg")
    assert_params(cls, "dup2", "self, frm, to")
    assert_params(cls, "close_fd", "self, fd")
    assert_params(cls, "write", "self, fd, data")
    assert_params(cls, "execve", "self, filename, argv, env")
    assert_params(cls, "make_logger", "self")
    assert_attributes(loggers.Logger, "info", "warn", "error", "critical")  # littleboss logs through options.logger
    assert_attributes(server_options, "minfds", "pidfile", "here", "mood", "process_group_configs")
    assert server_options.mood == states.SupervisorStates.RUNNING
    assert [config.name for config in server_options.process_group_configs] == ["web"]


def test_options_read_config_imports_factories_before_it_parses_programs(tmp_path):
    """glue.check_groups_when_parsed: read_config imports the [rpcinterface:x] factories
    (get_plugins) before it parses the programs (process_groups_from_parser), and
    process_config_file turns a ValueError into usage() (one "Error:" line, exit 2);
    glue.read_server_config reads the factories from the section read_config returns."""
    cls = options.ServerOptions
    assert_params(cls, "read_config", "self, fp")
    names = cls.read_config.__code__.co_names
    assert names.index("get_plugins") < names.index("process_groups_from_parser"), "read_config's order changed"
    assert_uses(options.Options.process_config_file, "read_config", "usage")
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[supervisord]\n\n[rpcinterface:supervisor]\n"
                    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n")
    opts = cls()
    opts.here = str(tmp_path)
    [(name, factory, config)] = opts.read_config(str(conf)).rpcinterface_factories
    assert (name, factory.__name__, config) == ("supervisor", "make_main_rpcinterface", {})


def test_options_restart_keeps_what_the_kept_processes_use():
    """restart.py and glue.keep_logs_on_sighup: on SIGHUP supervisord's main() calls
    cleanup_fds (fds spared) and clear_autochildlogdir, which deletes through self.remove (kept
    log files spared); glue.logger_fds reads a file handler's stream."""
    assert_uses(supervisord_module.Supervisor.main, "cleanup_fds", "clear_autochildlogdir")
    assert_uses(options.ServerOptions.clear_autochildlogdir, "remove", "childlogdir")
    assert_params(options.ServerOptions, "remove", "self, path")
    assert_uses(loggers.FileHandler.__init__, "stream")
    assert_params(options.ProcessConfig, "create_autochildlogs", "self")
    # glue.auto_logs/with_auto_logs: the only settings it resolves, on the group's after_setuid
    assert_uses(options.ProcessConfig.create_autochildlogs, "stdout_logfile", "stderr_logfile", "Automatic")
    assert_uses(options.ProcessGroupConfig.after_setuid, "create_autochildlogs")
    assert_uses(supervisord_module.Supervisor.add_process_group, "after_setuid", "make_group")
    # a kept group is asked to stop (stop_all) and then whether it has stopped (get_unstopped_processes)
    assert_uses(supervisord_module.Supervisor.ordered_stop_groups_phase_1, "stop_all")
    assert_uses(supervisord_module.Supervisor.shutdown_report, "get_unstopped_processes")


def test_options_UnhosedConfigParser_saneget(tmp_path):
    """config.py reads littleboss_* keys with saneget(section, key, default, expansions=...)."""
    assert_params(options.UnhosedConfigParser, "saneget", "self, section, option, default, do_expand, expansions")
    parser = options.UnhosedConfigParser()
    parser.read_string("[program:web]\nlittleboss_sockets = http=unix://%(here)s/web.sock\n")
    assert parser.sections() == ["program:web"]
    assert parser.options("program:web") == ["littleboss_sockets"]
    value = parser.saneget("program:web", "littleboss_sockets", None, expansions={"here": str(tmp_path)})
    assert value == f"http=unix://{tmp_path}/web.sock"
    assert parser.saneget("program:web", "littleboss_absent", None, expansions={}) is None


def test_options_ProcessGroupConfig_subclassed(server_options):
    """config.py subclasses ProcessGroupConfig (constructor, __eq__, make_group); plugin.py
    calls after_setuid on a config it re-read."""
    cls = options.ProcessGroupConfig
    assert_params(cls, "__init__", "self, options, name, priority, process_configs")
    assert_params(cls, "__eq__", "self, other")
    assert_params(cls, "make_group", "self")
    assert_params(cls, "after_setuid", "self")
    group = server_options.process_group_configs[0]
    assert type(group) is cls
    assert_attributes(group, "name", "priority", "process_configs", "options")
    pconfig = group.process_configs[0]
    assert_attributes(pconfig, "name", "command", "options", "redirect_stderr", "stopsignal", "stopasgroup",
                      "killasgroup", "stopwaitsecs", "startsecs", "uid")
    assert_params(options.ProcessConfig, "make_process", "self, group")


def test_options_helper_functions():
    """split_namespec (rpcinterface.py), ProcessException, decode_wait_status, signame (group.py)."""
    assert options.split_namespec("web:web_00") == ("web", "web_00")
    assert options.split_namespec("web") == ("web", "web")
    assert issubclass(options.ProcessException, Exception)
    assert options.decode_wait_status(3 << 8) == (3, "exit status 3")
    assert options.signame(15) == "SIGTERM"
    assert_params(options.ClientOptions, "realize", "self, arg, kw")  # program.py's --littleboss=... modes
    assert_params(options.ClientOptions, "getServerProxy", "self")


def test_process_Subprocess_overrides_and_calls():
    """group.py's LittlebossSubprocess overrides spawn, _prepare_child_fds,
    _spawn_as_child (passing an fd as the filename), finish, stop, get_state; calls
    kill, transition, change_state, record_spawnerr, give_up, get_execv_args; sets
    event_map on the instance to silence events; reads and writes pid, pipes,
    dispatchers, laststart, delay, backoff, spawnerr, state."""
    cls = process.Subprocess
    assert_params(cls, "__init__", "self, config")
    for name in ("spawn", "_prepare_child_fds", "stop", "transition", "get_state", "give_up", "get_execv_args"):
        assert_params(cls, name, "self")
    assert_params(cls, "_spawn_as_child", "self, filename, argv")
    assert_params(cls, "finish", "self, pid, sts")
    assert_params(cls, "kill", "self, sig")
    assert_params(cls, "change_state", "self, new_state, expected")
    assert_params(cls, "record_spawnerr", "self, msg")
    assert_uses(cls.spawn, "_spawn_as_child", "get_execv_args", "dispatchers", "pipes", "laststart")
    assert_uses(cls._spawn_as_child, "_prepare_child_fds", "execve")
    assert_uses(cls.change_state, "event_map")
    assert_attributes(cls, "pid", "laststart", "delay", "backoff", "spawnerr", "state", "dispatchers", "pipes",
                      "config", "group")
    assert isinstance(cls.event_map, dict) and cls.event_map
    assert all(issubclass(event, events.Event) for event in cls.event_map.values())


def test_process_Subprocess_transition_leaves_a_running_process_past_startsecs_alone(mocker):
    """glue.transition_due: ``transition()`` changes nothing and logs nothing for a RUNNING
    process up for longer than its startsecs, whatever supervisord's mood, so littleboss skips
    it; within startsecs, or in any other state, it is called."""
    now = time.time()
    for mood in (states.SupervisorStates.RUNNING, states.SupervisorStates.RESTARTING,
                 states.SupervisorStates.SHUTDOWN):
        options = SimpleNamespace(logger=mocker.Mock(), mood=mood)
        config = SimpleNamespace(name="web", startsecs=1, stopwaitsecs=10, startretries=3, autostart=True,
                                 autorestart=datatypes.RestartUnconditionally, exitcodes=[0], options=options)
        proc = process.Subprocess(config)
        proc.state, proc.laststart, proc.pid = states.ProcessStates.RUNNING, now - 100, 4242
        before = dict(vars(proc))
        assert not transition_due(proc, now)
        proc.transition()
        assert vars(proc) == before and not options.logger.mock_calls
        assert transition_due(proc, proc.laststart + 0.5)
        proc.state = states.ProcessStates.EXITED
        assert transition_due(proc, now)


def test_process_Subprocess_changes_state_only_through_change_state():
    """LittlebossSubprocess.change_state wakes its group (``group.quiet``): supervisord's
    ``Subprocess`` sets ``state`` only there (and to STOPPED when it is made), with the
    signature littleboss overrides."""
    source = inspect.getsource(process.Subprocess)
    assignments = re.findall(r"self\.state = (.*)", source)
    assert assignments == ["ProcessStates.STOPPED", "new_state"], assignments
    assert "self.state = new_state" in inspect.getsource(process.Subprocess.change_state)
    assert list(inspect.signature(process.Subprocess.change_state).parameters) == ["self", "new_state", "expected"]


def test_process_Subprocess_event_map_on_the_instance_silences_events():
    """A candidate or draining process gets ``event_map = {}``: no PROCESS_STATE event."""
    config = SimpleNamespace(name="web", options=SimpleNamespace(logger=None))
    proc = process.Subprocess(config)
    assert (proc.dispatchers, proc.pipes, proc.state) == ({}, {}, states.ProcessStates.STOPPED)
    heard = []
    events.subscribe(events.ProcessStateEvent, heard.append)
    try:
        proc.event_map = {}
        proc.change_state(states.ProcessStates.STARTING)
        assert heard == []
        del proc.event_map
        proc.change_state(states.ProcessStates.RUNNING)
        assert [type(event) for event in heard] == [events.ProcessStateRunningEvent]
    finally:
        events.unsubscribe(events.ProcessStateEvent, heard.append)


def test_process_ProcessGroup_overrides():
    """group.py's group overrides transition, get_dispatchers, get_unstopped_processes,
    stop_all and before_remove, and does not call ProcessGroupBase.__init__: that must
    still set only ``config`` and ``processes``."""
    cls = process.ProcessGroup
    for name in ("transition", "get_dispatchers", "get_unstopped_processes", "stop_all", "before_remove"):
        assert_params(cls, name, "self")
    group = cls(SimpleNamespace(process_configs=[]))
    assert sorted(vars(group)) == ["config", "processes"]
    assert_uses(supervisord_module.Supervisor.get_process_map, "get_dispatchers")
    assert_uses(supervisord_module.Supervisor.runforever, "transition")


def test_dispatchers_POutputDispatcher_loggers():
    """group.py shares the serving process's normallog with a candidate (4.2.2+: 4.2.0 and
    4.2.1 call it mainlog), closes childlog/capturelog when a run ends, and wraps _log to keep
    the tail of the output."""
    cls = dispatchers.POutputDispatcher
    assert_attributes(cls, "normallog", "childlog", "capturelog")
    assert_uses(cls.__init__, "normallog", "childlog", "channel")
    assert_params(cls, "_log", "self, data")
    assert_uses(cls.record_output, "_log")


def test_socket_manager_SocketManager_internals(tmp_path):
    """sockets.py holds one SocketManager per address: overrides _close, reads socket_config,
    replaces logger, takes get_socket()'s Proxy, clears its on_delete and drops its own
    reference with ref_ctr.decrement(); _prepare_socket binds through the config's
    create_and_bind and listens with get_backlog()."""
    cls = socket_manager.SocketManager
    assert_params(cls, "__init__", "self, socket_config, kwargs")
    for name in ("get_socket", "_close", "_prepare_socket"):
        assert_params(cls, name, "self")
    assert_uses(cls._prepare_socket, "create_and_bind", "get_backlog")
    assert_params(socket_manager.Proxy, "__init__", "self, object, kwargs")
    bound = []

    def create_and_bind() -> socket.socket:
        bound.append(socket.create_server(("127.0.0.1", 0)))
        return bound[-1]

    config = SimpleNamespace(url="tcp://127.0.0.1:0", create_and_bind=create_and_bind, get_backlog=lambda: 5)
    manager = cls(config, logger=None)
    assert_attributes(manager, "ref_ctr", "socket", "prepared", "socket_config", "logger")
    proxy = manager.get_socket()
    assert manager.prepared and manager.socket is bound[0]
    assert proxy.fileno() == bound[0].fileno()  # the Proxy forwards to the socket
    assert_attributes(proxy, "on_delete")
    proxy.on_delete = None
    manager.ref_ctr.decrement()  # the last reference: _close closes the socket
    assert not manager.prepared and bound[0].fileno() == -1


def test_datatypes_socket_configs(tmp_path):
    """sockets.py subclasses InetStreamSocketConfig (IPv6) and UnixStreamSocketConfig (safe
    unlinking), and reads and sets host, port, url, path, mode, owner and backlog."""
    inet = datatypes.InetStreamSocketConfig("127.0.0.1", "8080", backlog=7)
    assert (inet.host, inet.port, inet.url, inet.backlog, inet.addr()) == (
        "127.0.0.1", 8080, "tcp://127.0.0.1:8080", 7, ("127.0.0.1", 8080))
    assert inet.get_backlog() == 7
    path = str(tmp_path / "web.sock")
    unix = datatypes.UnixStreamSocketConfig(path, mode=0o660, owner=(0, 0), backlog=3)
    assert (unix.path, unix.url, unix.mode, unix.owner, unix.backlog, unix.addr()) == (
        path, f"unix://{path}", 0o660, (0, 0), 3, path)
    for cls in (datatypes.InetStreamSocketConfig, datatypes.UnixStreamSocketConfig):
        assert_params(cls, "create_and_bind", "self")
    # config.py's converters for littleboss_socket_owner/_mode and [group:x] programs=
    assert datatypes.octal_type("0660") == 0o660
    assert datatypes.list_of_strings("a, b") == ["a", "b"]
    assert datatypes.colon_separated_user_group("0:0") == (0, 0)


def test_supervisorctl_plugin_base_and_controller():
    """controller.py: a ControllerPluginBase that wraps Controller.complete and uses output,
    stdout, get_server_proxy, get_supervisor, exitstatus and LSBInitExitStatuses."""
    assert_params(supervisorctl.ControllerPluginBase, "__init__", "self, controller")
    assert_uses(supervisorctl.ControllerPluginBase.__init__, "ctl")
    cls = supervisorctl.Controller
    assert_params(cls, "complete", "self, text, state, line")
    assert_params(cls, "do_help", "self, arg")  # glue.wrap_help
    # glue.wrap_update: the default plugin's do_update, made (and listed) before a later plugin's factory runs
    assert_params(supervisorctl.DefaultControllerPlugin, "do_update", "self, arg")
    assert_uses(supervisorctl.DefaultControllerPlugin.do_update, "reloadConfig", "stopProcessGroup",
                "removeProcessGroup", "addProcessGroup")
    assert_params(cls, "output", "self, message")
    assert_params(cls, "get_server_proxy", "self, namespace")
    assert_params(cls, "get_supervisor", "self")
    assert_uses(cls.__init__, "exitstatus", "plugin_factories")
    assert_uses(cls._get_do_func, "plugins")  # `littleboss:...` reaches the plugin's do_littleboss
    codes = supervisorctl.LSBInitExitStatuses
    assert (codes.GENERIC, codes.INVALID_ARGS, codes.NOT_RUNNING) == (1, 2, 7)


def test_xmlrpc_and_http_faults_and_deferred_results():
    """faults.py subclasses RPCError (code, text); rpcinterface.py raises SHUTDOWN_STATE and
    returns deferred callbacks (a function with ``delay``) that answer NOT_DONE_YET; the
    tests talk to supervisord with SupervisorTransport."""
    error = xmlrpc.RPCError(xmlrpc.Faults.SHUTDOWN_STATE)
    assert (error.code, error.text) == (6, "SHUTDOWN_STATE")
    assert max(vars(xmlrpc.Faults)[name] for name in vars(xmlrpc.Faults) if name.isupper()) < 1400
    assert xmlrpc.NOT_DONE_YET is http.NOT_DONE_YET
    assert_uses(xmlrpc.DeferredXMLRPCResponse.__init__, "delay")
    assert_params(xmlrpc.SupervisorTransport, "__init__", "self, username, password, serverurl")


def test_http_deferring_channel_polls_its_answer_in_the_pass_after_its_check_is_reset():
    """glue.answer_deferred_now: a channel waiting on a deferred answer (``delay``) is writable
    once ``delay`` has passed since ``last_writable_check``, and at once after it is reset to 0;
    the channels are in the socket map supervisord polls."""
    channel, idle = (object.__new__(http.deferring_http_channel) for _ in range(2))  # (their state only)
    channel.delay, now = 0.25, time.time()
    channel.last_writable_check = idle.last_writable_check = now
    assert not channel.writable(now + 0.01)
    answer_deferred_now(SimpleNamespace(get_socket_map=lambda: {7: channel, 8: idle, 9: object()}))
    assert idle.last_writable_check == now  # no deferred answer: left alone
    assert channel.writable(now + 0.01) and channel.last_writable_check == now + 0.01
    assert issubclass(http.deferring_http_channel, http.asyncore.dispatcher)  # in asyncore's socket map
    assert_uses(options.ServerOptions.get_socket_map, "socket_map")


def test_supervisord_runforever_asks_readable_before_each_poll():
    """ticker.py arms its timer in ``readable()``: the main loop asks every dispatcher before
    its poll (and again after a read, then unregisters one no longer readable)."""
    assert_uses(supervisord_module.Supervisor.runforever, "readable", "register_readable", "poll",
                "handle_read_event", "unregister_readable")


def test_states_names():
    """The process and supervisord states littleboss reads and sets."""
    assert_attributes(states.ProcessStates, "STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED",
                      "FATAL", "UNKNOWN")
    assert states.SupervisorStates.RUNNING > states.SupervisorStates.SHUTDOWN
    assert states.ProcessStates.STOPPED in states.STOPPED_STATES
    assert states.getProcessStateDescription(states.ProcessStates.RUNNING) == "RUNNING"


def test_events_register_and_notify():
    """events.py registers LITTLEBOSS_RELOAD_* event types; listeners are sent payload()."""
    assert_params(events, "register", "name, event")
    assert_params(events, "notify", "event")
    assert events.getEventNameByType(events.ProcessStateRunningEvent) == "PROCESS_STATE_RUNNING"
    assert_uses(process.EventListenerPool._dispatchEvent, "payload")

    class Probe(events.Event):
        def payload(self) -> str:
            return "probe:1"

    events.register("LITTLEBOSS_INTERNALS_PROBE", Probe)
    try:
        assert events.EventTypes.LITTLEBOSS_INTERNALS_PROBE is Probe
        assert events.getEventNameByType(Probe) == "LITTLEBOSS_INTERNALS_PROBE"
    finally:
        delattr(events.EventTypes, "LITTLEBOSS_INTERNALS_PROBE")


def test_supervisord_Supervisor(server_options):
    """glue.reap_now calls supervisord.reap() to see exits in the same pass; the RPC factory
    (plugin.py) replaces groups in process_groups, which exist by then: run() adds the
    groups, then opens the HTTP servers, which call the factories."""
    assert_params(supervisord_module.Supervisor, "reap", "self, once, recursionguard")
    sup = supervisord_module.Supervisor(server_options)
    assert sup.options is server_options
    assert sup.process_groups == {}
    run = supervisord_module.Supervisor.run
    assert_uses(run, "add_process_group", "openhttpservers")
    names = run.__code__.co_names
    assert names.index("add_process_group") < names.index("openhttpservers"), "groups are added after the factories"
    assert_uses(options.ServerOptions.openhttpservers, "make_http_servers")
    assert_uses(http.make_http_servers, "rpcinterface_factories")


def test_web_views_and_meld_views():
    """glue.add_web_view adds to supervisor.web.VIEWS, which the UI handler looks up per
    request (match and continue_request), with the form, method and SERVER_URL in the view's
    context; web.py's view is a MeldView (template from an absolute path, render() returning
    a string or NOT_DONE_YET, a Location header for a redirect) that sets the request's
    reply_code for a refusal; the forms are read from a POST's body."""
    from supervisor import web
    from supervisor.medusa import http_server

    assert {"index.html", "tail.html"} <= web.VIEWS.keys()
    assert_uses(web.supervisor_ui_handler.match, "VIEWS")
    assert_uses(web.supervisor_ui_handler.continue_request, "VIEWS", "ViewContext", "get_server_url",
                "cgi_environment", "parse_qsl")
    assert_uses(web.supervisor_ui_handler.handle_request, "collector")
    assert_params(web.MeldView, "__init__", "self, context")
    assert_uses(web.MeldView.__init__, "isabs", "parse_xml")
    assert_uses(web.MeldView.__call__, "render", "NOT_DONE_YET")
    assert "Location" in web.DeferredWebProducer.sendresponse.__code__.co_consts  # a redirect
    assert http_server.http_request.reply_code == 200
    assert_uses(http_server.http_request.build_reply_header, "reply_code")


def test_http_request_header_and_channel_output_buffer():
    """glue.request_header reads a request's header with http_request.get_header (None for
    one it lacks); glue.send_at_once raises the ac_out_buffer_size of the request's channel,
    which initiate_send slices each send to (4096 on supervisord's channel class)."""
    from supervisor import http
    from supervisor.medusa import asynchat_25, http_server

    assert_params(http_server.http_request, "get_header", "self, header")
    request = http_server.http_request(None, "GET / HTTP/1.1", "GET", "/", "1.1",
                                       ["Host: x", "Accept-Encoding: gzip"])
    assert (request.get_header("accept-encoding"), request.get_header("Cookie")) == ("gzip", None)
    assert "channel" in http_server.http_request.__init__.__code__.co_names
    assert http.deferring_http_channel.ac_out_buffer_size == 4096
    assert issubclass(http.deferring_http_channel, asynchat_25.async_chat)
    assert_uses(asynchat_25.async_chat.initiate_send, "ac_out_buffer_size", "refill_buffer", "send")
    assert_uses(http.deferring_http_channel.refill_buffer, "ac_out_buffer")


def test_pidhistory_and_childlog_for_the_checks_littleboss_runs():
    """glue.reap_with records a check's pid in ServerOptions.pidhistory, which reap() looks up
    to hand the exit status to finish(pid, sts) and then forgets; glue.write_program_log
    writes through an output dispatcher's childlog."""
    assert_uses(supervisord_module.Supervisor.reap, "pidhistory", "finish", "waitpid")
    assert_attributes(dispatchers.POutputDispatcher, "childlog")


def test_web_status_view_for_the_link_to_the_littleboss_page():
    """glue.link_status_page subclasses the view of VIEWS["index.html"] (StatusView), whose
    render fills the tree its clone() returns, and repeats the first item of that template's
    <ul id="buttons"> (an anchor in it) with templating's findwithattrib, clone, attributes
    and content."""
    from supervisor import templating, web

    entry = web.VIEWS["index.html"]
    assert issubclass(entry["view"], web.StatusView) and entry["template"] == "ui/status.html"
    assert_params(web.MeldView, "clone", "self")
    assert_uses(web.StatusView.render, "clone", "write_xhtmlstring")
    element = templating._MeldElementInterface
    assert_params(element, "findwithattrib", "self, attrib, value")
    assert_params(element, "clone", "self, parent")
    assert_attributes(element, "attributes", "content", "__getitem__", "__len__")
    root = templating.parse_xml(str(Path(web.__file__).parent / entry["template"]))
    buttons = root.findwithattrib("id", "buttons")
    assert len(buttons) == 1 and len(buttons[0]) == 3, "the status page's Refresh, Restart All, Stop All"
    assert [anchor.text for anchor in buttons[0][0].findwithattrib("href")] == ["Refresh"]


def test_supervisord_upgrade_in_place_hooks(server_options):
    """upgrade.py and glue: supervisord's main() closes the logger after each run (after_run
    wraps it on the instance) and runs the next one; run() daemonizes only on the first run
    (stay_in_foreground); a process taken up gets its dispatchers from make_dispatchers, with
    make_pipes answering the fds kept open (take_up_pipes); process_settings reads what
    ProcessConfig.__eq__ compares, leaving AUTO (Automatic) log files out."""
    assert_uses(supervisord_module.main, "close_logger", "first")
    assert_uses(supervisord_module.Supervisor.run, "first", "nodaemon", "daemonize", "openhttpservers")
    assert_params(options.ServerOptions, "close_logger", "self")
    assert_params(options.ServerOptions, "make_pipes", "self, stderr")
    assert_params(options.ProcessConfig, "make_dispatchers", "self, proc")
    assert_uses(options.ProcessConfig.make_dispatchers, "make_pipes")
    assert_uses(options.ProcessConfig.__eq__, "req_param_names", "optional_param_names", "Automatic")
    pconfig = server_options.process_group_configs[0].process_configs[0]
    assert_attributes(pconfig, "req_param_names", "optional_param_names", "stdout_logfile", "stderr_logfile")
    assert datatypes.Automatic is options.Automatic

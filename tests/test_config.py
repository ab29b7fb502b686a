"""The littleboss_* keys of [program:x]: every configuration error and its message,
through supervisord's own parser, then at a real supervisord's startup and `reread`."""
from __future__ import annotations

import io
import textwrap

import pytest
from harness import Supervisord, free_port, http_get
from supervisor.datatypes import Automatic
from supervisor.options import ServerOptions

from supervisor_littleboss.config import LittlebossGroupConfig, parsed_configs, wrap_groups_from_parser
from supervisor_littleboss.sockets import SocketOptions, SocketSpec

FORMS = "tcp://HOST:PORT, tcp://[IPV6]:PORT, udp://HOST:PORT, udp://[IPV6]:PORT or unix:///absolute/path"


def group_configs(tmp_path, sections: str) -> dict:
    """Parse ``sections`` the way a running supervisord does on `reread`."""
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[supervisord]\n" + textwrap.dedent(sections))
    options = ServerOptions()
    options.realize(["-c", str(conf)])
    wrap_groups_from_parser(options)
    options.process_config(do_usage=False)
    return {config.name: config for config in options.process_group_configs}


def web(**keys: str) -> str:
    return "[program:web]\ncommand = /bin/true\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


def test_littleboss_program_settings_are_parsed(tmp_path, monkeypatch):
    monkeypatch.setenv("WEB_PORT", "8080")
    configs = group_configs(tmp_path, web(
        littleboss_sockets="https = tcp://LocalHost:%(ENV_WEB_PORT)s, v6=tcp://[0:0::1]:8443, "
                           "admin=unix://%(here)s/run/../%(program_name)s.sock",
        littleboss_socket_mode="0660", littleboss_socket_owner="root:root", littleboss_socket_backlog="64",
    ) + "[program:plain]\ncommand = /bin/true\n")
    config = configs["web"]
    assert isinstance(config, LittlebossGroupConfig)
    assert config.littleboss.sockets == (
        SocketSpec("https", "tcp://localhost:8080"),
        SocketSpec("v6", "tcp://[::1]:8443"),
        SocketSpec("admin", f"unix://{tmp_path}/web.sock"),
    )
    assert config.littleboss.socket_options == SocketOptions(backlog=64, mode=0o660, owner=(0, 0))
    assert type(configs["plain"]) is not LittlebossGroupConfig  # every other program is supervisord's own


def test_a_change_of_littleboss_settings_alone_makes_the_config_differ(tmp_path):
    first = group_configs(tmp_path, web(littleboss_sockets="http=tcp://127.0.0.1:8000"))["web"]
    same = group_configs(tmp_path, web(littleboss_sockets="http=tcp://127.0.0.1:8000"))["web"]
    other = group_configs(tmp_path, web(littleboss_sockets="http=tcp://127.0.0.1:8000",
                                        littleboss_socket_backlog="10"))["web"]
    assert first == same
    assert first != other


@pytest.mark.parametrize("sections, message", [
    (web(littleboss_sockets="http=tcp://127.0.0.1:80", littleboss_socket="x"),
     "[program:web] has unknown setting 'littleboss_socket' (did you mean littleboss_sockets?); littleboss "
     "settings are: littleboss_sockets, "),
    (web(littleboss_socket_backlog="5"),
     "[program:web] sets littleboss_socket_backlog but not littleboss_sockets, which littleboss programs need"),
    (web(littleboss_sockets="http=tcp://127.0.0.1"),
     f"[program:web] littleboss_sockets = 'http=tcp://127.0.0.1' is invalid: 'tcp://127.0.0.1' for 'http': "
     f"not a socket URL. Expected name=URL, name=URL, ... with URL {FORMS}"),
    (web(littleboss_sockets="dns=udp://127.0.0.1"), "'udp://127.0.0.1' for 'dns': not a socket URL"),
    (web(littleboss_sockets="dns=udp://[::g]:53"), "'::g' is not an IPv6 address"),
    (web(littleboss_sockets="dns=sctp://127.0.0.1:53"), "'sctp://127.0.0.1:53' for 'dns': not a socket URL"),
    (web(littleboss_sockets="http=tcp://127.0.0.1:70000"), "the port must be between 1 and 65535"),
    (web(littleboss_sockets="http=tcp://127.0.0.1:0"), "the port must be between 1 and 65535"),
    (web(littleboss_sockets="http=tcp://[::g]:80"), "'::g' is not an IPv6 address"),
    (web(littleboss_sockets="http=unix://run/web.sock"), "a unix socket path must be absolute"),
    (web(littleboss_sockets="http=unix:///" + "x" * 120), "a unix socket path is limited to 107 bytes"),
    (web(littleboss_sockets="tcp://127.0.0.1:80"), "'tcp://127.0.0.1:80' is not name=URL"),
    (web(littleboss_sockets="ht tp=tcp://127.0.0.1:80"), "socket name 'ht tp' is not valid; a name uses letters"),
    (web(littleboss_sockets="a:b=tcp://127.0.0.1:80"), "socket name 'a:b' is not valid"),
    (web(littleboss_sockets="http=tcp://127.0.0.1:80,"), "an entry is empty"),
    (web(littleboss_sockets="http=tcp://127.0.0.1:80, http=tcp://127.0.0.1:81"), "socket name 'http' is used twice"),
    (web(littleboss_sockets="a=tcp://127.0.0.1:80, b=tcp://127.0.0.1:80"),
     "address tcp://127.0.0.1:80 is listed twice"),
    (web(littleboss_sockets="http=tcp://127.0.0.1:80", littleboss_socket_backlog="many"),
     "[program:web] littleboss_socket_backlog = 'many' is invalid (not an integer: 'many'); "
     "expected a positive integer"),
    (web(littleboss_sockets="http=tcp://127.0.0.1:80", littleboss_socket_backlog="0"),
     "littleboss_socket_backlog = '0' is invalid (must be a positive integer)"),
    (web(littleboss_sockets="a=unix:///tmp/a.sock", littleboss_socket_mode="999"),
     "littleboss_socket_mode = '999' is invalid (999 can not be converted to an octal type); expected an octal mode"),
    (web(littleboss_sockets="a=unix:///tmp/a.sock", littleboss_socket_owner="no-such-user-x"),
     "littleboss_socket_owner = 'no-such-user-x' is invalid (Invalid user:group definition no-such-user-x); "
     "expected user or user:group"),
    (web(littleboss_sockets="http=tcp://127.0.0.1:80", littleboss_socket_mode="0600"),
     "[program:web] littleboss_socket_mode applies to unix sockets, but littleboss_sockets lists none"),
    (web(littleboss_sockets="http=tcp://127.0.0.1:80") + "[program:other]\ncommand=/bin/true\n"
     "littleboss_sockets = admin=tcp://127.0.0.1:80\n",
     "[program:other] littleboss_sockets: address tcp://127.0.0.1:80 is already claimed by [program:web]"),
    *[(web(littleboss_sockets=f"http={first}")
       + f"[program:other]\ncommand=/bin/true\nlittleboss_sockets = a={second}\n",
       f"[program:other] littleboss_sockets: address {second} is already claimed (the same address as {first}) "
       "by [program:web]")
      for first, second in [("tcp://127.0.0.1:80", "tcp://localhost:80"),
                            ("tcp://localhost:80", "tcp://localhost.:80"),
                            ("tcp://0.0.0.0:80", "tcp://127.0.0.1:80"), ("tcp://[::1]:80", "tcp://[::]:80"),
                            ("udp://127.0.0.1:53", "udp://localhost:53"), ("udp://[::]:53", "udp://[::1]:53")]],
    (web(littleboss_sockets="a=tcp://127.0.0.1:80, b=tcp://localhost:80"),
     "[program:web] littleboss_sockets: address tcp://localhost:80 is already claimed (the same address as "
     "tcp://127.0.0.1:80) by [program:web]"),
    ("[fcgi-program:web]\ncommand=/bin/true\nsocket=tcp://127.0.0.1:9000\n"
     "littleboss_sockets = http=tcp://127.0.0.1:80\n",
     "[fcgi-program:web]: littleboss_* settings are only valid in [program:x] sections"),
    (web(littleboss_sockets="http=tcp://127.0.0.1:80") + "[group:site]\nprograms = web\n",
     "[program:web]: a littleboss program cannot be a member of [group:site]"),
])
def test_configuration_error_names_program_key_value_and_forms(tmp_path, sections, message):
    with pytest.raises(ValueError) as error:
        group_configs(tmp_path, sections)
    assert message in str(error.value)


def test_a_unix_socket_reached_through_a_symlinked_directory_is_the_same_address(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "run")
    with pytest.raises(ValueError) as error:
        group_configs(tmp_path, web(littleboss_sockets=f"a=unix://{tmp_path}/run/a.sock")
                      + f"[program:other]\ncommand=/bin/true\nlittleboss_sockets = a=unix://{tmp_path}/link/a.sock\n")
    assert f"address unix://{tmp_path}/link/a.sock is already claimed (the same address as " in str(error.value)


def test_tcp_and_udp_on_the_same_port_are_different_addresses(tmp_path):
    configs = group_configs(tmp_path, web(littleboss_sockets="http=tcp://127.0.0.1:5353, dns=udp://127.0.0.1:5353"))
    assert [spec.url for spec in configs["web"].littleboss.sockets] == ["tcp://127.0.0.1:5353", "udp://127.0.0.1:5353"]


def test_a_program_section_name_with_spaces_is_the_program_as_supervisord_names_it(tmp_path):
    section = "[program: web ]\ncommand = /bin/true\nlittleboss_sockets = http=tcp://127.0.0.1:80\n"
    assert isinstance(group_configs(tmp_path, section)["web"], LittlebossGroupConfig)


def startup_error(supervisord: Supervisord) -> str:
    """Start ``supervisord``, which must stop at once with exit status 2 and one clear error
    (as for a bad setting of its own): its ``Error:`` line."""
    supervisord.start(wait=False)
    status, output = supervisord.exit_output()
    assert status == 2, output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and output.count("For help, use") == 1, output
    assert "Traceback" not in output and "rpc interface" not in output, output
    assert not supervisord.log.exists() or "Traceback" not in supervisord.log.read_text()
    return errors[0]


@pytest.mark.e2e
@pytest.mark.parametrize("keys, message", [
    ({"littleboss_sokets": "typo"}, "Error: [program:web] has unknown setting 'littleboss_sokets'"),
    ({"littleboss_ready": "bogus"},
     "Error: [program:web] littleboss_ready = 'bogus' is invalid (unknown mode 'bogus'); expected startsecs or notify"),
    ({"littleboss_sockets": "http=tcp://127.0.0.1"},
     "Error: [program:web] littleboss_sockets = 'http=tcp://127.0.0.1' is invalid: 'tcp://127.0.0.1' for 'http': "
     f"not a socket URL. Expected name=URL, name=URL, ... with URL {FORMS}"),
])
def test_a_bad_setting_stops_supervisord_at_startup_with_one_clear_error(supervisord: Supervisord, keys, message):
    supervisord.program("web", **{"littleboss_sockets": "http=tcp://127.0.0.1:80", **keys})
    assert startup_error(supervisord).startswith(message)


@pytest.mark.e2e
def test_a_bad_setting_on_reread_is_refused_and_the_program_keeps_serving(supervisord: Supervisord):
    port = free_port()
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}")
    supervisord.start()
    pid = supervisord.wait_running("web")
    supervisord.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}:80")
    message = f"CANT_REREAD: [program:web] littleboss_sockets = 'http=tcp://127.0.0.1:{port}:80' is invalid"
    reread = supervisord.ctl("reread")
    assert reread.returncode != 0
    assert reread.stdout.startswith(f"ERROR: {message}"), reread.stdout
    update = supervisord.ctl("update")  # supervisorctl's update prints any fault raw (README says so)
    assert update.returncode == 1
    assert update.stdout.startswith(f"error: <class 'xmlrpc.client.Fault'>, <Fault 92: \"{message}"), update.stdout
    assert supervisord.info("web")["pid"] == pid
    assert http_get(("127.0.0.1", port)).split()[1] == str(pid).encode()


@pytest.mark.e2e
def test_unknown_rpcinterface_setting_stops_supervisord(supervisord: Supervisord):
    text = supervisord.conf.read_text().replace(
        "make_littleboss_rpcinterface\n", "make_littleboss_rpcinterface\nstate_fiel = /tmp/x\n")
    supervisord.conf.write_text(text)
    assert startup_error(supervisord) == ("Error: [rpcinterface:littleboss] has unknown setting(s): state_fiel; "
                                          "the only one is state_file")


LOADS_LITTLEBOSS = ("[rpcinterface:littleboss]\nsupervisor.rpcinterface_factory = "
                    "supervisor_littleboss.rpcinterface:make_littleboss_rpcinterface\n")


@pytest.mark.parametrize("server", ["", "[unix_http_server]\nfile = %(here)s/supervisor.sock\n"])
def test_the_first_parse_checks_littleboss_settings_when_littleboss_loads(tmp_path, server):
    """As supervisord starts: its parser imports the factory's module, which checks the
    settings where supervisord's own are checked; without an HTTP server littleboss never
    loads, and supervisord ignores its settings (README: Requirements)."""
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[supervisord]\n" + server + LOADS_LITTLEBOSS + web(littleboss_sockets="bogus"))
    options = ServerOptions()
    options.stderr = io.StringIO()  # where supervisord prints its usage errors
    if not server:
        options.realize(["-c", str(conf)])
        assert type(options.process_group_configs[0]) is not LittlebossGroupConfig
        return
    with pytest.raises(SystemExit) as exited:
        options.realize(["-c", str(conf)])
    assert exited.value.code == 2
    assert options.stderr.getvalue().startswith("Error: [program:web] littleboss_sockets = 'bogus' is invalid")


def test_littleboss_takes_its_configs_from_supervisords_own_read_as_a_re_read_gives_them(tmp_path):
    """The plugin takes up supervisord's own read of its configuration (at startup and SIGHUP)
    instead of reading it again: the same configs a re-read gives ([supervisord]'s environment
    merged), AUTO log files not made yet (supervisord made some for its own groups), once."""
    import supervisor_littleboss.rpcinterface  # noqa: F401  (checks, and keeps, what supervisord reads)

    conf = tmp_path / "supervisord.conf"
    conf.write_text(textwrap.dedent(f"""\
        [supervisord]
        environment = FROM_SUPERVISORD=1
        logfile = {tmp_path / 'supervisord.log'}
        childlogdir = {tmp_path}
        [unix_http_server]
        file = {tmp_path / 'supervisor.sock'}
        [rpcinterface:littleboss]
        supervisor.rpcinterface_factory = supervisor_littleboss.rpcinterface:make_littleboss_rpcinterface
        """) + web(littleboss_sockets="http=tcp://127.0.0.1:8000") + "[program:plain]\ncommand = /bin/true\n")
    options = ServerOptions()
    options.realize(["-c", str(conf)])
    for config in options.process_group_configs:  # what supervisord does as it makes its groups
        config.after_setuid()
    made = options.process_group_configs[1].process_configs[0].stdout_logfile
    configs = {config.name: config for config in parsed_configs(options)}
    assert parsed_configs(options) is None
    assert made is not Automatic and configs["web"].process_configs[0].stdout_logfile is Automatic
    assert configs["web"].process_configs[0].environment["FROM_SUPERVISORD"] == "1"
    assert configs["plain"] is options.process_group_configs[0]
    wrap_groups_from_parser(options)
    options.process_config(do_usage=False)
    assert configs == {config.name: config for config in options.process_group_configs}

"""The ``littleboss_*`` keys of ``[program:x]``: reading, validating, and the group config.

supervisord ignores keys it does not know, so every ``littleboss_*`` key is checked
here; errors are ValueErrors that name the section, the key, the bad value and the
accepted forms, raised from supervisord's own config path (startup and ``reread``), so
supervisord prints them as its own: ``Error: ...`` and exit status 2 at startup,
``CANT_REREAD`` on ``reread``.
"""
from __future__ import annotations

import difflib
import shlex
import socket
from collections.abc import Callable
from dataclasses import dataclass

from supervisor.datatypes import boolean, colon_separated_user_group, list_of_strings, octal_type, process_or_group_name
from supervisor.options import ProcessGroupConfig, ServerOptions, UnhosedConfigParser

from . import glue
from .faults import LittlebossFaults, LittlebossRPCError
from .sockets import URL_FORMS, Address, SocketOptions, SocketSpec, bound_addresses, parse_socket_list, same_address

PREFIX = "littleboss_"
SOCKETS_KEY = "littleboss_sockets"


READY_MODES = ("startsecs", "notify")


@dataclass(frozen=True)
class ReloadSettings:
    """How a reload decides that the new binary is ready, and what it may be."""

    ready: str = "startsecs"  # or "notify": READY=1 over NOTIFY_SOCKET
    settle: float = 0  # seconds the candidate must stay up after it is ready
    ready_timeout: float = 60
    lameduck: float | None = None  # None: the program's stopwaitsecs
    fallback_window: float = 30  # 0: no automatic rollback
    surge: int = 1  # slots of a numprocs > 1 program that may have a candidate at once
    check: tuple[str, ...] = ()  # a command that must pass against a ready candidate (argv)
    check_interval: float = 1
    check_timeout: float = 10
    check_failures: int = 3  # failed checks in a row after promotion that roll the program back
    check_after_promotion: bool = True  # the check also runs through littleboss_fallback_window
    watchdog: float = 0  # seconds a running process may go without WATCHDOG=1 (0: no watchdog)
    allow: tuple[str, ...] = ()  # glob patterns; empty: only the configured command's path
    drain_connections: bool = True  # a replaced process is drained once it holds no connection and no longer listens


@dataclass(frozen=True)
class LittlebossSettings:
    """Everything a ``[program:x]`` section says about littleboss."""

    sockets: tuple[SocketSpec, ...]
    socket_options: SocketOptions = SocketOptions()
    reload: ReloadSettings = ReloadSettings()


def _positive_integer(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"not an integer: {value!r}") from None
    if number < 1:
        raise ValueError("must be a positive integer")
    return number


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"not a number: {value!r}") from None
    if not 0 <= seconds < 1e9:
        raise ValueError("must be a number of seconds, 0 or more")
    return seconds


def _positive_seconds(value: str) -> float:
    seconds = _seconds(value)
    if seconds == 0:
        raise ValueError("must be more than 0")
    return seconds


def _unix_mode(value: str) -> int:
    mode = octal_type(value)
    if not 0 <= mode <= 0o777:
        raise ValueError("must be an octal mode between 0 and 777")
    return mode


def _ready_mode(value: str) -> str:
    if value.strip().lower() not in READY_MODES:
        raise ValueError(f"unknown mode {value!r}")
    return value.strip().lower()


def _command(value: str) -> tuple[str, ...]:
    """Shell-style words (quote one that holds a space), at least one."""
    try:
        words = tuple(shlex.split(value))
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if not words:
        raise ValueError("it is empty")
    return words


def _globs(value: str) -> tuple[str, ...]:
    """Patterns separated by spaces or commas; one that holds a space is quoted, as in a shell."""
    lexer = shlex.shlex(value, posix=True)
    lexer.whitespace += ","
    lexer.whitespace_split = True
    try:
        patterns = tuple(lexer)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    for pattern in patterns:
        if not pattern.startswith("/"):
            raise ValueError(f"pattern {pattern!r} is not an absolute path")
        if ".." in pattern.split("/"):
            raise ValueError(f"pattern {pattern!r} has a '..' component; write the directory it means")
    return patterns


# key -> (which settings, field, converter, accepted forms for the error message)
OPTION_KEYS: dict[str, tuple[str, str, Callable[[str], object], str]] = {
    "littleboss_socket_backlog": ("socket_options", "backlog", _positive_integer, "a positive integer"),
    "littleboss_socket_mode": ("socket_options", "mode", _unix_mode, "an octal mode such as 0660"),
    "littleboss_socket_owner": ("socket_options", "owner", colon_separated_user_group, "user or user:group"),
    "littleboss_ready": ("reload", "ready", _ready_mode, " or ".join(READY_MODES)),
    "littleboss_settle": ("reload", "settle", _seconds, "seconds, 0 or more"),
    "littleboss_ready_timeout": ("reload", "ready_timeout", _positive_seconds, "seconds, more than 0"),
    "littleboss_lameduck": ("reload", "lameduck", _seconds, "seconds, 0 or more"),
    "littleboss_fallback_window": ("reload", "fallback_window", _seconds, "seconds, 0 (off) or more"),
    "littleboss_check": ("reload", "check", _command, "a command, in shell-style words"),
    "littleboss_check_interval": ("reload", "check_interval", _positive_seconds, "seconds, more than 0"),
    "littleboss_check_timeout": ("reload", "check_timeout", _positive_seconds, "seconds, more than 0"),
    "littleboss_check_failures": ("reload", "check_failures", _positive_integer, "a positive integer"),
    "littleboss_watchdog": ("reload", "watchdog", _seconds, "seconds, 0 (off) or more"),
    "littleboss_check_after_promotion": ("reload", "check_after_promotion", boolean, "true or false"),
    "littleboss_surge": ("reload", "surge", _positive_integer, "a positive integer, at most numprocs"),
    "littleboss_drain_connections": ("reload", "drain_connections", boolean, "true or false"),
    "littleboss_allow": ("reload", "allow", _globs,
                         "absolute paths or glob patterns, separated by spaces (quote one that holds a space)"),
}
KNOWN_KEYS = (SOCKETS_KEY, *OPTION_KEYS)


class ProcessConfigs(list):
    """A littleboss program's process configs, made from its ``[program:x]`` section only:
    another plugin (supervisor_twiddler's ``addProgramToGroup``/``removeProcessFromGroup``)
    cannot add or remove one, and gets a fault before anything changed."""

    def __init__(self, program: str, configs) -> None:
        super().__init__(configs)
        self.program = program

    def _refuse(self, *args, **kwargs):
        raise LittlebossRPCError(
            LittlebossFaults.UNSUPPORTED,
            f"{self.program} is a littleboss program: its processes come from its [program:{self.program}] "
            "section only, and another plugin cannot add or remove one",
        )

    append = extend = insert = remove = pop = clear = __setitem__ = __delitem__ = __iadd__ = _refuse


class LittlebossGroupConfig(ProcessGroupConfig):
    """A ``[program:x]`` group config that carries littleboss settings."""

    group_class: type  # what runs it: group.LittlebossProcessGroup, which sets this (imports go one way)

    def __init__(self, options, name, priority, process_configs, littleboss: LittlebossSettings):
        super().__init__(options, name, priority, ProcessConfigs(name, process_configs))
        self.littleboss = littleboss
        self.auto_logs = [glue.auto_logs(pconfig) for pconfig in process_configs]  # as read

    def as_read(self) -> LittlebossGroupConfig:
        """This config as the configuration file gives it: its process configs copied, their
        ``AUTO`` log files not made yet (supervisord made files for its own group, which
        littleboss's replaces)."""
        pconfigs = [glue.with_auto_logs(pconfig, auto)
                    for pconfig, auto in zip(self.process_configs, self.auto_logs, strict=True)]
        return LittlebossGroupConfig(self.options, self.name, self.priority, pconfigs, self.littleboss)

    def __eq__(self, other) -> bool:
        # a change of littleboss settings alone makes `reread` report the program changed
        return (
            isinstance(other, LittlebossGroupConfig)
            and self.littleboss == other.littleboss
            and super().__eq__(other)
        )

    def make_group(self):
        return self.group_class(self)

    def can_take_up(self, other: LittlebossGroupConfig) -> bool:
        """Whether ``other`` (this program's next configuration) can take up its running
        processes: theirs are the first of its process names (numprocs may grow or shrink;
        any other setting may change)."""
        mine, theirs = ([config.name for config in configs.process_configs] for configs in (self, other))
        common = min(len(mine), len(theirs))
        return mine[:common] == theirs[:common]

    def reaches_processes(self, other: LittlebossGroupConfig) -> bool:
        """Whether going to ``other`` changes what a running process of this program was
        started with: the settings of a process they both have, or the sockets (a socket's
        backlog, owner and mode are applied to the open socket it shares)."""
        return (any(mine != theirs for mine, theirs in zip(self.process_configs, other.process_configs, strict=False))
                or self.littleboss.sockets != other.littleboss.sockets)


def read_settings(parser: UnhosedConfigParser, section: str, expansions: dict) -> LittlebossSettings | None:
    """Read a section's ``littleboss_*`` keys; None if it has none."""
    keys = sorted(k for k in parser.options(section) if k.startswith(PREFIX))
    if not keys:
        return None
    for key in keys:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS, 1)
            raise ValueError(
                f"[{section}] has unknown setting {key!r}" + (f" (did you mean {close[0]}?)" if close else "")
                + "; littleboss settings are: " + ", ".join(KNOWN_KEYS)
            )
    if SOCKETS_KEY not in keys:
        raise ValueError(f"[{section}] sets {', '.join(keys)} but not {SOCKETS_KEY}, which littleboss programs need")

    def get(key: str) -> str | None:
        return parser.saneget(section, key, None, expansions=expansions)

    raw_sockets = get(SOCKETS_KEY)
    try:
        sockets = parse_socket_list(raw_sockets)
    except ValueError as exc:
        raise ValueError(
            f"[{section}] {SOCKETS_KEY} = {raw_sockets!r} is invalid: {exc}. "
            f"Expected name=URL, name=URL, ... with URL {URL_FORMS}"
        ) from None
    values: dict[str, dict[str, object]] = {"socket_options": {}, "reload": {}}
    for key, (target, name, convert, forms) in OPTION_KEYS.items():
        raw = get(key)
        if raw is None:
            continue
        try:
            values[target][name] = convert(raw)
        except ValueError as exc:
            expected = "" if str(exc).startswith("must be") else f"; expected {forms}"  # said once
            raise ValueError(f"[{section}] {key} = {raw!r} is invalid ({exc}){expected}") from None
    unix_only = {"mode", "owner"} & values["socket_options"].keys()
    if unix_only and not any(spec.is_unix for spec in sockets):
        raise ValueError(
            f"[{section}] littleboss_socket_{sorted(unix_only)[0]} applies to unix sockets, "
            f"but {SOCKETS_KEY} lists none"
        )
    return LittlebossSettings(sockets, SocketOptions(**values["socket_options"]), ReloadSettings(**values["reload"]))


def apply_littleboss_settings(options: ServerOptions, parser: UnhosedConfigParser, groups: list) -> list:
    """Return ``groups`` with each littleboss program's config replaced by a LittlebossGroupConfig."""
    by_name = {group.name: group for group in groups}
    grouped = _programs_in_heterogeneous_groups(options, parser)
    # the addresses claimed so far, by the only ones they can collide with: (address, section, url)
    claimed: dict[tuple, list[tuple[Address, str, str]]] = {}
    result = {}
    for section in parser.sections():
        kind, _, name = section.partition(":")
        if kind == "program":
            name = process_or_group_name(name)  # as supervisord names it: `[program: web ]` is web
        expansions = {"here": options.here, "program_name": name, "group_name": name}
        settings = read_settings(parser, section, expansions)
        if settings is None:
            continue
        if kind != "program":
            raise ValueError(f"[{section}]: littleboss_* settings are only valid in [program:x] sections")
        if name in grouped:
            raise ValueError(
                f"[{section}]: a littleboss program cannot be a member of [group:{grouped[name]}]; "
                "remove it from the group's programs="
            )
        for spec in settings.sockets:
            addresses = bound_addresses(spec)
            near = [claim for address in addresses for claim in claimed.get(_bucket(address), ())]
            for other, other_section, other_url in near:
                if same_address(addresses, {other}):
                    same = "" if other_url == spec.url else f" (the same address as {other_url})"
                    raise ValueError(
                        f"[{section}] {SOCKETS_KEY}: address {spec.url} is already claimed{same} by "
                        f"[{other_section}]; each address can belong to one program only"
                    )
            for address in addresses:
                claimed.setdefault(_bucket(address), []).append((address, section, spec.url))
        base = by_name[name]
        if settings.reload.surge > len(base.process_configs):
            raise ValueError(f"[{section}] littleboss_surge = {settings.reload.surge} is more than its "
                             f"numprocs = {len(base.process_configs)}; it must be at most numprocs")
        result[name] = LittlebossGroupConfig(options, base.name, base.priority, base.process_configs, settings)
    return [result.get(group.name, group) for group in groups]


def _bucket(address: Address) -> tuple:
    """Where ``address`` can collide: its family, type and port (a unix socket: its path), so
    that checking each program's sockets against the others' stays linear in their number."""
    family, kind, host, port = address
    return (family, kind, host) if family == socket.AF_UNIX else (family, kind, port)


def _programs_in_heterogeneous_groups(options: ServerOptions, parser: UnhosedConfigParser) -> dict[str, str]:
    """Map program name -> [group:x] name for programs listed in a heterogeneous group."""
    members = {}
    for section in parser.sections():
        if section.startswith("group:"):
            programs = parser.saneget(section, "programs", "", expansions={"here": options.here})
            for program in list_of_strings(programs):
                members[program] = section.partition(":")[2]
    return members


FACTORY_KEY = "supervisor.rpcinterface_factory"
FACTORY_SPEC = "supervisor_littleboss.rpcinterface:make_littleboss_rpcinterface"
RPCINTERFACE_SETTINGS = ("state_file",)
PARSED = "littleboss_parsed"  # the ServerOptions attribute check_before_install leaves its configs in


def loads_littleboss(parser: UnhosedConfigParser) -> list[str]:
    """The ``[rpcinterface:x]`` sections that load littleboss; none without an HTTP server
    (supervisord calls no factory then, and littleboss_* keys are ignored)."""
    if not (parser.has_section("unix_http_server") or parser.has_section("inet_http_server")):
        return []
    return [section for section in parser.sections()
            if section.startswith("rpcinterface:") and parser.saneget(section, FACTORY_KEY, "") == FACTORY_SPEC]


def check_before_install(options: ServerOptions, parser: UnhosedConfigParser, groups: list) -> None:
    """Check a configuration that loads littleboss as supervisord parses it, before littleboss
    is installed (at startup, and after ``supervisorctl reload``): a ValueError here is
    printed once, as supervisord's own configuration errors are."""
    if getattr(options, "littleboss", None) is not None:  # installed: its own parse reads the settings
        return
    sections = loads_littleboss(parser)
    for section in sections:
        unknown = sorted(set(parser.options(section)) - {FACTORY_KEY, *RPCINTERFACE_SETTINGS})
        if unknown:
            raise ValueError(f"[{section}] has unknown setting(s): {', '.join(unknown)}; "
                             f"the only one is {', '.join(RPCINTERFACE_SETTINGS)}")
    if sections:
        # kept for the plugin (parsed_configs): the same parse with its settings, not read again
        options.__dict__[PARSED] = apply_littleboss_settings(options, parser, groups)


def parsed_configs(options: ServerOptions) -> list | None:
    """The group configs supervisord's own read of its configuration file with ``options``
    gave, littleboss programs' as LittlebossGroupConfigs as that file gives them
    (``check_before_install``'s); None if it did not load littleboss. Once: they are let go."""
    configs = options.__dict__.pop(PARSED, None)
    return None if configs is None else [
        config.as_read() if isinstance(config, LittlebossGroupConfig) else config for config in configs]


def wrap_groups_from_parser(options: ServerOptions) -> None:
    """Make ``options`` build LittlebossGroupConfigs for littleboss programs (startup and reread)."""
    glue.wrap_groups_from_parser(options, lambda parser, groups: apply_littleboss_settings(options, parser, groups))


# --- without littleboss's RPC interface -------------------------------------------------
def interface_missing(serverurl: str, configfile: str | None) -> str:
    """What to do when supervisord answers UNKNOWN_METHOD to ``littleboss.*``: it has not
    loaded littleboss's RPC interface. ``configfile`` (supervisorctl's) tells which case
    it is, and which programs run without their sockets meanwhile."""
    configured = _configured(configfile) if configfile else None
    text = f"supervisord at {serverurl} has not loaded the littleboss interface"
    if configured and configured[0]:
        text += (f": {configfile} has [rpcinterface:littleboss], but supervisord was started before it was "
                 "added, or from another configuration file; supervisorctl reload makes it read its "
                 "configuration file again (and restarts every program)")
    else:
        where = f" ({configfile})" if configured is not None else ""
        section = ("[rpcinterface:littleboss]", f"{FACTORY_KEY} = {FACTORY_SPEC}")
        text += (": add\n" + "".join(f"  {line}\n" for line in section)
                 + f"to supervisord's configuration file{where} and run supervisorctl reload (it restarts "
                   "every program; reread and update do not load the interface)")
    programs = configured[1] if configured else []
    if programs:
        text += (".\nUntil then these run as plain programs, their littleboss_* settings ignored and no "
                 f"socket held for them: {', '.join(programs)}")
    return text + "."


def _configured(configfile: str) -> tuple[bool, list[str]] | None:
    """Whether ``configfile``, read as supervisord reads it, loads littleboss's interface,
    and its programs with ``littleboss_*`` settings; None if supervisord could not read it."""
    try:
        _, parser, factories, _ = glue.read_server_config(configfile)
    except (ValueError, OSError):
        return None
    loads = any(f"{factory.__module__}:{factory.__name__}" == FACTORY_SPEC for _, factory, _ in factories)
    programs = [section.partition(":")[2] for section in parser.sections() if section.startswith("program:")
                and any(key.startswith(PREFIX) for key in parser.options(section))]
    return loads, programs


def littleboss_configs(configfile: str) -> dict[str, LittlebossGroupConfig]:
    """The littleboss programs ``configfile`` configures, as supervisord would read it now, by
    name; none if it cannot be read or does not load littleboss's interface."""
    try:
        options, parser, _, groups = glue.read_server_config(configfile)
        if PARSED not in options.__dict__:  # not checked as it was parsed (not in supervisord)
            check_before_install(options, parser, groups)
    except (ValueError, OSError):
        return {}
    return {config.name: config for config in options.__dict__.get(PARSED, ())
            if isinstance(config, LittlebossGroupConfig)}

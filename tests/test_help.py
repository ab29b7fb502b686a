"""``help`` in the real supervisorctl: littleboss's commands have help of their own, and
supervisorctl's own help is byte-for-byte what it is without the plugin. No supervisord
is needed: help is printed by supervisorctl alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from harness import Supervisord
from supervisor.supervisorctl import DefaultControllerPlugin

from supervisor_littleboss.controller import EXIT_STATUSES, SUBCOMMANDS

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # runs the real supervisorctl, a process per call

BUILTIN = sorted(name[3:] for name in dir(DefaultControllerPlugin) if name.startswith("do_"))


@pytest.fixture(scope="module")
def confs(tmp_path_factory) -> tuple[Path, Path]:
    """supervisorctl's configuration with the littleboss plugin, and the same without it
    (for the module: the tests only read them)."""
    conf = Supervisord(tmp_path_factory.mktemp("help")).conf
    without = conf.with_name("without-plugin.conf")
    without.write_text(conf.read_text().replace("[ctlplugin:littleboss]", "[x_unused_ctlplugin]"))
    return conf, without


def ctl(conf: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf), *args],
                            input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr, result
    return result.stdout


def test_help_on_supervisorctl_commands_is_unchanged(confs):
    with_plugin, without = confs
    session = "".join(f"help {topic}\n" for topic in [*BUILTIN, "help", "nope", "littleboss:nope"])
    assert ctl(with_plugin, stdin=session) == ctl(without, stdin=session)  # the interactive shell
    for topic in ("reload", "status", "nope"):
        assert ctl(with_plugin, "help", topic) == ctl(without, "help", topic)


def test_help_lists_supervisorctl_commands_then_littleboss_commands(confs):
    with_plugin, without = confs
    own = ctl(without, "help")
    listing = ctl(with_plugin, "help")
    assert listing.startswith(own)
    words = listing[len(own):].split()
    assert words[:6] == ["littleboss", "commands", "(type", "help", "<topic>):", "=" * 40]
    # in columns, as cmd.Cmd lists topics: the order of the words depends on how many rows they take
    assert sorted(words[6:]) == ["littleboss", *sorted(f"littleboss:{sub}" for sub in SUBCOMMANDS)]


def test_help_littleboss_explains_every_command(confs):
    lines = ctl(confs[0], "help", "littleboss").splitlines()
    assert lines[0] == "littleboss:<command> (or: littleboss <command>), where <command> is one of:"
    for usage in ("reload <name> [path]", "rollback <name>", "status [name ...]", "status --history [name ...]",
                  "upgrade"):
        assert sum(line.startswith(f"  {usage}\t") for line in lines) == 1, usage
    assert lines[-2:] == [EXIT_STATUSES["reload"], "help littleboss:<command> explains one command."]


@pytest.mark.parametrize("topic", ["littleboss:reload", "littleboss:rollback", "littleboss:status",
                                   "littleboss status", "littleboss:upgrade"])
def test_help_on_each_littleboss_command(confs, topic):
    command = topic.split(":" if ":" in topic else " ")[1]
    lines = ctl(confs[0], "help", *topic.split()).splitlines()
    assert lines == [f"littleboss:{usage}" for usage in SUBCOMMANDS[command]] + [EXIT_STATUSES[command]]
    assert lines[0].split()[0] == f"littleboss:{command}"

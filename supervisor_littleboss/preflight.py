"""The preflight of an in-place upgrade: the code installed now, tried before supervisord runs it.

Before supervisord re-executes itself, the installed code is run once in a process of its
own (``python -m supervisor_littleboss.preflight ARGS``, with supervisord's Python and
arguments, from the directory supervisord was started in): it imports supervisor and
littleboss, reads the configuration as the new supervisord would (every ``[rpcinterface:x]``
factory imported, every littleboss setting checked) and prints its versions as one line of
JSON. Anything else (a traceback, ``Error: ...`` and exit 2) stops the upgrade before
anything changes, as ``nginx -t`` does.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata

from .child import Child

LAUNCH_DIR = os.getcwd()  # supervisord's directory when it was started (before it daemonized)
PREFLIGHT_TIMEOUT = 60  # seconds


def versions() -> dict[str, str]:
    """supervisor's, littleboss's and Python's versions, as installed now."""
    from . import __version__
    return {"supervisor": metadata.version("supervisor"), "littleboss": __version__,
            "python": platform.python_version()}


RUNNING = versions()  # those of the code running (imported now): an install later changes the above


def command() -> list[str]:
    """supervisord's command line, as it was started, run by the Python installed at its path."""
    return [sys.executable, *sys.orig_argv[1:]]


class Preflight(Child):
    """One run of the installed code against supervisord's configuration, in the background,
    from the directory supervisord was started in (its arguments are relative to it)."""

    def __init__(self, arguments: list[str], now: float) -> None:
        self.output = tempfile.TemporaryFile()
        self.deadline = now + PREFLIGHT_TIMEOUT
        self.timed_out = False
        super().__init__([sys.executable, "-m", __name__, *arguments], os.environ, self.output.fileno(), LAUNCH_DIR)

    def done(self, now: float) -> bool:
        """Whether it is over: it exited, or it ran out of time (then it is killed)."""
        if self.status is None and now > self.deadline:
            self.kill()
            self.timed_out = True
        return self.status is not None or self.timed_out

    def result(self) -> tuple[dict | None, str]:
        """(what the new code said: its ``versions``, the handover formats it ``reads``; '') if
        it passed, else (None, what it printed)."""
        self.output.seek(0)
        text = self.output.read().decode(errors="replace")
        self.output.close()
        lines = text.strip().splitlines()
        if not self.timed_out and self.exit_code() == 0 and lines:
            try:
                said = json.loads(lines[-1])
                if isinstance(said["versions"], dict) and isinstance(said["reads"], list):
                    return said, ""
            except (ValueError, KeyError, TypeError):
                pass
        how = f"killed after {PREFLIGHT_TIMEOUT} s" if self.timed_out else self.ended()
        return None, f"{how}: {' / '.join(lines[-12:]) or 'no output'}"


def main(arguments: list[str]) -> None:
    from supervisor.options import ServerOptions

    from .handover import READS

    started = time.monotonic()
    options = ServerOptions()
    options.realize(arguments, progname="supervisord")  # a bad configuration: "Error: ...", exit 2
    print(json.dumps({"versions": versions(), "reads": READS,
                      "programs": len(options.process_group_configs),
                      "seconds": round(time.monotonic() - started, 3)}))


if __name__ == "__main__":
    main(sys.argv[1:])

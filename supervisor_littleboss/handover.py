"""What an in-place upgrade hands from supervisord's old code to its new code: one record on disk.

supervisord re-executes itself in its own pid (``littleboss.upgrade``). The processes of its
littleboss programs stay its children, and the fds it holds for them (listening sockets,
output pipes, notify sockets) stay open across the exec; the record says what each of those
fds is, and what each process was started with. The old code writes it just before the exec,
the new code reads it once as it starts, and removes it.

The record carries a format number. A newer littleboss reads every format an older one
wrote; one it cannot read is set aside, and the processes are recovered as after a
supervisord killed with -9 (their sockets taken back, the programs started again).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

FORMAT = 1  # the format this code writes
READS = (1,)  # the formats it reads
ENVIRONMENT = "LITTLEBOSS_HANDOVER"  # the record's path, in the re-executed supervisord's environment
CHANNELS = ("stdin", "stdout", "stderr")
LOGS = ("stdout_logfile", "stderr_logfile")


@dataclass(frozen=True)
class HandedProcess:
    """A running process of a littleboss program, as supervisord's old code left it."""

    slot: int
    name: str
    pid: int
    start: int  # its start time in clock ticks since boot: the same process, not a reused pid
    laststart: float
    state: str  # RUNNING or STARTING
    pipes: dict[str, int]  # supervisord's end of its stdin, stdout and stderr pipes, those still open
    running_path: str  # the file it was started from
    settings: dict[str, str]  # what it was started with (its program section, as text)
    logs: dict[str, str] = field(default_factory=dict)  # its log files, AUTO ones by their names
    notify: int | None = None  # supervisord's end of its NOTIFY_SOCKET
    ready: bool = False
    ready_at: float = 0.0
    status: str = ""  # its last STATUS=

    def fds(self) -> set[int]:
        return {*self.pipes.values(), *([] if self.notify is None else [self.notify])}


@dataclass(frozen=True)
class HandedProgram:
    """A littleboss program whose processes run on through the upgrade."""

    sockets: list[list[str]]  # [name, url] of each of its sockets, in order
    processes: list[HandedProcess]


@dataclass
class Handover:
    """Everything the new code takes up."""

    pid: int  # supervisord's, before and after the exec
    cwd: str  # supervisord's working directory before the exec
    upgrades: int  # in-place upgrades of this supervisord so far, this one included
    versions: dict[str, str]  # supervisor, littleboss and Python of the code that wrote it
    sockets: dict[str, int]  # the fd of each listening socket held, by URL
    programs: dict[str, HandedProgram]
    format: int = FORMAT

    def fds(self) -> set[int]:
        """Every fd the new code takes up."""
        return {*self.sockets.values(), *(fd for program in self.programs.values()
                                          for process in program.processes for fd in process.fds())}

    def log_files(self) -> set[str]:
        """The log files the processes handed over write."""
        return {os.path.abspath(path) for program in self.programs.values() for process in program.processes
                for path in process.logs.values()}

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(asdict(self), file)

    @classmethod
    def read(cls, path: str) -> Handover:
        """The record at ``path``; ValueError says why it cannot be read (OSError if it cannot
        be opened)."""
        with open(path, encoding="utf-8") as file:
            try:
                data = json.load(file)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") not in READS:
            found = data.get("format") if isinstance(data, dict) else None
            raise ValueError(f"format {found!r}, and this littleboss reads format(s) {', '.join(map(str, READS))}")
        try:
            programs = {name: HandedProgram([list(map(str, socket)) for socket in program["sockets"]],
                                            [HandedProcess(**process) for process in program["processes"]])
                        for name, program in data.pop("programs").items()}
            record = cls(**data, programs=programs)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a handover record: {exc}") from None
        if not all(isinstance(fd, int) for fd in record.fds()):
            raise ValueError("not a handover record: an fd is not a number")
        return record

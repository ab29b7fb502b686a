"""supervisorctl commands, enabled by ``[ctlplugin:littleboss]``.

``littleboss:reload NAME [PATH]``, ``littleboss:rollback NAME``,
``littleboss:status [--history] [NAME ...]`` and ``littleboss:upgrade``, also spelled
``littleboss reload ...``; ``help littleboss`` and ``help littleboss:CMD`` explain them.
Exit status: 0 success, 1 refused before anything started (or supervisord
unreachable, or without littleboss's RPC interface; for ``upgrade``, also not upgraded in
place), 7 the new binary was started and failed, 2 bad usage, 130 Ctrl-C (it stopped
waiting; what it waited for goes on in supervisord).
"""
from __future__ import annotations

import shlex
import time
import xmlrpc.client
from collections.abc import Callable
from typing import TypeVar

from supervisor.supervisorctl import ControllerPluginBase, LSBInitExitStatuses
from supervisor.xmlrpc import Faults

from .config import interface_missing
from .contract import RolloutPhase
from .faults import EXIT_INTERRUPTED, LittlebossFaults, exit_status
from .glue import one_shot_words, wrap_completer, wrap_help, wrap_update
from .outcome import check_line, done_line, slot_label, step_line, steps_reached, version_changes

SUBCOMMANDS = {  # usage lines (supervisorctl's help layout: usage, tab, what it does)
    "reload": ["reload <name> [path]\tSwap in <path> (default: the current executable) with zero downtime",
               "reload <name> [path] --canary K --hold [S]\tK processes first, hold S seconds (or until "
               "promote) with the check watching, then the others"],
    "promote": ["promote <name>\t\tGo on with a canary reload that holds"],
    "abort": ["abort <name>\t\tGive up the reload under way; switched processes are swapped back"],
    "rollback": ["rollback <name>\t\tReload back to the previous executable"],
    "status": ["status [name ...]\tBinary, sockets and reload phase of littleboss programs (default: all)",
               "status --history [name ...]\tThe same, each followed by its reloads"],
    "upgrade": ["upgrade\t\t\tRe-execute supervisord in place (same pid) on the supervisor, littleboss and "
                "Python installed now: littleboss programs run on, other programs restart"],
}
# the subcommands whose arguments complete as program names
TAKES_NAMES = ("reload", "rollback", "status", "promote", "abort")
EXIT_STATUSES = {
    "reload": "Exit status: 0 done; 1 refused before anything started; 7 the new binary failed "
              "(the old one kept serving), or the reload was aborted by a stop or restart; 2 bad usage; 130 "
              "Ctrl-C (the reload goes on).",
    "status": "Exit status: 0 shown; 1 an unknown or not a littleboss program; 2 bad usage.",
    "upgrade": "Exit status: 0 upgraded (the same pid runs the installed code); 1 refused (a reload in progress, "
               "the preflight failed) or supervisord unreachable, or it was not upgraded in place, or did not "
               "answer again within 60 s; 2 bad usage; 130 Ctrl-C (the upgrade goes on).",
}
EXIT_STATUSES["rollback"] = EXIT_STATUSES["reload"]
EXIT_STATUSES["promote"] = EXIT_STATUSES["abort"] = "Exit status: 0 done; 1 no reload to act on; 2 bad usage."
POLL_SECONDS = 0.1
RELOAD_WAIT = 60  # seconds a reload (or upgrade) is followed through supervisord's own reload before giving up
T = TypeVar("T")
# applyConfig's faults that leave a program to supervisorctl's update (stop, then start): not
# littleboss's (or no littleboss interface at all), not a change it can apply in place, or a
# program in the middle of a reload or a stop (update aborts them, as it always did)
LEFT_TO_UPDATE = (Faults.UNKNOWN_METHOD, LittlebossFaults.UNKNOWN_PROGRAM, LittlebossFaults.NOT_LITTLEBOSS,
                  LittlebossFaults.NOT_IN_PLACE, LittlebossFaults.RELOAD_IN_PROGRESS, LittlebossFaults.NOT_RUNNING)


class UsageError(Exception):
    pass


class LittlebossControllerPlugin(ControllerPluginBase):
    name = "littleboss"

    def __init__(self, controller, **config) -> None:
        super().__init__(controller)
        wrap_completer(controller, "littleboss", self._complete)
        wrap_help(controller, self._help)
        wrap_update(controller, self._update_in_place)

    @property
    def rpc(self):
        return self.ctl.get_server_proxy("littleboss")

    def _say(self, line: str) -> None:
        """One line of output, flushed: progress must show as it happens, even in a pipe."""
        self.ctl.output(line)
        self.ctl.stdout.flush()

    # --- the command ------------------------------------------------------------
    def do_littleboss(self, arg: str) -> None:
        subcommand = ""
        try:
            subcommand, *args = self._words(arg) or [""]
            handler = getattr(self, f"_{subcommand}", None) if subcommand in SUBCOMMANDS else None
            if handler is None:
                raise UsageError(f"unknown littleboss command {subcommand!r}" if subcommand else "")
            handler(args)
        except UsageError as exc:
            if str(exc):
                self._say(f"Error: {exc}")
            if not self._help(f"littleboss {subcommand}"):  # the subcommand's help, or all of it
                self.help_littleboss()
            self.ctl.exitstatus = LSBInitExitStatuses.INVALID_ARGS
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == Faults.UNKNOWN_METHOD:
                self._fail(None, "ERROR: " + interface_missing(self.ctl.options.serverurl,
                                                               self.ctl.options.configfile))
            else:
                self._fail(fault.faultCode, f"ERROR: {fault.faultString}")
        except OSError as exc:
            self._fail(None, f"ERROR: cannot reach supervisord at {self.ctl.options.serverurl}: {exc}")

    def _words(self, arg: str) -> list[str]:
        """The subcommand and its arguments, split as a shell splits them. In one-shot mode
        the shell already did, but supervisorctl joined its words with spaces: take them back."""
        words = one_shot_words(self.ctl)
        line = "littleboss" + (arg if arg.startswith(":") else f" {arg}")  # as cmd.Cmd split it
        if words and " ".join(words).strip() == line.strip():
            first = words.pop(0)
            return [first.partition(":")[2], *words] if ":" in first else words
        try:
            return shlex.split(arg.lstrip(":"))
        except ValueError as exc:  # e.g. an unclosed quote
            raise UsageError(f"cannot split the arguments: {exc}") from None

    # --- help -------------------------------------------------------------------------
    def do_help(self, arg: str) -> None:
        """supervisorctl's ``help`` asks every plugin: list our topics under ``help``, and
        say nothing on a topic that is not ours (the default plugin says it has no help)."""
        if not arg.strip():
            self.ctl.output("")
            self.ctl.print_topics(self.doc_header, ["littleboss", *(f"littleboss:{sub}" for sub in SUBCOMMANDS)],
                                  15, 80)

    def _help(self, arg: str) -> bool:
        """Help on ``littleboss`` or ``littleboss:CMD`` (also ``littleboss CMD``); False for
        any other topic."""
        words = arg.replace(":", " ", 1).split()
        if words == ["littleboss"]:
            self.help_littleboss()
        elif len(words) == 2 and words[0] == "littleboss" and words[1] in SUBCOMMANDS:
            for line in SUBCOMMANDS[words[1]]:
                self._say(f"littleboss:{line}")
            self._say(EXIT_STATUSES[words[1]])
        else:
            return False
        return True

    def help_littleboss(self) -> None:
        self._say("littleboss:<command> (or: littleboss <command>), where <command> is one of:")
        for lines in SUBCOMMANDS.values():
            for line in lines:
                self._say(f"  {line}")
        self._say(EXIT_STATUSES["reload"])
        self._say("help littleboss:<command> explains one command.")

    def _fail(self, code: int | None, message: str) -> None:
        self._say(message)
        self.ctl.exitstatus = exit_status(code)

    def _interrupted(self, message: str) -> None:
        """Ctrl-C: what goes on without us, and EXIT_INTERRUPTED."""
        self._say(message)
        self.ctl.exitstatus = EXIT_INTERRUPTED

    # --- subcommands --------------------------------------------------------------
    def _reload(self, args: list[str]) -> None:
        args, canary, hold = canary_options(args)
        if len(args) not in (1, 2):
            raise UsageError("reload takes a program name and an optional path")
        name, path = args[0], (args[1] if len(args) == 2 else "")
        if canary:
            self._follow(name, self.rpc.reloadCanary(name, path, canary, hold, False))
        else:
            self._follow(name, self.rpc.reload(name, path, False))

    def _promote(self, args: list[str]) -> None:
        if len(args) != 1:
            raise UsageError("promote takes a program name")
        info = self.rpc.promote(args[0])
        self._say(f"{args[0]}: canary promoted: the other {info['slots_total'] - info['slots_done']} "
                  f"process(es) are being replaced (littleboss:status {args[0]})")

    def _abort(self, args: list[str]) -> None:
        if len(args) != 1:
            raise UsageError("abort takes a program name")
        self.rpc.abort(args[0])
        self._say(f"{args[0]}: reload aborted: the processes already switched are swapped back to the old binary")

    def _rollback(self, args: list[str]) -> None:
        if len(args) != 1:
            raise UsageError("rollback takes a program name")
        self._follow(args[0], self.rpc.rollback(args[0], False))

    def _follow(self, name: str, started: dict) -> None:
        """Print a reload's progress until it ends; Ctrl-C stops waiting, not the reload."""
        said, ours = set(), started
        if started["phase"] in (RolloutPhase.RECORDED.value, RolloutPhase.STARTED.value):  # it was not running
            self._say(started["message"])
            return self._wait_running(name) if started["phase"] == RolloutPhase.STARTED.value else None
        try:
            if started["slots_total"] == 1:
                self._say(f"{name}: {started['kind']} started: candidate pid {started['new_pid']} running "
                          f"{started['new_path']}")
            else:
                self._say(f"{name}: {started['kind']} started: {started['slots_total']} processes to "
                          f"{started['new_path']}, one slot after another")
            while True:
                last = self._last_reload(name)
                if last.get("id") != started["id"]:  # a newer reload (or update, SIGHUP) replaced ours
                    if ours["slots_done"] == ours["slots_total"]:
                        self._say(done_line(name, ours))
                    else:
                        self._fail(None, f"ERROR: {name}: another reload replaced this one; "
                                         f"see littleboss:status --history {name}")
                    return
                ours = last
                if last["phase"] == RolloutPhase.FAILED.value:
                    self._fail(last["fault_code"], f"ERROR: {last['error']}")
                    return
                self._progress(name, last, said)
                if last["phase"] == RolloutPhase.DONE.value:
                    self._say_status(name)
                    self._say(done_line(name, last))  # the last line, as scripts read it
                    return
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self._interrupted(f"{name}: stopped waiting; the {started['kind']} goes on in supervisord "
                              f"(see: littleboss:status {name})")
        except OSError as exc:
            self._fail(None, f"ERROR: lost supervisord at {self.ctl.options.serverurl} while the {started['kind']} "
                             f"ran ({exc}): its outcome is unknown; see littleboss:status {name} once it is back")

    def _last_reload(self, name: str) -> dict:
        """The program's last reload, asked through supervisord's own reload: the reload goes on."""
        return through_restart(lambda: self.rpc.getProgramInfo(name)["last_reload"])

    def _say_status(self, name: str) -> None:
        """The program's last ``STATUS=``, if it sent one: what the new binary says of itself."""
        status = self.rpc.getProgramInfo(name)["notify_status"]
        if status:
            self._say(f"{name}: status {status}")

    def _wait_running(self, name: str) -> None:
        """Wait until a program started on a new binary has left STARTING."""
        while (info := self.rpc.getProgramInfo(name))["statename"] == "STARTING":
            time.sleep(POLL_SECONDS)
        if info["statename"] == "RUNNING":
            self._say(f"{name}: RUNNING (pid {info['pid']})")
        else:
            spawnerr = info["processes"][0]["spawnerr"]
            self._fail(LittlebossFaults.EXITED_BEFORE_READY,
                       f"ERROR: {name}: {info['path']} did not start: it is {info['statename']}"
                       + (f" ({spawnerr})" if spawnerr else ""))

    def _progress(self, name: str, last: dict, said: set) -> None:
        """A line per step of each slot (started, ready, promoted), once."""
        slots = last["slots"]
        for slot in slots:
            label, pid = slot_label(name, slots, slot), slot["candidate_pid"]
            for step in steps_reached(slot["phase"]):
                if (slot["slot"], step) in said or (step == "started" and len(slots) == 1):
                    continue
                said.add((slot["slot"], step))
                self._say(f"{label}: {step_line(step, pid, slot['old_pid'])}")
            check = slot.get("check", "")
            if check and (slot["slot"], "check", check) not in said:  # each new outcome of its check, once
                said.add((slot["slot"], "check", check))
                self._say(f"{label}: {check_line(slot)}")
        holding = RolloutPhase.HOLDING.value
        if last["phase"] == holding and holding not in said:
            said.add(holding)
            until = (f"until littleboss:promote {name}" if last["held_until"] < 0 else
                     "until " + time.strftime("%H:%M:%S", time.localtime(last["held_until"])))
            self._say(f"{name}: canary: {last['slots_done']} of {last['slots_total']} processes run "
                      f"{last['new_path']}; holding {until} (littleboss:abort {name} swaps them back)")
        rolling_back = RolloutPhase.ROLLING_BACK.value
        if last["phase"] == rolling_back and rolling_back not in said:
            said.add(rolling_back)
            self._say(f"{name}: a process failed; swapping the switched processes back to {last['old_path']}")

    def _status(self, args: list[str]) -> None:
        history = "--history" in args
        names = [arg for arg in args if arg != "--history"]
        unknown = [arg for arg in names if arg.startswith("-")]
        if unknown:
            raise UsageError(f"status has no option {unknown[0]}")
        infos = [self.rpc.getProgramInfo(name) for name in names] if names else self.rpc.getAllProgramInfo()
        supervisor = self.ctl.get_supervisor()
        for info in infos:
            self._say(status_line(info, supervisor))
            if history:
                for entry in info["history"] or [None]:
                    self._say(f"  {history_line(entry)}")

    def _upgrade(self, args: list[str]) -> None:
        """Upgrade supervisord in place, then wait until it answers again on the new code."""
        if args:
            raise UsageError("upgrade takes no arguments")
        try:
            before = self.rpc.getRunInfo()
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != Faults.UNKNOWN_METHOD:
                raise
            self.rpc.getAPIVersion()  # UNKNOWN_METHOD again: no littleboss interface at all (said as for any command)
            self._fail(None, "ERROR: supervisord runs a littleboss release without in-place upgrades: restart "
                             "supervisord once (every program restarts) to run the installed one; from then on "
                             "littleboss:upgrade upgrades it in place")
            return
        pid = before["pid"]
        try:
            answer = self.rpc.upgrade()  # once supervisord has tried the installed code (about a second)
        except KeyboardInterrupt:
            self._interrupted(f"supervisord (pid {pid}): stopped before it answered; nothing changes, unless its "
                              "answer was already on its way (then the upgrade goes on)")
            return
        self._say(f"supervisord (pid {pid}) is being upgraded in place: "
                  f"{version_changes(answer['from'], answer['to'])}; littleboss programs run on, other programs "
                  "restart")
        try:
            after = through_restart(lambda: self.rpc.getRunInfo())  # a new connection each time
        except KeyboardInterrupt:
            self._interrupted(f"supervisord (pid {pid}): stopped waiting; the upgrade goes on in supervisord "
                              "(supervisorctl status shows the programs once it answers again)")
            return
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != Faults.SHUTDOWN_STATE:
                raise
            self._fail(None, f"ERROR: supervisord (pid {pid}) was still stopping its programs {RELOAD_WAIT} s "
                             "after its upgrade began (a program slow to stop: its stopwaitsecs); the upgrade "
                             "goes on: see supervisord's log")
            return
        except OSError as exc:
            self._fail(None, f"ERROR: supervisord (pid {pid}) did not answer again within {RELOAD_WAIT} s of its "
                             f"upgrade ({exc}): see supervisord's log. If supervisord is gone, start it again: it "
                             "takes the programs back as after a kill -9 (littleboss programs' sockets taken "
                             "back, programs started again)")
            return
        problem = upgrade_problem(before, after, answer["upgrade"])
        if problem:
            self._fail(None, f"ERROR: {problem}; see supervisord's log")
            return
        self._say(upgraded_line(before, after, self.rpc.getAllProgramInfo()))  # the last line, as scripts read it

    # --- supervisorctl's update ----------------------------------------------------------
    def _update_in_place(self, arg: str) -> None:
        """Before supervisorctl's ``update`` runs: each changed littleboss program (of those
        named, or all) takes up its new configuration in place, its processes swapped with
        zero downtime (littleboss.applyConfig); ``update`` then finds nothing to do for it.
        Programs it cannot apply in place are left to ``update`` (stop, then start)."""
        try:
            changed = self.ctl.get_supervisor().reloadConfig()[0][1]
        except (xmlrpc.client.Fault, OSError):
            return  # update itself says what is wrong
        wanted = set(arg.split()) - {"all"}
        for name in changed:
            if wanted and name not in wanted:
                continue
            try:
                answer = self.rpc.applyConfig(name, True)
            except xmlrpc.client.Fault as fault:
                if fault.faultCode not in LEFT_TO_UPDATE:
                    self._fail(fault.faultCode, f"ERROR: {fault.faultString}")
                continue
            self._say(done_line(name, answer["reload"]) if answer["reload"] else answer["message"])

    # --- completion -----------------------------------------------------------------
    def _complete(self, text: str, line: str) -> list[str]:
        words = line.replace(":", " ", 1).split()
        completing_subcommand = len(words) == 1 or (len(words) == 2 and not line.endswith(" "))
        if completing_subcommand:
            # supervisorctl keeps ':' in words, so the text may be "littleboss:re"
            prefix, colon, text = text.rpartition(":")
            return [f"{prefix}{colon}{sub} " for sub in SUBCOMMANDS if sub.startswith(text)]
        takes_names = len(words) > 1 and words[1] in TAKES_NAMES
        if takes_names and (len(words) == 2 or (len(words) == 3 and not line.endswith(" "))):
            names = [info["name"] for info in self.rpc.getAllProgramInfo()]
            return [f"{name} " for name in names if name.startswith(text)]
        return []


def through_restart(ask: Callable[[], T]) -> T:
    """``ask()``'s answer. While supervisord reloads (or re-executes itself) it refuses calls
    (SHUTDOWN_STATE), then its socket is gone a moment: ``ask`` is tried again every
    POLL_SECONDS for up to RELOAD_WAIT seconds, after which the last refusal or OSError is raised."""
    deadline = time.monotonic() + RELOAD_WAIT
    while True:
        try:
            return ask()
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != Faults.SHUTDOWN_STATE or time.monotonic() > deadline:
                raise
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(POLL_SECONDS)


def upgrade_problem(before: dict, after: dict, upgrade: int) -> str:
    """Why supervisord, answering ``after`` (getRunInfo) once back from upgrade number ``upgrade``,
    was not upgraded in place ('' if it was); ``before`` is its getRunInfo before the upgrade.
    (It refuses getRunInfo from the upgrade's answer until its next run: any answer is of that run.)"""
    pid = before["pid"]
    if after["pid"] != pid:
        return f"supervisord answers with pid {after['pid']}, not {pid}: it was started again, not upgraded in place"
    if after["upgrades"] >= upgrade:
        return ""
    if after["started"] != before["started"]:  # new code runs, but it did not take the handover up
        return (f"supervisord (pid {pid}) re-executed itself, but its new code did not take the programs' processes "
                "up: they were recovered as after a kill -9 of supervisord (littleboss programs' sockets taken back, "
                "programs started again)")
    return f"supervisord (pid {pid}) did not re-execute itself: it reloaded on the code it already ran"


def upgraded_line(before: dict, after: dict, programs: list[dict]) -> str:
    """The last line of ``littleboss:upgrade``: what runs now, and how many littleboss programs
    (``programs``: getAllProgramInfo) are RUNNING."""
    running = sum(info["statename"] == "RUNNING" for info in programs)
    noun = "program" if len(programs) == 1 else "programs"
    count = f"{running}" if running == len(programs) else f"{running} of {len(programs)}"
    return (f"supervisord upgraded in place: pid {after['pid']}, {version_changes(before, after)}; "
            f"{count} littleboss {noun} running")


def canary_options(args: list[str]) -> tuple[list[str], int, float]:
    """``--canary K`` and ``--hold [SECONDS]`` taken out of a reload's arguments: (the rest, K
    (0: none), the hold in seconds, -1: until promoted)."""
    rest, canary, hold = [], 0, -1.0
    words = iter(args)
    for word in words:
        if word == "--canary":
            value = next(words, "")
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"--canary takes a number of processes, 1 or more, not {value!r}")
            canary = int(value)
        elif word == "--hold":
            value = next(words, None)
            try:
                hold = float(value)
            except (TypeError, ValueError):  # no time: until promoted (the word is the name or path)
                hold = -1.0
                rest += [] if value is None else [value]
            else:
                if not 0 <= hold < 1e9:
                    raise UsageError(f"--hold takes seconds, 0 or more, not {value!r}")
        elif word.startswith("--"):
            raise UsageError(f"reload has no option {word}")
        else:
            rest.append(word)
    if "--hold" in args and not canary:
        raise UsageError("--hold goes with --canary K")
    return rest, canary, hold


def status_line(info: dict, supervisor) -> str:
    """A program's line in ``littleboss:status``; ``supervisor`` is supervisord's namespace."""
    processes = info["processes"]
    if len(processes) == 1:
        description = supervisor.getProcessInfo(f"{info['name']}:{processes[0]['name']}")["description"]
    else:
        description = f"{len(processes)} processes: " + ", ".join(
            f"{p['name']} {p['statename']} pid {p['pid']}" for p in processes)
    sockets = ", ".join(f"{s['name']}={s['url']}" for s in info["sockets"])
    phase = info["phase"]
    if info["candidate_pid"]:
        phase += f" (candidate pid {info['candidate_pid']})"
    if info["draining_pids"]:
        phase += f", draining pid {', '.join(map(str, info['draining_pids']))}"
    status = f"  status {info['notify_status']}" if info["notify_status"] else ""  # its last STATUS=
    return (f"{info['name']:<32} {info['statename']:<9} {description}  binary {info['path']}  "
            f"previous {info['previous_path'] or '-'}  sockets {sockets}  reload {phase}{status}")


def history_line(entry: dict | None) -> str:
    """One entry of a program's history (None: it has none)."""
    if entry is None:
        return "no reloads yet"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["time"]))
    seconds = f"  {entry['seconds']:.2f}s" if "seconds" in entry else ""
    return f"{when}  {entry['kind']:<8} {entry['from']} \u2192 {entry['to']}  {entry['outcome']}{seconds}"


def make_littleboss_controllerplugin(controller, **config) -> LittlebossControllerPlugin:
    """Factory for ``[ctlplugin:littleboss]``."""
    return LittlebossControllerPlugin(controller, **config)

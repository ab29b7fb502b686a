"""The littleboss page of supervisord's web UI: ``/littleboss.html``.

One section per littleboss program (state, pids, binary, previous binary, sockets, the
reload under way with each slot's progress, the last ``STATUS=``, the history) and two
actions, each a POST: roll back, and reload to a path. An action carries the form's
token, made afresh for each supervisord run, so a form replayed from another site
cannot trigger one. It starts the reload (as ``littleboss.reload`` with ``wait``
false) and redirects to the page, which refreshes itself every second while that
reload runs, then says how it ended. Served by supervisord's own web server, behind
its authentication; rendered with its templating (meld3), which escapes every value.
"""
from __future__ import annotations

import functools
import hmac
import os
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from supervisor.options import VERSION
from supervisor.web import MeldView
from supervisor.xmlrpc import RPCError

from . import __version__
from .outcome import done_line

if TYPE_CHECKING:
    from .rpcinterface import LittlebossNamespaceRPCInterface

PAGE = "littleboss.html"
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", PAGE)
TOKEN = secrets.token_urlsafe(24)  # this supervisord run's: a new process makes a new one
RUNNING_PHASES = ("starting", "settling", "rolling back")  # the reload still decides


class LittlebossView(MeldView):
    """Renders the page; a POST with the right token runs an action, then redirects."""

    delay = 0.05

    def __init__(self, context, rpc: LittlebossNamespaceRPCInterface) -> None:
        super().__init__(context)
        self.rpc = rpc

    def render(self) -> str:
        form, response, rpc = self.context.form, self.context.response, self.rpc
        if form.get("REQUEST_METHOD") == "POST":
            if not hmac.compare_digest(form.get("token", ""), TOKEN):
                self.context.request.reply_code = 403
                return self._page(rpc, "refused: this form is not from this supervisord's page (or it "
                                       "restarted since): reload the page and try again", error=True)
            response["headers"]["Location"] = f"{form['SERVER_URL']}/{PAGE}?" + urlencode(self._act(rpc, form))
            return ""
        message, error, watching = "", form.get("error") == "1", False
        if form.get("program") and form.get("watch", "").isdigit():
            message, error, watching = self._watch(rpc, form["program"], int(form["watch"]))
        return self._page(rpc, message or form.get("message", ""), error, watching)

    @staticmethod
    def _act(rpc: LittlebossNamespaceRPCInterface, form: dict) -> dict:
        """Start the action; the query string of the page that follows it."""
        name = form.get("program", "")
        try:
            if form.get("action") == "rollback":
                started = rpc.rollback(name, False)
            elif form.get("action") == "reload":
                started = rpc.reload(name, form.get("path", "").strip(), False)
            else:
                return {"message": f"unknown action {form.get('action')!r}", "error": "1"}
        except RPCError as exc:
            return {"message": exc.text, "error": "1"}
        if "id" not in started:  # the program was not running: nothing to follow
            return {"message": started["message"]}
        return {"program": name, "watch": started["id"]}

    @staticmethod
    def _watch(rpc: LittlebossNamespaceRPCInterface, name: str, reload_id: int) -> tuple[str, bool, bool]:
        """(message, error, still running) about reload ``reload_id`` of ``name``."""
        try:
            last = rpc.getProgramInfo(name)["last_reload"]
        except RPCError as exc:
            return exc.text, True, False
        if last.get("id") != reload_id:
            return f"{name}: another reload replaced this one; see its history below", True, False
        if last["phase"] == "failed":
            return last["error"], True, False
        if last["phase"] in RUNNING_PHASES or last["slots_done"] < last["slots_total"]:
            return (f"{name}: {last['kind']} to {last['new_path']}: {last['phase']} "
                    f"({last['slots_done']} of {last['slots_total']} processes switched)"), False, True
        return done_line(name, last), False, last["phase"] == "draining"

    def _page(self, rpc: LittlebossNamespaceRPCInterface, message: str, error: bool = False,
              watching: bool = False) -> str:
        root = self.clone()
        if not watching:
            root.findmeld("refresh").deparent()
        if message:
            area = root.findmeld("statusmessage")
            area.attrib["class"] = "status_msg error" if error else "status_msg"
            area.content(message)
        programs = rpc.getAllProgramInfo()
        if programs:
            for section, info in root.findmeld("program").repeat(programs):
                fill_program(section, info)
        else:
            root.findmeld("program").replace("No littleboss programs (none has littleboss_sockets)")
        root.findmeld("supervisor_version").content(VERSION)
        root.findmeld("littleboss_version").content(__version__)
        return root.write_xhtmlstring()


def fill_program(section, info: dict) -> None:
    """One program's section of the page."""
    name = info["name"]
    section.attributes(id=f"program-{name}")
    section.findmeld("program_name").content(name)
    section.findmeld("state").content(info["statename"])
    for item, process in section.findmeld("process").repeat(info["processes"]):
        tail, namespec = item.findmeld("process_tail"), f"{name}:{process['name']}"
        tail.attributes(href=f"tail.html?processname={quote(namespec)}")
        tail.content(process["name"])
        item.findmeld("process_state").content(process["statename"])
        item.findmeld("process_pid").content(str(process["pid"]))
    section.findmeld("path").content(info["path"])
    section.findmeld("previous").content(info["previous_path"] or "-")
    sockets = [f"{s['name']}={s['url']} on fd {s['fd']}" for s in info["sockets"]]
    for item, text in section.findmeld("socket").repeat(sockets):
        item.findmeld("socket_text").content(text)
    fill_reload(section, info)
    section.findmeld("notify_status").content(info["notify_status"] or "-")
    for field in ("rollback_token", "reload_token"):
        section.findmeld(field).attributes(value=TOKEN)
    for field in ("rollback_program", "reload_program"):
        section.findmeld(field).attributes(value=name)
    section.findmeld("reload_path").attributes(value=info["path"])
    if not info["previous_path"]:
        section.findmeld("rollback_button").attributes(disabled="disabled", title="no previous binary")
    history = list(reversed(info["history"]))
    if not history:
        section.findmeld("history").replace("No reload yet.")
        return
    for row, entry in section.findmeld("entry").repeat(history):
        row.findmeld("entry_time").content(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["time"])))
        for field in ("kind", "from", "to", "outcome"):
            row.findmeld(f"entry_{field}").content(str(entry[field]))
        row.findmeld("entry_seconds").content(f"{entry['seconds']:.2f}" if "seconds" in entry else "")


def fill_reload(section, info: dict) -> None:
    """The reload under way, with a line per slot of a program with several processes."""
    last = info["last_reload"]
    section.findmeld("phase").content(info["phase"])
    slots = last.get("slots", []) if info["phase"] != "idle" and len(last.get("slots", [])) > 1 else []
    if not slots:
        section.findmeld("slots").deparent()
        return
    for item, slot in section.findmeld("slot").repeat(slots):
        item.content(f"{slot['process']}: {slot['phase']} (old pid {slot['old_pid']}, "
                     f"candidate pid {slot['candidate_pid'] or '-'})")


def littleboss_view(rpc: LittlebossNamespaceRPCInterface) -> dict:
    """The page's entry in supervisord's web views, answering through ``rpc``."""
    return {"template": TEMPLATE, "view": functools.partial(LittlebossView, rpc=rpc)}

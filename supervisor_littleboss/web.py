"""The littleboss page of supervisord's web UI: ``/littleboss.html``.

One section per littleboss program (state, pids, binary, previous binary, sockets, the
reload under way with each slot's progress, the last ``STATUS=``, the history) and two
actions, each a POST: roll back (after a confirmation: the Roll back button is a GET
that asks, naming both binaries), and reload to a path. An action carries the form's
token, made afresh for each supervisord run, so a form replayed from another site
cannot trigger one. It starts the reload (as ``littleboss.reload`` with ``wait``
false) and redirects to the page, which refreshes itself every second while that
reload runs, then says how it ended; the path field keeps the path typed. Served by
supervisord's own web server, behind its authentication; rendered with its templating
(meld3), which escapes every value. supervisord's status page links to it.
"""
from __future__ import annotations

import functools
import hmac
import html
import os
import secrets
import time
from typing import Protocol
from urllib.parse import quote, urlencode

from supervisor.options import VERSION
from supervisor.web import MeldView
from supervisor.xmlrpc import RPCError

from . import __version__
from .contract import DECIDING_PHASES, IDLE, RolloutPhase
from .outcome import done_line, plural

PAGE = "littleboss.html"
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", PAGE)
TOKEN = secrets.token_urlsafe(24)  # this supervisord run's: a new process makes a new one
NOT_RUNNING_PHASES = (RolloutPhase.RECORDED.value, RolloutPhase.STARTED.value)  # a reload's answer: nothing to follow


class Littleboss(Protocol):
    """The ``littleboss`` XML-RPC namespace as the page calls it (``rpcinterface.py`` serves it)."""

    def getProgramInfo(self, name: str) -> dict: ...
    def getAllProgramInfo(self) -> list: ...
    def reload(self, name: str, path: str = "", wait: bool = True): ...
    def rollback(self, name: str, wait: bool = True): ...
    def promote(self, name: str) -> dict: ...
    def abort(self, name: str) -> dict: ...


class LittlebossView(MeldView):
    """Renders the page; a POST with the right token runs an action, then redirects."""

    delay = 0.05

    def __init__(self, context, rpc: Littleboss) -> None:
        super().__init__(context)
        self.rpc = rpc

    def render(self) -> str:
        form, response, rpc = self.context.form, self.context.response, self.rpc
        if form.get("REQUEST_METHOD") == "POST":
            if not hmac.compare_digest(form.get("token", ""), TOKEN):
                self.context.request.reply_code = 403
                return self._page(rpc, "refused: this form is not from this supervisord's page (or it "
                                       "restarted since): reload the page and try again", error=True,
                                  typed=typed_path(form))
            response["headers"]["Location"] = f"{form['SERVER_URL']}/{PAGE}?" + urlencode(self._act(rpc, form))
            return ""
        name, confirm = form.get("program", ""), None
        message, error, watching = form.get("message", ""), form.get("error") == "1", False
        if name and form.get("watch", "").isdigit():
            message, error, watching = self._watch(rpc, name, int(form["watch"]))
        if name and form.get("confirm") == "rollback":
            confirm, message = self._to_confirm(rpc, name)
            error = bool(message)
        return self._page(rpc, message, error, watching, confirm, typed_path(form))

    @staticmethod
    def _act(rpc: Littleboss, form: dict) -> dict:
        """Start the action; the query string of the page that follows it (with the path typed)."""
        name, path = form.get("program", ""), form.get("path", "").strip()
        typed = {"program": name, "path": path} if path else {}
        try:
            started = start_action(rpc, form.get("action", ""), name, path, form.get("previous", ""))
        except RPCError as exc:
            return {"message": exc.text, "error": "1", **typed}
        except Refused as exc:
            return {"message": str(exc), "error": "1", **typed}
        if started["phase"] in NOT_RUNNING_PHASES:  # the program was not running: nothing to follow
            return {"message": started["message"], **typed}
        return {"program": name, "watch": started["id"], **typed}

    @staticmethod
    def _to_confirm(rpc: Littleboss, name: str) -> tuple[dict | None, str]:
        """(the program whose roll back to confirm, or None and why not)."""
        try:
            info = rpc.getProgramInfo(name)
        except RPCError as exc:
            return None, exc.text
        if not info["previous_path"]:
            return None, f"{name}: no previous binary to roll back to"
        return info, ""

    @staticmethod
    def _watch(rpc: Littleboss, name: str, reload_id: int) -> tuple[str, bool, bool]:
        """(message, error, still running) about reload ``reload_id`` of ``name``."""
        try:
            last = rpc.getProgramInfo(name)["last_reload"]
        except RPCError as exc:
            return exc.text, True, False
        if last.get("id") != reload_id:
            return f"{name}: another reload replaced this one; see its history below", True, False
        if last["phase"] == RolloutPhase.FAILED.value:
            return last["error"], True, False
        if last["phase"] in DECIDING_PHASES or last["slots_done"] < last["slots_total"]:
            return (f"{name}: {last['kind']} to {last['new_path']}: {last['phase']} "
                    f"({last['slots_done']} of {last['slots_total']} processes switched)"), False, True
        return done_line(name, last), False, last["phase"] == RolloutPhase.DRAINING.value

    def _page(self, rpc: Littleboss, message: str, error: bool = False,
              watching: bool = False, confirm: dict | None = None, typed: dict[str, str] | None = None) -> str:
        root = self.clone()
        if not watching:
            root.findmeld("refresh").deparent()
        if message:
            area = root.findmeld("statusmessage")
            area.attrib["class"] = "status_msg error" if error else "status_msg"
            area.content(literal(message))
        if confirm:
            fill_confirm(root.findmeld("confirm"), confirm)
        else:
            root.findmeld("confirm").deparent()
        programs = rpc.getAllProgramInfo()
        if programs:
            for section, info in root.findmeld("program").repeat(programs):
                fill_program(section, info, (typed or {}).get(info["name"], info["path"]))
        else:
            root.findmeld("program").replace("No littleboss programs (none has littleboss_sockets)")
        root.findmeld("supervisor_version").content(VERSION)
        root.findmeld("littleboss_version").content(__version__)
        return root.write_xhtmlstring()


class Refused(Exception):
    """An action the page refuses before asking littleboss; the message says why."""


def start_action(rpc: Littleboss, action: str, name: str, path: str, confirmed: str) -> dict:
    """Start a reload to ``path``, or the roll back to ``confirmed`` (the previous binary the
    confirmation named: if it changed since, nothing starts)."""
    if action == "reload":
        return rpc.reload(name, path, False)
    if action == "promote":  # a canary that holds
        return rpc.promote(name)
    if action == "abort":
        return rpc.abort(name)
    if action != "rollback":
        raise Refused(f"unknown action {action!r}")
    previous = rpc.getProgramInfo(name)["previous_path"]
    if previous != confirmed:
        raise Refused(f"{name}: not rolled back: its previous binary is {previous or 'none'}, not "
                      f"{confirmed or 'none'} as confirmed; press Roll back again to confirm the roll back to it")
    return rpc.rollback(name, False)


def typed_path(form: dict) -> dict[str, str]:
    """{program: the path typed in its reload field} when the request carries one."""
    return {form["program"]: form["path"]} if form.get("program") and form.get("path") else {}


def fill_confirm(box, info: dict) -> None:
    """The question before a roll back of ``info``'s program, with the form that confirms it."""
    box.findmeld("confirm_name").content(info["name"])
    show_path(box.findmeld("confirm_path"), info["path"])
    show_path(box.findmeld("confirm_previous"), info["previous_path"])
    box.findmeld("confirm_token").attributes(value=TOKEN)
    box.findmeld("confirm_program").attributes(value=info["name"])
    box.findmeld("confirm_expected").attributes(value=literal(info["previous_path"]))
    box.findmeld("confirm_button").attributes(value=f"Roll back {info['name']}")


def fill_program(section, info: dict, path_field: str) -> None:
    """One program's section of the page, ``path_field`` in its reload field."""
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
    show_path(section.findmeld("path"), info["path"])
    show_path(section.findmeld("previous"), info["previous_path"] or "-")
    sockets = [f"{s['name']}={s['url']} on fd {s['fd']}" for s in info["sockets"]]
    for item, text in section.findmeld("socket").repeat(sockets):
        item.findmeld("socket_text").content(text)
    fill_reload(section, info)
    section.findmeld("notify_status").content(literal(info["notify_status"] or "-"))
    section.findmeld("reload_token").attributes(value=TOKEN)
    for field in ("rollback_program", "reload_program"):
        section.findmeld(field).attributes(value=name)
    if info["phase"] == RolloutPhase.HOLDING.value:  # a canary holds: promote it, or abort
        section.findmeld("hold_token").attributes(value=TOKEN)
        section.findmeld("hold_program").attributes(value=name)
    else:
        section.findmeld("hold_form").deparent()
    section.findmeld("reload_path").attributes(value=literal(path_field))
    if not info["previous_path"]:
        section.findmeld("rollback_button").attributes(disabled="disabled", title="no previous binary")
    history = list(reversed(info["history"]))
    if not history:
        section.findmeld("history").replace("No reload yet.")
        return
    for row, entry in section.findmeld("entry").repeat(history):
        row.findmeld("entry_time").content(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["time"])))
        for field in ("kind", "outcome"):
            row.findmeld(f"entry_{field}").content(str(entry[field]))
        for field in ("from", "to"):
            show_path(row.findmeld(f"entry_{field}"), str(entry[field]))
        row.findmeld("entry_seconds").content(f"{entry['seconds']:.2f}" if "seconds" in entry else "")


def literal(text: str) -> str:
    """``text`` for meld3, which escapes ``<`` and ``"`` but leaves an entity-like ``&name;``
    as it is: shown (or sent back, from a field) as written, not as that character."""
    return text.replace("&", "&amp;")


def show_path(element, path: str) -> None:
    """``path`` as the element's text (escaped), which a narrow column wraps after a slash."""
    element.content("/<wbr />".join(html.escape(part) for part in path.split("/")), structure=True)


def fill_reload(section, info: dict) -> None:
    """The reload under way, with a line per slot of a program with several processes."""
    last = info["last_reload"]
    draining = ", ".join(f"pid {process['pid']} draining with {plural(process['connections'], 'connection')}"
                         for process in info.get("draining", []))
    section.findmeld("phase").content(info["phase"] + (f" ({draining})" if draining else ""))
    slots = last.get("slots", []) if info["phase"] != IDLE and len(last.get("slots", [])) > 1 else []
    if not slots:
        section.findmeld("slots").deparent()
        return
    for item, slot in section.findmeld("slot").repeat(slots):
        item.content(f"{slot['process']}: {slot['phase']} (old pid {slot['old_pid']}, "
                     f"candidate pid {slot['candidate_pid'] or '-'})")


def littleboss_view(rpc: Littleboss) -> dict:
    """The page's entry in supervisord's web views, answering through ``rpc``."""
    return {"template": TEMPLATE, "view": functools.partial(LittlebossView, rpc=rpc)}

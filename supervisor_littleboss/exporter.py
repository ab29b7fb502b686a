"""``/littleboss/metrics``: littleboss's Prometheus metrics, served by supervisord's web server
behind its authentication, in the text exposition format (gzipped when the client accepts it, as
Prometheus does).

Counters and histograms come from the state file (they survive supervisord's reloads, upgrades
and restarts, so a rate never goes negative); gauges are read when scraped: processes by role,
the connections draining processes still hold, each held socket's accept queue.

A scrape costs supervisord little however many programs it runs: each program's values are read
as plain values (``Snapshot``), and its lines are formatted again only when they differ from the
last scrape's; the page (and its gzip) is put together again only when something in it changed;
and it goes out in as few sends as the socket takes (``glue.send_at_once``), not 4 kB per pass of
supervisord's main loop.
"""
from __future__ import annotations

import gzip
import itertools
from typing import NamedTuple

from .connections import accept_queue
from .contract import RolloutPhase
from .glue import request_header, send_at_once
from .metrics import CONTENT_TYPE, HISTOGRAMS, Family, render
from .preflight import RUNNING
from .process import Role

PATH = "littleboss/metrics"
KINDS = ("reload", "rollback", "fallback", "config")  # counted from 0, so that a rate exists from the start
OUTCOMES = ("succeeded", "failed")
HELP = {
    "duration": "Seconds from a reload's start to its last promotion (or failure)",
    "ready": "Seconds from a candidate's start to its READY=1 (or startsecs)",
    "drain": "Seconds from a promotion to the replaced process's exit",
}
ROLES = (Role.SERVING, Role.CANDIDATE, Role.DRAINING)  # Snapshot.roles' order


class Snapshot(NamedTuple):
    """What one program shows in the metrics, as plain values: read at each scrape, and
    compared with the last scrape's (a metric shown is a field here, read in ``snapshot``)."""

    reloads: tuple[tuple[str, int], ...]  # ("kind outcome", count): the state file's counts
    histograms: tuple[tuple[tuple[int, ...], float, int], ...]  # HISTOGRAMS': (buckets, sum, count)
    roles: tuple[int, ...]  # running processes in each of ROLES
    in_progress: int
    held: int
    connections: int  # held by draining processes
    sockets: tuple[tuple[str, int, int], ...]  # each held TCP listening socket's (name, queued, backlog)
    path: str
    previous: str


def snapshot(group) -> Snapshot:
    """A program's values now (at every scrape, for every program: kept lean)."""
    metrics = group.binaries.state.metrics
    roles = [process.role for process in group.all_processes() if process.pid]
    draining = roles.count(Role.DRAINING)
    sockets = []
    for spec, sock in zip(group.sockets, group.listeners, strict=False):
        queued = accept_queue(sock)
        if queued is not None:
            sockets.append((spec.name, *queued))
    rollout = group.rollout
    return Snapshot(
        tuple(metrics["reloads"].items()),
        tuple([(tuple(metrics[name]["buckets"]), metrics[name]["sum"], metrics[name]["count"]) for name in HISTOGRAMS]),
        (roles.count(Role.SERVING), roles.count(Role.CANDIDATE), draining),
        int(bool(rollout and rollout.active)),
        int(bool(rollout and rollout.phase is RolloutPhase.HOLDING)),
        # only draining processes hold any: none, no look at the kernel's tables
        sum(group.draining_connections().values()) if draining else 0,
        tuple(sockets),
        group.current_path(),
        group.binaries.previous or "",
    )


def program_families(name: str, values: Snapshot) -> list[Family]:
    """The families a program shows (every one, in the page's order), with its samples."""
    program = {"program": name}
    reloads = Family("littleboss_reloads_total", "counter", "Reloads of a program, by kind and outcome")
    counts = {**{f"{kind} {outcome}": 0 for kind in KINDS for outcome in OUTCOMES}, **dict(values.reloads)}
    for key, count in sorted(counts.items()):
        kind, outcome = key.split(" ", 1)
        reloads.add({**program, "kind": kind, "outcome": outcome}, count)
    histograms = [Family(f"littleboss_reload_{histogram}_seconds", "histogram", HELP[histogram]).add(
        program, {"buckets": list(buckets), "sum": total, "count": count})
        for histogram, (buckets, total, count) in zip(HISTOGRAMS, values.histograms, strict=True)]
    processes = Family("littleboss_processes", "gauge", "Running processes of a program, by role")
    for role, count in zip(ROLES, values.roles, strict=True):
        processes.add({**program, "role": role.value}, count)
    queue = Family("littleboss_socket_accept_queue", "gauge",
                   "Connections waiting to be accepted on a held TCP listening socket")
    backlog = Family("littleboss_socket_backlog", "gauge", "The accept queue's limit of a held TCP listening socket")
    for socket_name, queued, limit in values.sockets:
        queue.add({**program, "socket": socket_name}, queued)
        backlog.add({**program, "socket": socket_name}, limit)
    return [
        reloads, *histograms, processes,
        Family("littleboss_reload_in_progress", "gauge", "1 while a reload of the program decides").add(
            program, values.in_progress),
        Family("littleboss_reload_held", "gauge", "1 while a canary reload of the program holds").add(
            program, values.held),
        Family("littleboss_draining_connections", "gauge",
               "Established connections still held by a program's draining processes").add(program, values.connections),
        queue, backlog,
        Family("littleboss_binary_info", "gauge", "The binary a program runs, and the previous one").add(
            {**program, "path": values.path, "previous": values.previous}, 1),
    ]


def supervisord_families(plugin) -> list[Family]:
    """supervisord's own families, after the programs'."""
    counts = plugin.state.supervisord
    return [
        Family("littleboss_supervisord_starts_total", "counter",
               "Starts of supervisord with this state file").add({}, counts["starts"]),
        Family("littleboss_supervisord_reloads_total", "counter",
               "supervisord's own reloads (SIGHUP, supervisorctl reload)").add({}, counts["reloads"]),
        Family("littleboss_supervisord_upgrades_total", "counter",
               "In-place upgrades of supervisord (littleboss.upgrade)").add({}, counts["upgrades"]),
        Family("littleboss_build_info", "gauge", "The littleboss, supervisor and Python supervisord runs").add(
            {"littleboss": RUNNING["littleboss"], "supervisor": RUNNING["supervisor"], "python": RUNNING["python"]},
            1),
    ]


def _samples(family: Family) -> str:
    """A family's sample lines, without its HELP and TYPE."""
    return "".join(line + "\n" for line in itertools.islice(family.lines(), 2, None))


_EMPTY = Snapshot((), tuple(((), 0.0, 0) for _ in HISTOGRAMS), (0,) * len(ROLES), 0, 0, 0, (), "", "")
# each program family's HELP and TYPE lines, in the page's order
_HEADS = [render([Family(f.name, f.kind, f.help)]) for f in program_families("", _EMPTY)]


class Page:
    """The page as last put together, and each program's part of it (its snapshot, and its
    sample lines in each family)."""

    def __init__(self) -> None:
        self.programs: dict[str, tuple[Snapshot, list[str]]] = {}
        self.tail = ""  # supervisord's own families
        self.text = b""
        self._gzipped: bytes | None = None

    def update(self, plugin) -> bytes:
        """The page now: formatted again only where a program's values changed."""
        programs: dict[str, tuple[Snapshot, list[str]]] = {}
        for group in sorted(plugin.littleboss_groups(), key=lambda group: group.name):
            values = snapshot(group)
            known = self.programs.get(group.name)
            programs[group.name] = known if known and known[0] == values else \
                (values, [_samples(family) for family in program_families(group.name, values)])
        tail = render(supervisord_families(plugin))
        if tail != self.tail or len(programs) != len(self.programs) or \
                any(part is not self.programs.get(name) for name, part in programs.items()):
            parts = []
            for index, head in enumerate(_HEADS):
                parts.append(head)
                parts.extend(lines[index] for _, lines in programs.values())
            parts.append(tail)
            self.programs, self.tail, self.text, self._gzipped = programs, tail, "".join(parts).encode(), None
        return self.text

    def gzipped(self) -> bytes:
        """The page, gzipped (level 1: the text is repetitive, a faster level shrinks it as much)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.text, compresslevel=1, mtime=0)
        return self._gzipped


PAGE = Page()  # supervisord's one page (kept across its reloads: a program's part is its values')


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header names gzip (with no q=0)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            name, _, value = params.strip().partition("=")
            try:
                return name.strip().lower() != "q" or float(value) > 0
            except ValueError:
                return False
    return False


class MetricsView:
    """supervisord's web server view (``web.VIEWS``) of the metrics: text, not a template."""

    delay = 0

    def __init__(self, context) -> None:
        self.context = context

    def __call__(self) -> dict:
        plugin = self.context.supervisord.options.littleboss
        request = self.context.request
        headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
        body = PAGE.update(plugin)
        if accepts_gzip(request_header(request, "Accept-Encoding")):
            body, headers["Content-Encoding"] = PAGE.gzipped(), "gzip"
        send_at_once(request, len(body) + 4096)  # and the response's head
        return {"headers": headers, "body": body}


VIEW = {"template": None, "view": MetricsView}

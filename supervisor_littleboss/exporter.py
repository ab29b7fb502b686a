"""``/littleboss/metrics``: littleboss's Prometheus metrics, served by supervisord's web server
behind its authentication, in the text exposition format.

Counters and histograms come from the state file (they survive supervisord's reloads, upgrades
and restarts, so a rate never goes negative); gauges are read when scraped: processes by role,
the connections draining processes still hold, each held socket's accept queue.
"""
from __future__ import annotations

from .connections import accept_queue
from .contract import RolloutPhase
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


def families(plugin) -> list[Family]:
    """Every metric of the supervisord ``plugin`` runs in."""
    reloads = Family("littleboss_reloads_total", "counter", "Reloads of a program, by kind and outcome")
    histograms = {name: Family(f"littleboss_reload_{name}_seconds", "histogram", HELP[name]) for name in HISTOGRAMS}
    processes = Family("littleboss_processes", "gauge", "Running processes of a program, by role")
    reloading = Family("littleboss_reload_in_progress", "gauge", "1 while a reload of the program decides")
    held = Family("littleboss_reload_held", "gauge", "1 while a canary reload of the program holds")
    connections = Family("littleboss_draining_connections", "gauge",
                         "Established connections still held by a program's draining processes")
    queue = Family("littleboss_socket_accept_queue", "gauge",
                   "Connections waiting to be accepted on a held TCP listening socket")
    backlog = Family("littleboss_socket_backlog", "gauge", "The accept queue's limit of a held TCP listening socket")
    binary = Family("littleboss_binary_info", "gauge", "The binary a program runs, and the previous one")
    for group in sorted(plugin.littleboss_groups(), key=lambda group: group.name):
        program = {"program": group.name}
        metrics = group.binaries.state.metrics
        counts = {**{f"{kind} {outcome}": 0 for kind in KINDS for outcome in OUTCOMES}, **metrics["reloads"]}
        for key, count in sorted(counts.items()):
            kind, outcome = key.split(" ", 1)
            reloads.add({**program, "kind": kind, "outcome": outcome}, count)
        for name, family in histograms.items():
            family.add(program, metrics[name])
        running = [process for process in group.all_processes() if process.pid]
        for role in (Role.SERVING, Role.CANDIDATE, Role.DRAINING):
            processes.add({**program, "role": role.value}, sum(process.role is role for process in running))
        reloading.add(program, int(bool(group.rollout and group.rollout.active)))
        held.add(program, int(bool(group.rollout and group.rollout.phase is RolloutPhase.HOLDING)))
        connections.add(program, sum(group.draining_connections().values()))
        for spec, sock in zip(group.sockets, group.listeners, strict=False):
            queued = accept_queue(sock)
            if queued is not None:
                queue.add({**program, "socket": spec.name}, queued[0])
                backlog.add({**program, "socket": spec.name}, queued[1])
        binary.add({**program, "path": group.current_path(), "previous": group.binaries.previous or ""}, 1)
    counts = plugin.state.supervisord
    return [
        reloads, *histograms.values(), processes, reloading, held, connections, queue, backlog, binary,
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


class MetricsView:
    """supervisord's web server view (``web.VIEWS``) of the metrics: text, not a template."""

    delay = 0

    def __init__(self, context) -> None:
        self.context = context

    def __call__(self) -> dict:
        plugin = self.context.supervisord.options.littleboss
        return {"headers": {"Content-Type": CONTENT_TYPE}, "body": render(families(plugin)).encode()}


VIEW = {"template": None, "view": MetricsView}

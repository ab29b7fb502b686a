"""How a reload reads to people: the same words in supervisorctl, the program helper and the
web page. Everything here works on the structs ``littleboss.reload`` and
``getProgramInfo`` return."""
from __future__ import annotations

from .contract import Kind, SwapPhase


def last_lines(output: bytes, count: int) -> str:
    """The last ``count`` lines of ``output``, joined by `` | ``, control characters (which
    XML cannot carry) shown as ``?``."""
    lines = output.decode(errors="replace").strip().splitlines()[-count:]
    return " | ".join("".join(c if c.isprintable() else "?" for c in line) for line in lines)


DONE = {Kind.RELOAD.value: "reloaded", Kind.ROLLBACK.value: "rolled back",
        Kind.FALLBACK.value: "rolled back automatically", Kind.CONFIG.value: "applied its new configuration"}


def done_line(name: str, reload: dict) -> str:
    """``myblog: reloaded /old → /new (pid 123 → 456) in 1.42s``; with several processes,
    ``(4 processes: pids 1, 2, 3, 4 → 5, 6, 7, 8)``."""
    slots = reload.get("slots", [])
    if len(slots) > 1:
        old = ", ".join(str(slot["old_pid"]) for slot in slots)
        new = ", ".join(str(slot["candidate_pid"]) for slot in slots)
        pids = f"{len(slots)} processes: pids {old} \u2192 {new}"
    else:
        pids = f"pid {reload['old_pid']} \u2192 {reload['new_pid']}"
    return (f"{name}: {DONE[reload['kind']]} {reload['old_path']} \u2192 {reload['new_path']} "
            f"({pids}) in {reload['seconds']:.2f}s")


def slot_part(process: str, slot: int, count: int) -> str:
    """``web_2 (slot 3 of 4)`` for a slot of a program of several processes; empty for one."""
    return "" if count == 1 else f"{process} (slot {slot + 1} of {count})"


def slot_label(name: str, slots: list[dict], slot: dict) -> str:
    """``web`` for a one-process program, ``web: web_2 (slot 3 of 4)`` for a slot of several."""
    part = slot_part(slot["process"], slot["slot"], len(slots))
    return f"{name}: {part}" if part else name


STEPS = {  # what a slot's swap says as it moves on (the log, supervisorctl)
    "started": "candidate pid {pid} started",
    "ready": "candidate pid {pid} is ready",
    "promoted": "promoted pid {pid}; old pid {old_pid} is draining",
}


REACHED = {  # the steps a slot's swap has taken by each phase
    SwapPhase.STARTING.value: ("started",), SwapPhase.CHECKING.value: ("started", "ready"),
    SwapPhase.SETTLING.value: ("started", "ready"), SwapPhase.DRAINING.value: ("started", "ready", "promoted"),
    SwapPhase.DONE.value: ("started", "ready", "promoted"),
}


def steps_reached(phase: str) -> tuple[str, ...]:
    """The steps (of ``STEPS``) a slot's swap in ``phase`` has taken."""
    return REACHED.get(phase, ())


def check_line(slot: dict) -> str:
    """``check of candidate pid 456 passed (exit status 0)``: the last outcome of a slot's check."""
    passed = slot["phase"] in (SwapPhase.SETTLING.value, *(p.value for p in SwapPhase if p.promoted))
    return f"check of candidate pid {slot['candidate_pid']} {'passed' if passed else 'failed'} ({slot['check']})"


def step_line(step: str, pid: int, old_pid: int = 0) -> str:
    """``candidate pid 456 is ready``: a step of a slot's swap (one of ``STEPS``)."""
    return STEPS[step].format(pid=pid, old_pid=old_pid)


def plural(count: int, noun: str) -> str:
    """``1 switched process``, ``2 switched processes``."""
    return f"{count} {noun}" + ("" if count == 1 else "es" if noun.endswith("s") else "s")


VERSIONS = {"supervisor": "supervisor", "littleboss": "littleboss", "python": "Python"}  # getRunInfo's, as said


def version_changes(before: dict, after: dict) -> str:
    """``supervisor 4.2.2 -> 4.3.0, ...`` for the versions (getRunInfo's) that differ, or ``same
    versions (...)``."""
    changed = [f"{label} {before[key]} -> {after[key]}" for key, label in VERSIONS.items() if before[key] != after[key]]
    return ", ".join(changed) or "same versions (" + ", ".join(f"{label} {after[key]}"
                                                             for key, label in VERSIONS.items()) + ")"

"""How a reload reads to people: the same words in supervisorctl, the program helper and the
web page. Everything here works on the structs ``littleboss.reload`` and
``getProgramInfo`` return."""
from __future__ import annotations


def last_lines(output: bytes, count: int) -> str:
    """The last ``count`` lines of ``output``, joined by `` | ``, control characters (which
    XML cannot carry) shown as ``?``."""
    lines = output.decode(errors="replace").strip().splitlines()[-count:]
    return " | ".join("".join(c if c.isprintable() else "?" for c in line) for line in lines)


DONE = {"reload": "reloaded", "rollback": "rolled back", "fallback": "rolled back automatically"}


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


def slot_label(name: str, slots: list[dict], slot: dict) -> str:
    """``web`` for a one-process program, ``web: web_2 (slot 3 of 4)`` for a slot of several."""
    return name if len(slots) == 1 else f"{name}: {slot['process']} (slot {slot['slot'] + 1} of {len(slots)})"

"""Prometheus metrics: histograms kept as plain data (in the state file), and the text
exposition format (version 0.0.4) that ``/littleboss/metrics`` serves."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)  # seconds
HISTOGRAMS = ("duration", "ready", "drain")  # a reload's start to its last promotion; a candidate's start
# to its READY (or startsecs); the last promotion to the last replaced process's exit


def new_histogram() -> dict:
    """An empty histogram over BUCKETS: a count per bucket (not cumulative), the sum and the count."""
    return {"buckets": [0] * len(BUCKETS), "sum": 0.0, "count": 0}


def observe(histogram: dict, value: float) -> None:
    """Count ``value`` (seconds) into ``histogram``."""
    for i, bound in enumerate(BUCKETS):
        if value <= bound:
            histogram["buckets"][i] += 1
            break
    histogram["sum"] = round(histogram["sum"] + value, 6)
    histogram["count"] += 1


def valid_histogram(value: object) -> bool:
    return (isinstance(value, dict) and set(value) == {"buckets", "sum", "count"}
            and isinstance(value["buckets"], list) and len(value["buckets"]) == len(BUCKETS)
            and all(type(n) is int and n >= 0 for n in value["buckets"])
            and isinstance(value["sum"], (int, float)) and math.isfinite(value["sum"])
            and type(value["count"]) is int and value["count"] >= sum(value["buckets"]))


Labels = dict[str, str]


@dataclass
class Family:
    """One metric family: its samples (labels, value), or histograms (labels, histogram)."""

    name: str
    kind: str  # counter, gauge, histogram, info
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, labels: Labels, value: float | dict) -> Family:
        self.samples.append((labels, value))
        return self

    def lines(self) -> Iterable[str]:
        kind = "gauge" if self.kind == "info" else self.kind
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {kind}"
        for labels, value in self.samples:
            if self.kind == "histogram":
                yield from _histogram_lines(self.name, labels, value)
            else:
                yield f"{self.name}{_labels(labels)} {_number(value)}"


def render(families: Iterable[Family]) -> str:
    return "".join(line + "\n" for family in families for line in family.lines())


def _histogram_lines(name: str, labels: Labels, histogram: dict) -> Iterable[str]:
    cumulative = 0
    for bound, count in zip(BUCKETS, histogram["buckets"], strict=True):
        cumulative += count
        yield f"{name}_bucket{_labels({**labels, 'le': _number(bound)})} {cumulative}"
    yield f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {histogram['count']}"
    yield f"{name}_sum{_labels(labels)} {_number(histogram['sum'])}"
    yield f"{name}_count{_labels(labels)} {histogram['count']}"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape_value(value)}"' for key, value in labels.items()) + "}"


def _escape_value(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)

"""``scaler log --summary``: per-function counts and distributions, in bounded memory.

Kept while streaming: one small record per live instance (forgotten at ``deleted``) and one
aggregate per function whose distributions are fixed-size histograms, so a log of any length
summarises in memory proportional to (live instances + functions).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from scaler.tools.logread import Filters, Record, format_duration


class Histogram:
    """Counts in fixed log-spaced buckets: 20 per decade from 1 ms to 10^6 s (about 12 days).

    A quantile is reported as its bucket's upper edge (capped by the largest value seen), so it
    overstates by at most 12%; ``max`` is exact. Size is constant whatever is added.
    """

    LOW_S = 1e-3
    PER_DECADE = 20
    BUCKETS = 1 + 9 * PER_DECADE + 1  # [0, 1 ms], the decades, and everything above

    __slots__ = ("counts", "max", "n", "total")

    def __init__(self) -> None:
        self.counts = [0] * self.BUCKETS
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        if seconds <= self.LOW_S:
            index = 0
        else:
            index = min(
                int(math.log10(seconds / self.LOW_S) * self.PER_DECADE) + 1, self.BUCKETS - 1
            )
        self.counts[index] += 1
        self.n += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def quantile(self, q: float) -> float:
        """The value below which a fraction ``q`` of the samples lie (bucket upper edge)."""
        if not self.n:
            return 0.0
        target = max(1, math.ceil(q * self.n))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= target:
                return min(self.LOW_S * 10 ** (index / self.PER_DECADE), self.max)
        return self.max

    def describe(self) -> str:
        """``p50/p90/max``, or ``-`` when empty."""
        if not self.n:
            return "-"
        return "/".join(
            format_duration(v) for v in (self.quantile(0.5), self.quantile(0.9), self.max)
        )


class FunctionStats:
    """What the summary reports for one function."""

    __slots__ = (
        "alive",
        "cold",
        "failed",
        "idle_gap",
        "instances",
        "lifetime",
        "unused_alive",
        "unused_prewarms",
        "warm",
    )

    def __init__(self) -> None:
        self.instances = 0
        self.failed = 0
        self.cold = 0
        self.warm = 0
        self.unused_prewarms = 0
        self.alive = 0
        self.unused_alive = 0
        self.lifetime = Histogram()
        self.idle_gap = Histogram()

    @property
    def reuse(self) -> float | None:
        assigns = self.cold + self.warm
        return self.warm / assigns if assigns else None


class _Instance:
    __slots__ = ("function", "idle_since", "ready", "served", "start")

    def __init__(self, function: str, start: float) -> None:
        self.function = function
        self.start = start
        self.served = 0
        self.ready = False
        self.idle_since: float | None = None


class Summary:
    """Aggregates records per function; counts only events inside the time window."""

    def __init__(self, filters: Filters) -> None:
        self.filters = filters
        self.functions: dict[str, FunctionStats] = {}
        self._live: dict[str, _Instance] = {}
        self.records = 0

    def feed(self, rec: Record) -> None:
        """Add one record (of an instance already selected by ``--instance``/``--function``)."""
        key = rec["instance"]
        t = rec["time"]
        counted = self.filters.in_window(t)
        stats = self.functions.get(rec["function"])
        if stats is None:
            stats = self.functions[rec["function"]] = FunctionStats()
        inst = self._live.get(key)
        if inst is None:
            inst = self._live[key] = _Instance(rec["function"], t)
            stats.instances += counted
        self.records += counted
        event = rec["event"]
        if event == "assign":
            if counted:
                if inst.served == 0:
                    stats.cold += 1
                else:
                    stats.warm += 1
                    if inst.idle_since is not None:
                        stats.idle_gap.add(t - inst.idle_since)
            inst.served += 1
            inst.idle_since = None
        elif event == "release":
            inst.idle_since = t
        elif event == "init_succeeded":
            inst.ready = True
        elif event in ("slot_failed", "init_failed"):
            stats.failed += counted
        elif event in ("expire", "retire"):
            inst.idle_since = None
        if rec["to"] == "deleted":
            del self._live[key]
            if counted and event != "slot_failed":  # no slot, no lifetime to speak of
                stats.lifetime.add(t - inst.start)
                if inst.ready and inst.served == 0:
                    stats.unused_prewarms += 1

    def finish(self) -> None:
        """Count the instances still alive at the end of the log."""
        for inst in self._live.values():
            stats = self.functions[inst.function]
            stats.alive += 1
            if inst.ready and inst.served == 0:
                stats.unused_alive += 1
        self._live.clear()

    def table(self) -> list[str]:
        """The summary as an aligned text table with a total row."""
        header = (
            "function",
            "instances",
            "failed",
            "cold",
            "warm",
            "reuse",
            "unused",
            "alive",
            "lifetime p50/p90/max",
            "idle gap p50/p90/max",
        )
        rows = [header]
        total = FunctionStats()
        for name in sorted(self.functions):
            stats = self.functions[name]
            rows.append(_row(name, stats))
            _merge(total, stats)
        if len(self.functions) != 1:
            rows.append(_row(f"total ({len(self.functions)} functions)", total))
        return _align(rows)


def _row(name: str, s: FunctionStats) -> tuple[str, ...]:
    reuse = "-" if s.reuse is None else f"{s.reuse:.1%}"
    unused = f"{s.unused_prewarms}" + (f" (+{s.unused_alive} alive)" if s.unused_alive else "")
    return (
        name,
        str(s.instances),
        str(s.failed),
        str(s.cold),
        str(s.warm),
        reuse,
        unused,
        str(s.alive),
        s.lifetime.describe(),
        s.idle_gap.describe(),
    )


def _merge(into: FunctionStats, add: FunctionStats) -> None:
    for name in ("instances", "failed", "cold", "warm", "unused_prewarms", "alive", "unused_alive"):
        setattr(into, name, getattr(into, name) + getattr(add, name))
    for name in ("lifetime", "idle_gap"):
        mine, theirs = getattr(into, name), getattr(add, name)
        mine.counts = [a + b for a, b in zip(mine.counts, theirs.counts, strict=True)]
        mine.n += theirs.n
        mine.total += theirs.total
        mine.max = max(mine.max, theirs.max)


def _align(rows: Iterable[tuple[str, ...]]) -> list[str]:
    rows = list(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
    return out


LEGEND = (
    "cold = an instance's first assign; warm = every later assign; reuse = warm / (cold + warm);\n"
    "unused = instances deleted (or, in brackets, still alive) that were initialised but never\n"
    "served a request; failed = slot_failed + init_failed; idle gap = release -> next assign of\n"
    "the same instance. Quantiles come from log buckets (at most 12% high); max is exact."
)

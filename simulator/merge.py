"""Merge the shards of a sharded replay into one exact record, plus a per-shard breakdown.

What a shard's task sends back is a :class:`ShardResult`: its :class:`RunTotals`, the exact
(scaled-integer) sums of its float totals, the oracle's sums, and its slot ledger's *tail*
(every slot still alive when its own last request ended, as the scaler left it by the time it
stopped lingering). The whole run ends when the last shard's last request does (``end``); each
shard's slots are priced up to that ``end``, as one process would price them, and then:

- every number field of :class:`RunTotals` is summed (exactly, where the shards sent exact
  sums), except those in :data:`RULES` (the run's start and end, the wall time);
- list fields (the per-request latencies, sent as :class:`ValueCounts`) are joined as
  multisets, so percentiles are those of one list;
- the oracle is recomputed from the summed per-function sums.

Sums, never averages: the score is computed once, from the merged sums. A new field of
:class:`RunTotals` is summed unless :data:`RULES` says otherwise; one of a type this module
cannot add raises :class:`MergeError` instead of being dropped.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from simulator.dataset import Dataset
from simulator.exact import ValueCounts, scaled, unscaled
from simulator.platform import SlotRecord, slot_cost
from simulator.score import OracleSums, RunTotals, build_record, oracle_from_sums


class MergeError(ValueError):
    """The shards cannot be merged into an exact record (the reason says why)."""


def _leaked(values: list[Any]) -> Any:
    return None if any(v is None for v in values) else sum(values)


def _figures(values: list[Any]) -> Any:
    """Measured figures (a dict per shard, e.g. the scaler's compute): counts and totals add,
    maxima take the largest, a flag stays if all agree; a percentile cannot be merged from
    percentiles, so it is None (unknown), never an average."""
    if any(v is None for v in values):
        return None
    if len(values) == 1:
        return dict(values[0])
    merged: dict[str, Any] = {}
    for key in values[0]:
        column = [v.get(key) for v in values]
        if any(c is None for c in column) or "P50" in key or "P99" in key:
            merged[key] = None
        elif all(isinstance(c, bool) for c in column):
            merged[key] = column[0] if len(set(column)) == 1 else None
        elif "Max" in key:
            merged[key] = max(column)
        else:
            merged[key] = sum(column)
    return merged


RULES: dict[str, Callable[[list[Any]], Any]] = {
    "start_ms": min,
    "end_ms": max,
    "wall_time_s": max,
    "leaked_slots": _leaked,
    "compute": _figures,
}
"""Fields of :class:`RunTotals` merged otherwise than by a sum."""


@attrs.define
class ShardResult:
    """What one shard's task sends back (small: no requests, a few hundred tail slots)."""

    index: int
    shards: int
    name: str
    meta_path: str
    request_path: str
    functions: int
    totals: RunTotals
    oracle: OracleSums
    replay_end_s: float
    """Loop time of the shard's last request's end."""
    known_until_s: float
    """Loop time up to which the tail's destroy times are known (the shard lingered so far)."""
    settled_slot_exact: int
    """Exact scaled GB·s of the slots destroyed by ``replay_end_s``."""
    tail: list[SlotRecord]
    failures: dict[str, int] = attrs.Factory(dict)
    first_failures: list[str] = attrs.Factory(list)
    injected_faults: dict[str, int] = attrs.Factory(dict)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    worker: str = ""


def run_end(results: Sequence[ShardResult]) -> float:
    """Loop time at which the whole run ends: the last shard's last request."""
    return max(r.replay_end_s for r in results)


def priced(result: ShardResult, end: float) -> RunTotals:
    """The shard's totals with its slots priced up to ``end`` (the whole run's end), as one
    process would: slot GB·s (exact) and the slots alive at ``end``."""
    if end > result.known_until_s and result.tail:
        raise MergeError(
            f"shard {result.index}: its scaler ran until {result.known_until_s:.1f} s, but the "
            f"run ends at {end:.1f} s; its slots are unknown in between (raise the linger)"
        )
    exact = result.settled_slot_exact + sum(scaled(slot_cost(s, end)) for s in result.tail)
    live = sum(
        1
        for s in result.tail
        if s.created_at <= end and (s.destroyed_at is None or s.destroyed_at > end)
    )
    return attrs.evolve(
        result.totals,
        slot_gbs=unscaled(exact),
        live_slots=live,
        exact={**result.totals.exact, "slot_gbs": exact},
    )


def merge_totals(parts: Sequence[RunTotals]) -> RunTotals:
    """One :class:`RunTotals` from several, field by field (see the module docstring)."""
    if not parts:
        raise MergeError("no shard to merge")
    common = set.intersection(*(set(p.exact) for p in parts))
    exact = {name: sum(p.exact[name] for p in parts) for name in common}
    values: dict[str, Any] = {}
    for field in attrs.fields(RunTotals):
        name = field.name
        if name == "exact":
            continue
        column = [getattr(p, name) for p in parts]
        if name in exact:
            values[name] = unscaled(exact[name])
        elif name in RULES:
            values[name] = RULES[name](column)
        elif all(isinstance(v, list | array | ValueCounts) for v in column):
            values[name] = ValueCounts.merged(
                v if isinstance(v, ValueCounts) else ValueCounts.of(v) for v in column
            )
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in column):
            values[name] = sum(column)
        else:
            kinds = sorted({type(v).__name__ for v in column})
            raise MergeError(f"RunTotals.{name}: cannot add values of type {', '.join(kinds)}")
    return RunTotals(**values, exact=exact)


def _stub(result: ShardResult) -> Dataset:
    return Dataset(result.name, result.meta_path, result.request_path, {}, [])


def merged_record(
    results: Sequence[ShardResult], *, name: str, record_id: int | str, wall_s: float
) -> dict[str, Any]:
    """The whole run's record (wall time: ``wall_s``, the driver's), with a ``shards`` list:
    each shard's own record figures, its slots priced up to the same end."""
    if not results:
        raise MergeError("no shard to merge")
    ordered = sorted(results, key=lambda r: r.index)
    end = run_end(ordered)
    parts = [priced(r, end) for r in ordered]
    totals = merge_totals(parts)
    totals.wall_time_s = wall_s
    oracle = OracleSums()
    for r in ordered:
        oracle = oracle + r.oracle
    first = ordered[0]
    whole = Dataset(name, first.meta_path, first.request_path, {}, [])
    record = build_record(whole, totals, record_id=record_id, oracle=oracle_from_sums(oracle))
    record["shards"] = [
        _breakdown(r, build_record(_stub(r), t, record_id=r.index, oracle=None))
        for r, t in zip(ordered, parts, strict=True)
    ]
    return record


def _breakdown(result: ShardResult, record: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "totalRequestsCount",
        "failedRequestsCount",
        "score",
        "scoreSlotHalf",
        "scoreLatencyHalf",
        "invocationExecutionTimeInGBs",
        "invocationScheduleTimeInSecs",
        "totalSlotTimeInGBs",
        "coldStarts",
    )
    return {
        "shard": result.index,
        "functions": result.functions,
        **{k: record[k] for k in keys},
        "oracleScore": oracle_from_sums(result.oracle)["oracleScore"],
        "wallTimeInSecs": result.wall_s,
        "peakRssMb": result.peak_rss_mb,
        "worker": result.worker,
    }

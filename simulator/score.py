"""The challenge's score, the end-of-run record, and a clairvoyant bound to compare against.

Formula and record layout are those of ``shared/docs/wire-contract.md`` ("Score"):

    score = 50 * execution_gbs / slot_gbs
          + 50 * execution_s / (execution_s + schedule_s + idle_s)

and 0 when fewer than 99.95% of the requests succeed.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from simulator.dataset import Dataset
from simulator.defaults import DEFAULT_CREATE_MS
from simulator.exact import ValueCounts, exact_sum, unscaled

SUCCESS_GATE = 0.9995
"""Minimum success rate; exactly 99.95% passes, anything below scores 0."""

MS_PER_S = 1000.0
MB_PER_GB = 1024.0


def _doubles() -> array:  # type: ignore[type-arg]
    return array("d")


@attrs.define(slots=True)
class RunTotals:
    """What one replay measured; the simulator fills it, :func:`build_record` reports it.

    Times are in seconds, slot and execution cost in GB·s, ``start_ms``/``end_ms`` in epoch ms.
    ``leaked_slots`` is None when the run did not check for slots the platform still holds.
    ``exact`` holds, for float fields added up exactly, that sum as an integer count of
    2**-1074 (simulator/exact.py), so that runs merged from shards add those, not roundings.
    """

    total_requests: int = 0
    failed_requests: int = 0
    execution_s: float = 0.0
    execution_gbs: float = 0.0
    schedule_s: float = 0.0
    idle_s: float = 0.0
    slot_gbs: float = 0.0
    live_slots: int = 0
    cold_starts: int = 0
    warm_hits: int = 0
    #: Per-request latencies as raw doubles: a list of half a million floats would be walked
    #: by every full collection, a pause charged to whichever scaler call triggers it.
    assign_latencies_ms: array = attrs.Factory(_doubles)  # type: ignore[type-arg]
    idle_latencies_ms: array = attrs.Factory(_doubles)  # type: ignore[type-arg]
    wall_time_s: float = 0.0
    #: CPU time of this process during the replay (beside wall time: how shared the machine was).
    cpu_time_s: float = 0.0
    #: Fast mode's measured compute of the scaler (``ComputeMeter.figures``), if measured.
    compute: dict[str, Any] | None = None
    leaked_slots: int | None = None
    start_ms: int = 0
    end_ms: int = 0
    exact: dict[str, int] = attrs.Factory(dict)

    @property
    def success_rate(self) -> float:
        """Succeeded / total as a fraction in 0..1; 1.0 for a run without requests."""
        if self.total_requests <= 0:
            return 1.0
        return (self.total_requests - self.failed_requests) / self.total_requests


# --------------------------------------------------------------------------------------------
# The official score


def score_halves(
    execution_s: float, execution_gbs: float, schedule_s: float, idle_s: float, slot_gbs: float
) -> tuple[float, float]:
    """The two 50-point halves ``(slot half, latency half)``, before the success gate.

    A zero denominator makes its half 0 instead of raising: no slot time means nothing ran,
    and no latency at all means no request was served, neither of which deserves points.
    """
    slot_half = 50.0 * execution_gbs / slot_gbs if slot_gbs > 0 else 0.0
    latency = execution_s + schedule_s + idle_s
    latency_half = 50.0 * execution_s / latency if latency > 0 else 0.0
    return slot_half, latency_half


def official_score(
    execution_s: float,
    execution_gbs: float,
    schedule_s: float,
    idle_s: float,
    slot_gbs: float,
    success_rate: float,
) -> float:
    """The challenge score of one dataset (0..100); 0 if ``success_rate`` < 0.9995."""
    if success_rate < SUCCESS_GATE:
        return 0.0
    slot_half, latency_half = score_halves(execution_s, execution_gbs, schedule_s, idle_s, slot_gbs)
    return slot_half + latency_half


# --------------------------------------------------------------------------------------------
# The clairvoyant bound


def oracle_score(dataset: Dataset, create_ms: float = DEFAULT_CREATE_MS) -> dict[str, float]:
    """Score of a scaler that knows the future and never makes a request wait.

    Per function, with ``cold = create_ms + init_duration_ms``: a request reuses the free
    instance that became free last and pays ``min(gap, cold)`` of slot time for the gap (stay
    warm, or be destroyed and re-created just in time); with no free instance it pays ``cold``
    for a new instance created just in time. Every request also pays its duration, and an
    instance is destroyed right after its last request. Slots have exactly the function's
    memory. Taking the latest-freed instance is optimal because the gap cost is concave (the
    non-crossing matching of ends to starts minimises a sum of concave costs).

    Schedule and Idle time are taken as zero, so the latency half is 50. That is what makes
    this a bound only among scalers that never delay a request: a scaler may trade schedule
    time for slot time (queue a request on a busy instance instead of paying a cold start)
    and, in principle, beat it. With ``create_ms`` = 0 and init durations of 0 the bound is
    trivially 100.
    """
    return oracle_from_sums(oracle_sums(dataset, create_ms))


@attrs.frozen
class OracleSums:
    """What :func:`oracle_score` adds up, per function, so that shards can be merged exactly:
    slot MB·ms as an exact scaled sum (simulator/exact.py), execution ms and MB·ms as ints."""

    slot_mb_ms_exact: int = 0
    execution_ms: int = 0
    execution_mb_ms: int = 0

    def __add__(self, other: OracleSums) -> OracleSums:
        return OracleSums(
            self.slot_mb_ms_exact + other.slot_mb_ms_exact,
            self.execution_ms + other.execution_ms,
            self.execution_mb_ms + other.execution_mb_ms,
        )


def oracle_sums(dataset: Dataset, create_ms: float = DEFAULT_CREATE_MS) -> OracleSums:
    """The per-function sums behind :func:`oracle_score` (one term per function)."""
    slot_terms: list[float] = []
    execution_ms = 0
    execution_mb_ms = 0
    for key, requests in function_timelines(dataset).items():
        meta = dataset.metas[key]
        cold_ms = create_ms + meta.init_duration_ms
        slot_terms.append(_oracle_slot_ms(requests, cold_ms) * meta.memory_mb)
        busy_ms = sum(duration for _, duration in requests)
        execution_ms += busy_ms
        execution_mb_ms += busy_ms * meta.memory_mb
    return OracleSums(exact_sum(slot_terms), execution_ms, execution_mb_ms)


def oracle_from_sums(sums: OracleSums) -> dict[str, float]:
    """``oracleScore`` and ``oracleSlotTimeInGBs`` from (possibly merged) sums."""
    slot_gbs = unscaled(sums.slot_mb_ms_exact) / MS_PER_S / MB_PER_GB
    score = official_score(
        execution_s=sums.execution_ms / MS_PER_S,
        execution_gbs=sums.execution_mb_ms / MS_PER_S / MB_PER_GB,
        schedule_s=0.0,
        idle_s=0.0,
        slot_gbs=slot_gbs,
        success_rate=1.0,
    )
    return {"oracleScore": score, "oracleSlotTimeInGBs": slot_gbs}


def function_timelines(dataset: Dataset) -> dict[str, list[tuple[int, int]]]:
    """Each function's ``(start ms, duration ms)`` requests, in the dataset's (start) order."""
    timelines: dict[str, list[tuple[int, int]]] = {}
    for request in dataset.requests:
        timelines.setdefault(request.key, []).append((request.start_ms, request.duration_ms))
    return timelines


def _oracle_slot_ms(requests: Iterable[tuple[int, int]], cold_ms: float) -> float:
    """Slot ms of one function's ``(start, duration)`` requests, sorted by start."""
    slot_ms = 0.0
    for _, duration, gap in reuse_gaps(requests):
        slot_ms += (cold_ms if gap is None else min(gap, cold_ms)) + duration
    return slot_ms


def reuse_gaps(requests: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int, int | None]]:
    """``(start, duration, gap)`` for one function's ``(start, duration)`` requests, sorted
    by start: ``gap`` is how long the instance that serves the request was idle, reusing
    the latest-freed idle instance (see :func:`oracle_score`), or None when none is idle and
    the request needs a new instance.

    ``busy`` is a min-heap of the free times of busy instances; ``free`` holds the free times
    of idle instances in ascending order (instances leave ``busy`` in free-time order, and all
    of them become free after every instance already idle), so its last item is the latest.
    """
    busy: list[int] = []
    free: list[int] = []
    for start, duration in requests:
        while busy and busy[0] <= start:
            free.append(heapq.heappop(busy))
        yield start, duration, (start - free.pop() if free else None)
        heapq.heappush(busy, start + duration)


# --------------------------------------------------------------------------------------------
# The end-of-run record


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation between ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return _sorted_percentile(ordered, q)


def _sorted_percentile(ordered: Sequence[float], q: float) -> float | None:
    if not len(ordered):  # a ValueCounts has no truth value
        return None
    rank = (len(ordered) - 1) * min(max(q, 0.0), 100.0) / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ordered(values: Sequence[float]) -> Sequence[float]:
    """``values`` sorted; :class:`ValueCounts` (a sharded run's latencies) already reads so."""
    if isinstance(values, ValueCounts):
        return values
    return sorted(values)


def build_record(
    dataset: Dataset,
    totals: RunTotals,
    *,
    record_id: int | str,
    oracle: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The end-of-run record: the official keys in the official order, then our extras.

    ``successRate`` is a fraction in 0..1. ``startTime``/``endTime`` are the run's epoch ms.
    ``scoreSlotHalf``/``scoreLatencyHalf`` are the halves before the success gate, so a run
    that failed the gate still shows where it stood. Percentiles and oracle values are None
    when unknown. Last come the replay's CPU time and, when measured, the scaler's compute
    (``simulator.compute``, or our scaler's metrics in wire mode).
    """
    rate = totals.success_rate
    slot_half, latency_half = score_halves(
        totals.execution_s, totals.execution_gbs, totals.schedule_s, totals.idle_s, totals.slot_gbs
    )
    latencies = _ordered(totals.assign_latencies_ms)
    idle_latencies = _ordered(totals.idle_latencies_ms)
    record: dict[str, Any] = {
        "id": record_id,
        "requestFilePath": dataset.request_path,
        "metaFilePath": dataset.meta_path,
        "startTime": totals.start_ms,
        "endTime": totals.end_ms,
        "totalRequestsCount": totals.total_requests,
        "failedRequestsCount": totals.failed_requests,
        "successRate": rate,
        "invocationLatencyInSecs": totals.execution_s + totals.schedule_s + totals.idle_s,
        "invocationExecutionTimeInSecs": totals.execution_s,
        "invocationExecutionTimeInGBs": totals.execution_gbs,
        "invocationScheduleTimeInSecs": totals.schedule_s,
        "invocationIdleTimeInSecs": totals.idle_s,
        "totalSlotTimeInGBs": totals.slot_gbs,
        "totalLiveSlotCount": totals.live_slots,
        "score": official_score(
            totals.execution_s,
            totals.execution_gbs,
            totals.schedule_s,
            totals.idle_s,
            totals.slot_gbs,
            rate,
        ),
        "coldStarts": totals.cold_starts,
        "warmHits": totals.warm_hits,
        "assignLatencyP50Ms": _sorted_percentile(latencies, 50.0),
        "assignLatencyP99Ms": _sorted_percentile(latencies, 99.0),
        "idleLatencyP50Ms": _sorted_percentile(idle_latencies, 50.0),
        "idleLatencyP99Ms": _sorted_percentile(idle_latencies, 99.0),
        "wallTimeInSecs": totals.wall_time_s,
        "oracleScore": oracle["oracleScore"] if oracle else None,
        "oracleSlotTimeInGBs": oracle["oracleSlotTimeInGBs"] if oracle else None,
    }
    if totals.leaked_slots is not None:
        record["leakedSlots"] = totals.leaked_slots
    record["scoreSlotHalf"] = slot_half
    record["scoreLatencyHalf"] = latency_half
    record["cpuTimeInSecs"] = totals.cpu_time_s
    if totals.compute is not None:
        record.update(totals.compute)
    return record

"""Wire mode's measured compute: read our scaler's Prometheus metrics around each dataset.

Fast mode times the scaler's code itself (``simulator.compute``); over the wire the scaler is
another process, so when it is ours (``--start-scaler``) the simulator starts it with a
metrics port and reads, before and after each dataset, the policy decision histogram
(``scaler_policy_decision_seconds``), the longest decision (``..._max_seconds``, since the
scaler started) and the process' CPU seconds (``process_cpu_seconds_total``: the whole
process, gRPC included, which is what the wire's caller waits for). Percentiles come from the
histogram's buckets, interpolated within the bucket as Prometheus' ``histogram_quantile``
does, so they are coarser than fast mode's.
"""

from __future__ import annotations

import asyncio
import math
import urllib.request
from typing import Any

import attrs
from prometheus_client.parser import text_string_to_metric_families

DECISIONS = "scaler_policy_decision_seconds"
LONGEST = "scaler_policy_decision_max_seconds"
CPU = "process_cpu_seconds_total"
#: A scrape that takes longer than this is skipped (the figures are then absent).
TIMEOUT_S = 5.0


@attrs.frozen
class Snapshot:
    """The scaler's compute counters at one moment."""

    buckets: tuple[tuple[float, float], ...]  # (upper edge, cumulative count), ascending
    count: float
    total_s: float
    longest_s: float
    cpu_s: float


def parse(text: str) -> Snapshot:
    """The counters in a ``/metrics`` page (zeros for the ones it lacks)."""
    buckets: dict[float, float] = {}
    values = {"count": 0.0, "sum": 0.0, "longest": 0.0, "cpu": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{DECISIONS}_bucket":
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == f"{DECISIONS}_count":
                values["count"] = sample.value
            elif sample.name == f"{DECISIONS}_sum":
                values["sum"] = sample.value
            elif sample.name == LONGEST:
                values["longest"] = sample.value
            elif sample.name in (CPU, CPU.removesuffix("_total")):
                values["cpu"] = sample.value
    return Snapshot(
        tuple(sorted(buckets.items())),
        values["count"],
        values["sum"],
        values["longest"],
        values["cpu"],
    )


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile``: the ``q`` (0..1) quantile of cumulative ``buckets``."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_edge, lower_count = 0.0, 0.0
    for edge, count in buckets:
        if count >= rank:
            if math.isinf(edge):
                return lower_edge
            span = count - lower_count
            share = (rank - lower_count) / span if span > 0 else 1.0
            return lower_edge + (edge - lower_edge) * share
        lower_edge, lower_count = edge, count
    return lower_edge


def figures(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """The record's compute keys for what happened between the two snapshots."""
    earlier = dict(before.buckets)
    delta = [(edge, count - earlier.get(edge, 0.0)) for edge, count in after.buckets]

    def ms(value: float | None) -> float | None:
        return None if value is None else value * 1000.0

    return {
        "scalerCpuInSecs": after.cpu_s - before.cpu_s,
        "decisions": int(after.count - before.count),
        "decisionTimeP50Ms": ms(quantile(0.5, delta)),
        "decisionTimeP99Ms": ms(quantile(0.99, delta)),
        "decisionTimeMaxMs": ms(after.longest_s) if after.count else None,
        "computeCharged": True,  # over the wire the caller always waits for it
        "computeSource": "scaler metrics",
    }


async def scrape(port: int, host: str = "127.0.0.1") -> Snapshot | None:
    """The scaler's counters now, or None if its metrics port does not answer in time."""

    def fetch() -> str:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=TIMEOUT_S) as page:
            return page.read().decode()

    try:
        return parse(await asyncio.to_thread(fetch))
    except (OSError, ValueError):
        return None

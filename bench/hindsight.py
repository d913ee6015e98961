"""The default's plans with the whole run's gaps known: `python -m bench.policies --hindsight`.

The default policy learns each function's release-to-reuse gaps online and picks its
exchange rate online. ``hindsight@RATE`` removes both handicaps: every function's plans are
drawn from the *whole run's* gaps from its first request on (the clairvoyant matching of
:class:`~scaler.policy.observe.GapTracker`, fed the trace in time order with each request
ending at its arrival plus its duration), at a rate fixed for the run. Timing stays online:
the plans know the distribution of the gaps, not when each one ends.

The best ``hindsight@RATE`` row of a trace is a reference point for what keep-alive /
pre-warm window plans reach there, not a bound: plans that follow the phases of a run (a
recent window, a rate that moves) are of the same kind and may do better or worse
(docs/policies.md, "dataSet_1: why the target is out of reach for these plans").
"""

from __future__ import annotations

from collections import defaultdict

from scaler.policy import Components, rate_index, rate_name
from scaler.policy.adaptive import AdaptivePolicy
from scaler.policy.observe import GapTracker
from scaler.policy.planned import FunctionState
from simulator.dataset import Dataset

HINDSIGHT_PREFIX = "hindsight@"
#: Release before arrival at the same millisecond: the instance freed then serves it.
_RELEASE, _ARRIVAL = 0, 1


def whole_run_gaps(dataset: Dataset, horizon_s: float = 3600.0) -> dict[str, GapTracker]:
    """Per function, a tracker holding every gap of the run: releases unused for longer
    than ``horizon_s`` are censored, as online; those still unused when the trace ends are
    left out (online they would be censored an hour later)."""
    # Whole milliseconds, so a release and an arrival at the same instant tie exactly (in
    # float seconds 0.1 + 0.2 > 0.3).
    events: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for request in dataset.requests:
        events[request.key].append((request.start_ms, _ARRIVAL))
        events[request.key].append((request.start_ms + request.duration_ms, _RELEASE))
    trackers = {}
    for key, timeline in events.items():
        timeline.sort()
        tracker = GapTracker(horizon_s, keep_samples=len(timeline))
        for at_ms, kind in timeline:
            if kind == _RELEASE:
                tracker.release(at_ms / 1000.0)
            else:
                tracker.arrival(at_ms / 1000.0)
        trackers[key] = tracker
    return trackers


class HindsightPolicy(AdaptivePolicy):
    """The default policy at a fixed rate, planning from the whole run's gaps (see the
    module docstring). Bench only: it needs the trace before the run."""

    def __init__(self, gaps: dict[str, GapTracker], index: int) -> None:
        super().__init__(Components(online_prices=False), fixed_index=index)
        self.hindsight = gaps
        self.name = hindsight_name(index)

    def gap_source(self, fn: FunctionState) -> GapTracker:
        return self.hindsight.get(fn.key, fn.gaps)


def hindsight_name(index: int) -> str:
    """``hindsight@RATE`` for grid point ``index`` (spelled as ``adaptive@RATE``)."""
    return rate_name(index, HINDSIGHT_PREFIX)


def is_hindsight(name: str) -> bool:
    return name.startswith(HINDSIGHT_PREFIX)


def hindsight_policy(name: str, gaps: dict[str, GapTracker]) -> HindsightPolicy:
    """A fresh ``hindsight@RATE`` policy over ``gaps`` (:func:`whole_run_gaps`);
    ValueError for a rate off the grid."""
    return HindsightPolicy(gaps, rate_index(name, HINDSIGHT_PREFIX))

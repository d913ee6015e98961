"""The "Serverless in the Wild" hybrid histogram policy (Shahrad et al., USENIX ATC'20).

The production-proven baseline the default policy should beat. Per function, from the
histogram of idle times (here: release-to-reuse gaps, see
:class:`~scaler.policy.observe.GapTracker`):

- pre-warm window = the 5th percentile, less a 10% margin: the instance is destroyed right
  after use and re-created to be ready then (no pre-warm when that is under a cold start);
- keep-alive window = the 99th percentile, plus a 10% margin, counted from the release;
- too few samples (under ``min_samples``), or too many gaps beyond the histogram range
  (over ``max_out_of_bounds``): a fixed keep-alive (the paper's fallback; it uses time-series
  forecasts for the out-of-bounds case, a fixed keep-alive stands in for them here).

The paper bins idle times by the minute over 4 hours; gaps here are exact, which only helps
it on traces of sub-second gaps. Like the paper, it knows nothing of prices or queues: every
waiting request gets its own cold start.
"""

from __future__ import annotations

import attrs

from scaler.policy.planned import FunctionState, PlannedPolicy
from scaler.policy.windows import WindowPlan


@attrs.frozen
class HybridSettings:
    """The paper's parameters."""

    head_percentile: float = 5.0
    tail_percentile: float = 99.0
    margin: float = 0.10
    min_samples: int = 10
    max_out_of_bounds: float = 0.5
    histogram_range_s: float = 4 * 3600.0
    fallback_keep_s: float = 600.0


class HybridHistogramPolicy(PlannedPolicy):
    """Pre-warm and keep-alive windows from percentiles of each function's idle times."""

    name = "hybrid"

    def __init__(self, settings: HybridSettings | None = None) -> None:
        self.settings = settings or HybridSettings()
        super().__init__(horizon_s=self.settings.histogram_range_s)

    def window(self, fn: FunctionState, now: float) -> WindowPlan:
        s = self.settings
        samples = sorted(fn.gaps.samples)
        if len(samples) < s.min_samples:
            return WindowPlan(keep_s=s.fallback_keep_s)
        out_of_bounds = sum(1 for x in samples if x > s.histogram_range_s)
        if out_of_bounds > s.max_out_of_bounds * len(samples):
            return WindowPlan(keep_s=s.fallback_keep_s)
        head = percentile(samples, s.head_percentile) * (1.0 - s.margin)
        tail = min(percentile(samples, s.tail_percentile), s.histogram_range_s) * (1.0 + s.margin)
        if head < self.cold_s(fn):
            return WindowPlan(keep_s=tail)
        return WindowPlan(keep_s=0.0, warm_from_s=head, warm_until_s=max(tail, head))


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of sorted values, nearest rank (``inf`` allowed)."""
    rank = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[rank]

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

from scaler.policy.adaptive import AdaptivePolicy, FunctionState
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


class HybridHistogramPolicy(AdaptivePolicy):
    """Pre-warm and keep-alive windows from percentiles of each function's idle times."""

    name = "hybrid"
    gated = False
    queue_aware = False
    steers_by_fleet = False  # windows from each function's own gaps, no fleet rate

    def __init__(self, settings: HybridSettings | None = None) -> None:
        self.settings = settings or HybridSettings()
        super().__init__()

    def candidate(self, fn: FunctionState) -> WindowPlan:
        return fn.plan or WindowPlan(keep_s=self.settings.fallback_keep_s)

    def replan(self, fn: FunctionState) -> bool:
        """The windows from the percentiles (in the expiry pass, off the request path)."""
        if fn.gaps.fresh == 0:
            return False
        fn.gaps.fresh = 0
        s = self.settings
        samples = sorted(fn.gaps.samples)
        fn.plan = None
        if len(samples) < s.min_samples:
            return True
        out_of_bounds = sum(1 for x in samples if x > s.histogram_range_s)
        if out_of_bounds > s.max_out_of_bounds * len(samples):
            return True
        head = percentile(samples, s.head_percentile) * (1.0 - s.margin)
        tail = min(percentile(samples, s.tail_percentile), s.histogram_range_s) * (1.0 + s.margin)
        if head < self.cold_s(fn):
            fn.plan = WindowPlan(keep_s=tail)
        else:
            fn.plan = WindowPlan(keep_s=0.0, warm_from_s=head, warm_until_s=max(tail, head))
        return True


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of sorted values, nearest rank (``inf`` allowed)."""
    rank = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[rank]

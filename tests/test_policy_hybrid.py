"""The "Serverless in the Wild" hybrid baseline: windows from idle-time percentiles."""

from __future__ import annotations

import pytest

from scaler.policy.adaptive import FunctionState
from scaler.policy.hybrid import HybridHistogramPolicy, HybridSettings, percentile
from scaler.policy.windows import WindowPlan


def state(gaps: list[float], cold_s: float = 0.2) -> FunctionState:
    fn = FunctionState(256, 0.0)
    fn.cold.add(cold_s)
    for i, gap in enumerate(gaps):
        at = 100_000.0 * i
        fn.gaps.release(at, WindowPlan(keep_s=600.0))
        fn.gaps.arrival(at + gap)
    return fn


@pytest.mark.parametrize(
    ("gaps", "expected"),
    [
        # Too few samples: the fixed fallback.
        ([60.0] * 5, WindowPlan(keep_s=600.0)),
        # Idle times 60..159 s: re-created at 0.9 * p5, kept to 1.1 * p99.
        (
            [60.0 + i for i in range(100)],
            WindowPlan(keep_s=0.0, warm_from_s=0.9 * 65.0, warm_until_s=1.1 * 158.0),
        ),
        # A p5 shorter than a cold start: plain keep-alive to 1.1 * p99.
        ([0.05] * 50 + [3.0] * 50, WindowPlan(keep_s=1.1 * 3.0)),
    ],
)
def test_windows_from_percentiles(gaps: list[float], expected: WindowPlan) -> None:
    policy = HybridHistogramPolicy()
    fn = state(gaps)
    policy.replan(fn)  # in the expiry pass
    plan = policy.window(fn, 0.0)
    assert plan.keep_s == pytest.approx(expected.keep_s)
    assert plan.warm_from_s == pytest.approx(expected.warm_from_s)
    assert plan.warm_until_s == pytest.approx(expected.warm_until_s)


def test_mostly_out_of_range_idle_times_fall_back() -> None:
    policy = HybridHistogramPolicy(HybridSettings(histogram_range_s=100.0))
    fn = state([500.0] * 20)
    policy.replan(fn)
    assert policy.window(fn, 0.0) == WindowPlan(keep_s=600.0)


def test_percentile_nearest_rank() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0) == 1.0

"""What the default policy learns: release-to-reuse gaps, running means, the score's prices."""

from __future__ import annotations

import gc
import math
from collections.abc import Callable

import pytest

from scaler.policy.observe import Ewma, GapTracker, Prices, RecentSamples, Release
from scaler.policy.windows import WindowPlan

PLAN = WindowPlan(keep_s=1.0)


def test_an_arrival_reuses_the_latest_release() -> None:
    gaps = GapTracker()
    first = gaps.release(0.0, PLAN)
    second = gaps.release(1.0, PLAN)
    assert gaps.arrival(1.5) is second  # takes the release at 1.0
    assert gaps.arrival(2.0) is first  # then the one at 0.0
    assert list(gaps.samples) == [0.5, 2.0]
    assert gaps.closed == [(second, 0.5), (first, 2.0)]  # for the accounting to price


def test_an_arrival_with_nothing_released_needs_a_new_instance() -> None:
    gaps = GapTracker()
    assert gaps.arrival(0.0) is None
    gaps.release(0.1, PLAN)
    gaps.arrival(0.2)
    assert gaps.arrival(0.3) is None
    assert list(gaps.samples) == [pytest.approx(0.1)]


def test_releases_older_than_the_horizon_become_censored_samples() -> None:
    gaps = GapTracker(horizon_s=100.0)
    old = gaps.release(0.0, PLAN)
    gaps.release(50.0, PLAN)
    gaps.arrival(120.0)  # the release at 0 is censored, the one at 50 reused
    assert list(gaps.samples) == [math.inf, 70.0]
    assert gaps.closed[0] == (old, math.inf)


def test_keeps_a_bounded_memory() -> None:
    gaps = GapTracker(keep_samples=8)
    for i in range(100):
        gaps.release(float(i), PLAN)
        gaps.arrival(i + 0.5)
    gaps.closed.clear()
    assert gaps.count == 8


def test_prices_are_the_score_and_its_marginal_rate() -> None:
    prices = Prices(execution_s=100.0, execution_gbs=50.0, slot_gbs=150.0, wait_s=10.0)
    # 100 GB·s idle beyond the 50 of execution, 10 s of waiting.
    assert prices.score(100.0, 10.0) == pytest.approx(50 * 50 / 150 + 50 * 100 / 110)
    assert prices.kappa_gb(100.0, 10.0) == pytest.approx(50 * 110**2 / (100 * 150**2))
    # The run so far repeated once, the repeat costing 20 GB·s idle and 1 s of waiting.
    assert prices.ahead(20.0, 1.0) == (120.0, 11.0)
    assert prices.score(120.0, 11.0, runs=2.0) == pytest.approx(50 * 100 / 220 + 50 * 200 / 211)
    assert Prices().score(1.0, 1.0) == 0.0 and Prices().kappa_gb(1.0, 1.0) == 0.0


@pytest.mark.parametrize(
    ("samples", "long_s", "tail_weight"),
    [
        # A function seen in one burst only: the unseen tail weighs as much as all it saw.
        ([0.01] * 30, 1.0, 30.0),
        # Many long gaps seen: the tail weighs one sample over their count plus one.
        ([5.0] * 30, 1.0, 1.0),
        ([0.01] * 20 + [5.0] * 9, 1.0, 2.9),
    ],
)
def test_summary_weighs_the_unseen_tail(
    samples: list[float], long_s: float, tail_weight: float
) -> None:
    gaps = GapTracker(horizon_s=3600.0)
    for i, gap in enumerate(samples):
        at = 10_000.0 * i
        gaps.release(at, PLAN)
        gaps.arrival(at + gap)
    values, weights, censored, longest = gaps.summary(long_s)
    assert longest == pytest.approx(max(samples))
    tail = [w for v, w in zip(values, weights, strict=True) if v > longest * 1.5]
    assert sum(tail) == pytest.approx(tail_weight)
    assert censored == 0.0
    assert values[-1] == 3600.0  # the tail reaches the horizon, doubling from the longest


def test_ewma() -> None:
    mean = Ewma(0.5)
    assert mean.get(7.0) == 7.0
    for x in (1.0, 3.0):
        mean.add(x)
    assert mean.mean == 2.0 and mean.dev == 1.0


def test_reached_walks_each_open_release_once_and_follows_the_stack() -> None:
    gaps = GapTracker(horizon_s=100.0)
    releases = [gaps.release(float(t), PLAN) for t in range(4)]

    def older_than(age: float, now: float) -> Callable[[Release], bool]:
        return lambda release: now - release.at > age

    # Stops at the first not due: at 12 s only the releases at 0 and 1 are older than 10 s.
    assert gaps.reached(0, older_than(10.0, 12.0)) == releases[:2]
    assert gaps.reached(0, older_than(10.0, 12.0)) == []  # each is returned once per stage
    assert gaps.reached(1, older_than(0.0, 12.0)) == releases  # the stages count apart
    # An arrival takes the top two; a new release is due at its own time, once.
    gaps.arrival(13.0)
    gaps.arrival(13.0)
    fresh = gaps.release(14.0, PLAN)
    assert gaps.reached(0, older_than(10.0, 30.0)) == [fresh]
    assert gaps.reached(1, older_than(0.0, 30.0)) == [fresh]
    # Censoring the bottom shifts the counts with it: nothing is walked twice or skipped.
    gaps.arrival(100.5)  # censors the release at 0, reuses the one at 14
    later = gaps.release(101.0, PLAN)
    assert gaps.reached(0, older_than(10.0, 120.0)) == [later]


def test_recent_samples_keep_the_last_ones_oldest_first() -> None:
    samples = RecentSamples(3)
    for value in (1.0, 2.0):
        samples.append(value)
    assert list(samples) == [1.0, 2.0]
    for value in (3.0, 4.0, 5.0):
        samples.append(value)
    assert list(samples) == [3.0, 4.0, 5.0]
    samples.append(6.0)
    assert list(samples) == [4.0, 5.0, 6.0]
    assert len(samples) == 3


def test_recent_samples_are_not_walked_by_the_cyclic_collector() -> None:
    # Why they are an array: a full collection visits every element of a container, and a
    # pause of tens of ms lands in whichever Assign or Idle triggers it.
    samples = RecentSamples(1024)
    for i in range(2000):
        samples.append(float(i))
    direct = [r for r in gc.get_referents(samples) if not isinstance(r, type)]
    nested = [r for d in direct for r in gc.get_referents(d) if not isinstance(r, type)]
    assert len(direct) + len(nested) < 10  # a deque would show its 1,024 floats here

"""What the planned policies learn: release-to-reuse gaps, running prices."""

from __future__ import annotations

import math

import pytest

from scaler.policy.observe import Arrival, Ewma, GapTracker


def test_an_arrival_reuses_the_latest_release() -> None:
    gaps = GapTracker()
    gaps.release(0.0)
    gaps.release(1.0)
    gaps.arrival(1.5)  # takes the release at 1.0
    gaps.arrival(2.0)  # then the one at 0.0
    assert list(gaps.samples) == [0.5, 2.0]
    assert gaps.total == 2 and gaps.new_instances == 0


def test_an_arrival_with_nothing_released_needs_a_new_instance() -> None:
    gaps = GapTracker()
    assert gaps.arrival(0.0) is None
    gaps.release(0.1)
    gaps.arrival(0.2)
    gaps.arrival(0.3)
    assert gaps.new_instances == 2
    assert list(gaps.samples) == [pytest.approx(0.1)]


def test_releases_older_than_the_horizon_become_censored_samples() -> None:
    gaps = GapTracker(horizon_s=100.0, record_arrivals=True)
    gaps.release(0.0)
    gaps.release(50.0)
    gaps.arrival(120.0, queue_wait=0.02)  # the release at 0 is censored, the one at 50 reused
    assert list(gaps.samples) == [math.inf, 70.0]
    assert gaps.drain() == [Arrival(math.inf), Arrival(70.0, 0.02)]
    assert gaps.drain() == []


def test_arrivals_that_need_a_new_instance_are_kept_for_the_ledger() -> None:
    gaps = GapTracker(record_arrivals=True)
    gaps.arrival(0.0, queue_wait=0.01)
    gaps.arrival(0.1)
    assert gaps.new_instances == 2 and not gaps.samples
    assert gaps.drain() == [Arrival(None, 0.01), Arrival(None, math.inf)]


def test_without_a_ledger_arrivals_do_not_pile_up() -> None:
    gaps = GapTracker(horizon_s=100.0)
    gaps.arrival(0.0)
    gaps.release(0.1)
    gaps.arrival(0.2)
    gaps.release(0.3)
    gaps.arrival(200.0)  # censors the release at 0.3
    assert list(gaps.samples) == [pytest.approx(0.1), math.inf]
    assert gaps.drain() == []


def test_keeps_a_bounded_memory() -> None:
    gaps = GapTracker(keep_samples=8)
    for i in range(100):
        gaps.release(float(i))
        gaps.arrival(i + 0.5)
    assert gaps.count == 8 and gaps.total == 100


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
        gaps.release(at)
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

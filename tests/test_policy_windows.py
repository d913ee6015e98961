"""Window plans: the expected-cost optimiser and its helpers, on tables of synthetic gaps."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from scaler.policy.windows import (
    WindowPlan,
    break_even_s,
    choose_window,
    compress,
    gap_cost,
    lagged_cost,
)

COLD = 0.15


def outcome(gaps: list[float], plan: WindowPlan) -> tuple[float, float]:
    """Total (slot seconds, waiting seconds) of ``plan`` over ``gaps``."""
    costs = [gap_cost(plan, gap, COLD) for gap in gaps]
    return sum(c[0] for c in costs), sum(c[1] for c in costs)


def expected_cost(gaps: list[float], plan: WindowPlan, kappa: float) -> float:
    slot, wait = outcome(gaps, plan)
    return wait + kappa * slot


@pytest.mark.parametrize(
    ("name", "gaps", "kappa", "check"),
    [
        # Every gap shorter than a cold start: keep until the longest, never pre-warm.
        (
            "short gaps",
            [0.01, 0.02, 0.05, 0.08],
            1.0,
            lambda p: p.keep_s == 0.08 and not p.prewarms,
        ),
        # A 30 s timer (a few ms of jitter): destroy at release, be ready just before the
        # earliest arrival, keep past the latest (slot cheap next to waiting).
        (
            "periodic",
            [29.94 + 0.001 * i for i in range(15)],
            0.05,
            lambda p: p.keep_s == 0.0 and p.warm_from_s == 29.94 and p.warm_until_s == 29.954,
        ),
        # Slot dear next to a few ms of waiting: the pre-warm is timed a little later.
        (
            "periodic, dear slot",
            [29.94 + 0.001 * i for i in range(15)],
            5.0,
            lambda p: p.keep_s == 0.0 and 29.94 < p.warm_from_s < 29.954,
        ),
        # Slot time almost free: no gap seen would wait.
        (
            "cheap slot",
            [0.05, 1.0, 5.0, 60.0],
            1e-6,
            lambda p: outcome([0.05, 1.0, 5.0, 60.0], p)[1] == 0.0,
        ),
        # Slot time dear and gaps unpredictable: keep nothing, pre-warm nothing.
        (
            "dear slot",
            [1.0, 7.0, 40.0, 300.0],
            1000.0,
            lambda p: p.keep_s == 0.0 and not p.prewarms,
        ),
    ],
)
def test_choose_window_table(name: str, gaps: list[float], kappa: float, check) -> None:
    plan = choose_window(sorted(gaps), None, 0.0, COLD, kappa)
    assert check(plan), (name, plan)


def test_a_prewarm_plan_keeps_nothing_first() -> None:
    gaps = sorted([0.03] * 40 + [0.05] * 40 + [0.88 + 0.01 * i for i in range(10)])
    plan = choose_window(gaps, None, 0.0, COLD, 2.0)
    assert not (plan.prewarms and plan.keep_s > 0)


def test_a_gap_seen_once_is_not_pre_warmed_for() -> None:
    plan = choose_window([300.0], None, 0.0, COLD, 1000.0)
    assert not plan.prewarms
    again = choose_window([300.0, 300.0], None, 0.0, COLD, 1000.0)
    assert again.warm_from_s == 300.0


def test_pre_warm_never_timed_past_max_warm_from() -> None:
    gaps = [29.94 + 0.001 * i for i in range(15)]
    plan = choose_window(gaps, None, 0.0, COLD, 0.5, max_warm_from_s=10.0)
    assert not plan.prewarms


def test_keep_shrinks_as_slot_time_gets_dearer() -> None:
    rng = random.Random(3)
    gaps = sorted(rng.expovariate(1.0) for _ in range(200))
    keeps = [
        choose_window(gaps, None, 0.0, COLD, kappa).keep_s
        for kappa in (0.001, 0.01, 0.1, 1.0, 10.0)
    ]
    assert keeps == sorted(keeps, reverse=True)
    assert keeps[0] > keeps[-1]


@pytest.mark.parametrize("seed", range(40))  # the search prunes: many shapes
def test_choose_window_is_optimal_among_all_candidate_plans(seed: int) -> None:
    """Brute force over every (keep, warm from, warm until) on sample values."""
    rng = random.Random(seed)
    gaps = sorted(
        round(rng.choice([rng.uniform(0.0, 0.1), rng.uniform(0.5, 1.5), rng.uniform(5, 9)]), 3)
        for _ in range(14)
    )
    kappa = rng.choice([0.05, 0.5, 5.0])
    plan = choose_window(gaps, None, 0.0, COLD, kappa)
    best = expected_cost(gaps, plan, kappa)
    assert best == pytest.approx(plan.cost * len(gaps))
    points = [0.0, *gaps]
    candidates = [WindowPlan(keep_s=k) for k in points]
    for a, b in itertools.product(gaps, gaps):
        inside = sum(1 for g in gaps if a <= g <= b)
        if a >= COLD and b >= a and inside >= 2:
            candidates.append(WindowPlan(keep_s=0.0, warm_from_s=a, warm_until_s=b))
    brute = min(expected_cost(gaps, c, kappa) for c in candidates)
    assert best == pytest.approx(brute, abs=1e-9)


def test_weights_act_as_repeated_samples() -> None:
    gaps = [0.02, 0.9, 1.0]
    weighted = choose_window(gaps, [10.0, 2.0, 1.0], 0.0, COLD, 1.0)
    repeated = choose_window(sorted([0.02] * 10 + [0.9] * 2 + [1.0]), None, 0.0, COLD, 1.0)
    assert (weighted.keep_s, weighted.warm_from_s, weighted.warm_until_s) == (
        repeated.keep_s,
        repeated.warm_from_s,
        repeated.warm_until_s,
    )


def test_no_samples_falls_back_to_break_even() -> None:
    plan = choose_window([], None, 0.0, COLD, 0.5)
    assert plan == WindowPlan(keep_s=break_even_s(COLD, 0.5))


@pytest.mark.parametrize(
    ("cold", "kappa", "expected"),
    [
        (0.1, 1.0, 0.2),  # (0.1 + 0.1) / 1
        (0.1, 0.1, 1.1),  # (0.1 + 0.01) / 0.1
        (0.1, 0.0, math.inf),
    ],
)
def test_break_even(cold: float, kappa: float, expected: float) -> None:
    assert break_even_s(cold, kappa) == pytest.approx(expected)


PLAN = WindowPlan(keep_s=0.0, warm_from_s=10.0, warm_until_s=12.0)
KEEP = WindowPlan(keep_s=1.0)


@pytest.mark.parametrize(
    ("plan", "gap", "slot", "wait"),
    [
        (KEEP, 0.5, 0.5, 0.0),  # kept
        (KEEP, 3.0, 1.0 + COLD, COLD),  # destroyed: a cold start
        (PLAN, 3.0, COLD, COLD),  # destroyed, pre-warm not started: a cold start
        (PLAN, 9.9, COLD, 0.1),  # pre-warm still starting: waits for it
        (PLAN, 11.0, COLD + 1.0, 0.0),  # pre-warmed and waiting
        (PLAN, 20.0, COLD + 2.0 + COLD, COLD),  # the pre-warmed one expired: a cold start
        (PLAN, math.inf, COLD + 2.0 + COLD, COLD),
    ],
)
def test_gap_cost(plan: WindowPlan, gap: float, slot: float, wait: float) -> None:
    assert gap_cost(plan, gap, COLD) == (pytest.approx(slot), pytest.approx(wait))


def test_compress_groups_tight_clusters_and_keeps_the_tail() -> None:
    samples = [30.0 + 0.001 * i for i in range(100)] + [500.0, math.inf, math.inf]
    values, weights, censored = compress(samples)
    assert censored == 2.0
    assert sum(weights) == 101.0
    assert values == [30.0, 30.099, 500.0]  # cluster as its two ends, the rare long gap kept
    assert weights == [50.0, 50.0, 1.0]


def test_compress_bounds_the_number_of_points() -> None:
    rng = random.Random(1)
    samples = [rng.uniform(0.001, 3000.0) for _ in range(1000)]
    values, weights, _ = compress(samples, max_points=64)
    assert len(values) <= 64
    assert sum(weights) == pytest.approx(1000.0)
    assert values == sorted(values)


@pytest.mark.parametrize(
    ("gap", "lag", "cost"),
    [
        (5.0, 0.0, (5.0, 0.0, False)),  # no lag: the plain gap
        (5.0, 2.0, (3.0, 0.0, False)),  # released 2 s late: 2 s less idle
        (0.5, 2.0, (0.0, 1.5, True)),  # reused before it is free: waits for it
        (0.5, 4.0, (3.0, 3.0, False)),  # would wait longer than a cold start: one instead
    ],
)
def test_a_lagged_release_is_reused_later_or_queued_behind(
    gap: float, lag: float, cost: tuple[float, float, bool]
) -> None:
    assert lagged_cost(WindowPlan(keep_s=10.0), gap, lag, 3.0) == pytest.approx(cost)

"""Window plans: the expected-cost optimiser and its helpers, on tables of synthetic gaps."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from scaler.policy.windows import (
    WindowPlan,
    arrival_cost,
    break_even_s,
    choose_window,
    compress,
    gap_cost,
    outcome,
)

COLD = 0.15


def expected_cost(gaps: list[float], plan: WindowPlan, kappa: float, miss: float) -> float:
    slot, wait = outcome(gaps, None, 0.0, COLD, plan, miss)
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
        # Bursts separated by ~0.9 s pauses: keep inside a burst, re-create for the next one.
        (
            "bursts",
            [0.03] * 40 + [0.05] * 40 + [0.88 + 0.01 * i for i in range(10)],
            2.0,
            lambda p: p.keep_s == 0.05 and 0.88 <= p.warm_from_s <= p.warm_until_s == 0.97,
        ),
        # Slot time almost free: no gap seen would wait.
        (
            "cheap slot",
            [0.05, 1.0, 5.0, 60.0],
            1e-6,
            lambda p: outcome([0.05, 1.0, 5.0, 60.0], None, 0.0, COLD, p)[1] == 0.0,
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


def test_without_prewarm_only_keep_plans() -> None:
    gaps = [29.94 + 0.001 * i for i in range(15)]
    plan = choose_window(gaps, None, 0.0, COLD, 0.5, prewarm=False)
    assert not plan.prewarms
    assert plan.keep_s in (0.0, 29.954)


def test_without_two_phase_a_prewarm_plan_keeps_nothing_first() -> None:
    gaps = sorted([0.03] * 40 + [0.05] * 40 + [0.88 + 0.01 * i for i in range(10)])
    plan = choose_window(gaps, None, 0.0, COLD, 2.0, two_phase=False)
    assert not (plan.prewarms and plan.keep_s > 0)


def test_a_gap_seen_once_is_not_pre_warmed_for() -> None:
    plan = choose_window([0.05, 0.05, 0.05, 300.0], None, 0.0, COLD, 1000.0)
    assert not plan.prewarms
    again = choose_window([0.05, 0.05, 0.05, 300.0, 300.0], None, 0.0, COLD, 1000.0)
    assert again.warm_from_s == 300.0


def test_pre_warm_never_timed_past_max_warm_from() -> None:
    gaps = [29.94 + 0.001 * i for i in range(15)]
    plan = choose_window(gaps, None, 0.0, COLD, 0.5, max_warm_from_s=10.0)
    assert not plan.prewarms


def test_expensive_misses_keep_longer() -> None:
    gaps = sorted([0.1] * 50 + [5.0] * 5)
    cheap = choose_window(gaps, None, 0.0, COLD, 0.1, miss_wait_s=COLD, prewarm=False)
    dear = choose_window(gaps, None, 0.0, COLD, 0.1, miss_wait_s=100 * COLD, prewarm=False)
    assert cheap.keep_s == 0.1
    assert dear.keep_s == 5.0


def test_keep_shrinks_as_slot_time_gets_dearer() -> None:
    rng = random.Random(3)
    gaps = sorted(rng.expovariate(1.0) for _ in range(200))
    keeps = [
        choose_window(gaps, None, 0.0, COLD, kappa, prewarm=False).keep_s
        for kappa in (0.001, 0.01, 0.1, 1.0, 10.0)
    ]
    assert keeps == sorted(keeps, reverse=True)
    assert keeps[0] > keeps[-1]


@pytest.mark.parametrize("seed", range(6))
def test_choose_window_is_optimal_among_all_candidate_plans(seed: int) -> None:
    """Brute force over every (keep, warm from, warm until) on sample values."""
    rng = random.Random(seed)
    gaps = sorted(
        round(rng.choice([rng.uniform(0.0, 0.1), rng.uniform(0.5, 1.5), rng.uniform(5, 9)]), 3)
        for _ in range(14)
    )
    kappa = rng.choice([0.05, 0.5, 5.0])
    miss = COLD * rng.choice([1.0, 4.0])
    plan = choose_window(gaps, None, 0.0, COLD, kappa, miss_wait_s=miss)
    best = expected_cost(gaps, plan, kappa, miss)
    assert best == pytest.approx(plan.cost * len(gaps))
    points = [0.0, *gaps]
    candidates = [WindowPlan(keep_s=k) for k in points]
    for k, a, b in itertools.product(points, gaps, gaps):
        inside = sum(1 for g in gaps if a <= g <= b)
        if a >= COLD and b >= a and k <= a - COLD and inside >= 2:
            candidates.append(WindowPlan(keep_s=k, warm_from_s=a, warm_until_s=b))
    brute = min(expected_cost(gaps, c, kappa, miss) for c in candidates)
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
    ("cold", "kappa", "miss", "expected"),
    [
        (0.1, 1.0, None, 0.2),  # (0.1 + 0.1) / 1
        (0.1, 0.1, None, 1.1),  # (0.1 + 0.01) / 0.1
        (0.1, 0.1, 1.0, 10.1),  # (1.0 + 0.01) / 0.1
        (0.1, 0.0, None, math.inf),
    ],
)
def test_break_even(cold: float, kappa: float, miss: float | None, expected: float) -> None:
    assert break_even_s(cold, kappa, miss) == pytest.approx(expected)


PLAN = WindowPlan(keep_s=1.0, warm_from_s=10.0, warm_until_s=12.0)


@pytest.mark.parametrize(
    ("gap", "slot", "wait"),
    [
        (0.5, 0.5, 0.0),  # kept
        (3.0, 1.0 + COLD, 2.0),  # destroyed, pre-warm not started: a miss (wait = miss)
        (9.9, 1.0 + COLD, 0.1),  # pre-warm still starting: waits for it
        (11.0, 1.0 + COLD + 1.0, 0.0),  # pre-warmed and waiting
        (20.0, 1.0 + COLD + 2.0 + COLD, 2.0),  # the pre-warmed one expired: a miss
        (math.inf, 1.0 + COLD + 2.0 + COLD, 2.0),
    ],
)
def test_gap_cost(gap: float, slot: float, wait: float) -> None:
    assert gap_cost(PLAN, gap, COLD, 2.0) == (pytest.approx(slot), pytest.approx(wait))


KAPPA = 0.5  # a cold start costs 2.0 of waiting + 0.5 * 0.15 of slot = 2.075


@pytest.mark.parametrize(
    ("gap", "queue_wait", "slot", "wait"),
    [
        (0.5, 0.01, 0.5, 0.0),  # kept: no queueing needed
        (3.0, 0.05, 1.0, 0.05),  # a miss: queue behind a busy instance, no cold start
        (3.0, 2.1, 1.0 + COLD, 2.0),  # the busy one frees too late: cold start
        (3.0, math.inf, 1.0 + COLD, 2.0),  # nothing busy: cold start
        (9.9, 0.05, 1.0 + COLD, 0.05),  # the pre-warm is on its way, the busy one is sooner
        (9.9, 0.5, 1.0 + COLD, 0.1),  # ... the pre-warm is sooner
        (11.0, 0.05, 1.0 + COLD + 1.0, 0.0),  # pre-warmed and waiting
        (20.0, 0.05, 1.0 + COLD + 2.0, 0.05),  # the pre-warmed one expired: queue
        (20.0, 3.0, 1.0 + COLD + 2.0 + COLD, 2.0),  # ... or cold start
        (None, 0.05, 0.0, 0.05),  # needed one more instance: queue
        (None, 3.0, COLD, 2.0),  # ... or start one
        (None, 2.05, 0.0, 2.05),  # a longer wait than the cold start, but its slot costs more
        (3.0, 2.05, 1.0, 2.05),  # (2.0 + 0.5 * 0.15 = 2.075 > 2.05): queue
        (math.inf, 0.05, 1.0 + COLD + 2.0 + COLD, 2.0),  # never reused: as gap_cost
    ],
)
def test_arrival_cost(gap: float | None, queue_wait: float, slot: float, wait: float) -> None:
    got = arrival_cost(PLAN, gap, queue_wait, COLD, 2.0, KAPPA)
    assert got == (pytest.approx(slot), pytest.approx(wait))


def test_arrival_cost_the_rate_decides_between_queue_and_cold_start() -> None:
    """A 2.05 s queue against a 2.0 s cold start: queue when slot time is dear, start an
    instance when it is cheap."""
    assert arrival_cost(PLAN, None, 2.05, COLD, 2.0, kappa=0.0) == (COLD, 2.0)
    assert arrival_cost(PLAN, None, 2.05, COLD, 2.0, kappa=1.0) == (0.0, 2.05)


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

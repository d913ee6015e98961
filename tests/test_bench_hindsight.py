"""``hindsight@RATE``: the default policy's plans drawn from the whole run's gaps."""

from __future__ import annotations

import math

import pytest

from bench import hindsight
from bench import policies as bench
from scaler.policy import AdaptivePolicy, Components
from scaler.policy.adaptive import KAPPA_GRID
from scaler.policy.planned import FunctionState
from simulator.dataset import Dataset, FunctionMeta, Request


def dataset(requests: list[tuple[float, str, float]]) -> Dataset:
    """(start s, key, duration s) -> a dataset of 128 MB functions."""
    keys = sorted({key for _, key, _ in requests})
    return Dataset(
        name="hand",
        meta_path="-",
        request_path="-",
        metas={key: FunctionMeta(key, "go", 128, 60, 10) for key in keys},
        requests=[
            Request(int(start * 1000), key, int(duration * 1000), 200)
            for start, key, duration in sorted(requests)
        ],
    )


def test_whole_run_gaps_match_each_arrival_with_the_latest_release() -> None:
    gaps = hindsight.whole_run_gaps(
        dataset(
            [
                (0.0, "f", 1.0),  # released at 1
                (3.0, "f", 1.0),  # reuses it: gap 2; released at 4
                (3.5, "f", 0.5),  # 3's instance is busy: one more instance; released at 4
                (4.0, "f", 0.2),  # a release at the same instant serves it: gap 0
                (0.0, "g", 0.1),
                (9000.0, "g", 0.1),  # past the one-hour horizon: censored, then new
            ]
        )
    )
    assert sorted(gaps["f"].samples) == [0.0, 2.0]
    assert gaps["f"].new_instances == 2
    assert list(gaps["g"].samples) == [math.inf]
    assert gaps["g"].new_instances == 2


def test_a_release_and_an_arrival_at_the_same_millisecond_tie() -> None:
    # In float seconds 0.1 + 0.2 > 0.3: the arrival would sort first and find no release.
    gaps = hindsight.whole_run_gaps(dataset([(0.1, "f", 0.2), (0.3, "f", 0.1)]))
    assert list(gaps["f"].samples) == [0.0]
    assert gaps["f"].new_instances == 1


def test_hindsight_plans_from_the_first_release_on() -> None:
    # A function seen once has no gaps online, so the default falls back to its prior; in
    # hindsight it already plans from the whole run (here: a pre-warm for a 10 s period).
    gaps = hindsight.whole_run_gaps(dataset([(10.0 * i, "f", 0.1) for i in range(50)]))
    index = KAPPA_GRID.index(0.8)
    policy = hindsight.HindsightPolicy(gaps, index)
    fn = FunctionState("f", 128, 3600.0, 1024, now=0.0)
    fn.cold.add(0.2)
    assert policy.gap_source(fn) is gaps["f"]
    assert (
        AdaptivePolicy(Components(online_prices=False), fixed_index=index).plan_at(fn, index)
        is None
    )
    point = policy.plan_at(fn, index)
    assert point is not None
    plan = point[0]
    assert plan.prewarms and plan.warm_from_s == pytest.approx(9.9, abs=0.01)
    assert plan.keep_s < 1.0
    # A function the trace does not have plans from its own gaps.
    other = FunctionState("g", 128, 3600.0, 1024, now=0.0)
    assert policy.gap_source(other) is other.gaps


def test_names_and_errors() -> None:
    assert hindsight.hindsight_name(KAPPA_GRID.index(0.05)) == "hindsight@0.05"
    assert hindsight.is_hindsight("hindsight@0.2") and not hindsight.is_hindsight("adaptive")
    policy = hindsight.hindsight_policy("hindsight@0.2", {})
    assert policy.name == "hindsight@0.2" and policy.fixed_index == KAPPA_GRID.index(0.2)
    with pytest.raises(ValueError, match="'hindsight@fast': 'fast' is not a number"):
        hindsight.hindsight_policy("hindsight@fast", {})
    with pytest.raises(ValueError, match=r"'hindsight@0\.1': .*not within a factor"):
        hindsight.hindsight_policy("hindsight@0.1", {})


def test_bench_runs_the_hindsight_sweep() -> None:
    sweep = bench.chosen_policies(None, ablation=False, rate_sweep=False, hindsight=True)
    assert sweep[:2] == ["reference", "adaptive"] and len(sweep) == 2 + len(KAPPA_GRID)
    assert "hindsight@0.05" in sweep
    with pytest.raises(ValueError, match="pick one"):
        bench.chosen_policies(None, ablation=False, rate_sweep=True, hindsight=True)
    # A 10 s period: online, the first requests find no plan yet (too few gaps) and wait for
    # cold starts; in hindsight the second request already finds a pre-warmed instance.
    data = dataset([(10.0 * i, "f", 0.1) for i in range(30)])
    name = "hindsight@0.8"
    rows = [
        bench.run_one(
            data, hindsight.hindsight_policy(name, hindsight.whole_run_gaps(data)), 100.0
        ),
        bench.run_one(data, "adaptive@0.8", 100.0),
    ]
    ahead, online = rows
    assert ahead["policy"] == name and ahead["successRate"] == online["successRate"] == 1.0
    assert ahead["score"] == pytest.approx(ahead["slotHalf"] + ahead["latencyHalf"])
    assert ahead["scheduleS"] < online["scheduleS"]

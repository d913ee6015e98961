"""``bench.foresight``: the score of a scaler that cannot time wake-ups after a long quiet."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import foresight
from bench.policies import fresh
from simulator.dataset import Dataset, FunctionMeta, Request
from simulator.fast import run_fast
from simulator.platform import LatencyModel
from simulator.score import build_record, oracle_score


def dataset(
    requests: list[tuple[int, str, int]], memory_mb: int = 1024, init_ms: int = 0
) -> Dataset:
    """(start ms, key, duration ms) -> a dataset whose functions share memory and init."""
    keys = sorted({key for _, key, _ in requests})
    return Dataset(
        name="hand",
        meta_path="-",
        request_path="-",
        metas={key: FunctionMeta(key, "go", memory_mb, 60, init_ms) for key in keys},
        requests=[Request(start, key, duration, 200) for start, key, duration in sorted(requests)],
    )


def test_a_miss_is_cheaper_than_keeping_through_a_long_quiet() -> None:
    # 1 GB, cold = 100 ms. The 5 s gap before the second request is a surprise at quiet 1 s.
    # Keeping through it: slot 0.1 + 0.1 + 5.0 + 0.1 = 5.3 GB·s, no waiting: 51.89.
    # Destroying at once: slot 0.1 + 0.1 + 0.1 + 0.1 = 0.4 GB·s, 0.1 s waiting: 58.33.
    ds = dataset([(0, "f", 100), (5100, "f", 100)])
    bound = foresight.foresight_bound(ds, create_ms=100.0, quiet_s=1.0)
    assert bound.surprises == 1
    assert bound.slot_gbs == pytest.approx(0.4)
    assert bound.waiting_s == pytest.approx(0.1)
    assert bound.score == pytest.approx(50 * 0.2 / 0.4 + 50 * 0.2 / 0.3)
    assert bound.kept == 0


def test_keeping_wins_when_the_cold_start_is_long() -> None:
    # Cold = 2 s; the 3 s gap (quiet 3.1 s) is a surprise at quiet 1 s. Keeping through it
    # costs 1 GB·s more than missing it and saves 2 s of waiting: keep.
    ds = dataset([(0, "f", 100), (3100, "f", 100)], init_ms=1900)
    bound = foresight.foresight_bound(ds, create_ms=100.0, quiet_s=1.0)
    assert (bound.surprises, bound.kept) == (1, 1)
    assert bound.waiting_s == 0.0
    assert bound.slot_gbs == pytest.approx(2.0 + 0.1 + 3.0 + 0.1)


def test_a_surprise_shorter_than_a_cold_start_is_kept_without_a_choice() -> None:
    ds = dataset([(0, "f", 100), (1200, "f", 100)], init_ms=1900)
    bound = foresight.foresight_bound(ds, create_ms=100.0, quiet_s=1.0)
    assert (bound.surprises, bound.kept) == (1, 0)
    assert bound.waiting_s == 0.0
    assert bound.slot_gbs == pytest.approx(2.0 + 0.1 + 1.1 + 0.1)


def test_a_quiet_shorter_than_the_threshold_is_foreseen() -> None:
    ds = dataset([(0, "f", 100), (5100, "f", 100)])
    bound = foresight.foresight_bound(ds, create_ms=100.0, quiet_s=10.0)
    assert bound.surprises == 0
    assert bound.score == pytest.approx(oracle_score(ds, create_ms=100.0)["oracleScore"])


def test_a_timer_is_a_surprise_only_until_its_period_repeats() -> None:
    # A 30 s timer with 2 ms of jitter: the first wake-up after 30 s is a surprise, the
    # next ones repeat it; a quiet of 45 s does not.
    starts = [0, 30_000, 60_002, 90_001, 135_001]
    ds = dataset([(s, "timer", 10) for s in starts])
    assert foresight.foresight_bound(ds, create_ms=100.0, quiet_s=10.0).surprises == 2
    strict = foresight.foresight_bound(ds, create_ms=100.0, quiet_s=10.0, repeat_ms=0.0)
    assert strict.surprises == 4


def test_a_first_request_late_in_the_trace_is_a_surprise() -> None:
    ds = dataset([(0, "early", 10), (20_000, "late", 10)])
    bound = foresight.foresight_bound(ds, create_ms=100.0, quiet_s=10.0)
    assert bound.surprises == 1
    assert bound.waiting_s == pytest.approx(0.1)


def test_each_surprise_is_kept_or_missed_on_its_own_merits() -> None:
    # "cheap" quiets 3 s between short cold starts of a 64 MB instance: keep it through;
    # "dear" quiets a minute with a 4 GB instance: miss it (0.1 s of waiting).
    requests = [(0, "cheap", 100), (3100, "cheap", 100), (0, "dear", 100), (60_100, "dear", 100)]
    metas = {
        "cheap": FunctionMeta("cheap", "go", 64, 60, 2000),
        "dear": FunctionMeta("dear", "go", 4096, 60, 0),
    }
    ds = Dataset(
        name="hand",
        meta_path="-",
        request_path="-",
        metas=metas,
        requests=[Request(s, k, d, 200) for s, k, d in sorted(requests)],
    )
    bound = foresight.foresight_bound(ds, create_ms=100.0, quiet_s=1.0)
    assert bound.surprises == 2
    assert bound.kept == 1
    assert bound.waiting_s == pytest.approx(0.1)
    cheap_gbs = (2100 + 100 + 3000 + 100) / 1000 / 16
    dear_gbs = (100 + 100 + 100 + 100) / 1000 * 4
    assert bound.slot_gbs == pytest.approx(cheap_gbs + dear_gbs)


def brute_force_score(ds: Dataset, create_ms: float, quiet_s: float) -> float:
    """The best score over every subset of surprises kept through, by enumeration."""
    parts = []
    execution_ms = execution_gb_ms = 0.0
    for key, meta in ds.metas.items():
        timeline = [(r.start_ms, r.duration_ms) for r in ds.requests if r.key == key]
        parts.append(
            foresight.function_costs(
                timeline,
                origin_ms=ds.start_ms,
                cold_ms=create_ms + meta.init_duration_ms,
                memory_mb=meta.memory_mb,
                quiet_ms=quiet_s * 1000,
                repeat_ms=foresight.REPEAT_MS,
            )
        )
        execution_ms += sum(d for _, d in timeline)
        execution_gb_ms += sum(d for _, d in timeline) * meta.memory_mb / 1024
    keeps = [keep for part in parts for keep in part.keeps]
    base_slot = sum(part.slot_mb_ms for part in parts)
    base_wait = sum(part.waiting_ms for part in parts)
    best = -math.inf
    for chosen in itertools.product((False, True), repeat=len(keeps)):
        picked = [keep for keep, pick in zip(keeps, chosen, strict=True) if pick]
        slot = base_slot + sum(extra for extra, _ in picked)
        wait = base_wait - sum(saved for _, saved in picked)
        slot_half = 50 * execution_gb_ms * 1024 / slot
        best = max(best, slot_half + 50 * execution_ms / (execution_ms + wait))
    return best


#: Three functions whose instances and cold starts cost different amounts.
MIXED = {
    "f": FunctionMeta("f", "go", 128, 60, 0),
    "g": FunctionMeta("g", "go", 1024, 60, 500),
    "h": FunctionMeta("h", "go", 4096, 60, 2000),
}


@settings(max_examples=200, deadline=None)
@given(
    requests=st.lists(
        st.tuples(st.integers(0, 300_000), st.sampled_from("fgh"), st.integers(1, 3_000)),
        min_size=1,
        max_size=12,
    ),
)
def test_the_best_choice_is_exact(requests: list[tuple[int, str, int]]) -> None:
    ds = Dataset(
        name="mixed",
        meta_path="-",
        request_path="-",
        metas={key: MIXED[key] for key in sorted({key for _, key, _ in requests})},
        requests=[Request(s, k, d, 200) for s, k, d in sorted(requests)],
    )
    bound = foresight.foresight_bound(ds, 100.0, 1.0)
    assert bound.score == pytest.approx(brute_force_score(ds, 100.0, 1.0))


@settings(max_examples=150, deadline=None)
@given(
    requests=st.lists(
        st.tuples(st.integers(0, 120_000), st.sampled_from("fgh"), st.integers(1, 5_000)),
        min_size=1,
        max_size=25,
    ),
    quiet_s=st.sampled_from([0.5, 2.0, 10.0, 60.0]),
    init_ms=st.integers(0, 2_000),
)
def test_never_above_the_oracle_and_equal_to_it_without_surprises(
    requests: list[tuple[int, str, int]], quiet_s: float, init_ms: int
) -> None:
    ds = dataset(requests, init_ms=init_ms)
    oracle = oracle_score(ds, create_ms=100.0)["oracleScore"]
    assert foresight.foresight_bound(ds, 100.0, quiet_s).score <= oracle + 1e-9
    assert foresight.foresight_bound(ds, 100.0, math.inf).score == pytest.approx(oracle)


def test_cli_prints_a_row_per_threshold_and_rejects_bad_thresholds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    no_results = ["--results", str(tmp_path / "absent.json")]
    assert foresight.main(["--traces", "builtin", "--quiet", "10,inf", *no_results]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[:2] for row in rows] == [["builtin", "10"], ["builtin", "inf"]]
    assert float(rows[0][2]) <= float(rows[1][2])
    assert rows[0][3] == "-"  # no reference run to take a target from
    for bad in ("0", "soon"):
        with pytest.raises(SystemExit) as exit_info:
            foresight.main(["--traces", "builtin", "--quiet", bad, *no_results])
        assert exit_info.value.code == 2


def miss_wait_ms(requests: list[tuple[int, int]], quiet_ms: float = 1000.0) -> float:
    """Waiting of a 100 ms cold-start function's requests when every surprise is missed."""
    costs = foresight.function_costs(
        requests,
        origin_ms=0,
        cold_ms=100.0,
        memory_mb=1024,
        quiet_ms=quiet_ms,
        repeat_ms=0.0,
    )
    return costs.waiting_ms


def test_a_missed_surprise_makes_the_requests_behind_it_wait_too() -> None:
    # Woken at 5 s: the first waits 100 ms, the ones at +40 and +80 ms until it is ready.
    assert miss_wait_ms([(0, 10), (5000, 10), (5040, 10), (5080, 10)]) == pytest.approx(180.0)
    # ... unless an instance is still busy then (it may free in time): only the first.
    assert miss_wait_ms([(0, 9000), (5000, 10), (5040, 10)]) == pytest.approx(100.0)
    # Requests after the cold start are not held up by it.
    assert miss_wait_ms([(0, 10), (5000, 10), (5100, 10)]) == pytest.approx(100.0)


def costs_of(requests: list[tuple[int, int]], cold_ms: float, quiet_ms: float):
    return foresight.function_costs(
        requests, origin_ms=0, cold_ms=cold_ms, memory_mb=1024, quiet_ms=quiet_ms, repeat_ms=0.0
    )


def test_requests_during_a_missed_surprises_cold_start_are_its_followers_not_surprises() -> None:
    # Cold 600 ms: the request at 5.4 s comes 400 ms after the surprise at 5 s (a quiet of
    # 0.3 s or more) but inside its cold start: it waits 200 ms for it, charged once.
    costs = costs_of([(0, 10), (5000, 500), (5400, 10)], cold_ms=600.0, quiet_ms=300.0)
    assert costs.surprises == 1
    assert costs.waiting_ms == pytest.approx(600.0 + 200.0)


def test_a_surprise_with_every_instance_busy_may_be_served_by_a_spare() -> None:
    # The first request runs 20 s; the one at 5 s finds it busy. A spare started at 0 and
    # idle since costs 5 s of slot instead of the 0.1 s of a cold start, and saves 0.1 s.
    costs = costs_of([(0, 20_000), (5000, 10)], cold_ms=100.0, quiet_ms=1000.0)
    assert costs.keeps == [((5000 - 100) * 1024, 100.0)]
    # Nothing can serve a function's first request: no choice to keep it.
    first = costs_of([(5000, 10)], cold_ms=100.0, quiet_ms=1000.0)
    assert (first.surprises, first.keeps, first.waiting_ms) == (1, [], 100.0)


def test_the_quiet_threshold_is_inclusive() -> None:
    assert costs_of([(0, 10), (1000, 10)], 100.0, quiet_ms=1000.0).surprises == 1
    assert costs_of([(0, 10), (999, 10)], 100.0, quiet_ms=1000.0).surprises == 0


def test_the_wait_before_a_functions_first_request_is_no_quiet_to_repeat() -> None:
    # "f" starts 30 s into the trace and then quiets 30 s: both are surprises.
    ds = dataset([(0, "other", 10), (30_000, "f", 10), (60_000, "f", 10)])
    assert foresight.foresight_bound(ds, create_ms=100.0, quiet_s=10.0).surprises == 2


def bursty_trace(seed: int, overlapping: bool) -> Dataset:
    """Two functions waking up at random, a few requests per wake-up, each under 0.5 s; with
    ``overlapping`` False a function's requests never overlap (so none can queue)."""
    rng = random.Random(seed)
    metas = {
        "small": FunctionMeta("small", "go", 256, 60, 20),
        "large": FunctionMeta("large", "go", 1024, 60, 300),
    }
    spacing = (5, 300) if overlapping else (450, 900)
    requests = []
    for key in metas:
        at = 0
        for _ in range(12):
            at += rng.choice([rng.randint(1_000, 20_000), rng.randint(30_000, 400_000)])
            for _ in range(rng.randint(1, 4)):
                requests.append(Request(at, key, rng.randint(5, 400), 200))
                at += rng.randint(*spacing)
    return Dataset(
        name=f"bursty-{seed}",
        meta_path="-",
        request_path="-",
        metas=metas,
        requests=sorted(requests, key=lambda r: r.start_ms),
    )


#: Policies that start an instance only for a request that waits, never during a quiet.
ON_DEMAND = ("reference", "adaptive-no-prewarm")


def on_demand_scores(ds: Dataset, create_ms: float) -> list[float]:
    scores = []
    for policy in ON_DEMAND:
        run = run_fast(ds, fresh(policy), latency=LatencyModel(create_ms=create_ms))
        record = build_record(ds, run.totals, record_id=policy)
        assert record["successRate"] == 1.0
        scores.append(record["score"])
    return scores


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("create_ms", [100.0, 500.0])
def test_scalers_that_start_nothing_during_quiets_score_no_more(
    seed: int, create_ms: float
) -> None:
    # Requests last under 0.5 s and a function's never overlap: nothing can queue.
    ds = bursty_trace(seed, overlapping=False)
    bound = min(foresight.foresight_bound(ds, create_ms, q).score for q in (0.5, 5.0, 60.0))
    assert max(on_demand_scores(ds, create_ms)) <= bound + 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_free_overlaps_cover_what_queueing_wins_here(seed: int) -> None:
    # With overlapping requests the default without pre-warms queues some behind busy
    # instances and can beat the plain bound; the free-overlaps estimate covers it here.
    ds = bursty_trace(seed, overlapping=True)
    bound = min(
        foresight.foresight_bound(ds, 100.0, q, free_overlaps=True).score for q in (0.5, 5.0, 60.0)
    )
    assert max(on_demand_scores(ds, 100.0)) <= bound + 1e-9


def test_free_overlaps_merge_a_functions_overlapping_requests() -> None:
    requests = [(0, 100), (50, 100), (140, 10), (300, 10)]
    assert foresight.merged_overlaps(requests) == [(0, 150), (300, 10)]
    ds = dataset([(s, "f", d) for s, d in requests])
    plain = foresight.foresight_bound(ds, 100.0, 10.0)
    free = foresight.foresight_bound(ds, 100.0, 10.0, free_overlaps=True)
    # Plain: two instances (100 ms cold start each), 40 ms and 100 ms (re-created) of gaps,
    # 220 ms of execution. Free: one instance over a 150 ms busy period, a 100 ms gap, and
    # the 60 ms of execution the merge hid, charged back.
    assert plain.slot_gbs == pytest.approx((100 + 100 + 40 + 100 + 220) / 1000)
    assert free.slot_gbs == pytest.approx((100 + 150 + 100 + 10 + 60) / 1000)

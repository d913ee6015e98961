"""The built-in workload: deterministic by seed, well-formed, and shaped like its archetypes."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict

import pytest

from simulator.dataset import Dataset, Request, load_dataset, write_dataset
from simulator.workload import (
    ARCHETYPES,
    MEMORY_TIERS_MB,
    archetype_plan,
    generate_workload,
    small_workload,
)

ARCHETYPE_NAMES = {a.name for a in ARCHETYPES}


@pytest.fixture(scope="module")
def default() -> Dataset:
    return generate_workload()


def by_key(dataset: Dataset) -> dict[str, list[Request]]:
    out: dict[str, list[Request]] = defaultdict(list)
    for r in dataset.requests:
        out[r.key].append(r)
    return out


def gaps_ms(requests: list[Request]) -> list[int]:
    return [b.start_ms - a.start_ms for a, b in itertools.pairwise(requests)]


def archetype_of(key: str) -> str:
    return key.rsplit("-", 1)[0]


def max_concurrency(requests: list[Request]) -> int:
    events = sorted(
        [(r.start_ms, 1) for r in requests] + [(r.start_ms + r.duration_ms, -1) for r in requests]
    )
    level = peak = 0
    for _, step in events:  # ends sort before starts at the same ms: back-to-back is not overlap
        level += step
        peak = max(peak, level)
    return peak


def test_same_seed_same_requests() -> None:
    a = generate_workload(seed=3, duration_s=300, functions=12)
    b = generate_workload(seed=3, duration_s=300, functions=12)
    assert a.requests == b.requests
    assert a.metas == b.metas


def test_different_seed_different_requests() -> None:
    a = generate_workload(seed=3, duration_s=300, functions=12)
    b = generate_workload(seed=4, duration_s=300, functions=12)
    assert a.requests != b.requests


def test_default_size_and_name(default: Dataset) -> None:
    assert default.name == "builtin-seed7"
    assert len(default.metas) == 40
    assert 20_000 <= len(default.requests) <= 60_000
    start = 1_700_000_000_000
    assert start <= default.requests[0].start_ms
    assert default.requests[-1].start_ms < start + 1_800_000
    assert default.requests[-1].start_ms - default.requests[0].start_ms > 1_790_000


def test_well_formed(default: Dataset) -> None:
    starts = [r.start_ms for r in default.requests]
    assert starts == sorted(starts)
    for r in default.requests:
        meta = default.metas[r.key]
        assert 1 <= r.duration_ms <= meta.timeout_s * 1000
    for meta in default.metas.values():
        assert meta.memory_mb in MEMORY_TIERS_MB
        assert 10 <= meta.init_duration_ms <= 10_000
        assert meta.timeout_s > 0
        assert archetype_of(meta.key) in ARCHETYPE_NAMES


def test_init_durations_spread_from_tens_of_ms_to_seconds(default: Dataset) -> None:
    inits = [m.init_duration_ms for m in default.metas.values()]
    assert min(inits) < 100
    assert max(inits) > 2000


def test_every_archetype_and_several_memory_tiers(default: Dataset) -> None:
    assert {archetype_of(k) for k in default.metas} == ARCHETYPE_NAMES
    assert archetype_plan(40).count("high-rate") == 2
    assert len({m.memory_mb for m in default.metas.values()}) >= 4


def test_non_200_rate(default: Dataset) -> None:
    codes = [r.status_code for r in default.requests]
    assert set(codes) <= {200, 500, 502}
    rate = sum(c != 200 for c in codes) / len(codes)
    assert 0.001 <= rate <= 0.005


def test_timers_are_periodic(default: Dataset) -> None:
    timers = {k: rs for k, rs in by_key(default).items() if archetype_of(k) == "timer"}
    assert timers
    for key, requests in timers.items():
        gaps = gaps_ms(requests)
        if not gaps:
            continue
        period = statistics.median(gaps)
        assert round(period / 1000) in (10, 30, 60, 300), key
        assert max(abs(g - period) for g in gaps) <= 40, key


def test_steady_is_poisson_like(default: Dataset) -> None:
    for key, requests in by_key(default).items():
        if archetype_of(key) != "steady" or len(requests) < 200:
            continue
        gaps = gaps_ms(requests)
        cv = statistics.pstdev(gaps) / statistics.mean(gaps)
        assert cv > 0.8, key


def test_bursty_is_bursty_and_concurrent(default: Dataset) -> None:
    bursty = {k: rs for k, rs in by_key(default).items() if archetype_of(k) == "bursty"}
    assert bursty
    for key, requests in bursty.items():
        assert max_concurrency(requests) > 5, key
        gaps = gaps_ms(requests)
        assert max(gaps) > 60_000, key  # quiet minutes between bursts


def test_high_rate_has_concurrency_and_heavy_tail(default: Dataset) -> None:
    hot = {k: rs for k, rs in by_key(default).items() if archetype_of(k) == "high-rate"}
    assert len(hot) == 2
    total = sum(len(rs) for rs in hot.values())
    assert total / 1800 >= 10  # tens of requests per second between them
    for key, requests in hot.items():
        assert max_concurrency(requests) > 1, key
        durations = sorted(r.duration_ms for r in requests)
        p50 = durations[len(durations) // 2]
        p99 = durations[int(len(durations) * 0.99)]
        assert p99 > 3 * p50, key


def test_sporadic_is_rare(default: Dataset) -> None:
    counts = by_key(default)
    for key in default.metas:
        if archetype_of(key) == "sporadic":
            assert len(counts.get(key, [])) <= 10  # a few per hour over 30 minutes


def test_small_workload() -> None:
    small = small_workload()
    assert small.requests == small_workload().requests
    assert len(small.metas) == 5
    assert {archetype_of(k) for k in small.metas} == ARCHETYPE_NAMES
    first = small.requests[0].start_ms
    assert small.requests[-1].start_ms - first < 120_000
    assert all(r.key in small.metas for r in small.requests)
    assert 100 < len(small.requests) < 10_000


def test_round_trip_through_a_folder(tmp_path) -> None:
    small = small_workload(seed=2)
    write_dataset(small, tmp_path / "ds")
    loaded = load_dataset(tmp_path / "ds")
    assert loaded.metas == small.metas
    assert loaded.requests == small.requests


@pytest.mark.parametrize("bad", [{"functions": 0}, {"duration_s": 0}])
def test_rejects_empty_shapes(bad: dict) -> None:
    with pytest.raises(ValueError):
        generate_workload(**bad)

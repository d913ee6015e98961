"""Merging shards: for the reference policy (no state across functions) every N gives exactly
the record of one process on the same exact clock; the merge adds what it can and refuses what
it cannot price."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from simulator.dataset import write_dataset
from simulator.fast import run_fast
from simulator.merge import MergeError, merge_totals, merged_record, priced
from simulator.score import RunTotals, build_record, oracle_score
from simulator.sharded import ShardOptions, replay_shard
from simulator.sources import FolderSource, GeneratorSource
from simulator.workload import generate_workload

OPTIONS = ShardOptions(policy="reference", rpc_latency_ms=1.0)


def sharded_record(source: Any, shards: int, options: ShardOptions = OPTIONS) -> dict[str, Any]:
    results = [replay_shard(source, shards, i, options) for i in range(shards)]
    return merged_record(results, name="merged", record_id=1, wall_s=0.0)


MEASURED = (
    "wallTimeInSecs",
    "cpuTimeInSecs",
    "scalerCpuInSecs",
    "scalerWallInSecs",
    "scalerCallMaxMs",
    "decisionTimeP50Ms",
    "decisionTimeP99Ms",
    "decisionTimeMaxMs",
    "decisionTimeMaxExGcMs",
    "decisionsWithGc",
    "gcInDecisionMaxMs",
    "gcPasses",
    "gcInSecs",
    "gcPassMaxMs",
    "scalerCalls",
)
"""Record keys that measure this machine (times of the simulator's and the scaler's own code),
not the simulated run: they differ between any two runs. ``scalerCalls`` counts the scaler's
own work, and N replicas run N GC timers."""


def without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys and k not in MEASURED}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("merge") / "ds"
    write_dataset(generate_workload(seed=3, duration_s=900, functions=14), path)
    return path


@pytest.mark.slow
def test_reference_policy_every_n_gives_the_record_of_one_process(folder: Path) -> None:
    dataset = FolderSource(str(folder)).load()
    run = run_fast(dataset, "reference", rpc_latency_ms=1.0, exact_clock=True)
    whole = build_record(dataset, run.totals, record_id=1, oracle=oracle_score(dataset))
    assert whole["totalLiveSlotCount"] > 0  # slots alive at the end are priced too
    records = {n: sharded_record(FolderSource(str(folder)), n) for n in (1, 2, 3)}
    for n, record in records.items():
        assert without(record, "shards", "wallTimeInSecs") == without(whole, "wallTimeInSecs"), n
        assert len(record["shards"]) == n


@pytest.mark.slow
def test_generated_source_every_n_gives_the_same_record() -> None:
    source = GeneratorSource(seed=5, duration_s=600, functions=12)
    first = without(sharded_record(source, 1), "shards")
    for n in (2, 3):
        assert without(sharded_record(source, n), "shards") == first


def test_per_shard_breakdown_adds_up(folder: Path) -> None:
    record = sharded_record(FolderSource(str(folder)), 3)
    shards = record["shards"]
    assert [s["shard"] for s in shards] == [0, 1, 2]
    for key in ("totalRequestsCount", "coldStarts", "failedRequestsCount"):
        assert sum(s[key] for s in shards) == record[key]
    for key in ("totalSlotTimeInGBs", "invocationScheduleTimeInSecs"):
        assert sum(s[key] for s in shards) == pytest.approx(record[key], rel=1e-12)
    assert sum(s["functions"] for s in shards) == 14
    assert all(s["peakRssMb"] > 0 for s in shards)


def test_fields_are_summed_except_the_rules_and_unknown_kinds_refused() -> None:
    a = RunTotals(total_requests=2, cold_starts=1, start_ms=10, end_ms=50, wall_time_s=3.0)
    b = RunTotals(total_requests=3, cold_starts=2, start_ms=10, end_ms=70, wall_time_s=5.0)
    a.assign_latencies_ms, b.assign_latencies_ms = [1.0, 2.0], [3.0]
    a.exact["schedule_s"], b.exact["schedule_s"] = 1 << 1074, 1 << 1073  # 1.0 and 0.5
    merged = merge_totals([a, b])
    assert (merged.total_requests, merged.cold_starts) == (5, 3)
    assert (merged.start_ms, merged.end_ms, merged.wall_time_s) == (10, 70, 5.0)
    assert merged.schedule_s == 1.5
    latencies = merged.assign_latencies_ms
    assert [latencies[k] for k in range(len(latencies))] == [1.0, 2.0, 3.0]
    assert merged.leaked_slots is None
    with pytest.raises(MergeError, match="cold_starts"):
        merge_totals([a, attrs.evolve(b, cold_starts="many")])


def test_slots_past_what_a_shard_knows_are_refused(folder: Path) -> None:
    result = replay_shard(FolderSource(str(folder)), 2, 0, OPTIONS)
    assert result.tail
    with pytest.raises(MergeError, match="shard 0"):
        priced(result, result.known_until_s + 1.0)


def test_latencies_as_value_counts_give_the_percentiles_of_the_whole_list() -> None:
    import random

    from simulator.dataset import Dataset
    from simulator.exact import ValueCounts

    rng = random.Random(4)
    parts = [[rng.choice((1.0, 1.0, 2.5, 101.0)) + rng.random() * (k % 2) for k in range(n)]
             for n in (0, 1, 57, 300)]  # fmt: skip
    whole = [v for part in parts for v in part]
    merged = ValueCounts.merged(ValueCounts.of(part) for part in parts)
    assert len(merged) == len(whole) and [merged[k] for k in range(len(whole))] == sorted(whole)
    stub = Dataset("x", "", "", {}, [])
    plain = build_record(stub, RunTotals(assign_latencies_ms=whole), record_id=0)
    counted = build_record(stub, RunTotals(assign_latencies_ms=merged), record_id=0)
    for key in ("assignLatencyP50Ms", "assignLatencyP99Ms"):
        assert counted[key] == plain[key]


def test_measured_figures_add_totals_keep_maxima_and_drop_percentiles() -> None:
    a = RunTotals(compute={"scalerCalls": 3, "decisionTimeMaxMs": 2.0, "decisionTimeP50Ms": 0.1,
                           "computeCharged": False})  # fmt: skip
    b = RunTotals(compute={"scalerCalls": 4, "decisionTimeMaxMs": 5.0, "decisionTimeP50Ms": 0.3,
                           "computeCharged": False})  # fmt: skip
    assert merge_totals([a, b]).compute == {
        "scalerCalls": 7,
        "decisionTimeMaxMs": 5.0,
        "decisionTimeP50Ms": None,
        "computeCharged": False,
    }
    assert merge_totals([a]).compute == a.compute
    assert merge_totals([a, RunTotals()]).compute is None

"""Smoke test of ``make bench-rpc`` at a tiny scale: it runs, and its JSON has the right shape.

Bounded (about 1 s of load at 100 pairs/s, 200 instances) and free of timing assertions: the
machine is shared, so only correctness (zero errors, every instance idle) is checked.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import footprint, rpc

STEP_KEYS = {
    "offered",
    "achieved",
    "errors",
    "pairs_ok",
    "assign_ms",
    "idle_ms",
    "pair_ms",
    "lag_ms",
    "cpu",
    "new_instances",
}
PERCENTILES = {"p50", "p90", "p99", "p999", "max"}


def test_rss_of_idle_instances_small() -> None:
    out = footprint.measure_rss(instances=200, functions=20)
    assert out["instances"] == 200
    assert out["idle"] == 200
    assert out["platform_slots"] == 200
    assert out["peak_rss_mb"] > 0
    assert out["bytes_per_instance"] is not None


def test_fsm_cost_small_leaves_machine_as_found() -> None:
    from scaler.states.instance import MACHINE

    before = len(MACHINE.models)
    out = footprint.fsm_cost(batch=50, repeat=2, live=200)
    assert len(MACHINE.models) == before
    for key in ("create_us", "create_us_loaded", "assign_release_pair_us"):
        assert out[key] > 0
    assert footprint.scheduler_pair_cost(pairs=200, repeat=1)["servicer_pair_us"] > 0


def test_bench_rpc_end_to_end_tiny(tmp_path: Path) -> None:
    out = tmp_path / "rpc.json"
    argv = ["--rates", "100", "--duration", "1", "--warmup", "0.5"]
    argv += ["--steps", "100", "--step-duration", "1", "--functions", "5", "--retries", "0"]
    argv += ["--busy-threshold", "64", "--quiet-wait", "1"]
    argv += ["--rss-instances", "200", "--rss-functions", "20"]
    argv += ["--fsm-batch", "50", "--fsm-live", "100", "--out", str(out)]
    assert rpc.main(argv) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert {"meta", "latency", "max_rate", "rss", "rss_by_package", "fsm"} <= data.keys()
    (step,) = data["latency"]
    assert step.keys() >= STEP_KEYS
    assert step["errors"] == 0, step["first_errors"]
    assert step["pairs_ok"] > 0
    assert step["pair_ms"].keys() >= PERCENTILES
    assert data["max_rate"]["steps"][0]["errors"] == 0
    assert data["rss"]["instances"] == 200
    assert {p["exit_status"] for p in data["server_processes"]["processes"]} == {0}

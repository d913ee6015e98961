"""Fast mode's measured compute (issue 14, item 2): what the scaler's code costs, reported in
the record, and paid in virtual time only with ``charge_compute``."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

import pytest

from scaler.policy.reference import ReferencePolicy
from simulator.compute import LogHistogram
from simulator.dataset import Dataset, FunctionMeta, Request
from simulator.fast import run_fast
from simulator.platform import PlatformService
from simulator.score import build_record
from tests.test_wire_mode import scaler_cli, tiny_dataset

THINK_S = 0.02


def _burn(seconds: float) -> None:
    """Use ``seconds`` of CPU (the cost being measured; not a wait for anything): at least as
    long on the wall clock as on the thread's CPU clock, whichever the meter reads."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class ThinkingPolicy(ReferencePolicy):
    """The reference policy, thinking ``THINK_S`` over every keep-alive (once per Idle)."""

    name = "thinking"

    def keep_alive_until(self, pool, instance, now):  # type: ignore[no-untyped-def]
        _burn(THINK_S)
        return super().keep_alive_until(pool, instance, now)


def _dataset(requests: int = 5) -> Dataset:
    meta = FunctionMeta(key="f", runtime="go", memory_mb=256, timeout_s=30, init_duration_ms=50)
    return Dataset(
        name="tiny",
        meta_path="metas",
        request_path="requests",
        metas={"f": meta},
        requests=[Request(1_000 * i, "f", 100, 200) for i in range(requests)],
    )


def test_histogram_percentiles_are_within_two_percent() -> None:
    hist = LogHistogram()
    values = [i / 1000.0 for i in range(1, 1001)]  # 1 ms .. 1 s
    for value in values:
        hist.add(value)
    assert hist.count == 1000
    assert hist.max == 1.0
    assert hist.total == pytest.approx(sum(values))
    assert hist.percentile(50.0) == pytest.approx(0.5, rel=0.016)
    assert hist.percentile(99.0) == pytest.approx(0.99, rel=0.016)
    assert LogHistogram().percentile(50.0) is None


def test_the_record_reports_decision_times_and_scaler_cpu_without_charging_them() -> None:
    dataset = _dataset()
    run = run_fast(dataset, ThinkingPolicy(), rpc_latency_ms=0.0)
    record = build_record(dataset, run.totals, record_id=1)
    assert record["computeCharged"] is False
    assert record["decisions"] > 0
    assert record["decisionTimeMaxMs"] >= THINK_S * 1000.0
    assert record["decisionTimeP50Ms"] <= record["decisionTimeP99Ms"]
    assert record["decisionTimeP99Ms"] <= record["decisionTimeMaxMs"]
    # Five Idles thought 20 ms each: all of it is the scaler's (on the wall clock; the CPU
    # figure is an estimate scaled by the replay's CPU share).
    assert record["scalerWallInSecs"] >= 5 * THINK_S
    assert 0 < record["scalerCpuInSecs"] <= record["scalerWallInSecs"]
    # Not charged: the callers waited for the RPC-free virtual platform only.
    assert record["idleLatencyP99Ms"] == pytest.approx(0.0, abs=1e-6)


class CollectingPolicy(ReferencePolicy):
    """The reference policy, running a full collection over a large heap in every keep-alive
    decision (the pause lands inside the decision, as a collector's pass does)."""

    name = "collecting"

    def __init__(self) -> None:
        super().__init__()
        self.heap = [[] for _ in range(200_000)]  # made here: no decision pays for it
        self.thawed = False

    def keep_alive_until(self, pool, instance, now):  # type: ignore[no-untyped-def]
        if not self.thawed:  # the replay froze every object, the heap too (O(1) to undo)
            self.thawed = True
            gc.unfreeze()
        gc.collect()
        return super().keep_alive_until(pool, instance, now)


def test_the_collector_s_pauses_inside_decisions_are_reported_beside_them() -> None:
    dataset = _dataset()
    record = build_record(dataset, run_fast(dataset, CollectingPolicy()).totals, record_id=1)
    assert record["decisionsWithGc"] >= 5  # every Idle's keep-alive decision
    assert record["gcPasses"] >= record["decisionsWithGc"]
    assert record["gcInSecs"] * 1000.0 >= record["gcInDecisionMaxMs"] > 0.0
    # What the decisions did besides collecting (microseconds) is far shorter than a collection.
    assert record["decisionTimeMaxExGcMs"] < 0.5 * record["decisionTimeMaxMs"]
    # Thinking is not collecting: none of it is taken out.
    thinking = build_record(dataset, run_fast(dataset, ThinkingPolicy()).totals, record_id=1)
    assert thinking["decisionTimeMaxExGcMs"] >= THINK_S * 1000.0


def test_an_uncharged_replay_stays_deterministic() -> None:
    dataset = _dataset()
    first = run_fast(dataset, ThinkingPolicy())
    second = run_fast(dataset, ThinkingPolicy())
    assert first.totals.idle_latencies_ms == second.totals.idle_latencies_ms
    assert first.totals.assign_latencies_ms == second.totals.assign_latencies_ms
    assert first.totals.slot_gbs == second.totals.slot_gbs


def test_charge_compute_makes_the_caller_wait_for_the_scaler() -> None:
    dataset = _dataset()
    run = run_fast(dataset, ThinkingPolicy(), rpc_latency_ms=0.0, charge_compute=True)
    record = build_record(dataset, run.totals, record_id=1)
    assert record["computeCharged"] is True
    # Every Idle waited for the policy's 20 ms of thought, as over the wire.
    assert min(run.totals.idle_latencies_ms) >= THINK_S * 1000.0


def test_the_platform_s_own_code_is_not_the_scaler_s(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_s = 0.2
    original = PlatformService.CreateSlot

    async def slow_create(self, request, context=None):  # type: ignore[no-untyped-def]
        _burn(slow_s)  # the simulator's work, inside a call the scaler made
        return await original(self, request, context)

    monkeypatch.setattr(PlatformService, "CreateSlot", slow_create)
    dataset = _dataset(requests=2)
    run = run_fast(dataset, "reference", rpc_latency_ms=0.0)
    record = build_record(dataset, run.totals, record_id=1)
    assert run.platform_calls["CreateSlot"] >= 1
    assert record["scalerCallMaxMs"] < slow_s * 1000.0 / 2
    assert record["scalerWallInSecs"] < slow_s / 2


def test_simulate_reports_compute_in_both_modes(tmp_path: Path) -> None:
    """Fast mode measures it (and charges it on request); wire mode reads our scaler's
    metrics."""
    folder = tiny_dataset(tmp_path / "tiny")
    fast = scaler_cli("simulate", str(folder), "--json", "--charge-compute")
    assert fast.returncode == 0, fast.stderr
    record = json.loads(fast.stdout.strip().splitlines()[-1])
    assert record["computeCharged"] is True and record["decisions"] > 0
    assert record["scalerCpuInSecs"] > 0 and "scaler compute (charged)" in fast.stderr
    wire = scaler_cli(
        "simulate", str(folder), "--mode", "wire", "--start-scaler", "--json",
        "--scaler", "127.0.0.1:0", "--platform-listen", "127.0.0.1:0",
        "--stats-listen", "127.0.0.1:0", "--speed", "10",
    )  # fmt: skip
    assert wire.returncode == 0, wire.stderr
    record = json.loads(wire.stdout.strip().splitlines()[-1])
    assert record["computeSource"] == "scaler metrics"
    assert record["decisions"] > 0 and record["scalerCpuInSecs"] > 0
    assert 0 < record["decisionTimeP50Ms"] <= record["decisionTimeP99Ms"]
    assert record["decisionTimeP99Ms"] <= 1000.0

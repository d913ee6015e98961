"""``python -m bench.policies`` at a tiny scale: rows, targets, JSON merge, absent traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import policies as bench
from bench import windows
from simulator.workload import generate_workload


def test_rows_targets_and_json_merge(tmp_path: Path) -> None:
    dataset = generate_workload(duration_s=120, functions=6)
    rows = [
        {"trace": "tiny", "createMs": 100.0, **bench.run_one(dataset, policy, 100.0)}
        for policy in ("reference", "adaptive")
    ]
    bench.with_targets(rows)
    reference, adaptive = rows
    assert reference["successRate"] == adaptive["successRate"] == 1.0
    assert reference["score"] == pytest.approx(reference["slotHalf"] + reference["latencyHalf"])
    r, o = reference["score"], reference["oracle"]
    assert adaptive["target"] == pytest.approx(r + 0.6 * (o - r))
    assert reference["gapClosed"] == 0.0
    out = tmp_path / "policies.json"
    bench.merge_json(out, rows)
    bench.merge_json(out, [dict(rows[1], score=-1.0)])  # the same key replaces its row
    saved = json.loads(out.read_text())["results"]
    assert [(r["policy"], r["score"] == -1.0) for r in saved] == [
        ("reference", False),
        ("adaptive", True),
    ]
    assert "adaptive" in bench.line(adaptive, markdown=True)


def test_absent_traces_are_skipped_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(bench, "TRACES", tmp_path / "nowhere")
    loaders = bench.trace_loaders()
    assert loaders["dataSet_1"][0] is None and loaders["builtin"][0] is not None
    assert list(bench.runs(["dataSet_1"], ["reference"], 100.0, 0.0)) == []
    assert "skipping dataSet_1" in capsys.readouterr().err


def test_policy_lists_for_the_ablation() -> None:
    ablation = bench.chosen_policies(None, ablation=True)
    assert ablation[:4] == [
        "reference",
        "adaptive",
        "adaptive-ungated",
        "adaptive-not-queue-aware",
    ]
    variant = bench.fresh("adaptive-ungated")
    assert variant.name == "adaptive-ungated" and not variant.gated  # type: ignore[attr-defined]
    assert bench.chosen_policies("reference, hybrid", ablation=False) == ["reference", "hybrid"]
    with pytest.raises(ValueError, match="unknown policy"):
        bench.chosen_policies("adaptive@0.1", ablation=False)


def test_window_starts_are_spread_over_the_trace() -> None:
    assert windows.window_starts(7200.0) == [0, 1200, 2400, 3600, 4800, 6000]
    assert windows.window_starts(600.0) == [0.0]  # shorter than a window: the whole trace
    assert windows.full_target("dataSet_1", 100.0, 50.0, 60.0) == 53.0
    assert windows.full_target("dataSet_1", 500.0, 50.0, 60.0) == 51.0
    assert windows.full_target("azure2019-4h", 100.0, 50.0, 60.0) == pytest.approx(58.0)

"""``python -m bench.policies`` at a tiny scale: rows, targets, JSON merge, absent traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import policies as bench
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


def test_policy_lists_for_the_ablation_and_the_rate_sweep() -> None:
    sweep = bench.chosen_policies(None, ablation=False, rate_sweep=True)
    assert sweep[:2] == ["reference", "adaptive"] and len(sweep) == 2 + 9
    assert "adaptive@0.05" in sweep and "adaptive@0.0002" in sweep
    ablation = bench.chosen_policies(None, ablation=True, rate_sweep=False)
    assert "adaptive-without-prewarm" in ablation
    assert bench.chosen_policies("reference, adaptive@0.2", ablation=False, rate_sweep=False) == [
        "reference",
        "adaptive@0.2",
    ]
    with pytest.raises(ValueError, match="pick one"):
        bench.chosen_policies(None, ablation=True, rate_sweep=True)
    with pytest.raises(ValueError, match="not within a factor"):
        bench.chosen_policies("adaptive@0.1", ablation=False, rate_sweep=False)

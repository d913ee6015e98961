"""``bench.compare`` with two contestants, as a user runs it: our scaler (``--ours
reference``) and the tiny stand-alone scaler of ``tests/tiny_scaler.py`` (one instance per
request), each in wire mode at speed 1 on the same few seconds of a generated workload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.compare import table
from simulator.dataset import write_dataset
from simulator.workload import small_workload
from tests.test_wire_deadlines import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_compare_our_scaler_with_the_tiny_one(tmp_path: Path) -> None:
    dataset = small_workload().slice(0, 6)
    folder = tmp_path / "six-seconds"
    write_dataset(dataset, folder)
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    result = subprocess.run(
        [
            sys.executable, "-m", "bench.compare", str(folder), "--json",
            "--ours", "reference", "--scaler", f"tiny={TINY}", "--log-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [r["name"] for r in rows] == ["reference", "tiny"]
    ours, tiny = rows
    n = len(dataset.requests)
    for row in rows:
        assert row["requests"] == n and row["failed"] == 0 and row["failures"] == {}
        assert 0 < row["score"] <= 100 and row["slotGBs"] > 0 and row["leakedSlots"] == 0
        assert row["score"] == pytest.approx(row["slotHalf"] + row["latencyHalf"])
        assert row["oracle"] == ours["oracle"] and row["scalerExit"] == 0
    # One instance per request: every request is a cold start and waits for CreateSlot (100 ms).
    assert tiny["coldStarts"] == n and tiny["warmHits"] == 0
    assert tiny["assignP50Ms"] >= 100.0
    assert ours["coldStarts"] < n and ours["assignP50Ms"] < tiny["assignP50Ms"]
    text = table(rows)
    assert text.splitlines()[0].startswith("contestant") and len(text.splitlines()) == 3
    assert "compare: [2/2] tiny" in result.stderr


def test_contestants_run_in_command_line_order_and_bad_ones_are_refused() -> None:
    from bench.compare import contestants, parse
    from scaler.policy import DEFAULT_POLICY
    from simulator.cli import UsageError

    args = parse(["d", "--scaler", "t=./t --listen {listen}", "--ours", "default", "--ours", "x"])
    with pytest.raises(ValueError):  # no policy "x"
        contestants(args.field)
    args = parse(["d", "--scaler", "t=./t --listen {listen}", "--ours", "default"])
    assert [(c.name, c.policy, c.command) for c in contestants(args.field)] == [
        ("t", "", "./t --listen {listen}"),
        (DEFAULT_POLICY, DEFAULT_POLICY, ""),
    ]
    for bad in (["--scaler", "no-equals"], ["--scaler", "a=x", "--scaler", "a=y"], []):
        with pytest.raises(UsageError):
            contestants(parse(["d", *bad]).field)

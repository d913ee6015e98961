"""``bench.policies`` grid as Ray tasks: rows per trace in the grid's order with targets, and
every cell in CSV, JSON and a PNG."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench.sweep import plot_cells, ray_runs, write_cells
from simulator.sources import GeneratorSource

TINY = {
    "tiny": GeneratorSource(duration_s=120, functions=6),
    "small": GeneratorSource(seed=2, duration_s=180, functions=5),
}


@pytest.mark.usefixtures("local_ray")
@pytest.mark.slow
def test_grid_on_ray_then_its_files(tmp_path: Path) -> None:
    grid = list(ray_runs(["tiny", "small"], ["reference", "adaptive"], 100.0, 0.0, sources=TINY))
    assert [trace for trace, _ in grid] == ["tiny", "small"]
    rows = [row for _, trace_rows in grid for row in trace_rows]
    assert [(r["trace"], r["policy"]) for r in rows] == [
        ("tiny", "reference"),
        ("tiny", "adaptive"),
        ("small", "reference"),
        ("small", "adaptive"),
    ]
    assert all(r["successRate"] == 1.0 and r["target"] is not None for r in rows)
    assert rows[0]["gapClosed"] == 0.0
    write_cells(rows, tmp_path / "cells.csv", tmp_path / "cells.json")
    with (tmp_path / "cells.csv").open(encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [r["policy"] for r in table] == ["reference", "adaptive"] * 2
    assert float(table[1]["score"]) == pytest.approx(rows[1]["score"])
    assert json.loads((tmp_path / "cells.json").read_text())["cells"] == rows
    png = plot_cells(rows, tmp_path / "cells.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

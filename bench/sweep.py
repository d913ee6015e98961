"""The policies x traces grid of ``python -m bench.policies`` as Ray tasks, and its files.

Each cell (one trace, one policy) is a task given the trace's *name*: the worker loads the
trace itself and keeps it for its next cell of the same trace (simulator/sources.py), so no
trace is shipped per task. Cells are submitted trace by trace, so a worker mostly moves on to a
cell of the trace it holds. Rows come back as the cells finish and are printed per trace, in the
grid's order, once a trace is complete. Every cell also goes to a CSV and a JSON file, and a
PNG plots score against slot GB·s per policy, one panel per trace.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from simulator.dataset import Dataset
from simulator.sources import Source, load_cached


@attrs.frozen
class BenchTrace:
    """A trace of ``bench.policies`` by name, loaded in the worker (a :class:`Source`)."""

    name: str

    @property
    def label(self) -> str:
        return self.name

    def load(self) -> Dataset:
        from bench.policies import trace_loaders

        loader, why = trace_loaders()[self.name]
        if loader is None:
            raise FileNotFoundError(f"{self.name}: {why}")
        return loader()


def run_cell(
    trace: str,
    source: Source,
    policy: str,
    create_ms: float,
    rpc_latency_ms: float,
    charge_compute: bool = False,
) -> dict[str, Any]:
    """One cell of the grid, in this process (what a Ray task runs)."""
    from loguru import logger

    from bench.policies import fresh, run_one

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    dataset = load_cached(source)
    row = run_one(dataset, fresh(policy), create_ms, rpc_latency_ms, charge_compute)
    return {
        "trace": trace,
        "createMs": create_ms,
        "rpcLatencyMs": rpc_latency_ms,
        "chargeCompute": charge_compute,
        **row,
    }


def ray_runs(
    traces: list[str],
    policies: list[str],
    create_ms: float,
    rpc_latency_ms: float,
    charge_compute: bool = False,
    sources: dict[str, Source] | None = None,
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Per trace (in order, once all its cells are done), its rows in the policies' order.

    A trace is loaded from ``sources[trace]`` if given, else as ``bench.policies`` names it.
    Ray must be initialised (simulator/cluster.py); a failed cell raises, naming the cell.
    """
    import ray

    from bench.policies import with_targets

    task = ray.remote(num_cpus=1, max_retries=0)(run_cell)
    sources = sources or {}
    pending = {
        task.remote(
            trace,
            sources.get(trace, BenchTrace(trace)),
            policy,
            create_ms,
            rpc_latency_ms,
            charge_compute,
        ): (trace, policy)
        for trace in traces
        for policy in policies
    }
    total = len(pending)
    done: dict[tuple[str, str], dict[str, Any]] = {}
    started = time.perf_counter()
    next_trace = 0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)  # Ctrl-C works
            for ref in ready:
                trace, policy = pending.pop(ref)
                try:
                    done[trace, policy] = ray.get(ref)
                except Exception as err:
                    raise RuntimeError(f"cell {trace} x {policy} failed: {err}") from err
                print(
                    f"cells: {len(done)}/{total} done ({trace} x {policy}, "
                    f"{done[trace, policy]['wallS']:.1f} s; {time.perf_counter() - started:.0f}"
                    " s so far)",
                    file=sys.stderr,
                    flush=True,
                )
            while next_trace < len(traces) and all(
                (traces[next_trace], p) in done for p in policies
            ):
                trace = traces[next_trace]
                rows = [done[trace, p] for p in policies]
                with_targets(rows)
                yield trace, rows
                next_trace += 1
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


CSV_COLUMNS = (
    "trace",
    "policy",
    "createMs",
    "rpcLatencyMs",
    "chargeCompute",
    "score",
    "slotHalf",
    "latencyHalf",
    "oracle",
    "target",
    "gapClosed",
    "coldStarts",
    "slotGBs",
    "scheduleS",
    "requests",
    "successRate",
    "leakedSlots",
    "wallS",
)


def write_cells(rows: list[dict[str, Any]], csv_path: Path, json_path: Path) -> None:
    """Every cell of this run as CSV (the columns above) and as JSON (all of each row)."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    json_path.write_text(json.dumps({"cells": rows}, indent=1) + "\n", encoding="utf-8")


def plot_cells(rows: list[dict[str, Any]], path: Path) -> Path:
    """Score against slot GB·s, a point per policy, a panel per trace (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    traces = list(dict.fromkeys(r["trace"] for r in rows))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    colours = plt.get_cmap("tab10" if len(policies) <= 10 else "tab20")
    columns = min(2, len(traces))
    lines = (len(traces) + columns - 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(6.5 * columns, 4.5 * lines), squeeze=False)
    for ax, trace in zip(axes.flat, traces, strict=False):
        for index, policy in enumerate(policies):
            cell = next((r for r in rows if r["trace"] == trace and r["policy"] == policy), None)
            if cell is None or not cell["slotGBs"]:
                continue
            ax.scatter(cell["slotGBs"], cell["score"], color=colours(index), label=policy)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(trace)
        ax.set_xlabel("slot GB·s (log)")
        ax.set_ylabel("score")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(traces) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(labels) + 3) // 4), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

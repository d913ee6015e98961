"""``simulate --report DIR``: the records as JSON, and charts that show where a score came from.

Charts, per dataset: live instances against concurrent demand over time (all functions, then
the busiest ones), and cold starts over time; for the whole session: each score's two halves
beside the oracle's. matplotlib is imported here only, lazily, with the Agg backend (no
display needed); without it the report is ``records.json`` alone, and says so.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.timeline import TOTAL, Timeline

#: At most this many points per line (the max of each bin is drawn, so peaks stay visible).
MAX_POINTS = 2000
#: Cold starts are counted in at most this many bins.
MAX_BINS = 240


def _binned(series: Sequence[int], width: int, how: Any = max) -> list[int]:
    return [how(series[i : i + width]) for i in range(0, len(series), width)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "dataset"


def write_report(
    directory: Path,
    records: Sequence[dict[str, Any]],
    timelines: Sequence[Timeline | None],
    names: Sequence[str],
) -> list[Path]:
    """Write ``records.json`` and the charts into ``directory``; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "records.json"
    path.write_text(json.dumps(list(records), indent=2) + "\n", encoding="utf-8")
    written = [path]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "report: matplotlib is not installed (pip install -r requirements.txt); "
            "wrote records.json only",
            file=sys.stderr,
        )
        return written
    for index, (timeline, name) in enumerate(zip(timelines, names, strict=True), 1):
        if timeline is None or timeline.seconds == 0:
            continue
        stem = f"{index:02d}-{_slug(name)}"
        written.append(_instances_chart(plt, timeline, name, directory / f"{stem}-instances.png"))
        written.append(_cold_chart(plt, timeline, name, directory / f"{stem}-cold-starts.png"))
    written.append(_scores_chart(plt, records, names, directory / "scores.png"))
    return written


def _time_axis(seconds: int, width: int) -> tuple[list[float], str, float]:
    """x values (bin starts) in minutes or hours, their label, and the divisor used."""
    divisor, unit = (3600.0, "hours") if seconds > 3 * 3600 else (60.0, "minutes")
    return [i * width / divisor for i in range(math.ceil(seconds / width))], unit, divisor


def _instances_chart(plt: Any, timeline: Timeline, name: str, path: Path) -> Path:
    keys = [TOTAL, *timeline.tracked]
    width = max(1, math.ceil(timeline.seconds / MAX_POINTS))
    x, unit, _ = _time_axis(timeline.seconds, width)
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(11, 1.9 * len(keys) + 0.8), sharex=True, squeeze=False
    )
    for ax, key in zip(axes[:, 0], keys, strict=True):
        slots = _binned(timeline.padded(timeline.slots[key]), width)
        demand = _binned(timeline.padded(timeline.demand[key]), width)
        ax.step(x, slots, where="post", color="tab:blue", lw=1.0, label="live instances")
        ax.fill_between(
            x, demand, step="post", color="tab:orange", alpha=0.45, lw=0, label="demand"
        )
        ax.set_ylabel("all functions" if key == TOTAL else key[:24], fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[0, 0].set_title(
        f"{name}: live instances vs concurrent demand (peak per {width} s), busiest functions"
    )
    axes[-1, 0].set_xlabel(f"trace time ({unit})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _cold_chart(plt: Any, timeline: Timeline, name: str, path: Path) -> Path:
    width = max(1, math.ceil(timeline.seconds / MAX_BINS))
    x, unit, divisor = _time_axis(timeline.seconds, width)
    fig, ax = plt.subplots(figsize=(11, 3.2))
    total = _binned(timeline.padded(timeline.cold_starts[TOTAL]), width, sum)
    ax.bar(x, total, width=width / divisor, align="edge", color="tab:red", alpha=0.7, label="all")
    for key in timeline.tracked:
        series = _binned(timeline.padded(timeline.cold_starts[key]), width, sum)
        if any(series):
            ax.step(x, series, where="post", lw=0.9, label=key[:24])
    ax.set_title(f"{name}: cold starts per {width} s ({sum(total)} in all)")
    ax.set_xlabel(f"trace time ({unit})")
    ax.set_ylabel("cold starts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _oracle_halves(record: dict[str, Any]) -> tuple[float, float] | None:
    slot_gbs = record.get("oracleSlotTimeInGBs")
    if not slot_gbs:
        return None
    return 50.0 * record["invocationExecutionTimeInGBs"] / slot_gbs, 50.0


def _scores_chart(
    plt: Any, records: Sequence[dict[str, Any]], names: Sequence[str], path: Path
) -> Path:
    fig, ax = plt.subplots(figsize=(max(6.5, 2.2 * len(records) + 1.5), 4.2))
    bar = 0.38
    for i, record in enumerate(records):
        gated = record["score"] == 0.0 and record["successRate"] < 1.0
        slot, latency = record["scoreSlotHalf"], record["scoreLatencyHalf"]
        ax.bar(i - bar / 2, slot, bar, color="tab:blue", label="slot half" if i == 0 else None)
        ax.bar(
            i - bar / 2,
            latency,
            bar,
            bottom=slot,
            color="tab:green",
            label="latency half" if i == 0 else None,
        )
        text = f"{record['score']:.1f}" + (" (gated)" if gated else "")
        ax.text(i - bar / 2, slot + latency + 1, text, ha="center", fontsize=8)
        oracle = _oracle_halves(record)
        if oracle is not None:
            ax.bar(i + bar / 2, oracle[0], bar, color="tab:blue", alpha=0.4, hatch="//")
            ax.bar(i + bar / 2, oracle[1], bar, bottom=oracle[0], color="tab:green", alpha=0.4)
            ax.text(i + bar / 2, sum(oracle) + 1, f"oracle {sum(oracle):.1f}", ha="center",
                    fontsize=8)  # fmt: skip
    ax.set_xticks(range(len(records)), [n[:28] for n in names], fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("points")
    ax.set_title("score halves: run (left) vs oracle (right, hatched)")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

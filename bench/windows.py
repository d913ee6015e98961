"""Windows from a cold start: `python -m bench.windows` (part of `make bench`).

Every trace is cut into 20-minute windows at fixed starts (``WINDOWS_PER_TRACE`` of them,
spread evenly from the trace's first request to 20 minutes before its last), and each window
is replayed from a cold start (the scaler meets a new deployment or a restart), for the
default policy and ``reference``, at each CreateSlot latency. The table gives default minus
reference per window, and per trace and latency the worst and the mean; the issue-16 target
is a worst window of at least -0.5 points.

Runs go through a process pool of ``--jobs`` workers (2 by default, niced: the machine is
shared); fast-mode scores are deterministic, so contention only slows the table down.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from loguru import logger

from bench.policies import ROOT, fresh, run_one, trace_loaders
from scaler.policy import DEFAULT_POLICY
from simulator.dataset import Dataset
from simulator.defaults import DEFAULT_RPC_LATENCY_MS

#: Length of one window (seconds): the issue's 20 minutes.
WINDOW_S = 1200.0
#: Windows per trace (the issue asks for at least 6).
WINDOWS_PER_TRACE = 6
#: The issue-16 bound: the default may trail the reference by at most this in any window.
WORST_ALLOWED = -0.5
OUT = ROOT / "bench-out" / "windows.json"


@functools.cache
def _trace(name: str) -> Dataset:
    loader, why = trace_loaders()[name]
    if loader is None:
        raise FileNotFoundError(why)
    return loader()


def window_starts(duration_s: float, count: int = WINDOWS_PER_TRACE) -> list[float]:
    """``count`` window starts (seconds from the trace's start) spread evenly so that the
    last window ends with the trace; one start at 0 for a trace shorter than a window."""
    room = max(duration_s - WINDOW_S, 0.0)
    if room <= 0 or count <= 1:
        return [0.0]
    return [round(room * i / (count - 1)) for i in range(count)]


def _one(
    trace: str, start: float | None, policy: str, create_ms: float, rpc_ms: float, charge: bool
) -> dict:
    dataset = _trace(trace)
    if start is not None:
        dataset = dataset.slice(start, WINDOW_S)
    row = run_one(dataset, fresh(policy), create_ms, rpc_ms, charge)
    return {"trace": trace, "start": start, "createMs": create_ms, **row}


def _init_worker() -> None:
    os.nice(5)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")


def measure(
    traces: list[str],
    policies: list[str],
    creates: list[float],
    rpc_ms: float,
    jobs: int,
    charge_compute: bool = False,
) -> list[dict[str, Any]]:
    """Every (trace, window or full trace, policy, CreateSlot) run, as rows."""
    tasks = []
    for trace in traces:
        duration = _trace(trace).duration_s
        for start in [None, *window_starts(duration)]:
            for create_ms in creates:
                for policy in policies:
                    tasks.append((trace, start, policy, create_ms, rpc_ms, charge_compute))
    with ProcessPoolExecutor(jobs, initializer=_init_worker) as pool:
        futures = [pool.submit(_one, *task) for task in tasks]
        rows = []
        for future in futures:
            row = future.result()
            rows.append(row)
            where = "full" if row["start"] is None else f"@{row['start']:g}"
            print(
                f"  {row['trace']} {where} {row['createMs']:g} ms {row['policy']}: "
                f"{row['score']:.2f}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _by(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(r["trace"], r["start"], r["createMs"], r["policy"]): r for r in rows}


def windows_table(rows: list[dict[str, Any]], default: str) -> tuple[str, bool]:
    """Markdown: per trace and CreateSlot, default minus reference per window, worst, mean;
    and whether every window meets the bound."""
    index = _by(rows)
    traces = sorted({r["trace"] for r in rows}, key=[r["trace"] for r in rows].index)
    creates = sorted({r["createMs"] for r in rows})
    lines = [
        "| trace | CreateSlot | windows (start s: default - reference) | worst | mean | ok |",
        "|---|---|---|---|---|---|",
    ]
    ok_all = True
    for trace in traces:
        starts = sorted(
            {r["start"] for r in rows if r["trace"] == trace and r["start"] is not None}
        )
        for create_ms in creates:
            deltas = []
            for start in starts:
                d = index.get((trace, start, create_ms, default))
                r = index.get((trace, start, create_ms, "reference"))
                if d is not None and r is not None:
                    ok = d["successRate"] >= 1.0
                    deltas.append((start, d["score"] - r["score"] if ok else -100.0))
            if not deltas:
                continue
            worst = min(x for _, x in deltas)
            mean = sum(x for _, x in deltas) / len(deltas)
            ok = worst >= WORST_ALLOWED
            ok_all &= ok
            cells = ", ".join(f"{s:g}: {x:+.2f}" for s, x in deltas)
            lines.append(
                f"| {trace} | {create_ms:g} ms | {cells} | {worst:+.2f} | {mean:+.2f} | "
                f"{'yes' if ok else 'no'} |"
            )
    return "\n".join(lines), ok_all


def full_table(rows: list[dict[str, Any]], default: str) -> str:
    """Markdown: the full traces, default against R and the fixed-ratio target."""
    index = _by(rows)
    lines = [
        "| trace | CreateSlot | R | default | O | target | met | gap% | colds R → default |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["start"] is not None or r["policy"] != "reference":
            continue
        d = index.get((r["trace"], None, r["createMs"], default))
        if d is None:
            continue
        ref, oracle, score = r["score"], d["oracle"], d["score"]
        target = full_target(r["trace"], r["createMs"], ref, oracle)
        gap = (score - ref) / (oracle - ref) if oracle > ref else 0.0
        met = score >= target and d["successRate"] >= 1.0
        lines.append(
            f"| {r['trace']} | {r['createMs']:g} ms | {ref:.2f} | {score:.2f} | {oracle:.2f} | "
            f"{target:.2f} | {'yes' if met else 'no'} | {100 * gap:.0f} | "
            f"{r['coldStarts']} → {d['coldStarts']} |"
        )
    return "\n".join(lines)


def full_target(trace: str, create_ms: float, reference: float, oracle: float) -> float:
    """Issue 16's full-trace target: R + 0.8 (O - R); dataSet_1 R + 3 at 100 ms and R + 1
    at 500 ms (its oracle is out of reach for a scaler that cannot see wake-ups)."""
    if trace == "dataSet_1":
        return reference + (3.0 if create_ms <= 100 else 1.0)
    return reference + 0.8 * (oracle - reference)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Windows from a cold start (module docstring).")
    parser.add_argument("--traces", help="comma-separated (default: every available)")
    parser.add_argument("--policy", default=DEFAULT_POLICY, help="the policy against reference")
    parser.add_argument("--create-ms", default="100,500", help="comma-separated (100,500)")
    parser.add_argument(
        "--rpc-latency-ms",
        type=float,
        default=DEFAULT_RPC_LATENCY_MS,
        help=f"({DEFAULT_RPC_LATENCY_MS:g}, simulator.defaults)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (2)")
    parser.add_argument(
        "--charge-compute",
        action="store_true",
        help="add the scaler's measured compute to its callers' latency (simulator.compute)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON rows (default {OUT})")
    args = parser.parse_args(argv)
    loaders = trace_loaders()
    traces = [t.strip() for t in args.traces.split(",")] if args.traces else list(loaders)
    present = []
    for trace in traces:
        if trace not in loaders:
            parser.error(f"unknown trace {trace!r} (known: {', '.join(loaders)})")
        if loaders[trace][0] is None:
            print(f"skipping {trace}: {loaders[trace][1]}", file=sys.stderr)
        else:
            present.append(trace)
    creates = [float(c) for c in args.create_ms.split(",")]
    rows = measure(
        present,
        ["reference", args.policy],
        creates,
        args.rpc_latency_ms,
        args.jobs,
        args.charge_compute,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": rows}, indent=1) + "\n")
    windows, ok = windows_table(rows, args.policy)
    charged = ", compute charged" if args.charge_compute else ""
    print(
        f"\nWindows from a cold start, {WINDOW_S / 60:g} min, RPC {args.rpc_latency_ms:g} ms"
        + charged
    )
    print(windows)
    print(f"\nFull traces, RPC {args.rpc_latency_ms:g} ms")
    print(full_table(rows, args.policy))
    failed = [r for r in rows if r["successRate"] < 1.0]
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())

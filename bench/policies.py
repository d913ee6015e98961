"""Policies x traces: `python -m bench.policies` (`make bench`).

Fast mode (virtual time), one run per policy and trace, scored with the official formula and
compared with the clairvoyant bound. Traces: dataSet_1 and dataSet_3r from ../shared/traces,
a 4-hour window of the Azure Functions 2019 sample imported on the fly (minutes 480-720), and
the built-in synthetic workload; a trace whose files are absent is skipped with a message.

Columns: score and its two halves (slot: 50*Eg/S, latency: 50*E/(E+L)), the oracle, the
issue-4 target R + 0.6*(O - R) with R the reference's score in the same table, the share of
the reference-to-oracle gap the policy closed, cold starts, slot GB·s, wall time, the scaler's
measured compute (seconds; policy decision p99 and max, ms; simulator/compute.py), success rate.
The latency model is simulator.defaults' (CreateSlot 100 ms, the loopback RPC charge) unless
``--create-ms`` / ``--rpc-latency-ms`` say otherwise; ``--charge-compute`` also makes the
scaler's callers wait for its measured compute.

`--ablation` adds the bench-only variants of the default (bench/variants.py): without its
counterfactual gate, without queue-aware cold starts, without pre-warms.
Results are also merged into bench-out/policies.json, keyed by (create ms, RPC ms, compute
charged, trace, policy), so runs with different options accumulate.

The grid runs as Ray tasks, a cell each, in parallel (bench/sweep.py): on a local Ray started
for the run, or on a cluster with `--ray-address`; `--serial` runs it in this process instead.
Every cell of the run also goes to bench-out/policies-cells.csv and .json, and
bench-out/policies-cells.png plots score against slot GB·s per policy, a panel per trace.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from loguru import logger

from bench.variants import VARIANTS
from scaler.policy import DEFAULT_POLICY, POLICIES, Policy, make_policy
from simulator.dataset import Dataset, load_dataset
from simulator.defaults import DEFAULT_CREATE_MS, DEFAULT_RPC_LATENCY_MS
from simulator.fast import run_fast
from simulator.platform import LatencyModel
from simulator.score import build_record, oracle_score
from simulator.workload import generate_workload

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces"
OUT = ROOT / "bench-out" / "policies.json"
CELLS = ROOT / "bench-out" / "policies-cells"
#: Azure 2019 windows imported on the fly: name -> (start minute, minutes) of the trace's day.
AZURE_WINDOWS = {
    "azure2019-4h": (480, 240),  # 08:00-12:00, the window tuned on before issue 16
    "azure2019-00h": (0, 240),  # 00:00-04:00
    "azure2019-16h": (960, 240),  # 16:00-20:00
}

#: Trace name -> what loads it (None when its files are absent, with the reason).
Loader = Callable[[], Dataset]


def trace_loaders() -> dict[str, tuple[Loader | None, str]]:
    """Every known trace, loader first; a missing one carries why it is skipped."""
    out: dict[str, tuple[Loader | None, str]] = {}
    for name in ("dataSet_1", "dataSet_3r"):
        folder = TRACES / name
        if folder.is_dir():
            out[name] = (lambda folder=folder: load_dataset(folder), "")
        else:
            out[name] = (None, f"{folder} is absent")
    azure = TRACES / "azure2019-200"
    for name, (start, minutes) in AZURE_WINDOWS.items():
        if not azure.is_dir():
            out[name] = (None, f"{azure} is absent")
            continue

        def load_azure(start: int = start, minutes: int = minutes) -> Dataset:
            from simulator.importers.azure2019 import import_azure2019

            return import_azure2019(azure, start_minute=start, minutes=minutes)

        out[name] = (load_azure, "")
    out["builtin"] = (generate_workload, "")
    return out


def run_one(
    dataset: Dataset,
    policy: str | Policy,
    create_ms: float = DEFAULT_CREATE_MS,
    rpc_latency_ms: float = DEFAULT_RPC_LATENCY_MS,
    charge_compute: bool = False,
) -> dict[str, Any]:
    """One fast-mode run of ``policy`` (a name, or a fresh policy object), as a flat row of
    the table."""
    name = policy if isinstance(policy, str) else policy.name
    started = time.perf_counter()
    run = run_fast(
        dataset,
        policy,
        latency=LatencyModel(create_ms=create_ms),
        rpc_latency_ms=rpc_latency_ms,
        charge_compute=charge_compute,
    )
    wall = time.perf_counter() - started
    record = build_record(
        dataset, run.totals, record_id=name, oracle=oracle_score(dataset, create_ms=create_ms)
    )
    return {
        "policy": name,
        "score": record["score"],
        "slotHalf": record["scoreSlotHalf"],
        "latencyHalf": record["scoreLatencyHalf"],
        "oracle": record["oracleScore"],
        "coldStarts": record["coldStarts"],
        "slotGBs": record["totalSlotTimeInGBs"],
        "scheduleS": record["invocationScheduleTimeInSecs"],
        "requests": record["totalRequestsCount"],
        "successRate": record["successRate"],
        "leakedSlots": record.get("leakedSlots"),
        "wallS": wall,
        "cpuS": record["cpuTimeInSecs"],
        "scalerCpuS": record.get("scalerCpuInSecs"),
        "decisionP99Ms": record.get("decisionTimeP99Ms"),
        "decisionMaxMs": record.get("decisionTimeMaxMs"),
        "decisionMaxExGcMs": record.get("decisionTimeMaxExGcMs"),
    }


def target_score(reference: float, oracle: float) -> float:
    """Issue 4's target: the reference's score plus 60 % of its gap to the oracle."""
    return reference + 0.6 * (oracle - reference)


def with_targets(rows: list[dict[str, Any]]) -> None:
    """Add the target and the closed gap to the rows of one trace (needs a reference row)."""
    reference = next((r for r in rows if r["policy"] == "reference"), None)
    for row in rows:
        row["target"] = None
        row["gapClosed"] = None
        if reference is None:
            continue
        r, o = reference["score"], row["oracle"]
        row["target"] = target_score(r, o)
        row["gapClosed"] = (row["score"] - r) / (o - r) if o > r else None


COLUMNS = (
    ("trace", "{:<14}", "trace"),
    ("policy", "{:<32}", "policy"),
    ("score", "{:>7.2f}", "score"),
    ("slot½", "{:>6.2f}", "slotHalf"),
    ("lat½", "{:>6.2f}", "latencyHalf"),
    ("oracle", "{:>7.2f}", "oracle"),
    ("target", "{:>7}", "target"),
    ("gap%", "{:>6}", "gapClosed"),
    ("colds", "{:>7}", "coldStarts"),
    ("slot GB·s", "{:>11.0f}", "slotGBs"),
    ("wall s", "{:>6.1f}", "wallS"),
    ("scaler s", "{:>8.1f}", "scalerCpuS"),
    ("dec p99 ms", "{:>10.3f}", "decisionP99Ms"),
    ("dec max ms", "{:>10.1f}", "decisionMaxMs"),
    ("ex-GC ms", "{:>8.1f}", "decisionMaxExGcMs"),
    ("ok %", "{:>7.3f}", "successRate"),
)


def cell(key: str, fmt: str, row: dict[str, Any]) -> str:
    value = row.get(key)
    if key == "target":
        value = "-" if value is None else f"{value:.2f}"
    elif key == "gapClosed":
        value = "-" if value is None else f"{100 * value:.0f}"
    elif value is None:  # not measured (wire mode, a row from an older run)
        align, width = fmt[2], fmt[3:].split(".")[0].rstrip("}sdf")
        return f"{{:{align}{width}}}".format("-")
    elif key == "successRate":
        value = 100 * value
    return fmt.format(value)


def header(markdown: bool) -> str:
    """The table's header line(s)."""
    if markdown:
        titles = " | ".join(title for title, _, _ in COLUMNS)
        return f"| {titles} |\n|" + "|".join("---" for _ in COLUMNS) + "|"
    widths = [len(cell(key, fmt, SAMPLE)) for _, fmt, key in COLUMNS]
    line = " ".join(
        title.ljust(w) if i < 2 else title.rjust(w)
        for i, ((title, _, _), w) in enumerate(zip(COLUMNS, widths, strict=True))
    )
    return line + "\n" + "-" * len(line)


def line(row: dict[str, Any], markdown: bool) -> str:
    """One row of the table."""
    cells = [cell(key, fmt, row) for _, fmt, key in COLUMNS]
    if markdown:
        return "| " + " | ".join(c.strip() for c in cells) + " |"
    return " ".join(cells)


SAMPLE = {
    "trace": "",
    "policy": "",
    "score": 0.0,
    "slotHalf": 0.0,
    "latencyHalf": 0.0,
    "oracle": 0.0,
    "target": 0.0,
    "gapClosed": 0.0,
    "coldStarts": 0,
    "slotGBs": 0.0,
    "wallS": 0.0,
    "scalerCpuS": 0.0,
    "decisionP99Ms": 0.0,
    "decisionMaxMs": 0.0,
    "decisionMaxExGcMs": 0.0,
    "successRate": 1.0,
}


def merge_json(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the rows with the same (create ms, RPC ms, compute charged, trace, policy) in
    ``path``, keep the rest."""

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return (
            row.get("createMs"),
            row.get("rpcLatencyMs", 0.0),
            row.get("chargeCompute", False),
            row["trace"],
            row["policy"],
        )

    existing: list[dict[str, Any]] = []
    if path.is_file():
        try:
            existing = json.loads(path.read_text())["results"]
        except (ValueError, KeyError, TypeError):
            existing = []
    fresh = {key(r) for r in rows}
    merged = [r for r in existing if key(r) not in fresh] + rows
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": merged}, indent=1) + "\n")


def selected(names: str | None, known: list[str]) -> list[str]:
    """The comma-separated ``names``, or all ``known`` ones."""
    if not names:
        return known
    return [n.strip() for n in names.split(",") if n.strip()]


def chosen_traces(names: str | None, known: list[str]) -> list[str]:
    """The comma-separated trace ``names``, or all ``known`` ones; ValueError naming the
    unknown ones."""
    traces = selected(names, known)
    unknown = [t for t in traces if t not in known]
    if unknown:
        raise ValueError(f"unknown trace(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return traces


def chosen_policies(names: str | None, *, ablation: bool) -> list[str]:
    """The policies to run: ``names`` (default: every registered one), or the ablation's
    list (the reference first, for the targets). ValueError on a bad name."""
    if ablation:
        return ["reference", DEFAULT_POLICY, *VARIANTS]
    policies = selected(names, list(POLICIES))
    for policy in policies:
        fresh(policy)
    return policies


def fresh(name: str) -> Policy:
    """A fresh policy by name: a registered one, or a bench-only variant."""
    variant = VARIANTS.get(name)
    return variant() if variant is not None else make_policy(name)


def _present(traces: list[str]) -> Iterator[tuple[str, Loader]]:
    """Each of ``traces`` whose files are here, with its loader; an absent one is skipped
    with a message on stderr."""
    loaders = trace_loaders()
    for trace in traces:
        loader, why = loaders.get(trace, (None, "unknown trace"))
        if loader is None:
            print(f"skipping {trace}: {why}", file=sys.stderr)
            continue
        yield trace, loader


def loaded_traces(traces: list[str]) -> Iterator[tuple[str, Dataset]]:
    """Each of ``traces`` loaded, in order; an absent one is skipped with a message on
    stderr."""
    for trace, loader in _present(traces):
        yield trace, loader()


def runs(
    traces: list[str],
    policies: list[str],
    create_ms: float,
    rpc_latency_ms: float,
    charge_compute: bool = False,
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Per trace, its rows (skipping absent traces with a message on stderr)."""
    for trace, dataset in loaded_traces(traces):
        rows = []
        for policy in policies:
            print(f"{trace}: {policy} ...", file=sys.stderr, flush=True)
            row = run_one(dataset, fresh(policy), create_ms, rpc_latency_ms, charge_compute)
            rows.append(
                {
                    "trace": trace,
                    "createMs": create_ms,
                    "rpcLatencyMs": rpc_latency_ms,
                    "chargeCompute": charge_compute,
                    **row,
                }
            )
        with_targets(rows)
        yield trace, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Score policies on traces in fast mode (see the module docstring)."
    )
    parser.add_argument("--traces", help="comma-separated (default: all available)")
    parser.add_argument("--policies", help="comma-separated (default: every registered one)")
    parser.add_argument(
        "--create-ms", type=float, default=DEFAULT_CREATE_MS, help="CreateSlot latency"
    )
    parser.add_argument(
        "--rpc-latency-ms",
        type=float,
        default=DEFAULT_RPC_LATENCY_MS,
        help=f"charge per Assign/Idle/platform RPC (default {DEFAULT_RPC_LATENCY_MS:g}, "
        "simulator.defaults)",
    )
    parser.add_argument(
        "--charge-compute",
        action="store_true",
        help="add the scaler's measured compute to its callers' latency (simulator.compute)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="the default policy and its bench-only variants (reference kept for targets)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results (default {OUT})")
    parser.add_argument(
        "--cells",
        type=Path,
        default=CELLS,
        help=f"this run's cells go to CELLS.csv, CELLS.json and CELLS.png (default {CELLS})",
    )
    parser.add_argument("--serial", action="store_true", help="one cell after another, no Ray")
    parser.add_argument("--ray-address", help="run the cells on this Ray cluster")
    parser.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray (default: all)")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")

    try:
        traces = chosen_traces(args.traces, list(trace_loaders()))
    except ValueError as err:
        parser.error(str(err))
    try:
        policies = chosen_policies(args.policies, ablation=args.ablation)
    except ValueError as err:
        parser.error(str(err))

    everything: list[dict[str, Any]] = []
    charged = ", compute charged" if args.charge_compute else ""
    print(f"fast mode, CreateSlot {args.create_ms:g} ms, RPC {args.rpc_latency_ms:g} ms{charged}")
    print(header(args.markdown), flush=True)
    with contextlib.ExitStack() as stack:
        if args.serial:
            grid = runs(traces, policies, args.create_ms, args.rpc_latency_ms, args.charge_compute)
        else:
            from bench.sweep import ray_runs
            from simulator.cluster import ray_session

            stack.enter_context(ray_session(args.ray_address, args.ray_cpus))
            present = [trace for trace, _ in _present(traces)]
            grid = ray_runs(
                present, policies, args.create_ms, args.rpc_latency_ms, args.charge_compute
            )
        for _, rows in grid:
            for row in rows:
                print(line(row, args.markdown), flush=True)
            everything.extend(rows)
    if everything:
        from bench.sweep import plot_cells, write_cells

        merge_json(args.out, everything)
        cells = args.cells
        write_cells(everything, cells.with_suffix(".csv"), cells.with_suffix(".json"))
        plot_cells(everything, cells.with_suffix(".png"))
        print(f"results merged into {args.out}; cells in {cells}.csv/.json/.png", file=sys.stderr)
    failed = [r for r in everything if r["successRate"] < 1.0]
    for row in failed:
        print(f"{row['trace']} {row['policy']}: success {row['successRate']:.6f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Any scaler side by side with ours: ``python -m bench.compare`` (``make compare``).

    python -m bench.compare DATASET --slice A:B --scaler NAME=CMD ... [--ours POLICY ...]

Each contestant in turn replays the same slice in wire mode at speed 1 against a fresh
platform (our ``PlatformService`` over gRPC), started by the one code path of
``--start-scaler`` / ``--scaler-cmd`` (``simulator/scaler_process.py``); ``CMD`` takes the
placeholders ``{listen}``, ``{port}`` and ``{platform}``. Then one table: the score and both
halves (slot, latency) as the record has them, the oracle, cold starts, slot GB·s, Assign p50
and p99 (trace ms), and the failed requests with their reasons. ``--json`` prints the rows as
JSON instead. Progress goes to stderr; each scaler's output to ``--log-dir/NAME.log``.

A contestant that cannot be started (or never accepts) gets a row with its error, and the
others still run; a contestant that hangs or dies gets its failed requests and reasons
(Assign/Idle deadlines, the scaler's exit), as ``scaler simulate --mode wire`` reports them.
Speed 1 because a scaler's own timers run in wall time (docs/simulator.md, ``--speed``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import attrs

from bench import ROOT
from scaler.policy import DEFAULT_POLICY, make_policy
from simulator.cli import UsageError, parse_slice
from simulator.dataset import Dataset, DatasetError, load_dataset
from simulator.defaults import DEFAULT_CREATE_MS
from simulator.platform import LatencyModel
from simulator.replay import DEFAULT_ASSIGN_DEADLINE_S, DEFAULT_IDLE_DEADLINE_S
from simulator.scaler_process import command_argv
from simulator.score import build_record, oracle_score
from simulator.wire import WireError, WireOptions, run_wire

LOG_DIR = ROOT / "bench-out" / "compare"

#: Table columns: (header, row key, format).
COLUMNS = (
    ("contestant", "name", "{}"),
    ("score", "score", "{:.2f}"),
    ("slot half", "slotHalf", "{:.2f}"),
    ("latency half", "latencyHalf", "{:.2f}"),
    ("oracle", "oracle", "{:.2f}"),
    ("cold starts", "coldStarts", "{:,}"),
    ("slot GB·s", "slotGBs", "{:,.1f}"),
    ("Assign p50 ms", "assignP50Ms", "{:.1f}"),
    ("Assign p99 ms", "assignP99Ms", "{:.1f}"),
    ("failed", "failed", "{:,}"),
)


@attrs.frozen
class Contestant:
    """Ours with a policy, or any scaler started by a command."""

    name: str
    policy: str = ""
    command: str = ""

    @property
    def label(self) -> str:
        return f"ours, --policy {self.policy}" if self.policy else self.command


def contestants(field: list[tuple[str, str]]) -> list[Contestant]:
    """``("ours", POLICY)`` (``default``: the default policy) and ``("scaler", NAME=CMD)``
    pairs, as the command line gave them, in its order."""
    out: list[Contestant] = []
    for kind, text in field:
        if kind == "ours":
            policy = DEFAULT_POLICY if text == "default" else text
            make_policy(policy)  # ValueError names the known ones
            out.append(Contestant(policy, policy=policy))
            continue
        name, sep, command = text.partition("=")
        if not sep or not name.strip() or not command.strip():
            raise UsageError(f"--scaler {text!r}: expected NAME=CMD")
        command_argv(command, "127.0.0.1:1", "127.0.0.1:1")  # ValueError: bad quoting
        out.append(Contestant(name.strip(), command=command))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise UsageError(f"contestant names must differ: {', '.join(names)}")
    if not out:
        raise UsageError("nothing to compare: give --ours POLICY and/or --scaler NAME=CMD")
    return out


def failure_text(failures: dict[str, int]) -> str:
    """``reason N; reason M`` by count, most first (``-`` for none)."""
    items = sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))
    return "; ".join(f"{k} {n:,}" for k, n in items) or "-"


async def run_one(
    dataset: Dataset, contestant: Contestant, args: argparse.Namespace, oracle: dict[str, float]
) -> dict[str, Any]:
    """One contestant's wire session; its table row."""
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{contestant.name}.log"
    log.unlink(missing_ok=True)
    options = WireOptions(
        scaler=args.scaler_listen,
        platform_listen=args.platform_listen,
        stats_listen="127.0.0.1:0",
        speed=args.speed,
        latency=LatencyModel(args.create_ms),
        connect_timeout_s=args.connect_timeout,
        assign_deadline_s=args.assign_deadline,
        idle_deadline_s=args.idle_deadline,
        start_scaler=bool(contestant.policy),
        policy=contestant.policy or DEFAULT_POLICY,
        scaler_cmd=contestant.command,
        scaler_log=str(log),
        stop_timeout_s=args.stop_timeout,
    )
    row: dict[str, Any] = {"name": contestant.name, "scaler": contestant.label, "log": str(log)}
    try:
        runs, simulator = await run_wire([dataset], options)
    except WireError as err:
        return {**row, "error": str(err)}
    run = runs[0]
    record = build_record(dataset, run.totals, record_id=1, oracle=oracle)
    return {
        **row,
        "score": record["score"],
        "slotHalf": record["scoreSlotHalf"],
        "latencyHalf": record["scoreLatencyHalf"],
        "oracle": record["oracleScore"],
        "coldStarts": record["coldStarts"],
        "warmHits": record["warmHits"],
        "slotGBs": record["totalSlotTimeInGBs"],
        "assignP50Ms": record["assignLatencyP50Ms"],
        "assignP99Ms": record["assignLatencyP99Ms"],
        "requests": record["totalRequestsCount"],
        "failed": record["failedRequestsCount"],
        "failures": dict(run.failures),
        "leakedSlots": record.get("leakedSlots"),
        "scalerExit": simulator.scaler_exit,
        "aborted": simulator.aborted,
        "wallSecs": record["wallTimeInSecs"],
        "record": record,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table, failures (or the error) in the last column."""
    header = [h for h, _, _ in COLUMNS] + ["why failed"]
    lines = [header]
    for row in rows:
        if "error" in row:
            lines.append([row["name"]] + ["-"] * (len(COLUMNS) - 1) + [row["error"]])
            continue
        cells = ["-" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in COLUMNS]
        lines.append([*cells, failure_text(row["failures"])])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for line in lines:
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:-1], widths[1:], strict=True)]
        out.append("  ".join([*cells, line[-1]]))
    return "\n".join(out)


async def compare(dataset: Dataset, field: list[Contestant], args: argparse.Namespace) -> list:
    oracle = oracle_score(dataset, create_ms=args.create_ms)
    rows = []
    for index, contestant in enumerate(field, 1):
        print(
            f"compare: [{index}/{len(field)}] {contestant.name} ({contestant.label}): "
            f"{len(dataset.requests):,} requests over {dataset.duration_s:,.0f} s "
            f"at speed {args.speed:g}",
            file=sys.stderr,
            flush=True,
        )
        row = await run_one(dataset, contestant, args, oracle)
        rows.append(row)
        if "error" in row:
            print(f"compare:   {contestant.name}: {row['error']}", file=sys.stderr, flush=True)
        else:
            print(
                f"compare:   {contestant.name}: score {row['score']:.2f}, "
                f"{row['failed']:,} failed, {row['wallSecs']:.0f} s wall (log: {row['log']})",
                file=sys.stderr,
                flush=True,
            )
    return rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.compare", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("dataset", metavar="DATASET_DIR")
    p.add_argument("--slice", metavar="START:LENGTH", help="replay only this window, seconds")
    # Both append to one list, so the contestants run in the order they were given.
    p.add_argument(
        "--ours",
        action="append",
        dest="field",
        default=[],
        type=lambda policy: ("ours", policy),
        metavar="POLICY",
        help="our scaler with this policy (default: the default one); repeatable",
    )
    p.add_argument(
        "--scaler",
        action="append",
        dest="field",
        type=lambda text: ("scaler", text),
        metavar="NAME=CMD",
        help="any scaler, started by CMD ({listen}, {port}, {platform}); repeatable",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON, not a table")
    p.add_argument("--speed", type=float, default=1.0, help="1 (scores compare at 1 only)")
    p.add_argument(
        "--create-ms",
        type=float,
        default=DEFAULT_CREATE_MS,
        help=f"CreateSlot latency ({DEFAULT_CREATE_MS:g}, simulator.defaults)",
    )
    p.add_argument("--scaler-listen", default="127.0.0.1:0", help="{listen} (port 0: a free one)")
    p.add_argument("--platform-listen", default="127.0.0.1:0", help="{platform} (127.0.0.1:0)")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="wait for a scaler, s")
    p.add_argument("--assign-deadline", type=float, default=DEFAULT_ASSIGN_DEADLINE_S)
    p.add_argument("--idle-deadline", type=float, default=DEFAULT_IDLE_DEADLINE_S)
    p.add_argument("--stop-timeout", type=float, default=30.0, help="SIGTERM to SIGKILL, s")
    p.add_argument("--log-dir", default=str(LOG_DIR), help=f"scaler logs ({LOG_DIR})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        field = contestants(args.field)
        dataset = load_dataset(args.dataset)
        window = parse_slice(args.slice)
        if window is not None:
            dataset = dataset.slice(*window)
        if not dataset.requests:
            raise UsageError(f"{dataset.name}: no requests to replay")
        if args.speed <= 0 or args.assign_deadline <= 0 or args.idle_deadline <= 0:
            raise UsageError("--speed and the deadlines must be positive")
    except (DatasetError, UsageError, ValueError, OSError) as err:
        print(f"compare: {err}", file=sys.stderr)
        return 2
    if args.speed != 1.0:
        print("compare: scores compare at speed 1 only (docs/simulator.md)", file=sys.stderr)
    rows = asyncio.run(compare(dataset, field, args))
    if args.json:
        print(json.dumps({"dataset": dataset.name, "speed": args.speed, "rows": rows}))
    else:
        print(
            f"{dataset.name}, {len(dataset.requests):,} requests, speed {args.speed:g}, "
            f"CreateSlot {args.create_ms:g} ms"
        )
        print(table(rows))
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""``scaler simulate`` and ``scaler import-trace``: the simulator's command line.

``src/scaler/cli.py`` mounts :func:`register` when this package is importable. Exit status:
0 when every dataset was replayed (whatever its score), 1 when a wire session could not run,
2 for bad input (a dataset, a fault spec, a policy name, a slice), with a one-line reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from scaler.policy import DEFAULT_POLICY
from simulator.dataset import Dataset, DatasetError, load_dataset
from simulator.defaults import DEFAULT_CREATE_MS, DEFAULT_RPC_LATENCY_MS
from simulator.faults import FaultSpec, FaultSpecError
from simulator.platform import LatencyModel
from simulator.replay import DEFAULT_ASSIGN_DEADLINE_S, DEFAULT_IDLE_DEADLINE_S
from simulator.score import build_record, oracle_score


class UsageError(ValueError):
    """Bad command-line input; reported in one line with exit status 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate`` and ``import-trace`` to the ``scaler`` command."""
    simulate = subparsers.add_parser(
        "simulate",
        help="replay datasets against a scaler and score the run",
        description="Replay challenge datasets against a scaler (in-process in virtual time, "
        "or over gRPC in real time) and print the challenge's end-of-run record for each.",
    )
    _add_simulate_arguments(simulate)
    simulate.set_defaults(run=simulate_command)

    importer = subparsers.add_parser(
        "import-trace",
        help="turn a raw public trace into a challenge dataset folder",
        description="Import a window of a raw Azure Functions trace as a dataset folder "
        "(see docs/workloads.md for how missing fields are filled).",
    )
    from simulator.importers import add_subcommands

    traces = importer.add_subparsers(dest="trace", metavar="TRACE", required=True)
    add_subcommands(traces)
    importer.set_defaults(run=lambda args: args.func(args))


def _add_simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datasets", nargs="*", metavar="DATASET_DIR", help="dataset folders")
    p.add_argument(
        "--builtin", action="store_true", help="replay the built-in workload (the default)"
    )
    p.add_argument("--mode", choices=("fast", "wire"), default="fast", help="default: fast")
    p.add_argument(
        "--policy", default=DEFAULT_POLICY, help=f"scaling policy (default: {DEFAULT_POLICY})"
    )
    p.add_argument(
        "--faults", default="", metavar="SPEC", help="e.g. create_error=0.05,spike=0.01:2s"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the fault injection (default 0)")
    p.add_argument(
        "--create-ms",
        type=float,
        default=DEFAULT_CREATE_MS,
        help=f"CreateSlot latency ({DEFAULT_CREATE_MS:g})",
    )
    p.add_argument("--create-jitter-ms", type=float, default=0.0, help="uniform +/- jitter (0)")
    p.add_argument("--slice", metavar="START:LENGTH", help="replay only this window, seconds")
    p.add_argument("--out", metavar="FILE", help="append each record as a JSON line")
    p.add_argument("--report", metavar="DIR", help="write records.json and PNG charts here")
    p.add_argument("--json", action="store_true", help="last stdout line per dataset: record")
    p.add_argument("--progress", action="store_true", help="progress bar even if not a TTY")
    p.add_argument(
        "--scale",
        metavar="FUNCTIONS:HOURS",
        help="the built-in workload at this size, with production-like popularity "
        "(docs/workloads.md); e.g. 10000:24 for a day of 10,000 functions",
    )
    p.add_argument(
        "--transition-log",
        metavar="PATH",
        help="the scaler's FSM transitions as JSON lines (fast mode, or wire --start-scaler)",
    )
    fast = p.add_argument_group("fast mode")
    fast.add_argument(
        "--rpc-latency-ms",
        type=float,
        default=DEFAULT_RPC_LATENCY_MS,
        help="charge per RPC round trip (Assign, Idle, CreateSlot, Init, DestroySlot); "
        f"default {DEFAULT_RPC_LATENCY_MS:g}, measured on loopback",
    )
    fast.add_argument(
        "--charge-compute",
        action="store_true",
        help="add the scaler's measured compute to the latency its callers see, as the wire "
        "would (not deterministic); without it the compute is only reported",
    )
    sharded = p.add_argument_group("sharded replay on Ray (fast mode; docs/scaling-out.md)")
    sharded.add_argument(
        "--shards",
        type=int,
        default=0,
        metavar="N",
        help="split the functions by their key hash into N scaler replicas, replay each as a "
        "Ray task, merge the records (0: one process, no Ray)",
    )
    sharded.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="run the tasks on this Ray cluster (default: a local Ray started for the run)",
    )
    sharded.add_argument(
        "--ray-cpus", type=int, metavar="N", help="CPUs of the local Ray (default: all cores)"
    )
    wire = p.add_argument_group("wire mode")
    wire.add_argument("--scaler", default="127.0.0.1:9001", help="scaler address (127.0.0.1:9001)")
    wire.add_argument("--speed", type=float, default=1.0, help="divide trace time by S (1)")
    wire.add_argument("--platform-listen", default="127.0.0.1:50051", help="(127.0.0.1:50051)")
    wire.add_argument("--stats-listen", default="0.0.0.0:9000", help="stats HTTP (0.0.0.0:9000)")
    wire.add_argument(
        "--connect-timeout", type=float, default=30.0, help="wait for the scaler, s (30)"
    )
    wire.add_argument(
        "--start-scaler",
        action="store_true",
        help="run our own `scaler serve --policy P` at --scaler for the session, then SIGTERM it",
    )
    wire.add_argument(
        "--scaler-cmd",
        default="",
        metavar='"CMD ARGS"',
        help="start this scaler once the platform listens, stop it at the end (SIGTERM, then "
        "SIGKILL); {listen} (host:port of --scaler), {port} and {platform} are filled in",
    )
    wire.add_argument("--scaler-log", default="", help="the started scaler's log file")
    wire.add_argument(
        "--assign-deadline",
        type=float,
        default=DEFAULT_ASSIGN_DEADLINE_S,
        metavar="SECONDS",
        help="an Assign unanswered this long (wall) fails its request "
        f"({DEFAULT_ASSIGN_DEADLINE_S:g})",
    )
    wire.add_argument(
        "--idle-deadline",
        type=float,
        default=DEFAULT_IDLE_DEADLINE_S,
        metavar="SECONDS",
        help=f"an Idle unanswered this long (wall) fails its request ({DEFAULT_IDLE_DEADLINE_S:g})",
    )
    wire.add_argument(
        "--linger",
        type=float,
        default=20.0,
        help="without --start-scaler: after the stats port closes, keep the platform up this "
        "long, or until no slot is left, so the scaler can destroy its slots (20)",
    )


# --------------------------------------------------------------------------------------------
# Reading the arguments


def parse_slice(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    start, sep, length = text.partition(":")
    try:
        if not sep:
            raise ValueError
        window = (float(start), float(length))
    except ValueError:
        raise UsageError(f"--slice {text!r}: expected START:LENGTH in seconds") from None
    if window[0] < 0 or window[1] <= 0:
        raise UsageError(f"--slice {text!r}: START must be >= 0 and LENGTH > 0")
    return window


def _parse_scale(text: str | None) -> tuple[int, float] | None:
    if not text:
        return None
    functions, _, hours = text.partition(":")
    try:
        scale = (int(functions), float(hours or 1))
    except ValueError:
        raise UsageError(f"--scale {text!r}: expected FUNCTIONS:HOURS, e.g. 10000:24") from None
    if scale[0] < 1 or scale[1] <= 0:
        raise UsageError(f"--scale {text!r}: FUNCTIONS must be >= 1 and HOURS > 0")
    return scale


def _builtin_source(args: argparse.Namespace) -> Any:
    """The built-in workload's generator arguments (``--scale``, or the default size)."""
    from simulator.sources import GeneratorSource

    scale = _parse_scale(args.scale)
    if scale is None:
        return GeneratorSource()
    return GeneratorSource(functions=scale[0], duration_s=scale[1] * 3600.0, popularity=True)


def _datasets(args: argparse.Namespace) -> list[Dataset]:
    """Every dataset, read and validated before anything runs."""
    datasets: list[Dataset] = []
    if args.builtin or not args.datasets:
        datasets.append(_builtin_source(args).load())
    datasets.extend(load_dataset(folder) for folder in args.datasets)
    window = parse_slice(args.slice)
    if window is not None:
        datasets = [d.slice(*window) for d in datasets]
    for dataset in datasets:
        if not dataset.requests:
            raise UsageError(f"{dataset.name}: no requests to replay")
    return datasets


def _check(args: argparse.Namespace) -> FaultSpec:
    from scaler.policy import make_policy

    make_policy(args.policy)  # ValueError names the known ones
    if args.shards < 0:
        raise UsageError("--shards must be >= 0")
    if args.shards:
        refused = [
            flag
            for flag, given in (
                ("--mode wire", args.mode == "wire"),
                ("--slice", args.slice),
                ("--report", args.report),
                ("--transition-log", args.transition_log),
            )
            if given
        ]
        if refused:
            raise UsageError(f"--shards replays in fast mode only, without {', '.join(refused)}")
    elif args.ray_address:
        raise UsageError("--ray-address needs --shards N")
    if args.speed <= 0:
        raise UsageError("--speed must be positive")
    if args.create_ms < 0 or args.create_jitter_ms < 0 or args.rpc_latency_ms < 0:
        raise UsageError("--create-ms, --create-jitter-ms and --rpc-latency-ms must be >= 0")
    if args.mode == "wire" and args.charge_compute:
        print("simulate: --charge-compute applies to fast mode only; ignored", file=sys.stderr)
    if args.assign_deadline <= 0 or args.idle_deadline <= 0:
        raise UsageError("--assign-deadline and --idle-deadline must be positive")
    if args.start_scaler and args.scaler_cmd:
        raise UsageError("--start-scaler and --scaler-cmd each start a scaler: choose one")
    if args.scaler_cmd:
        from simulator.scaler_process import command_argv

        command_argv(args.scaler_cmd, "127.0.0.1:1", "127.0.0.1:1")  # ValueError: bad quoting
    if args.mode == "fast" and args.speed != 1.0:
        print("simulate: --speed applies to wire mode only; ignored", file=sys.stderr)
    if args.mode == "fast" and args.scaler_cmd:
        print("simulate: --scaler-cmd applies to wire mode only; ignored", file=sys.stderr)
    return FaultSpec.parse(args.faults)


# --------------------------------------------------------------------------------------------
# Output


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6f}".rstrip("0").rstrip(".") if value == value else "nan"
    if value is None:
        return "-"
    return str(value)


def record_table(record: dict[str, Any]) -> str:
    """The record as aligned ``key  value`` lines, in the record's own order."""
    width = max(len(k) for k in record)
    return "\n".join(f"{k:<{width}}  {_format_value(v)}" for k, v in record.items())


def summary(run: Any, record: dict[str, Any], mode: str, who: str, position: str) -> str:
    """A few human lines about one replay, for stderr."""
    oracle = record.get("oracleScore")
    p50, p99 = record["assignLatencyP50Ms"], record["assignLatencyP99Ms"]
    latency = f", Assign p50 {p50:.1f} ms p99 {p99:.1f} ms" if p50 is not None else ""
    lines = [
        f"{position} {run.dataset.name} ({mode}, {who}): score {record['score']:.3f} "
        f"(slot {record['scoreSlotHalf']:.3f} + latency {record['scoreLatencyHalf']:.3f})"
        + (f", oracle {oracle:.3f}" if oracle is not None else ""),
        f"  {record['totalRequestsCount']} requests, {record['failedRequestsCount']} failed "
        f"({record['successRate']:.4%} ok), {record['coldStarts']} cold starts, "
        f"{record['warmHits']} warm hits{latency}, {record['wallTimeInSecs']:.1f} s wall",
    ]
    if run.failures:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(run.failures.items()))
        lines.append(f"  failures: {kinds}")
        lines.extend(f"    {line}" for line in run.first_failures[:5])
    injected = {k: n for k, n in run.injected_faults.items() if n}
    if injected:
        lines.append("  injected faults: " + ", ".join(f"{k} {n}" for k, n in injected.items()))
    if record.get("leakedSlots") is not None:
        lines.append(f"  leaked slots after the scaler stopped: {record['leakedSlots']}")
    if record.get("decisionTimeMaxMs") is not None:
        lines.append(compute_line(record))
    return "\n".join(lines)


def _ms(value: float | None, digits: int) -> str:
    """Milliseconds for a summary; a merged sharded run has no percentile of decisions."""
    return "-" if value is None else f"{value:.{digits}f} ms"


def compute_line(record: dict[str, Any]) -> str:
    """The scaler's measured compute, in one summary line."""
    charged = "charged" if record.get("computeCharged") else "not charged"
    calls = (
        f" in {record['scalerCalls']} calls (longest {record['scalerCallMaxMs']:.2f} ms)"
        if record.get("scalerCallMaxMs") is not None
        else f" ({record['computeSource']})"
        if record.get("computeSource")
        else ""
    )
    collector = (
        f" ({_ms(record['decisionTimeMaxExGcMs'], 2)} net of the collector, whose passes ran "
        f"inside {record['decisionsWithGc']} decisions, "
        f"longest {_ms(record['gcInDecisionMaxMs'], 2)})"
        if record.get("decisionsWithGc")
        else ""
    )
    return (
        f"  scaler compute ({charged}): {record['scalerCpuInSecs']:.2f} s{calls}; "
        f"decisions p50 {_ms(record['decisionTimeP50Ms'], 4)}, "
        f"p99 {_ms(record['decisionTimeP99Ms'], 4)}, max {_ms(record['decisionTimeMaxMs'], 2)}"
        f"{collector}"
    )


class _Printer:
    """Prints each dataset's result as it arrives, and keeps what the report needs."""

    def __init__(self, args: argparse.Namespace, count: int, out: TextIO | None) -> None:
        self.args = args
        self.count = count
        self.out = out
        self.records: list[dict[str, Any]] = []
        self.timelines: list[Any] = []
        self.names: list[str] = []

    def _who(self) -> str:
        """Which scaler ran: our policy, or the external one's command or address."""
        a = self.args
        if a.mode == "wire" and a.scaler_cmd:
            return f"scaler `{a.scaler_cmd}`"
        if a.mode == "wire" and not a.start_scaler:
            return f"scaler at {a.scaler}"
        return f"policy {a.policy}"

    def __call__(self, run: Any) -> None:
        index = len(self.records) + 1
        oracle = oracle_score(run.dataset, create_ms=self.args.create_ms)
        record = build_record(run.dataset, run.totals, record_id=index, oracle=oracle)
        self.records.append(record)
        self.timelines.append(run.timeline)
        self.names.append(run.dataset.name)
        position = f"[{index}/{self.count}]"
        print(summary(run, record, self.args.mode, self._who(), position), file=sys.stderr)
        if self.args.json:
            print(json.dumps(record), flush=True)
        else:
            print(f"{run.dataset.name}\n{record_table(record)}\n", flush=True)
        if self.out is not None:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()


def _progress_enabled(args: argparse.Namespace) -> bool:
    return bool(args.progress or sys.stderr.isatty())


def _close_bars(bars: list[Any]) -> None:
    for bar in bars:
        if bar is not None:
            bar.close()


def _bar(args: argparse.Namespace, dataset: Dataset, index: int, count: int) -> Any:
    """A progress bar for one dataset's replay, or None when progress is off."""
    if not _progress_enabled(args):
        return None
    from simulator.progress import ProgressBar

    return ProgressBar(f"[{index}/{count}]", trace_total_s=dataset.duration_s)


# --------------------------------------------------------------------------------------------
# The modes


def _run_fast(args: argparse.Namespace, datasets: list[Dataset], faults: FaultSpec, printer: Any):
    from scaler.states import Journal
    from simulator.fast import run_fast
    from simulator.timeline import Timeline

    journal = Journal()
    if args.transition_log:
        journal.write_json_lines(args.transition_log)
    latency = LatencyModel(args.create_ms, args.create_jitter_ms)
    try:
        for index, dataset in enumerate(datasets, 1):
            bar = _bar(args, dataset, index, len(datasets))
            timeline = Timeline.for_dataset(dataset) if args.report else None
            try:
                result = run_fast(
                    dataset,
                    args.policy,
                    latency=latency,
                    faults=faults,
                    seed=args.seed,
                    journal=journal,
                    progress=bar,
                    timeline=timeline,
                    rpc_latency_ms=args.rpc_latency_ms,
                    charge_compute=args.charge_compute,
                )
            finally:
                if bar is not None:
                    bar.close()
            printer(_FastResult(dataset, result, timeline))
    finally:
        journal.close()
    return 0


class _FastResult:
    """A fast run seen through the same attributes as a wire run."""

    def __init__(self, dataset: Dataset, result: Any, timeline: Any) -> None:
        self.dataset = dataset
        self.totals = result.totals
        self.failures = result.failures
        self.first_failures = result.first_failures
        self.injected_faults = result.injected_faults
        self.timeline = timeline


def _run_wire(args: argparse.Namespace, datasets: list[Dataset], faults: FaultSpec, printer: Any):
    from simulator.wire import WireError, WireOptions, run_wire

    started = args.start_scaler or bool(args.scaler_cmd)
    if args.transition_log and not args.start_scaler:
        print("simulate: --transition-log needs --start-scaler in wire mode", file=sys.stderr)
    options = WireOptions(
        scaler=args.scaler,
        platform_listen=args.platform_listen,
        stats_listen=args.stats_listen,
        speed=args.speed,
        latency=LatencyModel(args.create_ms, args.create_jitter_ms),
        faults=faults,
        seed=args.seed,
        connect_timeout_s=args.connect_timeout,
        assign_deadline_s=args.assign_deadline,
        idle_deadline_s=args.idle_deadline,
        start_scaler=args.start_scaler,
        policy=args.policy,
        scaler_cmd=args.scaler_cmd,
        scaler_log=args.scaler_log,
        transition_log=args.transition_log or "",
        linger_s=0.0 if started else args.linger,
    )
    bars: list[Any] = []

    def progress(dataset: Dataset) -> Any:
        _close_bars(bars)
        bars.append(_bar(args, dataset, len(bars) + 1, len(datasets)))
        return bars[-1]

    def on_result(run: Any) -> None:
        _close_bars(bars)
        printer(run)

    try:
        _, simulator = asyncio.run(
            run_wire(
                datasets,
                options,
                timelines=bool(args.report),
                progress=progress,
                on_result=on_result,
            )
        )
    except WireError as err:
        print(f"simulate: {err}", file=sys.stderr)
        return 1
    if simulator.slots_after_linger is not None:
        print(
            f"simulate: {simulator.slots_after_linger} slot(s) still alive {args.linger:g} s "
            "after the run ended"
            if simulator.slots_after_linger
            else "simulate: no slot left alive after the run ended",
            file=sys.stderr,
        )
    if simulator.aborted:
        print(f"simulate: the replay was cut short: {simulator.aborted}", file=sys.stderr)
    if simulator.scaler_exit not in (None, 0):
        print(
            f"simulate: the scaler exited with status {simulator.scaler_exit} "
            f"(log: {simulator.scaler_log_path})",
            file=sys.stderr,
        )
    elif simulator.scaler_log_path:
        print(f"simulate: the scaler's log: {simulator.scaler_log_path}", file=sys.stderr)
    return 0


def simulate_command(args: argparse.Namespace) -> int:
    """``scaler simulate``: validate everything, replay each dataset, print, report."""
    try:
        faults = _check(args)
        sources = _sources(args) if args.shards else []
        datasets = [] if args.shards else _datasets(args)
        out = open(args.out, "a", encoding="utf-8") if args.out else None  # noqa: SIM115
    except (DatasetError, FaultSpecError, UsageError, ValueError, OSError) as err:
        print(f"simulate: {err}", file=sys.stderr)
        return 2
    printer = _Printer(args, len(datasets), out)
    try:
        if args.shards:
            return _run_sharded(args, sources, faults, out)
        runner = _run_wire if args.mode == "wire" else _run_fast
        status = runner(args, datasets, faults, printer)
    except KeyboardInterrupt:
        print("simulate: interrupted", file=sys.stderr)
        return 130
    finally:
        if out is not None:
            out.close()
    if args.report and printer.records:
        from simulator.report import write_report

        try:
            written = write_report(
                Path(args.report), printer.records, printer.timelines, printer.names
            )
        except OSError as err:
            print(f"simulate: cannot write the report: {err}", file=sys.stderr)
            return 1
        print(f"report: {', '.join(str(p) for p in written)}", file=sys.stderr)
    return status


# --------------------------------------------------------------------------------------------
# Sharded replay (Ray)


def _sources(args: argparse.Namespace) -> list[Any]:
    """What each Ray task makes its shard from; folders are checked here, read in the tasks."""
    from simulator.sources import FolderSource

    sources: list[Any] = []
    if args.builtin or not args.datasets:
        sources.append(_builtin_source(args))
    for folder in args.datasets:
        if not Path(folder).is_dir():
            raise DatasetError(f"{folder}: no such dataset folder")
        sources.append(FolderSource(str(Path(folder).resolve())))  # a worker's cwd differs
    return sources


class _ShardedRun:
    """A merged sharded run seen through the attributes :func:`summary` reads."""

    def __init__(self, name: str, results: list[Any]) -> None:
        from collections import Counter

        self.dataset = Dataset(name, "", "", {}, [])
        failures: Counter[str] = Counter()
        injected: Counter[str] = Counter()
        self.first_failures: list[str] = []
        for r in results:
            failures.update(r.failures)
            injected.update(r.injected_faults)
            self.first_failures.extend(f"shard {r.index}: {f}" for f in r.first_failures)
        self.failures = dict(failures)
        self.injected_faults = dict(injected)


def shards_note(policy: str, shards: int) -> str | None:
    """A warning for a sharded replay of a policy whose decisions depend on the other
    functions' totals: its score is the deployment's, not one process's."""
    from scaler.policy import POLICIES

    if shards < 2 or not getattr(POLICIES.get(policy), "steers_by_fleet", False):
        return None
    return (
        f"simulate: note: with --shards {shards}, each replica of {policy} steers by its own "
        f"shard's totals, so this is the score of {shards} replicas, not of one process; it "
        "can be lower, even below reference (docs/scaling-out.md)"
    )


def shard_table(shards: list[dict[str, Any]]) -> str:
    """The per-shard breakdown as aligned lines."""
    lines = ["shard  functions   requests    score  slot GB·s  cold starts  wall s  RSS MB"]
    for s in shards:
        lines.append(
            f"{s['shard']:>5}  {s['functions']:>9}  {s['totalRequestsCount']:>9}  "
            f"{s['score']:>7.3f}  {s['totalSlotTimeInGBs']:>9.0f}  {s['coldStarts']:>11}  "
            f"{s['wallTimeInSecs']:>6.1f}  {s['peakRssMb']:>6.0f}"
        )
    return "\n".join(lines)


def _run_sharded(args: argparse.Namespace, sources: list[Any], faults: FaultSpec, out: Any) -> int:
    import time

    from simulator.cluster import cpus, ray_session
    from simulator.merge import MergeError, merged_record
    from simulator.sharded import ShardFailed, ShardOptions, run_shards

    options = ShardOptions(
        policy=args.policy,
        create_ms=args.create_ms,
        create_jitter_ms=args.create_jitter_ms,
        rpc_latency_ms=args.rpc_latency_ms,
        faults=faults,
        seed=args.seed,
    )
    note = shards_note(args.policy, args.shards)
    if note:
        print(note, file=sys.stderr)
    started = time.perf_counter()
    session = contextlib.ExitStack()
    try:
        session.enter_context(ray_session(args.ray_address, args.ray_cpus))
    except (ConnectionError, RuntimeError) as err:
        where = args.ray_address or "a local Ray"
        print(f"simulate: cannot start or reach {where}: {err}", file=sys.stderr)
        return 1
    with session:
        print(
            f"simulate: Ray with {cpus()} CPU(s) ready after {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        for index, source in enumerate(sources, 1):
            if index > 1:  # the first dataset's wall time includes Ray's start-up
                started = time.perf_counter()
            position = f"[{index}/{len(sources)}]"
            print(f"{position} {source.label}: {args.shards} shard(s) ...", file=sys.stderr)
            try:
                results = run_shards(
                    source, args.shards, options, live=_progress_enabled(args), log=sys.stderr
                )
                record = merged_record(
                    results,
                    name=source.label,
                    record_id=index,
                    wall_s=time.perf_counter() - started,
                )
            except (ShardFailed, MergeError) as err:
                print(f"simulate: {source.label}: {err}; no record", file=sys.stderr)
                return 1
            run = _ShardedRun(source.label, results)
            print(summary(run, record, "fast", args.policy, position), file=sys.stderr)
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                shards = record.pop("shards")
                print(f"{source.label}\n{record_table(record)}\n\n{shard_table(shards)}\n")
                record["shards"] = shards
            if out is not None:
                out.write(json.dumps(record) + "\n")
                out.flush()
    return 0

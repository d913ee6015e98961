"""Azure Functions 2019 trace (per-minute counts, duration and memory percentiles) importer.

Input, one day of the trace, in either naming:

- ``<prefix>_inv.csv``, ``<prefix>_run.csv``, ``<prefix>_mem.csv`` (the vhive/invitro sample
  layout, e.g. ``200_inv.csv``): header ``HashFunction,HashOwner,HashApp,minute_1..minute_1440``;
- the original ``invocations_per_function_md.anon.dNN.csv``,
  ``function_durations_percentiles.anon.dNN.csv``, ``app_memory_percentiles.anon.dNN.csv``:
  header ``HashOwner,HashApp,HashFunction,Trigger,1..1440``.

Columns are found by name, so either order works. ``*_run.csv`` gives per function ``Minimum``,
``Maximum`` and ``percentile_Average_{0,1,25,50,75,99,100}`` in ms; ``*_mem.csv`` gives per app
``AverageAllocatedMb_pct*`` in MB.

How the challenge fields are made (window = minutes ``[start_minute, start_minute + minutes)``
counted from 0 = the day's first minute, i.e. column ``minute_1``):

- requests: minute ``m``'s count ``c`` of a function becomes exactly ``c`` requests inside that
  minute. ``spread="even"`` (default) places them at ``(i + phase) * 60 s / c``, ``i = 0..c-1``,
  with one seeded phase per function, so a once-a-minute timer stays exactly periodic;
  ``spread="uniform"`` draws each offset uniformly in the minute (Poisson-like). Start time =
  ``epoch_ms + m * 60 s + offset``.
- durations: inverse-CDF sampling, linear between the given percentiles (0, 1, 25, 50, 75, 99,
  100), from a uniform draw; rounded to ms, kept within the function's Minimum/Maximum and at
  least 1 ms. A function absent from ``*_run.csv`` uses the median of all functions' medians.
- randomness: one ``random.Random`` per (seed, function, minute), so the same minute gets the
  same requests whatever window contains it.
- memory: the app's ``AverageAllocatedMb_pct99`` rounded up to a multiple of 128 MB (min 128);
  an app absent from ``*_mem.csv`` gets the hash-drawn tier of ``fill_memory_mb``.
- init duration: not in the trace; ``fill_init_duration_ms`` (log-uniform 50 ms-3 s from a hash
  of the function hash). Synthetic: do not tune a scaler on it.
- timeout: 600 s (Azure consumption-plan maximum), raised to cover the function's p100.
- runtime: ``azure-<trigger>`` when the file has a ``Trigger`` column, else ``unknown``.
- status code: always 200 (the trace records no failures).
- key: ``HashFunction`` cut to 40 hex chars (SHA-1 of the whole id on a collision).
- metas: only functions with at least one invocation in the window.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import random
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from simulator.dataset import Dataset, DatasetError, FunctionMeta, Request
from simulator.importers import (
    DEFAULT_EPOCH_MS,
    fill_init_duration_ms,
    fill_memory_mb,
    make_keys,
    round_up_memory_mb,
    timeout_for,
    write_imported,
)

MINUTES_PER_DAY = 1440
MINUTE_MS = 60_000
PERCENTILES: tuple[int, ...] = (0, 1, 25, 50, 75, 99, 100)
SPREADS = ("even", "uniform")

FunctionId = tuple[str, str, str]  # (HashOwner, HashApp, HashFunction)


@attrs.frozen
class TraceFiles:
    """The three files of one day; ``mem`` may be missing (memory is then filled)."""

    label: str
    inv: Path
    run: Path
    mem: Path | None


@attrs.frozen
class DurationProfile:
    """Duration percentiles of one function (ms) with its observed minimum and maximum."""

    points: tuple[float, ...]  # values at PERCENTILES, made non-decreasing
    minimum: float
    maximum: float

    def sample(self, u: float) -> int:
        """Inverse CDF at ``u`` in [0, 1): linear between neighbouring percentiles."""
        q = u * 100.0
        j = min(bisect.bisect_right(PERCENTILES, q), len(PERCENTILES) - 1)
        lo_q, hi_q = PERCENTILES[j - 1], PERCENTILES[j]
        lo_v, hi_v = self.points[j - 1], self.points[j]
        value = lo_v + (hi_v - lo_v) * (q - lo_q) / (hi_q - lo_q)
        value = min(max(value, self.minimum), self.maximum)
        return max(1, round(value))


def resolve_files(folder_or_prefix: str | Path, day: int = 1) -> TraceFiles:
    """Find the day's files from a folder, a ``<prefix>`` or a ``<prefix>_inv.csv`` path."""
    path = Path(folder_or_prefix)
    if path.is_dir():
        inv = sorted(path.glob("*_inv.csv"))
        if len(inv) > 1:
            names = ", ".join(p.name for p in inv)
            raise FileNotFoundError(f"{path}: several *_inv.csv ({names}); pass a prefix")
        if inv:
            return _prefixed(inv[0].with_name(inv[0].name[: -len("_inv.csv")]))
        suffix = f"anon.d{day:02d}.csv"
        original = path / f"invocations_per_function_md.{suffix}"
        if original.is_file():
            mem = path / f"app_memory_percentiles.{suffix}"
            return TraceFiles(
                label=f"d{day:02d}",
                inv=original,
                run=_must_exist(path / f"function_durations_percentiles.{suffix}"),
                mem=mem if mem.is_file() else None,
            )
        raise FileNotFoundError(f"{path}: no *_inv.csv nor invocations_per_function_md.{suffix}")
    if path.name.endswith("_inv.csv"):
        path = path.with_name(path.name[: -len("_inv.csv")])
    return _prefixed(path)


def _prefixed(prefix: Path) -> TraceFiles:
    mem = prefix.with_name(prefix.name + "_mem.csv")
    return TraceFiles(
        label=prefix.name,
        inv=_must_exist(prefix.with_name(prefix.name + "_inv.csv")),
        run=_must_exist(prefix.with_name(prefix.name + "_run.csv")),
        mem=mem if mem.is_file() else None,
    )


def _must_exist(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    return path


def _columns(header: list[str], path: Path, *names: str) -> list[int]:
    try:
        return [header.index(n) for n in names]
    except ValueError as exc:
        raise DatasetError(f"{path}: header lacks a column: {exc}") from exc


def _minute_columns(header: list[str]) -> dict[int, int]:
    """Minute number (1-based, as in the header) -> column index; ``minute_N`` or ``N``."""
    out = {}
    for index, name in enumerate(header):
        digits = name[len("minute_") :] if name.startswith("minute_") else name
        if digits.isdigit():
            out[int(digits)] = index
    return out


def _number(text: str) -> float:
    return float(text) if text.strip() else 0.0


def read_invocations(
    path: Path, start_minute: int, minutes: int
) -> tuple[dict[FunctionId, list[int]], dict[FunctionId, str]]:
    """Counts per function for each minute of the window, and each function's trigger."""
    counts: dict[FunctionId, list[int]] = {}
    triggers: dict[FunctionId, str] = {}
    with path.open(newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        owner, app, func = _columns(header, path, "HashOwner", "HashApp", "HashFunction")
        trigger = header.index("Trigger") if "Trigger" in header else None
        by_minute = _minute_columns(header)
        wanted = range(start_minute + 1, start_minute + minutes + 1)
        missing = [m for m in wanted if m not in by_minute]
        if missing:
            raise DatasetError(
                f"{path}: window minutes {start_minute}..{start_minute + minutes - 1} need "
                f"columns up to {wanted[-1]}; the file has {len(by_minute)} minutes"
            )
        cols = [by_minute[m] for m in wanted]
        for row in reader:
            if not row:
                continue
            fid = (row[owner], row[app], row[func])
            window = [int(_number(row[c])) if c < len(row) else 0 for c in cols]
            if fid in counts:  # the original trace repeats a few ids: add them up
                window = [a + b for a, b in zip(counts[fid], window, strict=True)]
            counts[fid] = window
            if trigger is not None and trigger < len(row) and row[trigger]:
                triggers[fid] = row[trigger]
    return counts, triggers


def read_durations(path: Path) -> dict[FunctionId, DurationProfile]:
    """Duration profile per function from ``*_run.csv``."""
    out: dict[FunctionId, DurationProfile] = {}
    with path.open(newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        owner, app, func, lo, hi = _columns(
            header, path, "HashOwner", "HashApp", "HashFunction", "Minimum", "Maximum"
        )
        pct = _columns(header, path, *(f"percentile_Average_{p}" for p in PERCENTILES))
        for row in reader:
            if not row:
                continue
            points: list[float] = []
            for c in pct:
                points.append(max(_number(row[c]), points[-1] if points else 0.0))
            minimum = min(_number(row[lo]), points[0])
            maximum = max(_number(row[hi]), points[-1])
            out[(row[owner], row[app], row[func])] = DurationProfile(
                tuple(points), minimum, maximum
            )
    return out


def read_memory(path: Path) -> dict[tuple[str, str], int]:
    """Memory tier per (owner, app): p99 of the allocated MB, rounded up to 128 MB."""
    out: dict[tuple[str, str], int] = {}
    with path.open(newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        owner, app, p99 = _columns(header, path, "HashOwner", "HashApp", "AverageAllocatedMb_pct99")
        for row in reader:
            if row:
                out[(row[owner], row[app])] = round_up_memory_mb(_number(row[p99]))
    return out


def _fallback_profile(profiles: dict[FunctionId, DurationProfile]) -> DurationProfile:
    median = statistics.median(p.points[3] for p in profiles.values()) if profiles else 1000.0
    return DurationProfile((median,) * len(PERCENTILES), median, median)


def _offsets(rng: random.Random, count: int, phase: float, spread: str) -> list[int]:
    if spread == "even":
        return [int((i + phase) * MINUTE_MS / count) for i in range(count)]
    return sorted(int(rng.random() * MINUTE_MS) for _ in range(count))


def import_azure2019(
    folder_or_prefix: str | Path,
    start_minute: int,
    minutes: int,
    seed: int = 0,
    *,
    spread: str = "even",
    day: int = 1,
    epoch_ms: int = DEFAULT_EPOCH_MS,
) -> Dataset:
    """Turn minutes ``[start_minute, start_minute + minutes)`` of one day into a dataset."""
    if start_minute < 0 or minutes < 1:
        raise ValueError("need start_minute >= 0 and minutes >= 1")
    if start_minute + minutes > MINUTES_PER_DAY:
        raise ValueError(f"window ends after minute {MINUTES_PER_DAY} of the day")
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
    files = resolve_files(folder_or_prefix, day)
    counts, triggers = read_invocations(files.inv, start_minute, minutes)
    profiles = read_durations(files.run)
    memory = read_memory(files.mem) if files.mem is not None else {}
    fallback = _fallback_profile(profiles)

    active = [fid for fid, window in counts.items() if any(window)]
    keys = make_keys(active)
    metas: dict[str, FunctionMeta] = {}
    requests: list[Request] = []
    for fid in active:
        owner, app, func = fid
        key = keys[fid]
        profile = profiles.get(fid, fallback)
        trigger = triggers.get(fid)
        metas[key] = FunctionMeta(
            key=key,
            runtime=f"azure-{trigger.lower()}" if trigger else "unknown",
            memory_mb=memory.get((owner, app)) or fill_memory_mb(func),
            timeout_s=timeout_for(profile.maximum),
            init_duration_ms=fill_init_duration_ms(func),
        )
        ident = "/".join(fid)
        phase = random.Random(f"azure2019:{seed}:{ident}:phase").random()
        for i, count in enumerate(counts[fid]):
            if count <= 0:
                continue
            minute = start_minute + i
            rng = random.Random(f"azure2019:{seed}:{ident}:{minute}")
            base = epoch_ms + minute * MINUTE_MS
            for offset in _offsets(rng, count, phase, spread):
                requests.append(Request(base + offset, key, profile.sample(rng.random()), 200))
    requests.sort(key=lambda r: (r.start_ms, r.key))
    return Dataset(
        name=f"azure2019-{files.label}-m{start_minute}-{start_minute + minutes}",
        meta_path=str(files.mem or files.run),
        request_path=str(files.inv),
        metas=metas,
        requests=requests,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``import-trace azure2019``."""
    parser.add_argument(
        "source", help="folder with the day's files, a '<prefix>' or a '<prefix>_inv.csv' path"
    )
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument(
        "--start-minute", type=int, default=0, help="first minute, 0 = midnight (default 0)"
    )
    parser.add_argument("--minutes", type=int, default=60, help="window length (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument(
        "--spread",
        choices=SPREADS,
        default="even",
        help="place a minute's invocations evenly (seeded phase) or uniformly at random",
    )
    parser.add_argument(
        "--day", type=int, default=1, help="day NN of the original file names (default 1)"
    )
    parser.add_argument(
        "--epoch-ms", type=int, default=DEFAULT_EPOCH_MS, help="epoch ms of the day's minute 0"
    )
    parser.add_argument("--gzip", action="store_true", help="write metas.gz / requests.gz")


def run(args: argparse.Namespace) -> int:
    """Import, write the folder, print a one-line summary; 1 on a user-facing error."""
    return write_imported(
        "azure2019",
        lambda: import_azure2019(
            args.source,
            args.start_minute,
            args.minutes,
            args.seed,
            spread=args.spread,
            day=args.day,
            epoch_ms=args.epoch_ms,
        ),
        args.out,
        args.gzip,
    )


def main_azure2019(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m simulator.importers.azure2019 SOURCE --out DIR ...``."""
    parser = argparse.ArgumentParser(
        prog="import-trace azure2019", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main_azure2019())

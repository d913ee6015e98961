"""Azure Functions 2021 trace (one row per invocation) importer.

Input: a CSV with header ``app,func,end_timestamp,duration``, times in seconds from the trace's
start (the full trace, ``AzureFunctionsInvocationTraceForTwoWeeksJan2021``, or a sample of it).
Rows need not be sorted.

How the challenge fields are made:

- requests: start = ``end_timestamp - duration`` (clamped at 0), kept when it falls in
  ``[start_s, start_s + length_s)``; start time = ``epoch_ms + start * 1000`` rounded to ms.
  The trace's own times are kept (not shifted to the window), so windows line up.
- duration: ``duration * 1000`` rounded, at least 1 ms (the trace has zero durations).
- memory: not in the trace; ``memory_mb`` when given, else ``fill_memory_mb`` of the function
  hash (a tier of 128/256/512/1024 MB weighted like the 2019 trace's apps: 40/40/15/5 %).
- init duration: not in the trace; ``fill_init_duration_ms`` (log-uniform 50 ms-3 s from a hash
  of the function hash), the same rule as the 2019 importer.
- timeout: 600 s, raised to cover the longest invocation of the function in the window.
- runtime ``unknown``; status code always 200 (the trace records no failures).
- key: ``func`` cut to 40 hex chars (SHA-1 of ``app/func`` on a collision).
- metas: only functions with at least one invocation in the window.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from simulator.dataset import Dataset, DatasetError, FunctionMeta, Request
from simulator.importers import (
    DEFAULT_EPOCH_MS,
    fill_init_duration_ms,
    fill_memory_mb,
    make_keys,
    timeout_for,
    write_imported,
)


def import_azure2021(
    csv_path: str | Path,
    start_s: float = 0,
    length_s: float | None = None,
    *,
    memory_mb: int | None = None,
    epoch_ms: int = DEFAULT_EPOCH_MS,
) -> Dataset:
    """Turn the invocations starting in ``[start_s, start_s + length_s)`` into a dataset."""
    if start_s < 0 or (length_s is not None and length_s <= 0):
        raise ValueError("need start_s >= 0 and length_s > 0")
    if memory_mb is not None and memory_mb < 1:
        raise ValueError("memory_mb must be >= 1")
    path = Path(csv_path)
    end_s = float("inf") if length_s is None else start_s + length_s
    rows: list[tuple[int, tuple[str, str], int]] = []  # (start_ms, (app, func), duration_ms)
    with path.open(newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path}: empty file")
        try:
            app, func, end, duration = (
                header.index(n) for n in ("app", "func", "end_timestamp", "duration")
            )
        except ValueError as exc:
            raise DatasetError(f"{path}: header lacks a column: {exc}") from exc
        for lineno, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                seconds = float(row[duration])
                start = max(0.0, float(row[end]) - seconds)
            except (ValueError, IndexError) as exc:
                raise DatasetError(f"{path}:{lineno}: bad row: {exc}") from exc
            if start_s <= start < end_s:
                rows.append(
                    (epoch_ms + round(start * 1000), (row[app], row[func]), round(seconds * 1000))
                )

    keys = make_keys(fid for _, fid, _ in rows)
    longest: dict[tuple[str, str], int] = {}
    for _, fid, ms in rows:
        longest[fid] = max(longest.get(fid, 0), ms)
    metas = {
        keys[fid]: FunctionMeta(
            key=keys[fid],
            runtime="unknown",
            memory_mb=memory_mb or fill_memory_mb(fid[1]),
            timeout_s=timeout_for(ms),
            init_duration_ms=fill_init_duration_ms(fid[1]),
        )
        for fid, ms in longest.items()
    }
    requests = sorted(
        (Request(start, keys[fid], max(1, ms), 200) for start, fid, ms in rows),
        key=lambda r: (r.start_ms, r.key),
    )
    window = f"s{start_s:g}" + ("" if length_s is None else f"-{start_s + length_s:g}")
    return Dataset(
        name=f"azure2021-{path.stem}-{window}",
        meta_path=str(path),
        request_path=str(path),
        metas=metas,
        requests=requests,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``import-trace azure2021``."""
    parser.add_argument("csv", help="CSV with app,func,end_timestamp,duration (seconds)")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument(
        "--start-s", type=float, default=0.0, help="window start, trace seconds (default 0)"
    )
    parser.add_argument(
        "--length-s", type=float, default=None, help="window length in s (default: to the end)"
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=None,
        help="memory of every function (default: a tier drawn from the function's hash)",
    )
    parser.add_argument(
        "--epoch-ms", type=int, default=DEFAULT_EPOCH_MS, help="epoch ms of trace second 0"
    )
    parser.add_argument("--gzip", action="store_true", help="write metas.gz / requests.gz")


def run(args: argparse.Namespace) -> int:
    """Import, write the folder, print a one-line summary; 1 on a user-facing error."""
    return write_imported(
        "azure2021",
        lambda: import_azure2021(
            args.csv,
            args.start_s,
            args.length_s,
            memory_mb=args.memory_mb,
            epoch_ms=args.epoch_ms,
        ),
        args.out,
        args.gzip,
    )


def main_azure2021(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m simulator.importers.azure2021 CSV --out DIR ...``."""
    parser = argparse.ArgumentParser(
        prog="import-trace azure2021", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main_azure2021())

"""Importers: raw public traces (Azure Functions 2019 and 2021) to challenge datasets.

The raw traces lack fields the challenge format needs (init duration always; memory in 2021;
per-invocation timestamps and durations in 2019). The importers fill them with documented,
deterministic rules, shared here so both traces fill the same field the same way
(``docs/workloads.md`` lists them).

Each importer module offers ``import_*`` (the library call), and ``add_arguments(parser)`` /
``run(args) -> int`` so the CLI can mount it as a sub-command; :func:`add_subcommands` does the
mounting for every importer in :data:`IMPORTERS`. Submodules are imported lazily, so importing
this package costs nothing and helpers here never import back from them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import math
import sys
from collections.abc import Callable, Iterable

from simulator.dataset import Dataset, write_dataset

# Trace name -> module implementing import_*, add_arguments and run.
IMPORTERS: dict[str, str] = {
    "azure2019": "simulator.importers.azure2019",
    "azure2021": "simulator.importers.azure2021",
}

# Time zero of an imported trace: 2023-11-14T00:00:00Z, a midnight, so that minute m of the
# 2019 trace's day sits at m minutes past midnight.
DEFAULT_EPOCH_MS = 1_699_920_000_000

# Keys are shortened to 40 hex chars, like the challenge's dataSet_3 (SHA-1 sized).
KEY_LENGTH = 40

# Init duration fill: log-uniform in [INIT_MIN_MS, INIT_MAX_MS] from a hash of the function id.
INIT_MIN_MS = 50
INIT_MAX_MS = 3000

# Memory fill when a trace has none: tiers and weights close to the 2019 trace's app memory
# (p99 rounded up to 128 MB: ~40 % at 128 MB, ~45 % at 256 MB, few above).
FILL_MEMORY_TIERS_MB: tuple[int, ...] = (128, 256, 512, 1024)
FILL_MEMORY_WEIGHTS: tuple[float, ...] = (0.40, 0.40, 0.15, 0.05)

# Azure Functions (consumption plan) allows up to 10 minutes; raised when a function runs longer.
DEFAULT_TIMEOUT_S = 600


def hash_fraction(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``text``: the same on every machine and every run."""
    digest = hashlib.sha256(f"{salt}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def fill_init_duration_ms(function_id: str) -> int:
    """Init duration for a trace without one: log-uniform 50 ms-3 s, fixed by the id.

    Synthetic by necessity: neither Azure trace records cold-start times. Log-uniform gives as
    many 50-400 ms inits as 0.4-3 s ones (median ~390 ms), the spread seen across runtimes.
    """
    u = hash_fraction(function_id, "init")
    return round(INIT_MIN_MS * (INIT_MAX_MS / INIT_MIN_MS) ** u)


def fill_memory_mb(function_id: str) -> int:
    """Memory for a trace without one: a tier drawn by the id's hash (mostly 128/256 MB)."""
    u = hash_fraction(function_id, "memory")
    acc = 0.0
    for tier, weight in zip(FILL_MEMORY_TIERS_MB, FILL_MEMORY_WEIGHTS, strict=True):
        acc += weight
        if u < acc:
            return tier
    return FILL_MEMORY_TIERS_MB[-1]


def round_up_memory_mb(mb: float) -> int:
    """Memory tier from a measured size: the next multiple of 128 MB, at least 128."""
    return max(128, 128 * math.ceil(mb / 128))


def timeout_for(longest_ms: float) -> int:
    """Timeout in s: the Azure default, or more when the function was seen running longer."""
    return max(DEFAULT_TIMEOUT_S, math.ceil(longest_ms / 1000))


def make_keys(ids: Iterable[tuple[str, ...]], length: int = KEY_LENGTH) -> dict[tuple, str]:
    """Short, unique keys: the function hash (last element) cut to ``length`` chars.

    When two ids would share a key (same function hash under different apps, or a cut that
    collides), each of them gets the SHA-1 of its whole id instead, still 40 hex chars.
    """
    ids = list(dict.fromkeys(ids))
    short: dict[tuple, str] = {i: i[-1][:length] for i in ids}
    seen: dict[str, int] = {}
    for key in short.values():
        seen[key] = seen.get(key, 0) + 1
    for i, key in short.items():
        if seen[key] > 1:
            short[i] = hashlib.sha1("/".join(i).encode()).hexdigest()
    return short


def summarize(dataset: Dataset) -> str:
    """One line for the CLI: functions, requests, span of start times."""
    n = len(dataset.requests)
    span = (dataset.requests[-1].start_ms - dataset.requests[0].start_ms) / 1000 if n else 0.0
    return f"{dataset.name}: {len(dataset.metas)} functions, {n} requests, span {span:.1f} s"


def write_imported(name: str, load: Callable[[], Dataset], out: str, gzip: bool) -> int:
    """Shared tail of every importer's CLI: import, refuse an empty window, write, summarize.

    Returns the exit status: 1 on a user-facing error (said on stderr in one line), else 0.
    """
    try:
        dataset = load()
        if not dataset.requests:
            print(f"{dataset.name}: no invocation in this window", file=sys.stderr)
            return 1
        write_dataset(dataset, out, gzip=gzip)
    except (OSError, ValueError) as exc:  # DatasetError is a ValueError
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    print(f"{summarize(dataset)} -> {out}")
    return 0


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Mount every importer as a sub-command whose ``func`` default is its ``run``."""
    for name, module_name in IMPORTERS.items():
        module = importlib.import_module(module_name)
        parser = subparsers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(parser)
        parser.set_defaults(func=module.run)

"""What a scaler that cannot foresee wake-ups could score: `python -m bench.foresight`.

The oracle (:func:`simulator.score.oracle_score`) knows when every request arrives. Real
scalers predict well inside a function's busy phases and badly when it wakes up after a long
quiet. This bound draws that line at ``quiet_s``: a request that arrives ``quiet_s`` or more
after the function's previous arrival (or after the start of the trace, for its first one)
is a *surprise*, unless that quiet repeats one of the function's last three quiets that long
to within ``repeat_ms`` (a timer, which a scaler can learn); every other arrival is foreseen
perfectly.

Per function, with ``cold = create_ms + init`` and the oracle's matching of requests to the
latest-freed idle instance (:func:`simulator.score.reuse_gaps`):

- a foreseen request costs what it costs the oracle: ``min(gap, cold)`` of slot time for
  the gap before it (stay warm, or be re-created just in time), ``cold`` for a new instance,
  no waiting;
- a surprise is served by the idle instance if it was kept through the gap, at ``gap`` of
  slot time; otherwise the instance was destroyed after a keep-alive of ``keep`` and the
  request waits ``cold`` for a new one, at ``keep + cold`` of slot time. A surprise with no
  idle instance waits ``cold`` at ``cold`` of slot time. When it is missed and none of the
  function's instances is busy, the requests that arrive during that cold start wait for
  its end too (no instance can be ready earlier: none was started for the surprise).

``keep`` is chosen per function, in hindsight, from :data:`KEEP_GRID`, to maximise the run's
score. Everything else is optimistic: a missed surprise costs only the waiting above (the
requests behind it get new instances the moment the cold start ends), Assign and Idle cost
nothing, pre-warms are timed to the millisecond, a surprise's followers are served as if
foreseen when it was kept, and an instance costs nothing after its last request. So no
scaler that cannot time a wake-up after ``quiet_s`` of quiet (other than a repeat) scores
more than this, except by queueing requests on busy instances (trading waiting for slot time,
which the oracle does not do) or by keeping uninitialised slots shared between functions of
the same memory size; where functions wake together, as in dataSet_1, a shared slot costs
what a kept instance costs.
With ``quiet_s`` = infinity every arrival is foreseen and the bound is the oracle.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from pathlib import Path

import attrs

from bench.policies import OUT, selected, trace_loaders
from simulator.dataset import Dataset
from simulator.score import MB_PER_GB, MS_PER_S, official_score, reuse_gaps

#: Keep-alive choices (s) for surprises, per function; inf keeps every idle instance.
KEEP_GRID = (0, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, math.inf)
#: Quiet thresholds (s) the CLI reports by default.
QUIET_GRID = (1, 2, 5, 10, 30, 60, 120, 300, 1800, math.inf)
#: A wake-up whose quiet is this close to an earlier one of the function is foreseen (timers).
REPEAT_MS = 100.0
#: ... of one of the function's last this many long quiets.
REPEAT_MEMORY = 3
#: How many passes of per-function keep-alive choice before giving up on a fixed point.
MAX_PASSES = 20


@attrs.define(slots=True)
class FunctionCosts:
    """One function's slot ms and waiting ms for each keep-alive of :data:`KEEP_GRID`."""

    key: str
    memory_gb: float
    slot_ms: list[float]
    waiting_ms: list[float]


@attrs.frozen(slots=True)
class Bound:
    """The best score found at one quiet threshold, and how it is made up."""

    quiet_s: float
    score: float
    slot_gbs: float
    waiting_s: float
    surprises: int
    keep_s: dict[str, float]


def function_costs(
    key: str,
    requests: Sequence[tuple[int, int]],
    *,
    origin_ms: int,
    cold_ms: float,
    memory_mb: int,
    quiet_ms: float,
    repeat_ms: float,
) -> tuple[FunctionCosts, int]:
    """Costs of one function's ``(start, duration)`` requests, sorted by start, and its
    number of surprises. ``origin_ms`` is the trace's start: a first request that late or
    later is a surprise too."""
    foreseen_ms = 0.0
    surprises: list[tuple[float, float]] = []  # (gap, or inf for a new instance; miss wait)
    long_quiets: deque[int] = deque(maxlen=REPEAT_MEMORY)
    previous = origin_ms
    busy_until = origin_ms
    for index, (start, duration, gap) in enumerate(reuse_gaps(requests)):
        quiet = start - previous
        previous = start
        surprise = quiet >= quiet_ms and not repeats(long_quiets, quiet, repeat_ms)
        if quiet >= quiet_ms:
            long_quiets.append(quiet)
        foreseen_ms += duration
        if not surprise:
            foreseen_ms += cold_ms if gap is None else min(gap, cold_ms)
        else:
            # Nothing started before the surprise, and nothing busy frees meanwhile: the
            # requests that follow it within a cold start wait for the end of one too.
            queued = 0.0 if busy_until > start else queued_ms(requests, index, cold_ms)
            surprises.append((math.inf if gap is None else gap, cold_ms + queued))
        busy_until = max(busy_until, start + duration)
    surprises.sort()
    gaps = [gap for gap, _ in surprises]
    below = [0.0, *accumulate(gaps)]  # below[i]: sum of the i shortest gaps
    waits_from = [*accumulate((wait for _, wait in reversed(surprises)), initial=0.0)][::-1]
    idle = bisect.bisect_left(gaps, math.inf)  # surprises with an idle instance to keep
    slot_ms, waiting_ms = [], []
    for keep_s in KEEP_GRID:
        kept = min(bisect.bisect_right(gaps, keep_s * MS_PER_S), idle)
        missed = len(gaps) - kept
        destroyed = idle - kept
        lost = 0.0 if math.isinf(keep_s) else destroyed * keep_s * MS_PER_S
        slot_ms.append(foreseen_ms + below[kept] + lost + missed * cold_ms)
        waiting_ms.append(waits_from[kept])
    costs = FunctionCosts(key, memory_mb / MB_PER_GB, slot_ms, waiting_ms)
    return costs, len(surprises)


def queued_ms(requests: Sequence[tuple[int, int]], index: int, cold_ms: float) -> float:
    """Waiting of the requests after ``requests[index]`` that arrive before a cold start
    begun at its arrival could be ready."""
    ready = requests[index][0] + cold_ms
    total = 0.0
    for start, _ in requests[index + 1 :]:
        if start >= ready:
            break
        total += ready - start
    return total


def repeats(earlier: Iterable[int], quiet: int, within_ms: float) -> bool:
    """Whether ``quiet`` is within ``within_ms`` of one of the ``earlier`` ones."""
    return any(abs(quiet - other) <= within_ms for other in earlier)


def foresight_bound(
    dataset: Dataset, create_ms: float, quiet_s: float, repeat_ms: float = REPEAT_MS
) -> Bound:
    """The bound of the module docstring for ``dataset`` at one quiet threshold."""
    timelines: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for request in dataset.requests:
        timelines[request.key].append((request.start_ms, request.duration_ms))
    functions: list[FunctionCosts] = []
    surprises = 0
    execution_ms = execution_mb_ms = 0.0
    for key, timeline in timelines.items():
        meta = dataset.metas[key]
        costs, count = function_costs(
            key,
            timeline,
            origin_ms=dataset.start_ms,
            cold_ms=create_ms + meta.init_duration_ms,
            memory_mb=meta.memory_mb,
            quiet_ms=quiet_s * MS_PER_S,
            repeat_ms=repeat_ms,
        )
        functions.append(costs)
        surprises += count
        busy_ms = sum(duration for _, duration in timeline)
        execution_ms += busy_ms
        execution_mb_ms += busy_ms * meta.memory_mb
    execution_s = execution_ms / MS_PER_S
    execution_gbs = execution_mb_ms / MS_PER_S / MB_PER_GB

    def score(slot_gb_ms: float, waiting_ms: float) -> float:
        return official_score(
            execution_s=execution_s,
            execution_gbs=execution_gbs,
            schedule_s=waiting_ms / MS_PER_S,
            idle_s=0.0,
            slot_gbs=slot_gb_ms / MS_PER_S,
            success_rate=1.0,
        )

    # The score is not concave in the choices: start from every uniform keep-alive and
    # improve one function at a time from each.
    best_choice: list[int] = []
    best = (-math.inf, 0.0, 0.0)
    for uniform in range(len(KEEP_GRID)):
        choice = [uniform] * len(functions)
        slot, waiting = improve(functions, choice, score)
        if score(slot, waiting) > best[0]:
            best, best_choice = (score(slot, waiting), slot, waiting), choice
    _, slot, waiting = best
    return Bound(
        quiet_s=quiet_s,
        score=score(slot, waiting),
        slot_gbs=slot / MS_PER_S,
        waiting_s=waiting / MS_PER_S,
        surprises=surprises,
        keep_s={f.key: KEEP_GRID[c] for f, c in zip(functions, best_choice, strict=True)},
    )


def improve(
    functions: list[FunctionCosts], choice: list[int], score: Callable[[float, float], float]
) -> tuple[float, float]:
    """Change ``choice`` (an index into :data:`KEEP_GRID` per function) one function at a
    time to what scores best given the others, until nothing changes; the slot GB·ms and
    waiting ms it ends with."""
    slot = sum(f.slot_ms[c] * f.memory_gb for f, c in zip(functions, choice, strict=True))
    waiting = sum(f.waiting_ms[c] for f, c in zip(functions, choice, strict=True))
    for _ in range(MAX_PASSES):
        changed = False
        for i, f in enumerate(functions):
            base_slot = slot - f.slot_ms[choice[i]] * f.memory_gb
            base_waiting = waiting - f.waiting_ms[choice[i]]
            pick = max(
                range(len(KEEP_GRID)),
                key=lambda j, f=f: score(
                    base_slot + f.slot_ms[j] * f.memory_gb, base_waiting + f.waiting_ms[j]
                ),
            )
            changed |= pick != choice[i]
            choice[i] = pick
            slot = base_slot + f.slot_ms[pick] * f.memory_gb
            waiting = base_waiting + f.waiting_ms[pick]
        if not changed:
            break
    return slot, waiting


def reference_targets(path: Path, create_ms: float) -> dict[str, float]:
    """Issue 4's target per trace, R + 0.6 (O - R), from the reference and oracle scores a
    ``python -m bench.policies`` run (RPC 0) left in ``path``; empty if there is none."""
    try:
        rows = json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {
        row["trace"]: row["score"] + 0.6 * (row["oracle"] - row["score"])
        for row in rows
        if row.get("policy") == "reference"
        and row.get("createMs") == create_ms
        and row.get("rpcLatencyMs", 0.0) == 0.0
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The score of a scaler that cannot foresee wake-ups (module docstring)."
    )
    parser.add_argument("--traces", help="comma-separated (default: all available)")
    parser.add_argument("--create-ms", type=float, default=100.0, help="CreateSlot latency")
    parser.add_argument(
        "--quiet",
        help="comma-separated quiet thresholds in s, 'inf' for the oracle "
        f"(default: {','.join(f'{q:g}' for q in QUIET_GRID)})",
    )
    parser.add_argument(
        "--repeat-ms",
        type=float,
        default=REPEAT_MS,
        help=f"a quiet this close to an earlier one is foreseen (default {REPEAT_MS:g})",
    )
    parser.add_argument(
        "--results", type=Path, default=OUT, help=f"bench.policies results for targets ({OUT})"
    )
    args = parser.parse_args(argv)
    try:
        quiets = [float(q) for q in args.quiet.split(",")] if args.quiet else list(QUIET_GRID)
    except ValueError:
        parser.error(f"--quiet takes numbers of seconds, got {args.quiet!r}")
    if any(not q > 0 for q in quiets):
        parser.error("--quiet thresholds must be positive")
    loaders = trace_loaders()
    traces = selected(args.traces, list(loaders))
    unknown = [t for t in traces if t not in loaders]
    if unknown:
        parser.error(f"unknown trace(s) {', '.join(unknown)} (known: {', '.join(loaders)})")
    targets = reference_targets(args.results, args.create_ms)
    print(
        f"CreateSlot {args.create_ms:g} ms; surprise: an arrival after >= quiet s of none, "
        f"unless within {args.repeat_ms:g} ms of an earlier quiet of the function"
    )
    print(
        f"{'trace':<14} {'quiet s':>8} {'bound':>7} {'target':>7} {'slot GB·s':>11} "
        f"{'wait s':>9} {'surprises':>9}"
    )
    for trace in traces:
        loader, why = loaders[trace]
        if loader is None:
            print(f"skipping {trace}: {why}", file=sys.stderr)
            continue
        dataset = loader()
        target = targets.get(trace)
        for quiet in quiets:
            bound = foresight_bound(dataset, args.create_ms, quiet, args.repeat_ms)
            shown = "-" if target is None else f"{target:.2f}"
            print(
                f"{trace:<14} {quiet:>8g} {bound.score:>7.2f} {shown:>7} {bound.slot_gbs:>11.0f} "
                f"{bound.waiting_s:>9.1f} {bound.surprises:>9}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

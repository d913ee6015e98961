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
- a surprise is served without waiting only by an instance kept idle through the whole gap
  before it (``gap`` of slot time; when every instance was busy, a spare started as the last
  one became busy, at least ``cold``): the scaler starts nothing for the function during the
  quiet, since an instance started then would be a guess at when the quiet ends, i.e. an
  attempt to time it. Otherwise it waits ``cold`` for a new instance (at least ``cold`` of
  slot time), and when none of the function's instances is busy, so do the requests that
  arrive while that cold start runs (they are its followers, never surprises themselves):
  nothing can be ready sooner, since nothing was started for the surprise. Nothing serves a
  function's first request before its cold start.

Each surprise is kept through or missed *on its own*, whichever scores best in hindsight, as
if the scaler knew how long each quiet would last (it only cannot time its end). So the
bound covers every keep-alive strategy, fixed or adaptive. The best choice is exact: the
score is convex and falls in both slot time and waiting, so its maximum over all choices is
one of the points met by keeping the surprises in increasing order of slot time per waiting
saved.
Everything else is optimistic too: a missed surprise costs only the waiting above (the
requests behind it get new instances the moment the cold start ends), Assign and Idle cost
nothing, pre-warms are timed to the millisecond, a kept surprise's followers are served as
if foreseen, and an instance costs nothing after its last request. So no scaler that starts
nothing for a function during its quiets of ``quiet_s`` or more (other than repeats) scores
more than this, whatever it keeps, except by queueing requests on busy instances (trading
waiting for slot time, which the oracle does not do; ``free_overlaps`` estimates how much
that can win) or by keeping uninitialised slots shared between functions of the same memory
size; where functions wake together, as in
dataSet_1, a shared slot costs what a kept instance costs. With ``quiet_s`` = infinity every
arrival is foreseen and the bound is the oracle.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from bench.policies import OUT, chosen_traces, loaded_traces, target_score, trace_loaders
from simulator.dataset import Dataset
from simulator.defaults import DEFAULT_CREATE_MS, DEFAULT_RPC_LATENCY_MS
from simulator.score import (
    MB_PER_GB,
    MS_PER_S,
    function_timelines,
    official_score,
    reuse_gaps,
)

#: Quiet thresholds (s) the CLI reports by default.
QUIET_GRID = (1, 2, 5, 10, 30, 60, 120, 300, 1800, math.inf)
#: A wake-up whose quiet is this close to an earlier one of the function is foreseen (timers).
REPEAT_MS = 100.0
#: ... of one of the function's last this many long quiets.
REPEAT_MEMORY = 3


@attrs.define(slots=True)
class FunctionCosts:
    """One function's costs with every surprise missed, and what keeping each one through
    instead would change (slot in MB·ms, waiting in ms)."""

    slot_mb_ms: float = 0.0
    waiting_ms: float = 0.0
    surprises: int = 0
    #: (extra slot MB·ms, waiting ms saved) of keeping each keepable surprise through.
    keeps: list[tuple[float, float]] = attrs.Factory(list)


@attrs.frozen(slots=True)
class Bound:
    """The best score at one quiet threshold, and how it is made up."""

    quiet_s: float
    score: float
    slot_gbs: float
    waiting_s: float
    surprises: int
    #: Surprises an idle instance was kept through in the best choice.
    kept: int


def function_costs(
    requests: Sequence[tuple[int, int]],
    *,
    origin_ms: int,
    cold_ms: float,
    memory_mb: int,
    quiet_ms: float,
    repeat_ms: float,
) -> FunctionCosts:
    """Costs of one function's ``(start, duration)`` requests, sorted by start.
    ``origin_ms`` is the trace's start: a first request that late or later is a surprise."""
    costs = FunctionCosts()
    long_quiets: deque[int] = deque(maxlen=REPEAT_MEMORY)
    previous = origin_ms
    busy_until = origin_ms
    follow_until = -math.inf  # requests before this follow a surprise and are charged with it
    slot_ms = 0.0
    for index, (start, duration, gap) in enumerate(reuse_gaps(requests)):
        quiet = start - previous
        previous = start
        long_quiet = quiet >= quiet_ms
        surprise = (
            long_quiet and start >= follow_until and not repeats(long_quiets, quiet, repeat_ms)
        )
        if long_quiet and index > 0:
            long_quiets.append(quiet)
        slot_ms += duration
        if not surprise:
            slot_ms += cold_ms if gap is None else min(gap, cold_ms)
        else:
            costs.surprises += 1
            follow_until = start + cold_ms
            # Served without waiting by the idle instance kept through the gap or, when
            # every instance was busy, by a spare started as the last one became busy (at
            # least a cold start of slot time). Nothing serves a function's first request.
            if gap is not None:
                kept_ms = float(gap)
            else:
                kept_ms = max(float(quiet), cold_ms) if index > 0 else math.inf
            if kept_ms <= cold_ms:
                slot_ms += kept_ms  # keeping costs no more than a cold start: no choice
            else:
                queued = 0.0 if busy_until > start else queued_ms(requests, index, cold_ms)
                slot_ms += cold_ms
                costs.waiting_ms += cold_ms + queued
                if kept_ms < math.inf:
                    costs.keeps.append(((kept_ms - cold_ms) * memory_mb, cold_ms + queued))
        busy_until = max(busy_until, start + duration)
    costs.slot_mb_ms = slot_ms * memory_mb
    return costs


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


def merged_overlaps(requests: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """One function's ``(start, duration)`` requests (sorted by start) with every request
    that starts before the previous ones end merged into their busy period."""
    merged: list[tuple[int, int]] = []
    for start, duration in requests:
        if merged and start < merged[-1][0] + merged[-1][1]:
            first, length = merged[-1]
            merged[-1] = (first, max(length, start + duration - first))
        else:
            merged.append((start, duration))
    return merged


def repeats(earlier: Iterable[int], quiet: int, within_ms: float) -> bool:
    """Whether ``quiet`` is within ``within_ms`` of one of the ``earlier`` ones."""
    return any(abs(quiet - other) <= within_ms for other in earlier)


def foresight_bound(
    dataset: Dataset,
    create_ms: float,
    quiet_s: float,
    repeat_ms: float = REPEAT_MS,
    *,
    free_overlaps: bool = False,
) -> Bound:
    """The bound of the module docstring for ``dataset`` at one quiet threshold.

    ``free_overlaps``: a request that starts while another of its function runs costs no
    instance and no waiting (the function's overlapping requests merge into one busy period,
    whose execution is still charged in full), an estimate of the most that queueing requests
    on busy instances could win; not a proven bound (a queued request also shifts the idle
    gap after it)."""
    slot_mb_ms = waiting_ms = execution_ms = execution_mb_ms = 0.0
    surprises = 0
    keeps: list[tuple[float, float]] = []
    for key, timeline in function_timelines(dataset).items():
        meta = dataset.metas[key]
        busy_ms = sum(duration for _, duration in timeline)
        planned = merged_overlaps(timeline) if free_overlaps else timeline
        costs = function_costs(
            planned,
            origin_ms=dataset.start_ms,
            cold_ms=create_ms + meta.init_duration_ms,
            memory_mb=meta.memory_mb,
            quiet_ms=quiet_s * MS_PER_S,
            repeat_ms=repeat_ms,
        )
        overlap_ms = busy_ms - sum(duration for _, duration in planned)
        slot_mb_ms += costs.slot_mb_ms + overlap_ms * meta.memory_mb
        waiting_ms += costs.waiting_ms
        surprises += costs.surprises
        keeps.extend(costs.keeps)
        execution_ms += busy_ms
        execution_mb_ms += busy_ms * meta.memory_mb

    def score(slot: float, waiting: float) -> float:
        return official_score(
            execution_s=execution_ms / MS_PER_S,
            execution_gbs=execution_mb_ms / MS_PER_S / MB_PER_GB,
            schedule_s=waiting / MS_PER_S,
            idle_s=0.0,
            slot_gbs=slot / MS_PER_S / MB_PER_GB,
            success_rate=1.0,
        )

    # Keep the surprises in increasing order of slot time per waiting saved; the best
    # prefix is the best of all choices (module docstring).
    keeps.sort(key=lambda keep: keep[0] / keep[1])
    best = (score(slot_mb_ms, waiting_ms), slot_mb_ms, waiting_ms, 0)
    for count, (extra_slot, saved_wait) in enumerate(keeps, start=1):
        slot_mb_ms += extra_slot
        waiting_ms -= saved_wait
        candidate = score(slot_mb_ms, waiting_ms)
        if candidate > best[0]:
            best = (candidate, slot_mb_ms, waiting_ms, count)
    value, slot, waiting, kept = best
    return Bound(
        quiet_s=quiet_s,
        score=value,
        slot_gbs=slot / MS_PER_S / MB_PER_GB,
        waiting_s=max(waiting, 0.0) / MS_PER_S,
        surprises=surprises,
        kept=kept,
    )


def reference_targets(path: Path, create_ms: float) -> dict[str, float]:
    """Issue 4's target per trace, R + 0.6 (O - R), from the reference and oracle scores a
    ``python -m bench.policies`` run at the default RPC charge left in ``path``; empty if there
    is none."""
    try:
        rows = json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {
        row["trace"]: target_score(row["score"], row["oracle"])
        for row in rows
        if row.get("policy") == "reference"
        and row.get("createMs") == create_ms
        and row.get("rpcLatencyMs", 0.0) == DEFAULT_RPC_LATENCY_MS
        and not row.get("chargeCompute", False)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The score of a scaler that cannot foresee wake-ups (module docstring)."
    )
    parser.add_argument("--traces", help="comma-separated (default: all available)")
    parser.add_argument(
        "--create-ms", type=float, default=DEFAULT_CREATE_MS, help="CreateSlot latency"
    )
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
        "--free-overlaps",
        action="store_true",
        help="requests that overlap another of their function cost nothing (an estimate of "
        "what queueing on busy instances could win)",
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
    if not args.repeat_ms >= 0:
        parser.error("--repeat-ms must be 0 or more")
    try:
        traces = chosen_traces(args.traces, list(trace_loaders()))
    except ValueError as err:
        parser.error(str(err))
    targets = reference_targets(args.results, args.create_ms)
    print(
        f"CreateSlot {args.create_ms:g} ms; surprise: an arrival after >= quiet s of none, "
        f"unless within {args.repeat_ms:g} ms of an earlier quiet of the function"
    )
    print(
        f"{'trace':<14} {'quiet s':>8} {'bound':>7} {'target':>7} {'slot GB·s':>11} "
        f"{'wait s':>9} {'surprises':>9} {'kept':>6}"
    )
    for trace, dataset in loaded_traces(traces):
        target = targets.get(trace)
        for quiet in quiets:
            bound = foresight_bound(
                dataset, args.create_ms, quiet, args.repeat_ms, free_overlaps=args.free_overlaps
            )
            shown = "-" if target is None else f"{target:.2f}"
            print(
                f"{trace:<14} {quiet:>8g} {bound.score:>7.2f} {shown:>7} {bound.slot_gbs:>11.0f} "
                f"{bound.waiting_s:>9.1f} {bound.surprises:>9} {bound.kept:>6}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

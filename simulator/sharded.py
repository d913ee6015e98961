"""``scaler simulate --shards N``: replay each shard of a dataset as its own Ray task.

Each task makes its shard from a source spec (simulator/sources.py, simulator/shards.py),
replays it in fast mode against a scaler of its own, and sends back a
:class:`~simulator.merge.ShardResult`; the driver merges them into one record
(simulator/merge.py). Progress goes to stderr: a line per finished task (tasks done / total,
requests replayed), and with ``live`` progress the requests replayed inside running tasks too
(reported through a small Ray actor). A task that fails stops the run: the others are
cancelled, the failure names its shard and the cause, and no record is made.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import attrs

from simulator.exact import ValueCounts, exact_sum
from simulator.faults import FaultSpec
from simulator.merge import ShardResult
from simulator.platform import LatencyModel, SlotRecord, slot_cost
from simulator.shards import load_shard
from simulator.sources import Source


@attrs.frozen
class ShardOptions:
    """How every shard is replayed (the fast-mode settings of ``scaler simulate``).

    Faults are drawn per shard from the same seed, so a faulty sharded run is deterministic
    for a given N but injects other faults than one process would.
    """

    policy: str
    create_ms: float = 100.0
    create_jitter_ms: float = 0.0
    rpc_latency_ms: float = 0.0
    faults: FaultSpec = attrs.Factory(FaultSpec)
    seed: int = 0


class ShardFailed(RuntimeError):
    """A shard's task failed; ``index`` names the shard, the message the cause."""

    def __init__(self, index: int, shards: int, cause: str) -> None:
        super().__init__(f"shard {index} of {shards} failed: {cause}")
        self.index = index


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def replay_shard(
    source: Source,
    shards: int,
    index: int,
    options: ShardOptions,
    progress: Callable[[int, int, float], None] | None = None,
) -> ShardResult:
    """Make shard ``index`` of ``shards`` of ``source`` and replay it, in this process."""
    from loguru import logger

    from simulator.fast import run_fast
    from simulator.score import oracle_sums

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    started = time.perf_counter()
    data = load_shard(source, shards, index)
    run = run_fast(
        data.dataset,
        options.policy,
        latency=LatencyModel(options.create_ms, options.create_jitter_ms),
        faults=options.faults,
        seed=options.seed,
        rpc_latency_ms=options.rpc_latency_ms,
        origin_ms=data.origin_ms,
        linger_until_ms=data.linger_until_ms,
        progress=progress,
        exact_clock=True,
    )
    assert run.ledger is not None
    end, known = run.replay_end_s, run.linger_end_s
    settled: list[float] = []
    tail: list[SlotRecord] = []
    for slot in run.ledger.records():
        if slot.destroyed_at is not None and slot.destroyed_at <= end:
            settled.append(slot_cost(slot, end))
        elif slot.destroyed_at is not None and slot.destroyed_at > known:
            tail.append(attrs.evolve(slot, destroyed_at=None))  # destroyed by the shutdown
        else:
            tail.append(slot)
    totals = run.totals
    totals.assign_latencies_ms = ValueCounts.of(totals.assign_latencies_ms)  # type: ignore[assignment]
    totals.idle_latencies_ms = ValueCounts.of(totals.idle_latencies_ms)  # type: ignore[assignment]
    dataset = data.dataset
    return ShardResult(
        index=index,
        shards=shards,
        name=dataset.name,
        meta_path=dataset.meta_path,
        request_path=dataset.request_path,
        functions=len(dataset.metas),
        totals=totals,
        oracle=oracle_sums(dataset, create_ms=options.create_ms),
        replay_end_s=end,
        known_until_s=known,
        settled_slot_exact=exact_sum(settled),
        tail=tail,
        failures=dict(run.failures),
        first_failures=list(run.first_failures),
        injected_faults=dict(run.injected_faults),
        wall_s=time.perf_counter() - started,
        peak_rss_mb=_peak_rss_mb(),
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )


def _task(
    source: Source, shards: int, index: int, options: ShardOptions, board: Any
) -> ShardResult:
    """The Ray task: one shard, reporting requests done to ``board`` (an actor) if given."""
    progress = None
    if board is not None:

        def progress(done: int, _total: int, _elapsed: float) -> None:
            board.report.remote(index, done)

    return replay_shard(source, shards, index, options, progress)


class ProgressBoard:
    """Requests replayed per running shard (a Ray actor, created only for live progress)."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}

    def report(self, index: int, done: int) -> None:
        self.done[index] = done

    def snapshot(self) -> dict[int, int]:
        return dict(self.done)


def _cause(err: BaseException) -> str:
    """The root cause of a Ray task error, in one line."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}"


def run_shards(
    source: Source,
    shards: int,
    options: ShardOptions,
    *,
    total_requests: int | None = None,
    log: TextIO | None = sys.stderr,
    live: bool = False,
    indices: Sequence[int] | None = None,
) -> list[ShardResult]:
    """Run the shards as Ray tasks (Ray must be initialised: simulator/cluster.py) and return
    their results in shard order; :class:`ShardFailed` for the first task that fails."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=0)(_task)
    board = ray.remote(num_cpus=0)(ProgressBoard).remote() if live else None
    wanted = list(range(shards)) if indices is None else list(indices)
    pending = {task.remote(source, shards, i, options, board): i for i in wanted}
    results: dict[int, ShardResult] = {}
    replayed = 0
    of = f" of {total_requests:,}" if total_requests else ""
    last_line = time.monotonic()
    try:
        while pending:
            # A bounded wait, so that Ctrl-C (handled between Python calls) stops the run.
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:
                    raise ShardFailed(index, shards, _cause(err)) from err
                results[index] = result
                replayed += result.totals.total_requests
                if log is not None:
                    print(
                        f"shards: {len(results)}/{len(wanted)} done, {replayed:,}{of} requests "
                        f"replayed (shard {index}: {result.totals.total_requests:,} in "
                        f"{result.wall_s:.1f} s, peak RSS {result.peak_rss_mb:.0f} MB)",
                        file=log,
                        flush=True,
                    )
            if live and log is not None and not ready and time.monotonic() - last_line > 10:
                running = ray.get(board.snapshot.remote())
                done = replayed + sum(n for i, n in running.items() if i not in results)
                print(
                    f"shards: {len(results)}/{len(wanted)} done, {done:,}{of} requests replayed",
                    file=log,
                    flush=True,
                )
                last_line = time.monotonic()
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if board is not None:
            ray.kill(board)
    return [results[i] for i in sorted(results)]

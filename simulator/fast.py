"""Fast mode: the real scaler (servicer, scheduler, policy, FSM) and the real platform and
ledger, in one process on a virtual-time loop. No sockets; time jumps from event to event.

The scaler's own compute is measured (``simulator.compute``): every servicer call, callback
and policy decision of the scaler is timed and reported in the record; ``charge_compute``
also makes the virtual clock pay it, as the wire would.

A shard of a sharded replay (simulator/sharded.py) runs here too, on the whole dataset's clock
(``origin_ms``) and, after its last request, on until ``linger_until_ms`` so that the slots it
still holds are known up to whenever the whole run ends (see :class:`FastRun`).
"""

from __future__ import annotations

import asyncio
import gc

import attrs

from scaler.clock import LoopClock
from scaler.platform import PlatformClient
from scaler.policy import DEFAULT_POLICY, Policy, make_policy
from scaler.scheduler import Scheduler
from scaler.server import ScalerServicer
from scaler.states import Journal
from simulator.compute import ComputeMeter
from simulator.dataset import Dataset
from simulator.defaults import DEFAULT_RPC_LATENCY_MS
from simulator.faults import FaultSpec
from simulator.platform import InProcessPlatformStub, LatencyModel, PlatformService, SlotLedger
from simulator.replay import Progress, Replayer, ServicerTransport
from simulator.score import RunTotals
from simulator.timeline import Timeline
from simulator.virtual_loop import run_virtual


@attrs.frozen
class FastRun:
    """What a fast-mode run produced: the totals and what the scaler did."""

    totals: RunTotals
    failures: dict[str, int]
    first_failures: list[str]
    scheduler_stats: dict[str, int]
    platform_calls: dict[str, int]
    injected_faults: dict[str, int]
    replay_end_s: float = 0.0
    """Loop time at which the last request finished (the totals' slot cost is capped there)."""
    ledger: SlotLedger | None = None
    """The platform's ledger as it was before the scaler shut down (after lingering, if
    asked): every slot's create and destroy time, for a merge of shards to price its tail."""
    linger_end_s: float = 0.0
    """Loop time up to which the ledger is known (``replay_end_s`` unless it lingered)."""


async def _run(
    dataset: Dataset,
    policy: str | Policy,
    latency: LatencyModel,
    faults: FaultSpec,
    seed: int,
    journal: Journal,
    progress: Progress | None,
    timeline: Timeline | None,
    rpc_latency_ms: float,
    charge_compute: bool,
    origin_ms: int | None,
    linger_until_ms: int | None,
) -> FastRun:
    loop = asyncio.get_running_loop()
    compute = ComputeMeter(loop, charge=charge_compute)  # type: ignore[arg-type]
    loop.compute = compute  # type: ignore[attr-defined]
    service = PlatformService(dataset.metas, latency, faults, seed)
    stub = InProcessPlatformStub(service, rpc_latency_ms / 1000.0, compute)
    platform = PlatformClient(stub)
    origin = dataset.start_ms if origin_ms is None else origin_ms
    clock = LoopClock(loop, epoch_at_zero=origin / 1000.0 - loop.time())
    if isinstance(policy, str):
        policy = make_policy(policy)
    scheduler = Scheduler(platform, policy, clock, journal, meter=compute.decision)
    compute.context.run(scheduler.start_gc)  # its timers are the scaler's
    servicer = ScalerServicer(scheduler)
    transport = ServicerTransport(servicer, rpc_latency_ms / 1000.0, compute)
    replayer = Replayer(
        dataset,
        transport,
        service.ledger,
        progress=progress,
        timeline=timeline,
        origin_ms=origin_ms,
    )
    start = loop.time()
    with compute.collector:
        totals = await replayer.run()
    replay_end = loop.time()
    # The replay's compute; the lingering and the shutdown below are not scored.
    totals.compute = compute.figures(totals.cpu_time_s, totals.wall_time_s)
    if linger_until_ms is not None:
        # The scaler keeps running (its GC, its timers) as it would while other functions'
        # requests still run in the whole replay.
        await asyncio.sleep(max(0.0, start + (linger_until_ms - origin) / 1000.0 - replay_end))
    linger_end = loop.time()
    await compute.scaler_call(scheduler.shutdown(grace_s=60.0, destroy_wait_s=120.0))
    totals.leaked_slots = service.ledger.live_count
    return FastRun(
        totals=totals,
        failures=dict(replayer.failures),
        first_failures=list(replayer.first_failures),
        scheduler_stats=dict(scheduler.stats),
        platform_calls=dict(service.calls),
        injected_faults=dict(service.faults.injected),
        replay_end_s=replay_end,
        ledger=service.ledger,
        linger_end_s=linger_end,
    )


def run_fast(
    dataset: Dataset,
    policy: str | Policy = DEFAULT_POLICY,
    *,
    latency: LatencyModel | None = None,
    faults: FaultSpec | None = None,
    seed: int = 0,
    journal: Journal | None = None,
    progress: Progress | None = None,
    timeline: Timeline | None = None,
    rpc_latency_ms: float = DEFAULT_RPC_LATENCY_MS,
    charge_compute: bool = False,
    origin_ms: int | None = None,
    linger_until_ms: int | None = None,
    exact_clock: bool = False,
) -> FastRun:
    """Replay ``dataset`` in virtual time against an in-process scaler running ``policy``
    (a name, or a fresh policy object for this run only: policies keep state).

    ``rpc_latency_ms`` charges every RPC a network round trip, as wire mode pays: the
    replayer's Assign and Idle, and the scaler's CreateSlot, Init and DestroySlot (default:
    the one latency model of ``simulator.defaults``; 0 for a latency-free replay).
    ``charge_compute`` adds the scaler's measured compute to the virtual clock (not
    deterministic: it depends on the machine); by default it is only reported.
    ``origin_ms`` is the epoch ms at loop time 0 (default: the first request's start); a
    shard passes the whole dataset's, so that its timers tick when the whole run's do.
    ``linger_until_ms`` (epoch ms) keeps the scaler running after the last request until
    then, the ledger recording what it does. ``exact_clock`` runs it on the virtual loop's
    exact clock (simulator/virtual_loop.py), as shards do.
    """
    # The trace is the simulator's, not the scaler's: frozen out of the cyclic collector, a
    # full collection does not walk its hundreds of thousands of requests inside whichever
    # scaler call happens to trigger it (a production scaler holds no trace), so the measured
    # compute is the scaler's. Unfrozen after, for the next run in the same process.
    gc.collect()
    gc.freeze()
    try:
        return run_virtual(
            _run(
                dataset,
                policy,
                latency or LatencyModel(),
                faults or FaultSpec(),
                seed,
                journal or Journal(),
                progress,
                timeline,
                rpc_latency_ms,
                charge_compute,
                origin_ms,
                linger_until_ms,
            ),
            exact=exact_clock,
        )
    finally:
        gc.unfreeze()

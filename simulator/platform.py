"""The platform service (CreateSlot, Init, DestroySlot) and its slot ledger.

The ledger records every slot's create and destroy time and memory: it is the cost accounting
of the score (``totalSlotTimeInGBs``), and it is what the replayer asks to check an assignment
(does the instance exist, is it initialised, for which function). Times are the running loop's
``time()`` in seconds: real in wire mode, virtual in fast mode.

Decisions the contract leaves open (docs/simulator.md): a slot costs from the CreateSlot request
the platform accepts (the contract's "from its CreateSlot"; the create delay is paid for, as in
the oracle) to the DestroySlot request that removes it, or the end of the run; a refused,
throttled or failed CreateSlot creates no slot and costs nothing; Init on a slot whose memory
is below the function's fails with InvalidArgument; Init on an initialised slot fails with
InvalidArgument; Init or DestroySlot on an unknown slot answers NotFound; an injected Init
failure leaves the slot uninitialised (the scaler must destroy it).

Latencies (CreateSlot, Init, DestroySlot, spikes) are trace time; ``speed`` divides them when
sleeping, so a wire-mode run at ``--speed S`` keeps them in proportion, and replies report
them back in trace time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from scaler.wire import pb, rpc
from simulator.compute import ComputeMeter
from simulator.dataset import FunctionMeta
from simulator.defaults import DEFAULT_CREATE_MS
from simulator.exact import exact_sum, unscaled
from simulator.faults import FaultInjector, FaultSpec
from simulator.ids import UuidIds


@attrs.define(slots=True)
class SlotRecord:
    id: str
    memory_mb: int
    created_at: float
    destroyed_at: float | None = None
    instance_id: str | None = None
    key: str | None = None
    initialised: bool = False


class SlotLedger:
    """Every slot ever created, and the instances living on them.

    A destroyed slot is kept as a plain tuple of its fields: the cyclic collector stops
    tracking a tuple of plain values, and a long replay destroys tens of thousands of slots.
    As objects (eight referents each), every full collection would walk them inside
    whichever scaler call triggers it, a pause the measured compute would charge to a scaler
    that has no ledger; in the list, each costs the collector one cheap visit.
    """

    def __init__(self) -> None:
        #: Destroyed slots, final: SlotRecord's fields in its order (``attrs.astuple``).
        self._settled: list[tuple[Any, ...]] = []
        self._by_instance: dict[str, SlotRecord] = {}
        self._live: dict[str, SlotRecord] = {}
        self._ids = UuidIds("slots")  # UUID-like, as the challenge's (simulator/ids.py)

    def create(self, memory_mb: int, requested_at: float) -> SlotRecord:
        """A new live slot, costing from ``requested_at`` (its accepted CreateSlot request)."""
        record = SlotRecord(next(self._ids), memory_mb, requested_at)
        self._live[record.id] = record
        return record

    @property
    def created_count(self) -> int:
        """Slots ever created (live and destroyed)."""
        return len(self._settled) + len(self._live)

    def records(self) -> Iterator[SlotRecord]:
        """Every slot ever created, destroyed ones first (fresh objects for those)."""
        for fields in self._settled:
            yield SlotRecord(*fields)
        yield from self._live.values()

    def initialise(self, record: SlotRecord, instance_id: str, key: str) -> None:
        record.instance_id = instance_id
        record.key = key
        record.initialised = True
        self._by_instance[instance_id] = record

    def destroy(self, record: SlotRecord, now: float) -> None:
        record.destroyed_at = now
        del self._live[record.id]
        if record.instance_id is not None:
            self._by_instance.pop(record.instance_id, None)
        self._settled.append(attrs.astuple(record, recurse=False))

    def live_records(self) -> Iterable[SlotRecord]:
        """The live slots (a view: do not create or destroy while iterating)."""
        return self._live.values()

    def live_slot(self, slot_id: str) -> SlotRecord | None:
        return self._live.get(slot_id)

    def instance(self, instance_id: str) -> SlotRecord | None:
        """The live, initialised slot running ``instance_id`` (None if none)."""
        return self._by_instance.get(instance_id)

    @property
    def live_count(self) -> int:
        return len(self._live)

    def live_ids(self) -> list[str]:
        return list(self._live)

    def slot_gbs(self, end: float) -> float:
        """Sum over slots of (destroy time, capped at ``end``) - create time, times GB; added
        exactly and rounded once, so the total does not depend on the slots' order."""
        return unscaled(exact_sum(slot_cost(r, end) for r in self.records()))


def slot_cost(record: SlotRecord, end: float) -> float:
    """GB·s of one slot from its creation to its destruction, capped at ``end`` (0 if it was
    created at or after ``end``)."""
    stop = end if record.destroyed_at is None else min(record.destroyed_at, end)
    if stop > record.created_at:
        return (stop - record.created_at) * record.memory_mb / 1024.0
    return 0.0


@attrs.frozen
class LatencyModel:
    """CreateSlot latency (ms) with optional uniform jitter; Init takes the function's own."""

    create_ms: float = DEFAULT_CREATE_MS
    jitter_ms: float = 0.0
    destroy_ms: float = 0.0

    def create_s(self, rng: random.Random) -> float:
        jitter = rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.create_ms + jitter) / 1000.0


def _reply_error(kind: Any, status: int, message: str) -> Any:
    return kind(status=status, error_message=message)


class PlatformService(rpc.PlatformServicer):
    """The Platform gRPC servicer over a ledger; the same object serves wire and fast mode."""

    def __init__(
        self,
        metas: dict[str, FunctionMeta],
        latency: LatencyModel | None = None,
        faults: FaultSpec | None = None,
        seed: int = 0,
        ledger: SlotLedger | None = None,
        speed: float = 1.0,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.metas = metas
        self.speed = speed
        self.latency = latency or LatencyModel()
        self.ledger = ledger or SlotLedger()
        self.faults = FaultInjector(faults or FaultSpec(), seed)
        self._rng = random.Random(seed + 1)
        self.calls: dict[str, int] = {"CreateSlot": 0, "Init": 0, "DestroySlot": 0}

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def _delay(self, seconds: float) -> None:
        seconds += self.faults.extra_latency_s()
        if seconds > 0:
            await asyncio.sleep(seconds / self.speed)

    async def CreateSlot(self, request: Any, context: Any = None) -> Any:
        self.calls["CreateSlot"] += 1
        if self.faults.throttled():
            return _reply_error(pb.CreateSlotReply, pb.Throttle, "throttled (injected)")
        memory = request.resource_config.memory_in_megabytes
        if memory == 0:
            return _reply_error(pb.CreateSlotReply, pb.InvalidArgument, "memory_in_megabytes is 0")
        started = self._now()
        await self._delay(self.latency.create_s(self._rng))
        if self.faults.fails("create"):
            return _reply_error(
                pb.CreateSlotReply, pb.InternalError, "slot creation failed (injected)"
            )
        now = self._now()
        record = self.ledger.create(memory, started)
        return pb.CreateSlotReply(
            status=pb.Ok,
            slot=pb.Slot(
                id=record.id,
                resource_config=pb.ResourceConfig(memory_in_megabytes=memory),
                create_time=int(now * 1000),
                create_duration_in_ms=round((now - started) * 1000 * self.speed),
            ),
        )

    async def Init(self, request: Any, context: Any = None) -> Any:
        self.calls["Init"] += 1
        if self.faults.throttled():
            return _reply_error(pb.InitReply, pb.Throttle, "throttled (injected)")
        record = self.ledger.live_slot(request.slot_id)
        if record is None:
            return _reply_error(pb.InitReply, pb.NotFound, f"slot {request.slot_id} does not exist")
        meta = self.metas.get(request.meta_data.key)
        if meta is None:
            return _reply_error(
                pb.InitReply, pb.NotFound, f"function {request.meta_data.key} is not in the dataset"
            )
        if record.initialised or record.instance_id is not None:
            return _reply_error(
                pb.InitReply, pb.InvalidArgument, f"slot {record.id} is already initialised"
            )
        if not request.instance_id:
            return _reply_error(pb.InitReply, pb.InvalidArgument, "instance_id is empty")
        if self.ledger.instance(request.instance_id) is not None:
            return _reply_error(
                pb.InitReply, pb.InvalidArgument, f"instance {request.instance_id} already exists"
            )
        if record.memory_mb < meta.memory_mb:
            return _reply_error(
                pb.InitReply,
                pb.InvalidArgument,
                f"slot {record.id} has {record.memory_mb} MB, function needs {meta.memory_mb} MB",
            )
        record.instance_id = request.instance_id  # reserved while Init runs
        await self._delay(meta.init_duration_ms / 1000.0)
        if record.destroyed_at is not None:
            return _reply_error(pb.InitReply, pb.NotFound, f"slot {record.id} was destroyed")
        if self.faults.fails("init"):
            record.instance_id = None
            return _reply_error(pb.InitReply, pb.InternalError, "init failed (injected)")
        self.ledger.initialise(record, request.instance_id, meta.key)
        return pb.InitReply(
            status=pb.Ok,
            create_time=int(self._now() * 1000),
            init_duration_in_ms=meta.init_duration_ms,
        )

    async def DestroySlot(self, request: Any, context: Any = None) -> Any:
        self.calls["DestroySlot"] += 1
        if self.faults.throttled():
            return _reply_error(pb.DestroySlotReply, pb.Throttle, "throttled (injected)")
        record = self.ledger.live_slot(request.id)
        if record is None:
            return _reply_error(
                pb.DestroySlotReply, pb.NotFound, f"slot {request.id} does not exist"
            )
        requested = self._now()
        await self._delay(self.latency.destroy_ms / 1000.0)
        if self.faults.fails("destroy"):
            return _reply_error(pb.DestroySlotReply, pb.InternalError, "destroy failed (injected)")
        if record.destroyed_at is None:
            self.ledger.destroy(record, requested)  # its cost ends at the accepted request
        return pb.DestroySlotReply(status=pb.Ok)


class InProcessPlatformStub:
    """The Platform stub's shape over a servicer in the same loop (fast mode: no sockets).

    ``rpc_latency_s`` charges each call a network round trip (paid before the service sees
    it), as a gRPC call would cost. With ``compute`` the platform's code runs outside the
    scaler's measured compute (``simulator.compute``): it is the simulator's, not the scaler's.
    """

    def __init__(
        self,
        service: PlatformService,
        rpc_latency_s: float = 0.0,
        compute: ComputeMeter | None = None,
    ) -> None:
        self._service = service
        self._latency = rpc_latency_s
        self._compute = compute

    async def _call(self, coro: Any, timeout: float | None) -> Any:
        if self._latency:
            coro = self._with_latency(coro)
        if self._compute is not None:
            coro = self._compute.platform_call(coro)
        if timeout is None:
            return await coro
        return await asyncio.wait_for(coro, timeout)

    async def _with_latency(self, coro: Any) -> Any:
        try:
            await asyncio.sleep(self._latency)
        except BaseException:
            coro.close()
            raise
        return await coro

    def CreateSlot(self, request: Any, *, timeout: float | None = None) -> Any:
        return self._call(self._service.CreateSlot(request), timeout)

    def Init(self, request: Any, *, timeout: float | None = None) -> Any:
        return self._call(self._service.Init(request), timeout)

    def DestroySlot(self, request: Any, *, timeout: float | None = None) -> Any:
        return self._call(self._service.DestroySlot(request), timeout)

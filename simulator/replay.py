"""Drive a scaler with a dataset: Assign at each start time, run, Idle; measure everything.

The same replayer serves both modes. In wire mode the transport is a gRPC stub and the loop is
real; in fast mode the transport calls the scaler's servicer in-process and the loop is
virtual. ``speed`` divides every trace time by S; latencies are reported back in trace time.

An assignment is checked against the platform's ledger: the instance must exist, be
initialised, belong to the request's function and not be serving another request. Anything
else, or an Assign/Idle that errors or misses its deadline, is a failed request with a reason.
:meth:`Replayer.abort` ends a run early (the scaler died): every request not yet finished
fails with the reason, and the run still returns its totals.

Request ids are UUID-like (``simulator/ids.py``), as the challenge's simulator sends them.

Slot time is counted over the run's own window, so a ledger shared by several datasets in a
row (wire mode: one platform for the whole session) charges each run only for its own time.
An optional :class:`~simulator.timeline.Timeline` records per-second series for reports; without
one the replayer does no extra work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from scaler.wire import pb
from simulator.compute import ComputeMeter
from simulator.dataset import Dataset, FunctionMeta, Request
from simulator.exact import ExactSum
from simulator.ids import UuidIds
from simulator.platform import SlotLedger
from simulator.score import RunTotals
from simulator.timeline import Timeline

Progress = Callable[[int, int, float], None]

EXACT_SUMS = ("schedule_s", "idle_s", "execution_s", "execution_gbs")
"""The per-request sums of :class:`RunTotals`, added exactly (simulator/exact.py): a record
then does not depend on the order requests finished in, so a sharded replay can match one
process to the last bit."""

DEFAULT_ASSIGN_DEADLINE_S = 150.0
"""Wire mode's bound on one Assign, wall seconds. An Assign may legitimately wait for a cold
start, and the longest Init in the challenge's datasets is 120 s (dataSet_3r); this is that
plus room for CreateSlot and retries, so only a scaler that hangs misses it."""

DEFAULT_IDLE_DEADLINE_S = 5.0
"""Wire mode's bound on one Idle, wall seconds. Idle waits for nothing on the platform in the
contract (a scaler answers it in milliseconds), so seconds without an answer mean a hang."""


class CallFailed(Exception):
    """An Assign or Idle that got no answer at all; ``str()`` is the failed request's reason."""


class ScalerTransport(Protocol):
    async def assign(self, request: Any) -> Any: ...
    async def idle(self, request: Any) -> Any: ...


class ServicerTransport:
    """Calls a servicer object directly (fast mode); with ``compute``, each call runs as the
    scaler's and is timed (``simulator.compute``).

    ``rpc_latency_s`` models the network and (de)serialisation of a real RPC: the whole round
    trip is paid before the servicer sees the request (one timer per call, not two, which
    keeps long replays fast; the measured latency is the same).
    """

    def __init__(
        self, servicer: Any, rpc_latency_s: float = 0.0, compute: ComputeMeter | None = None
    ) -> None:
        self._servicer = servicer
        self._latency = rpc_latency_s
        self._compute = compute

    async def assign(self, request: Any) -> Any:
        if self._latency:
            await asyncio.sleep(self._latency)
        return await self.assign_prepaid(request)

    @property
    def round_trip_s(self) -> float:
        """What one call's round trip costs. The replayer may pay it with a sleep it makes
        anyway (one timer per call less: the same latency, the same instant) and call
        :meth:`assign_prepaid` / :meth:`idle_prepaid`."""
        return self._latency

    async def assign_prepaid(self, request: Any) -> Any:
        """Assign, its round trip already paid by the caller."""
        if self._compute is not None:
            return await self._compute.scaler_call(self._servicer.Assign(request, None))
        return await self._servicer.Assign(request, None)

    async def idle(self, request: Any) -> Any:
        if self._latency:
            await asyncio.sleep(self._latency)
        return await self.idle_prepaid(request)

    async def idle_prepaid(self, request: Any) -> Any:
        """Idle, its round trip already paid by the caller."""
        if self._compute is not None:
            return await self._compute.scaler_call(self._servicer.Idle(request, None))
        return await self._servicer.Idle(request, None)


class GrpcTransport:
    """Calls a Scaler at an address over gRPC (wire mode), each call bounded by its deadline.

    An RPC error raises :class:`CallFailed`: "assign deadline exceeded" for a missed deadline,
    "Assign failed with gRPC UNAVAILABLE" and so on otherwise. The request fails, the run goes on.
    """

    def __init__(
        self,
        stub: Any,
        assign_deadline_s: float = DEFAULT_ASSIGN_DEADLINE_S,
        idle_deadline_s: float = DEFAULT_IDLE_DEADLINE_S,
    ) -> None:
        if assign_deadline_s <= 0 or idle_deadline_s <= 0:
            raise ValueError("deadlines must be positive")
        self._stub = stub
        self.assign_deadline_s = assign_deadline_s
        self.idle_deadline_s = idle_deadline_s

    async def assign(self, request: Any) -> Any:
        try:
            return await self._stub.Assign(request, timeout=self.assign_deadline_s)
        except grpc.RpcError as err:
            raise _call_failed(err, "Assign", self.assign_deadline_s) from None

    async def idle(self, request: Any) -> Any:
        try:
            return await self._stub.Idle(request, timeout=self.idle_deadline_s)
        except grpc.RpcError as err:
            raise _call_failed(err, "Idle", self.idle_deadline_s) from None


def _call_failed(err: grpc.RpcError, call: str, deadline_s: float) -> CallFailed:
    """The failed request's reason; its kind (before the first colon) names the gRPC code."""
    code = err.code() if hasattr(err, "code") else None
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CallFailed(f"{call.lower()} deadline exceeded: no answer within {deadline_s:g} s")
    details = err.details() if hasattr(err, "details") else ""
    return CallFailed(f"{call} failed with gRPC {getattr(code, 'name', code)}: {details}")


class Replayer:
    """Replays one dataset against one scaler and fills :class:`RunTotals`."""

    def __init__(
        self,
        dataset: Dataset,
        transport: ScalerTransport,
        ledger: SlotLedger,
        *,
        speed: float = 1.0,
        progress: Progress | None = None,
        epoch_timestamps: bool = False,
        timeline: Timeline | None = None,
        origin_ms: int | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.dataset = dataset
        self.transport = transport
        self.ledger = ledger
        self.speed = speed
        self.progress = progress
        self.epoch_timestamps = epoch_timestamps
        self.timeline = timeline
        self.origin_ms = origin_ms
        self.totals = RunTotals()
        self._sums = {name: ExactSum() for name in EXACT_SUMS}
        self.failures: Counter[str] = Counter()
        self.first_failures: list[str] = []
        self._running: dict[str, str] = {}  # instance id -> request id
        self._ids = UuidIds("requests")
        self._abort_reason = ""
        self._waiter: asyncio.Future[None] | None = None  # the run loop's wakeable timer
        self._tasks: set[asyncio.Task[None]] = set()
        #: Instance ids seen (a plain dict of strings, not a set: the cyclic collector does
        #: not track it, so a full collection inside a scaler call does not walk its ids).
        self._seen_instances: dict[str, None] = {}
        self._metas = {k: _meta_message(m) for k, m in dataset.metas.items()}
        self._memory_gb = {k: m.memory_mb / 1024.0 for k, m in dataset.metas.items()}
        #: An in-process transport's round trip, paid with a sleep the replayer makes anyway:
        #: an Assign's with the wait for its start time, an Idle's with the execution's.
        self._prepaid_s = (
            transport.round_trip_s / speed if isinstance(transport, ServicerTransport) else 0.0
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._done = 0
        self._start = 0.0
        self.in_flight = 0
        self.peak_in_flight = 0

    async def run(self) -> RunTotals:
        loop = asyncio.get_running_loop()
        wall = time.perf_counter()
        cpu = time.process_time()
        requests = self.dataset.requests
        first_ms = self.origin_ms
        if first_ms is None:
            first_ms = requests[0].start_ms if requests else 0
        self._start = loop.time()
        slot_gbs_before = self.ledger.slot_gbs(self._start)
        sampler = loop.create_task(self._sample()) if self.timeline is not None else None
        self.totals.start_ms = int(time.time() * 1000) if self.epoch_timestamps else first_ms
        tasks = self._tasks
        step = max(1, len(requests) // 200)
        ids = self._ids
        start = self._start + self._prepaid_s  # each Assign arrives one round trip after its start
        for index, request in enumerate(requests):
            target = start + (request.start_ms - first_ms) / 1000.0 / self.speed
            if target > loop.time():
                await self._wait_until(loop, target)
            if self._abort_reason:
                self._fail_unsent(index)
                break
            task = loop.create_task(self._one(index, request, next(ids)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if self.progress is not None and index % step == 0:
                self.progress(self._done, len(requests), self.elapsed_trace_s())
        while tasks:
            await asyncio.gather(*list(tasks))
        end = loop.time()
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        t = self.totals
        t.total_requests = len(requests)
        for name, exact in self._sums.items():
            setattr(t, name, float(exact))
            t.exact[name] = exact.total
        t.slot_gbs = (self.ledger.slot_gbs(end) - slot_gbs_before) * self.speed
        t.live_slots = self.ledger.live_count
        t.wall_time_s = time.perf_counter() - wall
        t.cpu_time_s = time.process_time() - cpu
        t.end_ms = (
            int(time.time() * 1000)
            if self.epoch_timestamps
            else first_ms + int((end - self._start) * 1000 * self.speed)
        )
        if self.progress is not None:
            self.progress(self._done, len(requests), self.elapsed_trace_s())
        return t

    async def _wait_until(self, loop: asyncio.AbstractEventLoop, target: float) -> None:
        """Sleep until ``target`` (loop time), or until :meth:`abort` wakes us.

        The same cost as ``asyncio.sleep`` (one future, one timer), so fast mode pays nothing.
        """
        waiter: asyncio.Future[None] = loop.create_future()
        handle = loop.call_at(target, _wake, waiter)
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None
            handle.cancel()

    def abort(self, reason: str) -> None:
        """End the run now: unsent and in-flight requests fail with ``reason`` (idempotent)."""
        if self._abort_reason:
            return
        self._abort_reason = reason
        if self._waiter is not None:
            _wake(self._waiter)
        for task in list(self._tasks):
            task.cancel()

    def _fail_unsent(self, first: int) -> None:
        requests = self.dataset.requests
        for index in range(first, len(requests)):
            self._fail(index, requests[index], self._abort_reason)
            self._done += 1

    @property
    def done(self) -> int:
        """Requests finished (served or failed) so far."""
        return self._done

    def elapsed_trace_s(self) -> float:
        return (asyncio.get_running_loop().time() - self._start) * self.speed

    async def _sample(self) -> None:
        """Feed the timeline the live slots once per trace second (until cancelled)."""
        assert self.timeline is not None
        loop = asyncio.get_running_loop()
        second = 0
        while True:
            self.timeline.sample(second, self.ledger.live_records())
            second += 1
            await asyncio.sleep(max(0.0, self._start + second / self.speed - loop.time()))

    def _fail(self, index: int, request: Request, reason: str) -> None:
        self.totals.failed_requests += 1
        kind = reason.split(":", 1)[0]
        self.failures[kind] += 1
        if len(self.first_failures) < 20:
            self.first_failures.append(f"request {index} ({request.key}): {reason}")

    async def _one(self, index: int, request: Request, request_id: str) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        timeline = self.timeline
        if timeline is not None:
            timeline.begin(request.key, self.elapsed_trace_s())
        try:
            await self._serve(index, request, request_id)
        except CallFailed as err:
            self._fail(index, request, str(err))
        except asyncio.CancelledError:
            if not self._abort_reason:
                raise
            self._fail(index, request, self._abort_reason)  # cancelled by abort(): not re-raised
        finally:
            self.in_flight -= 1
            self._done += 1
            if timeline is not None:
                timeline.end(request.key, self.elapsed_trace_s())

    async def _serve(self, index: int, request: Request, request_id: str) -> None:
        loop = asyncio.get_running_loop()
        speed = self.speed
        t = self.totals
        prepaid = self._prepaid_s
        sent = loop.time() - prepaid  # a prepaid round trip began before this task ran
        timestamp = (
            int(time.time() * 1000)
            if self.epoch_timestamps
            else self.totals.start_ms + int((sent - self._start) * speed * 1000)
        )
        assign_request = pb.AssignRequest(
            request_id=request_id, timestamp=timestamp, meta_data=self._metas[request.key]
        )
        if prepaid:
            reply = await self.transport.assign_prepaid(assign_request)  # type: ignore[attr-defined]
        else:
            reply = await self.transport.assign(assign_request)
        latency = (loop.time() - sent) * speed
        sums = self._sums
        sums["schedule_s"].add(latency)
        t.assign_latencies_ms.append(latency * 1000.0)
        if reply.status != pb.Ok:
            self._fail(index, request, f"Assign answered {_status(reply)}")
            return
        instance_id = reply.assigment.instance_id
        reason = self._check(request, reply.assigment)
        if reason:
            self._fail(index, request, reason)
            return
        if instance_id in self._seen_instances:
            t.warm_hits += 1
        else:
            self._seen_instances[instance_id] = None
            t.cold_starts += 1
            if self.timeline is not None:
                self.timeline.cold_start(request.key, (loop.time() - self._start) * speed)
        self._running[instance_id] = request_id
        try:
            await asyncio.sleep(request.duration_ms / 1000.0 / speed + prepaid)
        finally:
            del self._running[instance_id]
        seconds = request.duration_ms / 1000.0
        sums["execution_s"].add(seconds)
        sums["execution_gbs"].add(seconds * self._memory_gb[request.key])
        failed = request.status_code != 200
        result = pb.Result(status_code=request.status_code, duration_in_ms=request.duration_ms)
        if failed:
            result.need_destroy = True
            result.reason = f"status code {request.status_code}"
        idle_request = pb.IdleRequest(
            assigment=pb.Assignment(
                request_id=request_id, meta_key=request.key, instance_id=instance_id
            ),
            result=result,
        )
        if prepaid:  # the round trip was paid with the sleep above
            sent = loop.time() - prepaid
            idle = await self.transport.idle_prepaid(idle_request)  # type: ignore[attr-defined]
        else:
            sent = loop.time()
            idle = await self.transport.idle(idle_request)
        idle_latency = (loop.time() - sent) * speed
        sums["idle_s"].add(idle_latency)
        t.idle_latencies_ms.append(idle_latency * 1000.0)
        if idle.status != pb.Ok:
            self._fail(index, request, f"Idle answered {_status(idle)}")

    def _check(self, request: Request, assignment: Any) -> str:
        instance_id = assignment.instance_id
        if not instance_id:
            return "bad assignment: no instance id"
        slot = self.ledger.instance(instance_id)
        if slot is None:
            return f"bad assignment: instance {instance_id} does not exist or is not initialised"
        if slot.key != request.key:
            return f"bad assignment: instance {instance_id} runs {slot.key}, not {request.key}"
        if instance_id in self._running:
            other = self._running[instance_id]
            return f"bad assignment: instance {instance_id} is serving request {other}"
        return ""


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _status(reply: Any) -> str:
    message = reply.error_message if reply.HasField("error_message") else ""
    return f"{pb.Status.Name(reply.status)} ({message or 'no message'})"


def _meta_message(meta: FunctionMeta) -> Any:
    return pb.Meta(
        key=meta.key,
        runtime=meta.runtime,
        timeout_in_secs=meta.timeout_s,
        memory_in_mb=meta.memory_mb,
    )

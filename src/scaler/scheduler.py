"""Assign, Idle and expiry: the only code that consults the policy, fires FSM events and calls
the platform.

A request's path: :meth:`Scheduler.assign` takes the most recently idle instance of its
function (warm hit) or queues the request and lets the policy decide how many cold starts to
launch. Whichever instance becomes idle first (a fresh one, or a busy one being released) goes
to the oldest waiting request. :meth:`Scheduler.idle` releases or retires the instance.

Everything runs on one asyncio loop, and every FSM event fires synchronously on it, so two
requests can never take the same instance: the second ``assign`` event finds it ``busy`` and
the FSM refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

import attrs
from loguru import logger

from scaler.clock import Clock
from scaler.platform import PlatformApi, PlatformError, SlotNotFound
from scaler.policy import Policy
from scaler.pool import Pool, Waiter
from scaler.states import BUSY, DELETED, IDLE, FunctionSpec, Instance, Journal


class SchedulerError(Exception):
    """A request the scheduler refuses; ``status`` names the wire Status to answer with."""

    status = "InternalError"


class InvalidArgument(SchedulerError):
    status = "InvalidArgument"


class NotFound(SchedulerError):
    status = "NotFound"


class InvalidAssignment(SchedulerError):
    status = "InvalidAssigment"


class Unavailable(SchedulerError):
    """Cold start failed, timed out, or the scaler is shutting down."""

    status = "InternalError"


@attrs.frozen(slots=True)
class RunResult:
    """What Idle reports about the finished request."""

    status_code: int = 200
    duration_ms: int = 0
    need_destroy: bool = False
    reason: str = ""


@attrs.frozen
class SchedulerSettings:
    """Knobs of the scheduler itself (policy knobs live in the policy)."""

    #: Longest an Assign waits for an instance before answering InternalError.
    assign_timeout_s: float = 600.0
    #: Extra cold starts a request gets after its own failed.
    #: Only failures the platform answered (an error Status) are retried: when it does not
    #: answer at all (unreachable, deadline) the Assign fails fast instead of piling up waits.
    cold_start_retries: int = 2
    #: How many finished request ids are remembered to name a duplicate Idle clearly.
    remember_finished: int = 100_000
    #: Capped exponential back-off of DestroySlot retries.
    destroy_retry_first_s: float = 0.1
    destroy_retry_max_s: float = 5.0
    #: Pools with no instance are dropped after this long without a request.
    forget_quiet_pool_after_s: float = 3600.0
    #: Most functions tracked at once. Past it, pools without instances are forgotten
    #: (least recently used first); if every pool has instances, a new function is refused.
    max_functions: int = 50_000
    #: Prefix of instance ids (instance ids are "<prefix>-<n>").
    instance_prefix: str = "inst"


@attrs.frozen(slots=True)
class Assigned:
    """The answer to an Assign."""

    request_id: str
    key: str
    instance_id: str
    cold: bool


class Scheduler:
    """Per-function pools of FSM instances, driven by a pure policy."""

    def __init__(
        self,
        platform: PlatformApi,
        policy: Policy,
        clock: Clock,
        journal: Journal | None = None,
        settings: SchedulerSettings | None = None,
    ) -> None:
        self.platform = platform
        self.policy = policy
        self.clock = clock
        self.journal = journal or Journal()
        self.settings = settings or SchedulerSettings()
        self.pools: dict[str, Pool] = {}
        self.instances: dict[str, Instance] = {}
        self._serving: dict[str, Instance] = {}  # request id -> its instance (busy)
        self._waiting: dict[str, Waiter] = {}  # request id -> waiter (no instance yet)
        self._finished: OrderedDict[str, str] = OrderedDict()  # request id -> instance id
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._gc_task: asyncio.Task[None] | None = None
        self._wakeups: dict[str, tuple[float, asyncio.TimerHandle]] = {}  # key -> (at, timer)
        self._drained: asyncio.Event | None = None  # set once nothing is busy or starting
        self.closing = False
        self.stats = {"cold_starts": 0, "warm_hits": 0, "cold_start_failures": 0}

    # -- Assign ------------------------------------------------------------------------------
    async def assign(self, request_id: str, spec: FunctionSpec) -> Assigned:
        """Give ``request_id`` an initialised instance of ``spec``'s function."""
        if self.closing:
            raise Unavailable("the scaler is shutting down")
        held = self._serving.get(request_id)
        if held is not None:  # a retried Assign: same answer, no second instance
            return self._answer(request_id, held, spec, cold=False)
        pending = self._waiting.get(request_id)
        if pending is not None:
            instance = await asyncio.shield(pending.future)
            return self._answer(request_id, instance, spec, cold=True)
        if request_id in self._finished:
            raise InvalidArgument(
                f"request {request_id} already finished; request ids are single-use"
            )
        pool = self._pool(spec)
        now = self.clock.now()
        pool.last_activity = now
        self.policy.observe_arrival(pool, now)
        instance = pool.most_recent_idle()
        if instance is not None and not pool.waiters:
            instance.fire("assign", "warm hit", request=request_id)
            self._serving[request_id] = instance
            self.stats["warm_hits"] += 1
            self._arm(pool)
            return Assigned(request_id, spec.key, instance.instance_id, cold=False)
        return await self._wait_for_instance(pool, request_id, now)

    async def _wait_for_instance(self, pool: Pool, request_id: str, now: float) -> Assigned:
        future: asyncio.Future[Instance] = asyncio.get_running_loop().create_future()
        waiter = Waiter(request_id, future, now)
        pool.waiters.append(waiter)
        self._waiting[request_id] = waiter
        self._decide_cold_starts(pool, waiter)
        try:
            instance = await asyncio.wait_for(
                asyncio.shield(future), self.settings.assign_timeout_s
            )
        except TimeoutError:
            future.cancel()
            raise Unavailable(
                f"no instance for {pool.key} within {self.settings.assign_timeout_s:g} s"
            ) from None
        except asyncio.CancelledError:
            self._undo_assignment(future, "Assign cancelled by the caller")
            raise
        finally:
            if self._waiting.get(request_id) is waiter:
                del self._waiting[request_id]
        self.stats["cold_starts"] += 1
        return Assigned(request_id, pool.key, instance.instance_id, cold=True)

    def _undo_assignment(self, future: asyncio.Future[Instance], reason: str) -> None:
        """The caller went away: release an instance it was handed, or stop its wait."""
        if future.done() and not future.cancelled() and future.exception() is None:
            instance = future.result()
            if instance.state == BUSY:
                self._serving.pop(instance.request_id or "", None)
                instance.fire("release", reason)
                self._offer(self.pools[instance.function.key], instance)
        else:
            future.cancel()

    def _answer(self, request_id: str, instance: Instance, spec: FunctionSpec, cold: bool):
        if instance.function.key != spec.key:
            raise InvalidArgument(
                f"request {request_id} is already assigned for function {instance.function.key}"
            )
        return Assigned(request_id, spec.key, instance.instance_id, cold=cold)

    def _decide_cold_starts(self, pool: Pool, waiter: Waiter) -> None:
        decision = self.policy.on_no_idle(pool, self.clock.now())
        for _ in range(decision.start):
            self._start_instance(pool, waiter)
        self._arm(pool)
        if decision.start == 0 and decision.recheck_after is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(decision.recheck_after, self._recheck, pool, waiter)

    def _recheck(self, pool: Pool, waiter: Waiter) -> None:
        if not waiter.future.done() and not self.closing:
            self._decide_cold_starts(pool, waiter)

    # -- cold start --------------------------------------------------------------------------
    def _start_instance(self, pool: Pool, origin: Waiter | None) -> Instance:
        instance = Instance(
            f"{self.settings.instance_prefix}-{next(self._ids)}",
            pool.spec,
            self.clock,
            self.journal,
            self._listener(pool),
        )
        pool.adopt(instance)
        self.instances[instance.instance_id] = instance
        self._spawn(self._cold_start(pool, instance, origin))
        return instance

    def _listener(self, pool: Pool):
        def on_transition(instance: Instance, source: str, dest: str) -> None:
            pool.on_transition(instance, source, dest)
            if dest == DELETED:
                self.instances.pop(instance.instance_id, None)
            if self._drained is not None and not self._in_use():
                self._drained.set()

        return on_transition

    async def _cold_start(self, pool: Pool, instance: Instance, origin: Waiter | None) -> None:
        reason = f"for request {origin.request_id}" if origin else "pre-warm"
        started = self.clock.now()
        try:
            slot = await self.platform.create_slot(instance.instance_id, pool.spec.memory_mb)
        except PlatformError as err:
            instance.fire("slot_failed", err.cause)
            self._cold_start_failed(pool, origin, err)
            return
        created = self.clock.now()
        instance.fire("slot_created", reason, slot_id=slot.id)
        try:
            init = await self.platform.init(
                instance.instance_id, slot.id, instance.instance_id, pool.spec
            )
        except PlatformError as err:
            instance.fire("init_failed", err.cause)
            self._spawn(self._destroy(instance))
            self._cold_start_failed(pool, origin, err)
            return
        instance.init_duration_ms = init.init_duration_ms
        now = self.clock.now()
        instance.fire("init_succeeded", f"init took {init.init_duration_ms} ms")
        self.policy.observe_cold_start(
            pool, (created - started) * 1000.0, float(init.init_duration_ms), now
        )
        if self.closing:
            self._reclaim(instance, "shutdown")
            return
        self._offer(pool, instance, now)

    def _cold_start_failed(self, pool: Pool, origin: Waiter | None, err: PlatformError) -> None:
        self.stats["cold_start_failures"] += 1
        logger.warning("cold start for {} failed: {}", pool.key, err)
        if origin is None or origin.future.done():
            # Someone else was served; still cover requests that wait with nothing starting.
            orphan = pool.oldest_waiter()
            if orphan is not None and pool.pending_waiters() > pool.starting_count:
                origin = orphan
            else:
                return
        platform_answered = err.status is not None
        if (
            platform_answered
            and origin.cold_start_attempts < self.settings.cold_start_retries
            and not self.closing
        ):
            origin.cold_start_attempts += 1
            self._start_instance(pool, origin)
            return
        with contextlib.suppress(ValueError):
            pool.waiters.remove(origin)
        origin.future.set_exception(Unavailable(f"cold start failed: {err}"))

    def _offer(self, pool: Pool, instance: Instance, now: float | None = None) -> None:
        """An instance just became idle: hand it to the oldest waiter, or keep it warm.

        ``now``: the instant the caller already showed the policy (one event, one time).
        """
        waiter = pool.next_waiter()
        if waiter is not None:
            instance.fire("assign", "handed to a waiting request", request=waiter.request_id)
            self._serving[waiter.request_id] = instance
            waiter.future.set_result(instance)
            return
        at = self.clock.now() if now is None else now
        instance.keep_until = self.policy.keep_alive_until(pool, instance, at)
        self._arm(pool)

    # -- Idle --------------------------------------------------------------------------------
    async def idle(self, request_id: str, key: str, instance_id: str, result: RunResult) -> None:
        """The request finished on the instance: keep it warm or destroy it."""
        instance = self.instances.get(instance_id)
        if instance is None:
            if self._finished.get(request_id) == instance_id:
                raise InvalidAssignment(f"request {request_id} was already released")
            raise NotFound(f"instance {instance_id} does not exist (never created or deleted)")
        if instance.function.key != key:
            raise InvalidAssignment(
                f"instance {instance_id} belongs to function {instance.function.key}, not {key}"
            )
        if instance.state != BUSY or instance.request_id != request_id:
            if self._finished.get(request_id) == instance_id:
                raise InvalidAssignment(f"request {request_id} was already released")
            serving = f"serves request {instance.request_id}" if instance.state == BUSY else ""
            raise InvalidAssignment(
                f"instance {instance_id} is not serving request {request_id} "
                f"(it is {instance.state}{' and ' + serving if serving else ''})"
            )
        pool = self.pools[key]
        now = self.clock.now()
        del self._serving[request_id]
        self._remember_finished(request_id, instance_id)
        self.policy.observe_release(pool, instance, result.duration_ms, now)
        if result.need_destroy:
            why = result.reason or f"status {result.status_code}"
            instance.fire("retire", f"need_destroy: {why}", request=request_id)
            self._spawn(self._destroy(instance))
            if pool.pending_waiters() > pool.starting_count:
                self._decide_cold_starts(pool, pool.waiters[0])
            return
        instance.fire("release", f"finished with status {result.status_code}", request=request_id)
        self._offer(pool, instance, now)

    def _remember_finished(self, request_id: str, instance_id: str) -> None:
        self._finished[request_id] = instance_id
        if len(self._finished) > self.settings.remember_finished:
            self._finished.popitem(last=False)

    # -- expiry and pre-warm -----------------------------------------------------------------
    def collect(self) -> int:
        """One GC pass: destroy what the policy says expired, pre-warm what it asks for."""
        now = self.clock.now()
        reclaimed = 0
        for key, pool in list(self.pools.items()):
            reclaimed += self._collect_pool(pool, now)
            quiet_for = now - pool.last_activity
            if pool.is_quiet() and quiet_for > self.settings.forget_quiet_pool_after_s:
                del self.pools[key]
                self.policy.forget(key)
                self._disarm(key)
        return reclaimed

    def _collect_pool(self, pool: Pool, now: float) -> int:
        reclaimed = 0
        for instance in list(self.policy.expired(pool, now)):
            self._reclaim(instance, "keep-alive expired")
            reclaimed += 1
        if not self.closing:
            for _ in range(self.policy.prewarm(pool, now)):
                self._start_instance(pool, None)
        self._arm(pool)
        return reclaimed

    # -- precise wake-ups (policies that answer next_wakeup; the reference does not) ------
    def _arm(self, pool: Pool) -> None:
        """Make sure the pool is collected at the policy's next deadline."""
        if self.closing:
            return
        now = self.clock.now()
        at = self.policy.next_wakeup(pool, now)
        if at is None:
            return
        armed = self._wakeups.get(pool.key)
        if armed is not None:
            if armed[0] <= at:
                return
            armed[1].cancel()
        # 1 ms late rather than early: a timer that fires a rounding error before the deadline
        # would find nothing due and re-arm for the same instant.
        delay = max(0.0, at - now) + 0.001
        timer = asyncio.get_running_loop().call_later(delay, self._wake, pool)
        self._wakeups[pool.key] = (at, timer)

    def _disarm(self, key: str) -> None:
        armed = self._wakeups.pop(key, None)
        if armed is not None:
            armed[1].cancel()

    def _wake(self, pool: Pool) -> None:
        self._wakeups.pop(pool.key, None)
        if self.closing or self.pools.get(pool.key) is not pool:
            return
        try:
            self._collect_pool(pool, self.clock.now())
        except Exception:  # a policy bug must not stop expiry forever
            logger.exception("expiry pass for {} failed", pool.key)

    def start_gc(self) -> None:
        """Run :meth:`collect` every ``policy.gc_interval_s`` until shutdown."""
        if self._gc_task is None:
            self._gc_task = asyncio.get_running_loop().create_task(self._gc_loop())

    async def _gc_loop(self) -> None:
        while not self.closing:
            await asyncio.sleep(self.policy.gc_interval_s)
            try:
                self.collect()
            except Exception:  # a policy bug must not stop expiry forever
                logger.exception("expiry pass failed")

    def _reclaim(self, instance: Instance, reason: str) -> None:
        instance.fire("expire" if instance.state == IDLE else "retire", reason)
        self._spawn(self._destroy(instance))

    async def _destroy(self, instance: Instance) -> None:
        delay = self.settings.destroy_retry_first_s
        while True:
            try:
                await self.platform.destroy_slot(
                    instance.instance_id, instance.slot_id or "", reason=f"{instance.state}"
                )
            except SlotNotFound as err:
                instance.fire("destroyed", f"slot already gone: {err.cause}")
                return
            except PlatformError as err:
                instance.fire("destroy_failed", err.cause)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.destroy_retry_max_s)
                continue
            instance.fire("destroyed", "slot destroyed")
            return

    # -- shutdown ----------------------------------------------------------------------------
    async def shutdown(self, grace_s: float = 2.0, destroy_wait_s: float = 2.5) -> list[str]:
        """Stop: fail waiters, let busy requests and cold starts finish (bounded by
        ``grace_s``), then destroy every slot (bounded by ``destroy_wait_s``).

        Returns the slots (or instance ids, for slots still being created) that could not be
        destroyed in time; empty when nothing leaked.
        """
        self.closing = True
        if self._gc_task is not None:
            self._gc_task.cancel()
        for key in list(self._wakeups):
            self._disarm(key)
        for waiter in list(self._waiting.values()):
            if not waiter.future.done():
                waiter.future.set_exception(Unavailable("the scaler is shutting down"))
        if self._in_use():
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace_s)
        for instance in list(self.instances.values()):
            if instance.state in (IDLE, BUSY):
                self._serving.pop(instance.request_id or "", None)
                self._reclaim(instance, "shutdown")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + destroy_wait_s
        while self._tasks and loop.time() < deadline:  # destroys may spawn more destroys
            await asyncio.wait(list(self._tasks), timeout=deadline - loop.time())
        lost = [i.slot_id or i.instance_id for i in self.instances.values()]
        for task in list(self._tasks):
            task.cancel()
        if lost:
            logger.error("shutdown left {} slot(s) undestroyed: {}", len(lost), lost[:20])
        return lost

    def _in_use(self) -> bool:
        """Whether any instance is busy or still starting (shutdown waits for those)."""
        return any(p.counts[BUSY] or p.starting_count for p in self.pools.values())

    # -- helpers -----------------------------------------------------------------------------
    def _pool(self, spec: FunctionSpec) -> Pool:
        pool = self.pools.get(spec.key)
        if pool is None:
            if len(self.pools) >= self.settings.max_functions:
                self._forget_quiet_pools()
            if len(self.pools) >= self.settings.max_functions:
                raise Unavailable(
                    f"too many functions with live instances "
                    f"(limit {self.settings.max_functions}); refusing new function {spec.key}"
                )
            pool = self.pools[spec.key] = Pool(spec)
        return pool

    def _forget_quiet_pools(self) -> None:
        """Drop the least recently used tenth of the pools that hold nothing."""
        quiet = sorted(
            (p for p in self.pools.values() if p.is_quiet()), key=lambda p: p.last_activity
        )
        for pool in quiet[: max(1, self.settings.max_functions // 10)]:
            del self.pools[pool.key]
            self.policy.forget(pool.key)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.opt(exception=task.exception()).error("background task failed")

    def counts(self) -> dict[str, int]:
        """Instances by state across all functions (for metrics and tests)."""
        out: dict[str, int] = {}
        for pool in self.pools.values():
            for state, n in pool.counts.items():
                out[state] = out.get(state, 0) + n
        return out

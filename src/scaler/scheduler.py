"""Assign and Idle: the path of one request, and the cold starts it leads to.

The scheduler only issues events. A request's path, straight through:

1. ``assign``: a warm hit fires ``assign`` on the function's most recently idle instance.
   Otherwise the request joins the function's wait queue (with its Assign deadline) and the
   policy decides how many cold starts to begin (``create`` on a new instance; the
   :class:`~scaler.actuator.Actuator` then runs CreateSlot and Init as that instance's task).
   Whatever the policy says, the oldest request no starting instance covers gets a cold start
   once it has waited the policy's patience.
2. ``_ready`` (Init answered) and ``idle`` (the request finished) both end in
   ``_hand_or_keep``: the instance goes to the oldest waiting request, or stays idle until the
   policy's deadline (``keep_until``, FSM data), or, with need_destroy, is retired.
3. A failed cold start is retried for its request (twice by default), then answered
   ``InternalError``.

Everything runs on one asyncio loop and every event fires synchronously on it, so two requests
can never take one instance: the second ``assign`` finds it ``busy`` and the FSM refuses.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import OrderedDict

import attrs
from loguru import logger

from scaler.actuator import Actuator, DestroyRetry
from scaler.answers import (
    Assigned,
    InvalidArgument,
    InvalidAssignment,
    NotFound,
    RunResult,
    SchedulerError,
    Unavailable,
)
from scaler.clock import Clock
from scaler.expiry import Expiry
from scaler.platform import InitInfo, PlatformApi, PlatformError
from scaler.policy import Policy
from scaler.policy.guard import GuardedPolicy, Meter
from scaler.pool import Pool, Registry
from scaler.states import BUSY, IDLE, FunctionSpec, Instance, Journal
from scaler.states.lifecycle import NEED_DESTROY, SHUTDOWN
from scaler.timers import Timers
from scaler.waiters import Waiter

__all__ = [
    "Assigned",
    "InvalidArgument",
    "InvalidAssignment",
    "NotFound",
    "RunResult",
    "Scheduler",
    "SchedulerError",
    "SchedulerSettings",
    "Unavailable",
]


@attrs.frozen
class SchedulerSettings:
    """Knobs of the scheduler itself (policy knobs live in the policy)."""

    #: Longest an Assign waits for an instance before answering InternalError.
    assign_timeout_s: float = 600.0
    #: Extra cold starts a request gets after its own failed. Only failures the platform
    #: answered (an error Status) are retried: when it does not answer at all (unreachable,
    #: deadline) the Assign fails fast instead of piling up waits.
    cold_start_retries: int = 2
    #: Bound on the policy's patience: a request no starting instance covers gets a cold start
    #: after at most this long. A policy that never starts one cannot hold a request to its
    #: Assign deadline; 30 s is above any cold start seen in the traces (init ≤ 10 s).
    max_patience_s: float = 30.0
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


class Scheduler:
    """Per-function pools of FSM instances, driven by a pure policy."""

    def __init__(
        self,
        platform: PlatformApi,
        policy: Policy,
        clock: Clock,
        journal: Journal | None = None,
        settings: SchedulerSettings | None = None,
        *,
        meter: Meter | None = None,
    ) -> None:
        self.policy = policy
        self.decide = GuardedPolicy(policy, meter)
        self.clock = clock
        self.journal = journal or Journal()
        self.settings = s = settings or SchedulerSettings()
        self.registry = Registry()
        retry = DestroyRetry(s.destroy_retry_first_s, s.destroy_retry_max_s)
        self.actuator = Actuator(platform, clock, self._ready, self._cold_start_failed, retry)
        self.registry.effects = self.actuator.on_entered
        self.timers = Timers(clock)
        self.expiry = Expiry(
            self.registry,
            policy,
            self.decide,
            self.timers,
            clock,
            self._prewarm,
            forget_quiet_after_s=s.forget_quiet_pool_after_s,
            max_functions=s.max_functions,
        )
        self._finished: OrderedDict[str, str] = OrderedDict()  # request id -> instance id
        self._ids = itertools.count(1)
        self._drained: asyncio.Event | None = None
        self.closing = False
        self.stats = {"cold_starts": 0, "warm_hits": 0, "cold_start_failures": 0}

    @property
    def pools(self) -> dict[str, Pool]:
        return self.registry.pools

    @property
    def instances(self) -> dict[str, Instance]:
        """Live instances by id (an index derived from their transitions)."""
        return self.registry.instances

    # -- Assign ----------------------------------------------------------------------------------
    async def assign(self, request_id: str, spec: FunctionSpec) -> Assigned:
        """Give ``request_id`` an initialised instance of ``spec``'s function."""
        if self.closing:
            raise Unavailable("the scaler is shutting down")
        held = self.registry.serving.get(request_id)
        if held is not None:  # a retried Assign: same answer, no second instance
            return self._again(request_id, held, spec)
        waiter = self.registry.waiting.get(request_id)
        if waiter is not None:
            waiter.callers += 1
            pool = self.registry.pools[waiter.key]
            return self._again(request_id, await self._await(pool, waiter), spec)
        if request_id in self._finished:
            raise InvalidArgument(
                f"request {request_id} already finished; request ids are single-use"
            )
        pool = self.expiry.pool_for(spec)
        if pool is None:
            raise Unavailable(
                f"too many functions with live instances (limit "
                f"{self.settings.max_functions}); refusing new function {spec.key}"
            )
        now = self.clock.now()
        pool.last_activity = now
        self.decide.observe_arrival(pool, now)
        instance = pool.most_recent_idle()
        if instance is not None and not pool.waiters:
            instance.fire("assign", "warm hit", request=request_id)
            self.stats["warm_hits"] += 1
            self.expiry.arm(pool, now)
            return Assigned(request_id, spec.key, instance.instance_id, cold=False)
        loop = asyncio.get_running_loop()
        waiter = Waiter(request_id, spec.key, loop.create_future(), now)
        pool.waiters.add(waiter)
        waiter.deadline = loop.call_later(
            self.settings.assign_timeout_s, self._timed_out, pool, waiter
        )
        try:
            self._decide_cold_starts(pool, now)
        except BaseException:
            pool.waiters.discard(waiter)
            raise
        instance = await self._await(pool, waiter)
        self.stats["cold_starts"] += 1
        return Assigned(request_id, spec.key, instance.instance_id, cold=True)

    async def _await(self, pool: Pool, waiter: Waiter) -> Instance:
        try:
            return await asyncio.shield(waiter.future)
        except asyncio.CancelledError:
            self._abandon(pool, waiter)
            raise

    def _abandon(self, pool: Pool, waiter: Waiter) -> None:
        """The caller went away: stop its wait, or give back an instance handed to it."""
        waiter.callers -= 1
        if waiter.callers > 0:
            return
        future = waiter.future
        if not future.done():
            pool.waiters.discard(waiter)
            return
        if future.cancelled() or future.exception() is not None:
            return
        instance = future.result()
        if instance.state == BUSY and instance.request_id == waiter.request_id:
            reason = "Assign cancelled by the caller"
            self._hand_or_keep(
                pool, instance, "release", reason, self.clock.now(), request=waiter.request_id
            )

    def _timed_out(self, pool: Pool, waiter: Waiter) -> None:
        waiter.deadline = None
        timeout = self.settings.assign_timeout_s
        pool.waiters.fail(waiter, Unavailable(f"no instance for {pool.key} within {timeout:g} s"))

    def _again(self, request_id: str, instance: Instance, spec: FunctionSpec) -> Assigned:
        if instance.function.key != spec.key:
            raise InvalidArgument(
                f"request {request_id} is already assigned for function {instance.function.key}"
            )
        return Assigned(request_id, spec.key, instance.instance_id, cold=False)

    # -- cold starts -----------------------------------------------------------------------------
    def _decide_cold_starts(self, pool: Pool, now: float) -> None:
        """Start what the policy asks for; then, whatever it said, a cold start for each
        request no starting instance covers that has waited the policy's patience; and a
        timer for the next recheck or patience deadline."""
        key = (pool.key, "decide")
        if self.closing or not pool.waiters:
            self.timers.cancel(key)
            return
        decision = self.decide.on_no_idle(pool, now)
        for _ in range(min(decision.start, len(pool.waiters))):
            covers = pool.waiters.nth(pool.starting_count) or pool.waiters.newest()
            self._start(pool, covers.request_id if covers else None, "cold start")
        patience = self.decide.patience_s(pool, now)
        patience = min(patience, self.settings.max_patience_s) if patience >= 0 else 0.0
        while (oldest := pool.waiters.nth(pool.starting_count)) is not None:
            if oldest.arrived_at + patience > now:
                break
            self._start(
                pool, oldest.request_id, f"patience: waited {now - oldest.arrived_at:.3f} s"
            )
        due = math.inf if oldest is None else oldest.arrived_at + patience
        if decision.start == 0 and decision.recheck_after is not None:
            due = min(due, now + max(decision.recheck_after, 0.0))
        if due < math.inf:
            self.timers.at(key, due, lambda: self._recheck(pool), keep_earlier=False)
        else:
            self.timers.cancel(key)

    def _recheck(self, pool: Pool) -> None:
        if self.registry.pools.get(pool.key) is pool:
            self._decide_cold_starts(pool, self.clock.now())

    def _start(
        self, pool: Pool, for_request: str | None, why: str, prewarm_until: float | None = None
    ) -> Instance:
        instance = Instance(
            f"{self.settings.instance_prefix}-{next(self._ids)}",
            pool.spec,
            self.clock,
            self.journal,
            self.registry,
            for_request=for_request,
            prewarm_until=prewarm_until,
        )
        instance.fire("create", f"{why} for request {for_request}" if for_request else why)
        return instance

    def _prewarm(self, pool: Pool, keep_until: float) -> None:
        self._start(pool, None, f"pre-warm, kept until {keep_until:.3f}", keep_until)

    def _ready(self, instance: Instance, init: InitInfo) -> None:
        """Init answered Ok: learn from it, then serve a waiting request or keep it."""
        pool = self.registry.pools[instance.function.key]
        now = self.clock.now()
        init_ms = init.init_duration_ms
        self.decide.observe_cold_start(pool, instance.create_ms or 0.0, float(init_ms), now)
        reason = f"init took {init_ms} ms"
        if self.closing:
            instance.fire("init_succeeded", reason, init_ms=init_ms)
            instance.fire("expire", SHUTDOWN)
            return
        self._hand_or_keep(pool, instance, "init_succeeded", reason, now, init_ms=init_ms)

    def _cold_start_failed(self, instance: Instance, error: PlatformError) -> None:
        """Retry the cold start for its request while the platform answers, then fail it."""
        self.stats["cold_start_failures"] += 1
        logger.warning("cold start for {} failed: {}", instance.function.key, error)
        pool = self.registry.pools.get(instance.function.key)
        if pool is None:
            return
        waiter = pool.waiters.get(instance.for_request)
        if waiter is not None:
            retries = self.settings.cold_start_retries
            if error.status is not None and waiter.attempts < retries and not self.closing:
                waiter.attempts += 1
                self._start(pool, waiter.request_id, f"retry {waiter.attempts} of the cold start")
            else:
                pool.waiters.fail(waiter, Unavailable(f"cold start failed: {error}"))
        if pool.uncovered() > 0:
            self._decide_cold_starts(pool, self.clock.now())

    # -- an instance free for work ---------------------------------------------------------------
    def _hand_or_keep(
        self, pool: Pool, instance: Instance, event: str, reason: str, now: float, **data: object
    ) -> None:
        """Fire ``event`` (into ``idle``); the instance then serves the oldest waiting request,
        or stays idle until the policy's deadline."""
        waiter = pool.waiters.oldest()
        if waiter is not None:
            instance.fire(event, reason, **data)
            instance.fire("assign", "handed to a waiting request", request=waiter.request_id)
            pool.waiters.hand(waiter, instance)
            return
        if instance.prewarmed and instance.prewarm_until is not None:
            keep_until = max(instance.prewarm_until, now)  # the deadline its order carried
        else:
            keep_until = self.decide.keep_alive_until(pool, instance, now)
        instance.fire(event, reason, keep_until=keep_until, **data)
        self.expiry.arm(pool, now)

    # -- Idle ------------------------------------------------------------------------------------
    async def idle(self, request_id: str, key: str, instance_id: str, result: RunResult) -> None:
        """The request finished on the instance: keep it warm or destroy it."""
        instance = self.registry.instances.get(instance_id)
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
            serving = f" and serves request {instance.request_id}" if instance.state == BUSY else ""
            raise InvalidAssignment(
                f"instance {instance_id} is not serving request {request_id} "
                f"(it is {instance.state}{serving})"
            )
        pool = self.registry.pools[key]
        now = self.clock.now()
        self._finished[request_id] = instance_id
        if len(self._finished) > self.settings.remember_finished:
            self._finished.popitem(last=False)
        self.decide.observe_release(pool, instance, result.duration_ms, now)
        if result.need_destroy:
            why = result.reason or f"status {result.status_code}"
            instance.fire("retire", f"{NEED_DESTROY}: {why}", request=request_id)
            if pool.uncovered() > 0:
                self._decide_cold_starts(pool, now)
            return
        reason = f"finished with status {result.status_code}"
        self._hand_or_keep(pool, instance, "release", reason, now, request=request_id)

    # -- lifetime --------------------------------------------------------------------------------
    def start_gc(self) -> None:
        """Start the periodic expiry pass (every ``policy.gc_interval_s``)."""
        self.expiry.start()

    def collect(self) -> int:
        """One expiry pass over every function, now; how many instances it destroyed."""
        return self.expiry.collect()

    async def shutdown(self, grace_s: float = 2.0, destroy_wait_s: float = 2.5) -> list[str]:
        """Stop: fail waiters, let busy requests and cold starts finish (bounded by
        ``grace_s``), then destroy every slot (bounded by ``destroy_wait_s``).

        Returns the slots (or instance ids, for slots still being created) that could not be
        destroyed in time; empty when nothing leaked.
        """
        self.closing = self.expiry.closing = True
        self.timers.close()
        for pool in self.registry.pools.values():
            for waiter in pool.waiters:
                pool.waiters.fail(waiter, Unavailable("the scaler is shutting down"))
        if self.registry.in_use:
            self._drained = drained = asyncio.Event()
            self.registry.on_change = lambda: self.registry.in_use or drained.set()
            try:
                await asyncio.wait_for(drained.wait(), grace_s)
            except TimeoutError:
                pass
            finally:
                self.registry.on_change = None
        for instance in list(self.registry.instances.values()):
            if instance.state == IDLE:
                instance.fire("expire", SHUTDOWN)
            elif instance.state == BUSY:
                instance.fire("retire", SHUTDOWN)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + destroy_wait_s
        tasks = self.actuator.tasks
        while tasks and loop.time() < deadline:  # a cold start may still end in a destroy
            await asyncio.wait(list(tasks), timeout=deadline - loop.time())
        lost = [i.slot_id or i.instance_id for i in self.registry.instances.values()]
        for task in list(tasks):
            task.cancel()
        if lost:
            logger.error("shutdown left {} slot(s) undestroyed: {}", len(lost), lost[:20])
        return lost

    def counts(self) -> dict[str, int]:
        """Instances by state across all functions (for metrics and tests)."""
        out: dict[str, int] = {}
        for pool in self.registry.pools.values():
            for state, n in pool.counts.items():
                out[state] = out.get(state, 0) + n
        return out

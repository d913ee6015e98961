"""Assign and Idle: the path of one request, and the cold starts it leads to.

The scheduler only issues events. A request's path, straight through:

1. ``assign``: a warm hit fires ``assign`` on the function's most recently idle instance.
   Otherwise the request joins the function's wait queue (with its Assign deadline) and the
   policy decides how many cold starts to begin (``create`` on a new instance; the
   :class:`~scaler.actuator.Actuator` then runs CreateSlot and Init as that instance's task;
   :mod:`scaler.cold_starts`). Whatever the policy says, the oldest request no starting
   instance covers gets a cold start once it has waited the policy's patience.
2. Init answered (``ColdStarts.ready``) and ``idle`` (the request finished) both end in
   ``_hand_or_keep``: the instance goes to the oldest waiting request, or stays idle until the
   policy's deadline (``keep_until``, FSM data), or, with need_destroy, is retired.
3. A failed cold start is retried for its request (2 retries, 3 attempts by default), then
   answered ``InternalError``.

Everything runs on one asyncio loop and every event fires synchronously on it, so two requests
can never take one instance: the second ``assign`` finds it ``busy`` and the FSM refuses.
"""

from __future__ import annotations

import asyncio

from scaler.actuator import Actuator, DestroyRetry
from scaler.answers import (
    Assigned,
    InvalidArgument,
    RunResult,
    Unavailable,
)
from scaler.clock import Clock
from scaler.cold_starts import ColdStarts
from scaler.expiry import Expiry
from scaler.finished import FinishedRequests
from scaler.platform import PlatformApi
from scaler.policy import Policy
from scaler.policy.guard import GuardedPolicy, Meter
from scaler.pool import Pool, Registry
from scaler.settings import SchedulerSettings
from scaler.shutdown import drain_and_destroy
from scaler.states import BUSY, FunctionSpec, Instance, Journal
from scaler.states.lifecycle import NEED_DESTROY
from scaler.timers import Timers
from scaler.waiters import Waiter


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
        self.timers = Timers(clock)
        self.cold = ColdStarts(
            self.registry,
            self.decide,
            self.timers,
            clock,
            self.journal,
            self._hand_or_keep,
            retries=s.cold_start_retries,
            max_patience_s=s.max_patience_s,
            instance_prefix=s.instance_prefix,
        )
        retry = DestroyRetry(s.destroy_retry_first_s, s.destroy_retry_max_s)
        self.actuator = Actuator(platform, clock, self.cold.ready, self.cold.failed, retry)
        self.registry.effects = self.actuator.on_entered
        self.expiry = Expiry(
            self.registry,
            policy,
            self.decide,
            self.timers,
            clock,
            self.cold.prewarm,
            forget_quiet_after_s=s.forget_quiet_pool_after_s,
            max_functions=s.max_functions,
        )
        self._finished = FinishedRequests(s.remember_finished)
        self._closing = False
        self._stats = {"cold_starts": 0, "warm_hits": 0}

    @property
    def closing(self) -> bool:
        """Set at shutdown: Assign is refused and nothing new is started."""
        return self._closing

    @closing.setter
    def closing(self, value: bool) -> None:
        self._closing = self.cold.closing = self.expiry.closing = value

    @property
    def stats(self) -> dict[str, int]:
        """Cold starts, warm hits and failed cold starts so far (for metrics and records)."""
        return {**self._stats, **self.cold.stats}

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
        self.decide.observe_arrival(pool, now, request_id)
        instance = pool.most_recent_idle()
        if instance is not None and not pool.waiters:
            instance.fire("assign", "warm hit", request=request_id)
            self._stats["warm_hits"] += 1
            self.expiry.arm(pool, now)
            return Assigned(request_id, spec.key, instance.instance_id, cold=False)
        loop = asyncio.get_running_loop()
        waiter = Waiter(request_id, spec.key, loop.create_future(), now)
        pool.waiters.add(waiter)
        waiter.deadline = loop.call_later(
            self.settings.assign_timeout_s, self._timed_out, pool, waiter
        )
        try:
            self.cold.decide_for(pool, now)
        except BaseException:
            pool.waiters.discard(waiter)
            raise
        instance = await self._await(pool, waiter)
        self._stats["cold_starts"] += 1
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
        instance = self._finished.check(self.registry.instances, request_id, key, instance_id)
        pool = self.registry.pools[key]
        now = self.clock.now()
        self._finished.remember(request_id, instance_id)
        self.decide.observe_release(pool, instance, result.duration_ms, now)
        if result.need_destroy:
            why = result.reason or f"status {result.status_code}"
            instance.fire("retire", f"{NEED_DESTROY}: {why}", request=request_id)
            if pool.uncovered() > 0:
                self.cold.decide_for(pool, now)
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
        ``grace_s``), then destroy every slot (bounded by ``destroy_wait_s``); the slots that
        could not be destroyed in time (empty when nothing leaked)."""
        self.closing = True
        self.timers.close()
        for pool in self.registry.pools.values():
            for waiter in pool.waiters:
                pool.waiters.fail(waiter, Unavailable("the scaler is shutting down"))
        return await drain_and_destroy(self.registry, self.actuator, grace_s, destroy_wait_s)

    def counts(self) -> dict[str, int]:
        """Instances by state across all functions (for metrics and tests)."""
        out: dict[str, int] = {}
        for pool in self.registry.pools.values():
            for state, n in pool.counts.items():
                out[state] = out.get(state, 0) + n
        return out

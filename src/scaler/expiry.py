"""Keep-alive expiry, policy scale-down and pre-warm: what happens to instances nobody asks for.

An idle instance carries its keep-alive deadline as FSM data; each function's pool indexes those
deadlines. An expiry pass for a function destroys the instances past their deadline ("keep-alive
expired"), those the policy scales down early ("policy scale-down"), and starts the pre-warms
the policy orders. Passes run for every function every ``policy.gc_interval_s`` and, for a
policy with ``precise_timers``, for one function exactly when its next deadline or pre-warm is
due. The periodic pass also forgets functions that stayed quiet (bounded memory).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from loguru import logger

from scaler.clock import Clock
from scaler.policy import Policy
from scaler.policy.guard import GuardedPolicy
from scaler.pool import Pool, Registry
from scaler.states import IDLE, FunctionSpec
from scaler.states.lifecycle import KEEPALIVE_EXPIRED, SCALE_DOWN
from scaler.timers import LATE_S, Timers

#: ``prewarm(pool, keep_until)``: start one instance ahead of demand.
Prewarm = Callable[[Pool, float], None]


class Expiry:
    """Expiry passes, their timers, and the bound on how many functions are remembered."""

    def __init__(
        self,
        registry: Registry,
        policy: Policy,
        decide: GuardedPolicy,
        timers: Timers,
        clock: Clock,
        prewarm: Prewarm,
        *,
        forget_quiet_after_s: float,
        max_functions: int,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.decide = decide
        self.timers = timers
        self.clock = clock
        self._prewarm = prewarm
        self.forget_quiet_after_s = forget_quiet_after_s
        self.max_functions = max_functions
        #: Set at shutdown: passes still expire, but start nothing.
        self.closing = False

    # -- one function ----------------------------------------------------------------------------
    def arm(self, pool: Pool, now: float) -> None:
        """With precise timers: make sure the pool's next deadline or pre-warm is acted on."""
        if not self.policy.precise_timers or self.timers.closed:
            return
        deadline = pool.next_deadline()
        wakeup = self.decide.next_wakeup(pool, now)
        due = min(
            math.inf if deadline is None else deadline, math.inf if wakeup is None else wakeup
        )
        if due < math.inf:
            self.timers.at((pool.key, "wake"), due, lambda: self._wake(pool), late_s=LATE_S)

    def _wake(self, pool: Pool) -> None:
        if self.registry.pools.get(pool.key) is pool:
            self.collect_pool(pool, self.clock.now())

    def collect_pool(self, pool: Pool, now: float) -> int:
        """One expiry pass for one function; returns how many instances it destroys."""
        destroyed = 0
        for instance in pool.past_deadline(now):
            instance.fire("expire", KEEPALIVE_EXPIRED)
            destroyed += 1
        for instance in self.decide.expired(pool, now):
            if instance.state == IDLE and pool.instances.get(instance.instance_id) is instance:
                instance.fire("expire", SCALE_DOWN)
                destroyed += 1
        if not self.closing:
            for keep_until in self.decide.prewarm(pool, now):
                self._prewarm(pool, keep_until)
        self.arm(pool, now)
        return destroyed

    # -- every function --------------------------------------------------------------------------
    def start(self) -> None:
        """Run :meth:`collect` every ``policy.gc_interval_s`` until the timers close."""
        when = self.clock.now() + self.policy.gc_interval_s
        self.timers.at(("expiry pass",), when, self._periodic, keep_earlier=False)

    def _periodic(self) -> None:
        try:
            self.collect()
        finally:
            self.start()

    def collect(self) -> int:
        """One expiry pass over every function; forgets the ones quiet for long."""
        now = self.clock.now()
        destroyed = 0
        for key, pool in list(self.registry.pools.items()):
            try:
                destroyed += self.collect_pool(pool, now)
            except Exception:  # one function's failure must not stop the pass for the others
                logger.exception("expiry pass for {} failed", key)
            if pool.is_quiet() and now - pool.last_activity > self.forget_quiet_after_s:
                self._forget(pool)
        return destroyed

    # -- bounded memory --------------------------------------------------------------------------
    def pool_for(self, spec: FunctionSpec) -> Pool | None:
        """The function's pool, made (after forgetting quiet ones if at the limit); None when
        every remembered function still holds instances or requests."""
        pool = self.registry.pools.get(spec.key)
        if pool is not None:
            return pool
        if len(self.registry.pools) >= self.max_functions:
            quiet = sorted(
                (p for p in self.registry.pools.values() if p.is_quiet()),
                key=lambda p: p.last_activity,
            )
            for old in quiet[: max(1, self.max_functions // 10)]:
                self._forget(old)
        if len(self.registry.pools) >= self.max_functions:
            return None
        return self.registry.pool(spec)

    def _forget(self, pool: Pool) -> None:
        del self.registry.pools[pool.key]
        self.decide.forget(pool.key)
        self.timers.cancel((pool.key, "wake"))
        self.timers.cancel((pool.key, "decide"))

"""Cold starts: how many to begin for waiting requests, their retries, and a started instance's
first moments (Init answered, or the start failed).

The policy says how many cold starts to begin (``on_no_idle``) and how long a request may wait
for a busy instance instead (``patience_s``). Whatever it says, the oldest request that no
starting instance covers gets a cold start once it has waited that patience: a timer per
function fires at the next patience deadline or recheck, so how the policy's rechecks happen to
be timed, or how late the loop runs, never leaves a request without one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from loguru import logger

from scaler.answers import Unavailable
from scaler.clock import Clock
from scaler.platform import InitInfo, PlatformError
from scaler.policy.guard import GuardedPolicy
from scaler.pool import Pool, Registry
from scaler.states import Instance, Journal
from scaler.states.lifecycle import SHUTDOWN
from scaler.timers import Timers

#: ``hand_or_keep(pool, instance, event, reason, now, **data)``: fire ``event`` into idle, then
#: serve the oldest waiting request or keep the instance (the scheduler's).
HandOrKeep = Callable[..., None]


class ColdStarts:
    """Begins cold starts and pre-warms, retries failed ones, and hands new instances on."""

    def __init__(
        self,
        registry: Registry,
        decide: GuardedPolicy,
        timers: Timers,
        clock: Clock,
        journal: Journal,
        hand_or_keep: HandOrKeep,
        *,
        retries: int,
        max_patience_s: float,
        instance_prefix: str,
    ) -> None:
        self.registry = registry
        self.decide = decide
        self.timers = timers
        self.clock = clock
        self.journal = journal
        self._hand_or_keep = hand_or_keep
        self.retries = retries
        self.max_patience_s = max_patience_s
        self.instance_prefix = instance_prefix
        self._ids = itertools.count(1)
        #: Set at shutdown: nothing new is started.
        self.closing = False
        self.stats = {"cold_start_failures": 0}

    def decide_for(self, pool: Pool, now: float) -> None:
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
            self.start(pool, covers.request_id if covers else None, "cold start")
        patience = self.decide.patience_s(pool, now)
        patience = min(patience, self.max_patience_s) if patience >= 0 else 0.0
        while (oldest := pool.waiters.nth(pool.starting_count)) is not None:
            if oldest.arrived_at + patience > now:
                break
            self.start(pool, oldest.request_id, f"patience: waited {now - oldest.arrived_at:.3f} s")
        due = math.inf if oldest is None else oldest.arrived_at + patience
        if decision.start == 0 and decision.recheck_after is not None:
            due = min(due, now + max(decision.recheck_after, 0.0))
        if due < math.inf:
            self.timers.at(key, due, lambda: self._recheck(pool), keep_earlier=False)
        else:
            self.timers.cancel(key)

    def _recheck(self, pool: Pool) -> None:
        if self.registry.pools.get(pool.key) is pool:
            self.decide_for(pool, self.clock.now())

    def start(
        self, pool: Pool, for_request: str | None, why: str, prewarm_until: float | None = None
    ) -> Instance:
        """A new instance, fired into ``creating`` (the actuator then runs CreateSlot)."""
        instance = Instance(
            f"{self.instance_prefix}-{next(self._ids)}",
            pool.spec,
            self.clock,
            self.journal,
            self.registry,
            for_request=for_request,
            prewarm_until=prewarm_until,
        )
        instance.fire("create", f"{why} for request {for_request}" if for_request else why)
        return instance

    def prewarm(self, pool: Pool, keep_until: float) -> None:
        """Start one instance ahead of demand, kept until ``keep_until`` if nobody uses it."""
        self.start(pool, None, f"pre-warm, kept until {keep_until:.3f}", keep_until)

    def ready(self, instance: Instance, init: InitInfo) -> None:
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

    def failed(self, instance: Instance, error: PlatformError) -> None:
        """Retry the cold start for its request while the platform answers, then fail it.

        Only failures the platform answered (an error Status) are retried: when it does not
        answer at all (unreachable, deadline) the Assign fails fast instead of piling up waits.
        """
        self.stats["cold_start_failures"] += 1
        logger.warning("cold start for {} failed: {}", instance.function.key, error)
        pool = self.registry.pools.get(instance.function.key)
        if pool is None:
            return
        waiter = pool.waiters.get(instance.for_request)
        if waiter is not None:
            if error.status is not None and waiter.attempts < self.retries and not self.closing:
                waiter.attempts += 1
                self.start(pool, waiter.request_id, f"retry {waiter.attempts} of the cold start")
            else:
                pool.waiters.fail(waiter, Unavailable(f"cold start failed: {error}"))
        if pool.uncovered() > 0:
            self.decide_for(pool, self.clock.now())

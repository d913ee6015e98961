"""Machinery shared by policies that plan per release: keep phase, then optional pre-warm.

A subclass only says which :class:`~scaler.policy.windows.WindowPlan` a released instance gets
(:meth:`PlannedPolicy.window`); this module turns plans into the scheduler's decisions:

- ``keep_alive_until`` sets the keep phase and, for a pre-warm plan, records a launch time on
  the release (see :class:`~scaler.policy.observe.Release`);
- ``prewarm`` hands due launches to the scheduler (each with the deadline its instance carries),
  ``expired`` scales down instances kept under an older plan, and ``next_wakeup`` tells the
  scheduler when the next launch or review is due, so launches are made to the millisecond
  instead of at the next GC pass (keep-alive deadlines are the scheduler's, from FSM data);
- an arrival that reuses a release whose pre-warm has not started yet cancels it (the gap it
  was planned for ended early).

Pure: every method takes ``now``; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from scaler.policy.base import ColdStartDecision, Policy
from scaler.policy.observe import Ewma, GapTracker, Prices, Release
from scaler.policy.windows import WindowPlan
from scaler.states.lifecycle import BUSY

if TYPE_CHECKING:
    from scaler.pool import Pool
    from scaler.states import Instance

#: Deadlines within this many seconds of ``now`` count as reached (float round-off of timers).
EPSILON_S = 1e-6
#: CreateSlot and Init durations assumed before any cold start was observed.
PRIOR_CREATE_S = 0.1
PRIOR_INIT_S = 0.5
#: Arrival times kept per function for its current rate.
RECENT_ARRIVALS = 64


class FunctionState:
    """Everything a planned policy keeps about one function (bounded)."""

    __slots__ = (
        "cold",
        "deadlines",
        "duration",
        "episodes",
        "gaps",
        "gb",
        "key",
        "last_release",
        "last_released_instance",
        "last_touch",
        "owed_s",
        "pending",
        "plan",
        "plan_cold",
        "plan_kappa",
        "recent_arrivals",
        "reviewed_at",
        "waited",
        "waited_s",
    )

    def __init__(
        self,
        key: str,
        memory_mb: int,
        horizon_s: float,
        keep_samples: int,
        now: float,
        record_arrivals: bool = False,
    ) -> None:
        self.key = key
        self.gb = memory_mb / 1024.0
        self.gaps = GapTracker(horizon_s, keep_samples, record_arrivals)
        self.cold = Ewma()  # create + init, seconds
        self.duration = Ewma()  # execution, seconds
        #: Latest arrival times (for the current rate; bounded).
        self.recent_arrivals: deque[float] = deque(maxlen=RECENT_ARRIVALS)
        self.plan: WindowPlan | None = None
        self.plan_kappa = 0.0
        self.plan_cold = 0.0
        self.last_release: Release | None = None
        #: The instance whose release ``last_release`` records, until its keep-alive is set
        #: (by identity, not by timestamp: on a wall clock the two calls are microseconds apart).
        self.last_released_instance: str | None = None
        #: Arrival time of requests that had to wait, by request id (see observe_release).
        self.waited: dict[str, float] = {}
        #: Waiting seen by this function's requests, and the number of waiting episodes
        #: (a request found no idle instance while none was waiting before it).
        self.waited_s = 0.0
        self.episodes = 0
        #: Waiting for busy instances not yet "paid back" by a cold start (ski rental).
        self.owed_s = 0.0
        #: Pre-warms not yet started: (launch_at, seq, release).
        self.pending: list[tuple[float, int, Release]] = []
        self.last_touch = now
        self.reviewed_at = now


class PlannedPolicy(Policy):
    """Base of the release-planning policies; subclasses implement :meth:`window`."""

    name = "planned"
    gc_interval_s = 30.0
    #: How often a function's idle instances are checked against its current plan.
    review_every_s = 10.0

    def __init__(
        self,
        *,
        horizon_s: float = 3600.0,
        keep_samples: int = 1024,
        precise_timers: bool = True,
        prewarm_enabled: bool = True,
    ) -> None:
        self.horizon_s = horizon_s
        self.keep_samples = keep_samples
        self.precise_timers = precise_timers
        self.prewarm_enabled = prewarm_enabled
        self.functions: dict[str, FunctionState] = {}
        self.prices = Prices()
        self.create = Ewma()
        self.init = Ewma()
        self.durations = Ewma()  # over all functions: a prior for a function not yet seen
        #: Keep each arrival (with its queue wait) until a ledger prices it; a policy without
        #: one would only pile them up.
        self.records_arrivals = False
        self._seq = itertools.count()

    # -- what subclasses decide ------------------------------------------------------------
    def window(self, fn: FunctionState, now: float) -> WindowPlan:
        """The plan for an instance of ``fn`` released now."""
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------
    def state(self, pool: Pool, now: float) -> FunctionState:
        """The function's state, with the slot-time integral brought up to ``now``."""
        fn = self.functions.get(pool.key)
        if fn is None:
            fn = self.functions[pool.key] = FunctionState(
                pool.key,
                pool.spec.memory_mb,
                self.horizon_s,
                self.keep_samples,
                now,
                self.records_arrivals,
            )
        elif now > fn.last_touch:
            # Decisions change the live count right after a policy call, so the count seen
            # now is the one that held since the previous call.
            self.prices.slot_gbs += pool.live_count * fn.gb * (now - fn.last_touch)
            fn.last_touch = now
        return fn

    def cold_s(self, fn: FunctionState) -> float:
        """Expected create + init seconds of a cold start of ``fn``."""
        if fn.cold.mean is not None:
            return fn.cold.mean
        return self.create.get(PRIOR_CREATE_S) + self.init.get(PRIOR_INIT_S)

    def miss_wait_s(self, fn: FunctionState) -> float:
        """Waiting one missing instance of ``fn`` causes: its own cold start, times how much
        its requests have waited per waiting episode so far (when the function is busy, the
        requests behind the first queue too), with two episodes' worth of prior at 1."""
        cold = self.cold_s(fn)
        if cold <= 0.0:
            return cold
        factor = (fn.waited_s + 2.0 * cold) / (cold * (fn.episodes + 2))
        return cold * min(max(factor, 1.0), 1000.0)

    def queue_wait_s(self, pool: Pool, fn: FunctionState) -> float:
        """What a request arriving now would wait for one of the busy instances to free:
        the expected residual of the first of ``k`` busy ones, duration / (k + 1) (each is
        somewhere in its run); ``inf`` when none is busy. Optimistic when requests already
        wait; adding a full duration per request ahead was measured and scored lower
        (dataSet_3r at 500 ms 81.07 against 81.70, the built-in workload 59.77 / 52.41
        against 60.21 / 53.28)."""
        busy = pool.counts[BUSY]
        if busy <= 0:
            return math.inf
        return self.duration_s(fn) / (busy + 1)

    def duration_s(self, fn: FunctionState) -> float:
        """Mean execution seconds of ``fn``; before its first, the mean over all functions
        (and before any, its cold start: a request is assumed to take about as long)."""
        duration = fn.duration.mean
        if duration is None:
            duration = self.durations.get(self.cold_s(fn))
        return duration

    def margin_s(self, fn: FunctionState) -> float:
        """Head start given to a pre-warm against jitter of the cold start."""
        return 0.001 + 3.0 * fn.cold.dev

    # -- observations ----------------------------------------------------------------------
    def observe_arrival(self, pool: Pool, now: float) -> None:
        fn = self.state(pool, now)
        fn.recent_arrivals.append(now)
        queue_wait = self.queue_wait_s(pool, fn) if self.records_arrivals else math.inf
        release = fn.gaps.arrival(now, queue_wait)
        if release is not None and release.launch_at is not None and not release.launched:
            release.cancelled = True

    def observe_release(self, pool: Pool, instance: Instance, duration_ms: int, now: float) -> None:
        fn = self.state(pool, now)
        seconds = duration_ms / 1000.0
        self.prices.execution_s += seconds
        self.prices.execution_gbs += seconds * fn.gb
        fn.duration.add(seconds)
        self.durations.add(seconds)
        # A request that waited for its instance finished late by its wait; the gap that
        # follows is measured from when it would have finished without waiting, so the
        # policy's own cold starts do not shift what it learns about arrivals.
        at = now
        arrived = fn.waited.pop(instance.request_id or "", None)
        if arrived is not None:
            waited = max(0.0, instance.changed_at - arrived)
            fn.waited_s += waited
            self.prices.wait_s += waited
            at -= waited
        fn.last_release = fn.gaps.release(at)
        fn.last_released_instance = instance.instance_id

    def observe_cold_start(self, pool: Pool, create_ms: float, init_ms: float, now: float) -> None:
        fn = self.state(pool, now)
        fn.cold.add((create_ms + init_ms) / 1000.0)
        self.create.add(create_ms / 1000.0)
        self.init.add(init_ms / 1000.0)

    def forget(self, key: str) -> None:
        self.functions.pop(key, None)

    # -- decisions -------------------------------------------------------------------------
    def note_waiter(self, pool: Pool, fn: FunctionState) -> bool:
        """Remember when the newest waiting request arrived (for its release time), and count
        a new waiting episode when it is the only one waiting. False for a re-check."""
        waiter = pool.waiters.newest()
        if waiter is not None:
            if waiter.request_id in fn.waited:
                return False
            if len(fn.waited) > 10_000:  # requests that failed never release: stay bounded
                fn.waited.clear()
            fn.waited[waiter.request_id] = waiter.arrived_at
            if pool.pending_waiters() == 1:
                fn.episodes += 1
        return True

    def on_no_idle(self, pool: Pool, now: float) -> ColdStartDecision:
        fn = self.state(pool, now)
        self.note_waiter(pool, fn)
        return super().on_no_idle(pool, now)

    def keep_alive_until(self, pool: Pool, instance: Instance, now: float) -> float:
        fn = self.state(pool, now)
        if instance.served == 0:
            return self._fresh_until(fn, instance, now)
        return self._released_until(fn, instance, now)

    def _released_until(self, fn: FunctionState, instance: Instance, now: float) -> float:
        plan = self.window(fn, now)
        release = fn.last_release
        if release is None or fn.last_released_instance != instance.instance_id:
            return now + plan.keep_s
        fn.last_released_instance = None
        until = max(release.at + plan.keep_s, now)
        if self.prewarm_enabled and plan.prewarms and not release.cancelled:
            assert plan.warm_from_s is not None and plan.warm_until_s is not None
            margin = self.margin_s(fn)
            launch = release.at + plan.warm_from_s - self.cold_s(fn) - margin
            release.launch_at = max(launch, now)
            release.warm_until = release.at + plan.warm_until_s + margin
            heapq.heappush(fn.pending, (release.launch_at, next(self._seq), release))
            until = min(until, release.launch_at)
        return until

    def _fresh_until(self, fn: FunctionState, instance: Instance, now: float) -> float:
        """A new instance nobody waits for and not a pre-warm (those keep the deadline their
        order carried): a spare, started for a request another instance served."""
        plan = fn.plan or self.window(fn, now)
        if plan.prewarms:
            assert plan.warm_from_s is not None and plan.warm_until_s is not None
            return now + plan.warm_until_s - plan.warm_from_s
        return now + plan.keep_s

    def expired(self, pool: Pool, now: float) -> Iterable[Instance]:
        fn = self.state(pool, now)
        if now - fn.reviewed_at < self.review_every_s:
            return ()
        fn.reviewed_at = now
        return self.overstaying(pool, fn, now)

    def overstaying(self, pool: Pool, fn: FunctionState, now: float) -> list[Instance]:
        """Idle instances kept under an older plan longer than the current plan would keep
        them (the plan changed since their release: the exchange rate moved, the gaps
        changed). Pre-warmed instances, not yet used, keep their own deadline."""
        plan = self.window(fn, now)
        return [
            instance
            for instance in pool.idle_instances()
            if not instance.prewarmed
            and instance.keep_until > now
            and now - instance.changed_at > plan.keep_s
        ]

    def prewarm(self, pool: Pool, now: float) -> Sequence[float]:
        fn = self.state(pool, now)
        orders: list[float] = []
        pending = fn.pending
        while pending and pending[0][0] <= now + EPSILON_S:
            _, _, release = heapq.heappop(pending)
            if release.cancelled:
                continue
            release.launched = True
            orders.append(release.warm_until)
        return orders

    def next_wakeup(self, pool: Pool, now: float) -> float | None:
        if not self.precise_timers:
            return None
        fn = self.functions.get(pool.key)
        if fn is None:
            return None
        pending = fn.pending
        while pending and pending[0][2].cancelled:
            heapq.heappop(pending)
        return pending[0][0] if pending else None

"""The default policy: cost-aware windows learned per function, priced by the score itself.

How it decides (docs/policies.md has the long form):

1. **Windows** (:func:`~scaler.policy.windows.choose_window`): each released instance gets
   the plan of least expected cost over its function's recent release-to-reuse gaps: keep
   warm for ``k``; then, if it pays, destroy and pre-warm a fresh instance just in time for
   the next likely arrival, kept to the window's end. A function that went quiet is released
   by the same rule: nothing is kept beyond the window.
2. **Exchange rate** (``kappa``, waiting seconds one GB·s of idle slot is worth): the score
   ``50*Eg/S + 50*E/(E+L)`` is convex in S and L, so following its marginal rate lands in
   whichever equilibrium the run starts near. Instead a counterfactual *ledger* prices every
   arrival seen under each rate of a grid (a factor 4 apart): warm if that rate's plan kept
   an instance for it, else queued behind a busy instance or a cold start, whichever costs
   less at that rate; every ``select_every_s`` the rate moves one step towards the rate whose
   run so far would have scored best, if it leads by more than ``tolerance`` points (and,
   when the neighbouring rate on the way is no better than the current one, by more than
   ``far_tolerance``).
3. **Queue-aware cold starts**: a request that finds no idle instance gets a cold start only
   if the instances already starting or busy would serve the queue later than a new one
   could, by more than the new one's slot time is worth. One cold start per waiting request
   (the reference's rule) starts a hundred 4 GB instances for a 12 ms function whose cold
   start takes 4 s, where one instance would have served them all.
4. **Miss cost** (off by default, see :class:`Components`): a missing instance would cost
   its cold start times how much the function's requests waited per waiting episode.
5. **Precise timers**: deadlines and pre-warm launches are acted on when due (the scheduler
   asks :meth:`next_wakeup`), not at the next GC pass.

Every component can be switched off (:class:`Components`) for the ablation in
``python -m bench.policies --ablation``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import TYPE_CHECKING

import attrs

from scaler.policy.base import ColdStartDecision
from scaler.policy.observe import GapTracker
from scaler.policy.planned import FunctionState, PlannedPolicy
from scaler.policy.windows import (
    WindowPlan,
    arrival_cost,
    break_even_s,
    choose_window,
    outcome,
)
from scaler.states.lifecycle import BUSY, CREATING, IDLE, INITING

if TYPE_CHECKING:
    from scaler.pool import Pool

#: Exchange rates the policy chooses from (waiting seconds per GB·s), a factor 4 apart.
KAPPA_GRID: tuple[float, ...] = tuple(0.0125 * 4.0**i for i in range(-3, 6))
#: Where the rate starts, and the fixed rate with ``online_prices`` off (3.2 s per GB·s:
#: the best fixed rate on three of the four benchmark traces; docs/policies.md).
START_INDEX = 7
FIXED_INDEX = 7
#: Expected arrivals during a cold start come at the rate of this many cold starts' worth
#: of the function's latest arrivals (``expected_arrivals``).
RATE_WINDOW_COLD_STARTS = 2.0


@attrs.frozen
class Components:
    """Switchable parts of :class:`AdaptivePolicy` (all but ``miss_cost`` on by default)."""

    #: Windows from the learned gap distribution (off: ski-rental keep-alive only).
    learned_windows: bool = True
    #: Just-in-time pre-warm plans (off: keep-alive plans only).
    prewarm: bool = True
    #: A keep phase before a pre-warm (off: a pre-warm plan destroys at release).
    two_phase: bool = True
    #: Exchange rate from the running totals (off: the fixed prior rate).
    online_prices: bool = True
    #: Cold-start only when existing instances would serve the queue later than a new one
    #: (off: one cold start per waiting request, as the reference).
    queue_aware: bool = True
    #: Price a miss by the waiting it caused so far (off, the default: its own cold start).
    #: Measured in the ablation as switched on: it keeps instances too long on bursty traces.
    miss_cost: bool = False
    #: Act on deadlines when due (off: only at GC passes every ``gc_interval_s``).
    precise_timers: bool = True

    @classmethod
    def names(cls) -> list[str]:
        return [field.name for field in attrs.fields(cls)]


@attrs.define(slots=True)
class _Plans:
    """A function's plans by grid index, for one gap summary, cold start and miss cost."""

    summary: tuple[list[float], list[float], float, float]
    cold: float
    miss_wait: float
    points: dict[int, tuple[WindowPlan, float, float]] = attrs.Factory(dict)


class AdaptivePolicy(PlannedPolicy):
    """Learned, cost-aware keep-alive and pre-warm windows (see the module docstring)."""

    name = "adaptive"
    #: Gap samples needed before the learned window replaces the break-even keep-alive.
    min_samples = 4
    #: How often the exchange rate may move (seconds), and by how many points another rate's
    #: counterfactual score must beat the current rate's before it moves.
    select_every_s = 30.0
    tolerance = 0.5
    #: Points by which a rate must lead before the rate moves towards it through a worse
    #: neighbour.
    far_tolerance = 2.0

    def __init__(
        self,
        components: Components | None = None,
        *,
        fixed_index: int = FIXED_INDEX,
        **kwargs: float,
    ) -> None:
        self.components = components or Components()
        c = self.components
        super().__init__(precise_timers=c.precise_timers, prewarm_enabled=c.prewarm, **kwargs)
        #: Grid index used when online prices are off.
        self.fixed_index = fixed_index
        self.records_arrivals = c.online_prices
        self.kappa_index = START_INDEX if c.online_prices else fixed_index
        self._selected_at = -math.inf
        #: What each grid rate's plans would have cost so far (slot GB·s, waiting seconds).
        self._ledger_slot = [0.0] * len(KAPPA_GRID)
        self._ledger_wait = [0.0] * len(KAPPA_GRID)
        self._plans: dict[str, _Plans] = {}

    def forget(self, key: str) -> None:
        super().forget(key)
        self._plans.pop(key, None)

    def miss_wait_s(self, fn: FunctionState) -> float:
        if not self.components.miss_cost:
            return self.cold_s(fn)
        return super().miss_wait_s(fn)

    # -- the exchange rate -----------------------------------------------------------------
    def select_rate(self, now: float) -> int:
        """Grid index of the exchange rate: the one whose counterfactual score is best."""
        if not self.components.online_prices:
            return self.fixed_index
        if now - self._selected_at < self.select_every_s:
            return self.kappa_index
        self._selected_at = now
        for fn in self.functions.values():
            self._account(fn)
        scores = self.counterfactual_scores()
        if scores:
            # Move only when another rate beats the current one by more than ``tolerance``:
            # the ledger prices each arrival alone (not the queue that forms behind the
            # first), so rates a fraction of a point apart are a tie, and every move re-plans
            # every function's instances. Preferring the cheapest slot time among near-ties
            # instead walked dataSet_1 to the longest keeps (48.5 against 50.0).
            current = self.kappa_index
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] > scores[current] + self.tolerance:
                # One grid step at a time: the ledger is young early in a run, and functions
                # come and go, so the rate follows its verdict with some inertia. A step to a
                # worse neighbour needs a wider lead: two rates far apart are often near a
                # tie (dataSet_1's keep-everything and pre-warm-each-cluster rates), and
                # walking through the worse rates between them for half a point and staying
                # at the far end cost dataSet_1 1.2-2.6 points with Assign and Idle charged
                # 0.5-2 ms (docs/policies.md, section 3).
                step = 1 if best > current else -1
                if (
                    scores[current + step] > scores[current]
                    or scores[best] > scores[current] + self.far_tolerance
                ):
                    self.kappa_index = current + step
        return self.kappa_index

    def counterfactual_scores(self) -> list[float]:
        """Score (0..100) the run so far would have had under each grid rate, by the ledger
        of what each rate's plans cost on the arrivals that actually happened; empty before
        any execution was seen."""
        e = self.prices.execution_s
        eg = self.prices.execution_gbs
        if e <= 0 or eg <= 0:
            return []
        return [
            50.0 * eg / (eg + self._ledger_slot[i]) + 50.0 * e / (e + self._ledger_wait[i])
            for i in range(len(KAPPA_GRID))
        ]

    def _account(self, fn: FunctionState) -> None:
        """Price the arrivals (and never-reused releases) seen since the last call with
        each grid rate's plan, serving a miss the way the queue-aware scheduler would."""
        arrivals = fn.gaps.drain()
        if not arrivals:
            return
        cold = self.cold_s(fn)
        miss_wait = self.miss_wait_s(fn)
        for i in range(len(KAPPA_GRID)):
            kappa = self.kappa_at(fn, i)
            plan = self.plan_for(fn, i)
            slot = 0.0
            wait = 0.0
            for arrival in arrivals:
                arrival_slot, arrival_wait = arrival_cost(
                    plan, arrival.gap, arrival.queue_wait, cold, miss_wait, kappa
                )
                slot += arrival_slot
                wait += arrival_wait
            self._ledger_slot[i] += slot * fn.gb
            self._ledger_wait[i] += wait

    def kappa(self, fn: FunctionState, now: float) -> float:
        """Waiting seconds worth one second of this function's idle instance."""
        return self.kappa_at(fn, self.select_rate(now))

    @staticmethod
    def kappa_at(fn: FunctionState, index: int) -> float:
        """The same at grid rate ``index``."""
        return KAPPA_GRID[index] * fn.gb

    # -- windows ---------------------------------------------------------------------------
    def window(self, fn: FunctionState, now: float) -> WindowPlan:
        plan = fn.plan = self.plan_for(fn, self.select_rate(now))
        return plan

    def plan_for(self, fn: FunctionState, index: int) -> WindowPlan:
        """The plan at grid rate ``index``: learned, or the prior before enough gaps."""
        point = self.plan_at(fn, index)
        return point[0] if point is not None else self._prior_plan(fn, index)

    def _prior_plan(self, fn: FunctionState, index: int) -> WindowPlan:
        """Before enough gaps: keep for the ski-rental break-even time."""
        kappa = self.kappa_at(fn, index)
        keep = break_even_s(self.cold_s(fn), kappa, self.miss_wait_s(fn))
        return WindowPlan(keep_s=min(keep, self.horizon_s))

    def gap_source(self, fn: FunctionState) -> GapTracker:
        """The gaps ``fn``'s plans are drawn from: its own, learned online (the hindsight
        benchmark, ``bench/hindsight.py``, substitutes the whole run's, to see what these
        plans reach with the distribution known in advance)."""
        return fn.gaps

    def plan_at(self, fn: FunctionState, index: int) -> tuple[WindowPlan, float, float] | None:
        """The function's plan at grid rate ``index`` and what it costs per gap (slot
        seconds, waiting seconds); None while too few gaps were seen. Cached until the
        gaps, the cold start or the miss cost change."""
        c = self.components
        gaps = self.gap_source(fn)
        if not c.learned_windows or gaps.count < self.min_samples:
            return None
        cold = self.cold_s(fn)
        miss_wait = self.miss_wait_s(fn)
        cached = self._plans.get(fn.key)
        if (
            cached is None
            or gaps.fresh >= max(8, gaps.count // 4)
            or abs(cold - cached.cold) > 0.05 * cached.cold
            or abs(miss_wait - cached.miss_wait) > 0.1 * cached.miss_wait
        ):
            gaps.fresh = 0
            cached = self._plans[fn.key] = _Plans(gaps.summary(cold), cold, miss_wait)
        point = cached.points.get(index)
        if point is None:
            values, weights, censored, longest = cached.summary
            plan = choose_window(
                values,
                weights,
                censored,
                cold,
                self.kappa_at(fn, index),
                miss_wait_s=miss_wait,
                prewarm=c.prewarm,
                two_phase=c.two_phase,
                max_keep_s=self.horizon_s,
                max_warm_from_s=longest,
            )
            slot, wait = outcome(values, weights, censored, cold, plan, miss_wait)
            total = sum(weights) + censored
            point = cached.points[index] = (plan, slot / total, wait / total)
        return point

    # -- cold starts: only when the instances already there would serve later -------------
    def patience_s(self, pool: Pool, now: float) -> float:
        """What a cold start is worth in waiting seconds (its own duration plus its slot time
        at the exchange rate): the longest a request waits for a busy instance instead."""
        if not self.components.queue_aware:
            return 0.0
        fn = self.state(pool, now)
        cold = self.cold_s(fn)
        return cold + self.kappa(fn, now) * cold

    def on_no_idle(self, pool: Pool, now: float) -> ColdStartDecision:
        if not self.components.queue_aware:
            return super().on_no_idle(pool, now)
        fn = self.state(pool, now)
        fresh = self.note_waiter(pool, fn)
        waiting = pool.pending_waiters()
        if waiting <= 0:
            return ColdStartDecision(0)
        cold = self.cold_s(fn)
        price = self.kappa(fn, now) * cold
        # Whatever the estimates below say, the oldest waiting request gets a cold start once
        # it has waited what one is worth (ski rental on its actual wait): a busy instance
        # that does not free up (a long request, a client that never calls Idle) must not
        # hold the queue until the Assign deadline. The scheduler enforces the same bound
        # (patience_s) for the oldest request no starting instance covers.
        patience = cold + price
        oldest = pool.oldest_waiter()
        waited = 0.0 if oldest is None else now - oldest.arrived_at
        if waited >= patience and pool.starting_count < waiting:
            fn.owed_s = 0.0
            return ColdStartDecision(1)
        arrivals = self.expected_arrivals(fn, now, horizon=cold)
        without, on_busy = self.queue_waits(pool, fn, now, waiting, arrivals, extra_at=None)
        with_one, _ = self.queue_waits(pool, fn, now, waiting, arrivals, extra_at=now + cold)
        # A cold start pays when the waiting it saves (the queue, and the requests expected
        # while it starts) exceeds what its slot time is worth, in waiting seconds.
        if sum(without) - sum(with_one) > price:
            fn.owed_s = 0.0
            return ColdStartDecision(1)
        # Waiting for a busy instance is cheaper than a cold start for this request, but a
        # function that keeps waiting for busy instances lacks one: rent until the waits add
        # up to the price of an instance, then buy one (ski rental).
        if fresh and on_busy:
            fn.owed_s += without[waiting - 1]
            if fn.owed_s >= cold + price:
                fn.owed_s = 0.0
                return ColdStartDecision(1)
        recheck = max(without[waiting - 1], 0.0) + 0.1 * cold + 0.001
        recheck = min(recheck, max(patience - waited, 0.0) + 0.001)
        return ColdStartDecision(0, recheck_after=recheck)

    def expected_arrivals(self, fn: FunctionState, now: float, horizon: float) -> list[float]:
        """Arrival times expected in ``(now, now + horizon]`` at the function's current rate
        (at most 100: enough to see a queue grow): the rate of its arrivals in the
        ``RATE_WINDOW_COLD_STARTS`` cold starts up to its latest one (over the arrivals kept,
        when all of them are in the window), none unless at least three came in that window
        (a burst under way).

        A mean over all inter-arrival times, as until 2026-11-24, is dominated by the quiet
        between bursts and expects nothing inside one: a queue in a burst then gets its cold
        start only once its waits have paid for one (dataSet_1 50.25 / 46.39 at 100 / 500 ms
        before, 51.74 / 46.68 after; docs/policies.md)."""
        recent = fn.recent_arrivals
        window = RATE_WINDOW_COLD_STARTS * self.cold_s(fn)
        if not recent or window <= 0:
            return []
        latest = recent[-1]
        gaps = -1  # inter-arrival times inside the window
        for at in reversed(recent):
            if latest - at > window:
                break
            gaps += 1
        if gaps < 2:
            return []
        span = window
        if gaps == len(recent) - 1 and len(recent) == recent.maxlen:
            span = latest - recent[0]  # the window reaches past the arrivals kept
        gap = max(span / gaps, 1e-6)  # 64 arrivals in one instant: as fast as it gets
        count = min(int(horizon / gap), 100)
        return [now + (k + 1) * gap for k in range(count)]

    def queue_waits(
        self,
        pool: Pool,
        fn: FunctionState,
        now: float,
        waiting: int,
        arrivals: list[float],
        extra_at: float | None,
    ) -> tuple[list[float], bool]:
        """Waits of the ``waiting`` queued requests, then of requests arriving at
        ``arrivals``, served FIFO by the instances that exist (plus one ready at
        ``extra_at``); and whether the last queued request goes to a busy instance (rather
        than to one still starting).

        Starting instances are ready after a cold start, busy ones after a pessimistic
        duration; with none, a request waits forever.
        """
        cold = self.cold_s(fn)
        duration = self.duration_s(fn)
        # A busy instance frees after a pessimistic duration (mean plus twice the deviation);
        # one already past it is in a long tail and gets as long again.
        slow = duration + 2.0 * fn.duration.dev
        free: list[tuple[float, bool]] = [] if extra_at is None else [(extra_at, False)]
        for instance in pool.instances.values():
            state = instance.state
            if state in (CREATING, INITING):
                free.append((max(instance.created_at + cold, now), False))
            elif state == BUSY:
                due = instance.changed_at + slow
                free.append((due if due > now else now + slow, True))
            elif state == IDLE:
                free.append((now, True))
        if not free:
            return [math.inf] * (waiting + len(arrivals)), False
        heapq.heapify(free)
        waits = []
        on_busy = False
        for index, arrived in enumerate(itertools.chain(itertools.repeat(now, waiting), arrivals)):
            at, busy = heapq.heappop(free)
            start = max(at, arrived)
            waits.append(start - arrived)
            if index == waiting - 1:
                on_busy = busy
            heapq.heappush(free, (start + duration, busy))
        return waits, on_busy

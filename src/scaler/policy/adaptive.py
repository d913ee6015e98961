"""The default policy: the 5-minute keep-alive, except where the record says better.

How it decides (docs/policies.md has the long form):

1. **The baseline.** Every function starts on the challenge's sample rule: keep an idle
   instance 300 s, no pre-warm, one cold start per waiting request. It keeps that rule until
   the counterfactual record shows another rule would have scored better for it.
2. **The candidate rule** (:func:`~scaler.policy.windows.choose_window`): the window plan of
   least expected cost over the function's release-to-reuse gaps, at the exchange rate of
   the run the candidates make (:meth:`~scaler.policy.observe.Prices.kappa_gb`, the ratio of
   the score's marginal costs, at the modelled totals had every function followed its
   candidate). Keep for ``k``, or destroy and pre-warm just in time.
3. **Counterfactual accounting.** Every gap that closes is priced under both rules, each as it
   would have played online: the 5-minute keep-alive, and the candidate plan in force when the
   gap opened. A miss delays the reuses queued behind it: a rule whose request waited releases
   its instance that much later, and a reuse that comes before then waits too, until the cold
   start that began the queue is ready (each rule's lag, ``_rule_cost``: without it a burst that
   finds nothing warm costs one cold start in the record and a queue of them in the run). Per
   function the policy sums what the candidate saved (slot GB·s and waiting seconds, kept apart
   so the sum is re-priced at the current rate) and the worst single gap it lost (at least one
   cold start); per run, the modelled baseline and the savings of all candidates and of the
   functions of each standing. A gap still open is credited ahead of its close with what it must
   at least save (:meth:`AdaptivePolicy._settle`): past the candidate's plan, the candidate's
   cost is fixed and the baseline's is at least the gap's age, so pricing the gap as if it
   closed now is a lower bound on both parts; it is credited once that bound is worth a cold
   start, again once it is exact (past the 5 minutes too), and replaced by the exact price when
   the gap closes. Without it, instances that a burst left behind, which no arrival ever reuses,
   would never count.
4. **Following.** A function's standing is EARNED while its saving, in waiting seconds,
   exceeds that worst loss (a wrong switch costs about one bad gap), LOST while it is
   negative, OPEN in between (a new function is open). An earned function follows its
   candidate; an open one follows the fleet's record (the candidates of all functions would
   have paid), one release at a time and nothing else (no scale-down, no queue-aware waits),
   so it too can lose about one gap; a lost one does not. And the run ahead (the run so far
   repeated once) must score better, exactly, with the followers on their candidates than
   all on the baseline (open ones with no saving yet may follow at a tie): the past is
   spent, and the score is convex, so moving some functions only can cost more than it
   saves. Otherwise it acts exactly as the baseline.
5. **Queue-aware cold starts** (for a function that earned its candidate and follows it): a
   request that finds no idle instance gets a cold start only if the instances already
   starting or busy would serve the queue later than a new one could, by more than the new
   one's slot time is worth; and, whatever the estimates say, once it has waited what a cold
   start is worth (ski rental, :meth:`patience_s`).
6. **Off the request path.** Assign and Idle do O(1) work per function (one gap priced under
   two rules); plans are recomputed in the expiry passes, a bounded slice per pass.

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
from scaler.policy.observe import Cost, Ewma, GapTracker, Prices, Release
from scaler.policy.windows import WindowPlan, break_even_s, choose_window, lagged_cost
from scaler.states.lifecycle import BUSY, CREATING, IDLE, INITING

if TYPE_CHECKING:
    from scaler.pool import Pool
    from scaler.states import Instance

#: The baseline: the challenge's sample scaler keeps every idle instance 5 minutes.
REFERENCE = WindowPlan(keep_s=300.0)
#: Longest gap learned (longer ones are censored), and gap samples kept per function.
HORIZON_S = 3600.0
KEEP_SAMPLES = 1024
#: CreateSlot and Init durations assumed before any cold start was observed (the challenge
#: simulator's CreateSlot latency, and a typical Init).
PRIOR_CREATE_S = 0.1
PRIOR_INIT_S = 0.5
#: Arrival times kept per function for its current rate, and the span over which that rate
#: is taken (this many cold starts: what a cold start decided now has to cover).
RECENT_ARRIVALS = 64
RATE_WINDOW_COLD_STARTS = 2.0
#: A plan is recomputed when a quarter of its gap samples are new, or the rate it was priced
#: at moved by more than this factor.
REPLAN_RATE_FACTOR = 2.0
#: Most plans recomputed in one expiry pass (a bounded slice; the rest wait for the next
#: pass or their own function's wake-up).
REPLAN_SLICE = 8
#: Requests under way whose lags a function remembers (bounded memory: a request that fails
#: never releases, so its entry is never popped; past the bound the map starts afresh).
MAX_LAGS = 10_000
#: Deadlines within this many seconds of ``now`` count as reached (float round-off of timers).
EPSILON_S = 1e-6
#: A function's standing, from its own counterfactual record (:meth:`AdaptivePolicy._price`):
#: its candidate saved more than the most it lost on one gap (EARNED); its record is not
#: negative, but thinner than that (OPEN: the fleet's record decides); its candidate lost
#: (LOST: the baseline, until the record is earned).
EARNED, OPEN, LOST = "earned", "open", "lost"
#: The stages at which a gap still open is credited from its bound (:meth:`_settle`): when
#: the bound is worth one cold start, and when it is exact.
BOUND, EXACT = 0, 1


def _rule_cost(
    plan: WindowPlan, release: Release, lag: tuple[float, float], gap: float, cold: float
) -> Cost:
    """(slot s, waiting s) of the gap after ``release`` under ``plan``, with the rule's
    ``lag`` (seconds, and the epoch second it lasts to), and the lag the reusing request
    passes on to its own release."""
    arrival = release.at + gap
    delay, until = lag
    slot, wait, queued = lagged_cost(plan, gap, delay if arrival < until else 0.0, cold)
    if wait <= 0.0:
        return slot, wait, (0.0, 0.0)
    return slot, wait, (wait, until if queued else arrival + wait)


def _costs(release: Release, gap: float, cold: float) -> tuple[Cost, Cost]:
    """The gap after ``release`` under the baseline and under the release's plan (the
    baseline's for a release priced by no plan), each with its own lag; what the arrival
    that closed the gap already priced is read back, not priced again."""
    priced = release.priced
    if priced is not None and priced[0] == gap:
        return priced[1], priced[2]
    ref = _rule_cost(REFERENCE, release, release.ref_lag, gap, cold)
    if release.plan is None:
        return ref, ref
    return ref, _rule_cost(release.plan, release, release.lag, gap, cold)


def settled_after_s(plan: WindowPlan) -> float:
    """The gap length past which ``plan`` costs the same whatever the gap (it kept, or
    pre-warmed and kept, all it ever will)."""
    return max(plan.keep_s, plan.warm_until_s or 0.0)


class FunctionState:
    """Everything the policy keeps about one function (bounded)."""

    __slots__ = (
        "bet",
        "bet_until",
        "cold",
        "duration",
        "gaps",
        "gb",
        "lags",
        "last_release",
        "last_released_instance",
        "last_touch",
        "owed_s",
        "pending",
        "plan",
        "plan_kappa",
        "recent_arrivals",
        "saved",
        "standing",
        "waited",
        "worst",
    )

    def __init__(self, memory_mb: int, now: float) -> None:
        self.gb = memory_mb / 1024.0
        self.gaps = GapTracker(HORIZON_S, KEEP_SAMPLES)
        self.cold = Ewma()  # create + init, seconds
        self.duration = Ewma()  # execution, seconds
        self.recent_arrivals: deque[float] = deque(maxlen=RECENT_ARRIVALS)
        #: The candidate plan (None until first computed) and the rate it was priced at.
        self.plan: WindowPlan | None = None
        self.plan_kappa = 0.0
        #: What the candidate saved against the baseline (slot GB·s, waiting s), and the most
        #: it lost on one gap (slot GB·s, waiting s; None: nothing lost yet).
        self.saved = [0.0, 0.0]
        self.worst = [0.0, 0.0]
        #: Requests under way: what each waited under the baseline and under the candidate
        #: (the lag of the release it will make, :class:`~scaler.policy.observe.Release`).
        self.lags: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
        #: EARNED, OPEN or LOST, as of its latest observation (module constants).
        self.standing = OPEN
        #: While OPEN, the one release that follows the candidate before its gap is priced
        #: (what following an unproven record can lose is one gap).
        self.bet: Release | None = None
        #: When the bet's instance has played its plan out (reused, or destroyed and its
        #: pre-warm kept to the end): what it could lose in the real run is settled then,
        #: even if its gap is priced much later (a release deep in the gap stack).
        self.bet_until = -math.inf
        self.last_release: Release | None = None
        #: The instance whose release ``last_release`` records, until its keep-alive is set.
        self.last_released_instance: str | None = None
        #: Arrival time of requests that had to wait, by request id.
        self.waited: dict[str, float] = {}
        #: Waiting for busy instances not yet "paid back" by a cold start (ski rental).
        self.owed_s = 0.0
        #: Pre-warms not yet started: (launch_at, seq, release).
        self.pending: list[tuple[float, int, Release]] = []
        self.last_touch = now


class AdaptivePolicy(Policy):
    """The 5-minute keep-alive, or a learned window plan where it has paid (module doc)."""

    name = "adaptive"
    gc_interval_s = 30.0
    precise_timers = True
    steers_by_fleet = True  # the exchange rate, the run-ahead test, the fleet's record
    #: Follow the candidate only where it has paid (off: always, for the bench's ablation).
    gated = True
    #: Cold starts only when the queue needs them (off: one per waiting request).
    queue_aware = True

    def __init__(self) -> None:
        self.functions: dict[str, FunctionState] = {}
        self.prices = Prices()
        self.create = Ewma()
        self.init = Ewma()
        self.durations = Ewma()  # over all functions: a prior for a function not yet seen
        #: The run as the accounting models it (slot GB·s beyond execution, waiting s) had
        #: every function kept the baseline; and what the candidates of all functions would
        #: have saved from that.
        self.baseline = [0.0, 0.0]
        self.saved_all = [0.0, 0.0]
        #: The savings of the functions of each standing.
        self.saved_by = {EARNED: [0.0, 0.0], OPEN: [0.0, 0.0], LOST: [0.0, 0.0]}
        #: The verdicts of :meth:`_verdicts` at ``_verdicts_at``, until a gap is priced or a
        #: standing moves (they are O(1), not cheap, and decisions between are many).
        self._verdicts_at = math.nan  # nothing computed yet
        self._verdict = (False, False)
        self._seq = itertools.count()
        self._slice_at = -math.inf
        self._slice_left = 0

    # -- helpers ---------------------------------------------------------------------------
    def state(self, pool: Pool, now: float) -> FunctionState:
        """The function's state, with the slot-time integral brought up to ``now``."""
        fn = self.functions.get(pool.key)
        if fn is None:
            fn = self.functions[pool.key] = FunctionState(pool.spec.memory_mb, now)
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

    def duration_s(self, fn: FunctionState) -> float:
        """Mean execution seconds of ``fn``; before its first, the mean over all functions
        (and before any, its cold start: a request is assumed to take about as long)."""
        duration = fn.duration.mean
        return self.durations.get(self.cold_s(fn)) if duration is None else duration

    def _point(self, saved: list[float]) -> tuple[float, float]:
        """The modelled run with ``saved`` taken off the baseline."""
        return self.baseline[0] - saved[0], self.baseline[1] - saved[1]

    def _ahead(self, saved: list[float]) -> float:
        """The score after the run so far repeats once, the repeat on the baseline less
        ``saved``: what following those savings from now on is worth (the past is spent;
        the future is assumed to be like it)."""
        slot, wait = self._point(saved)
        return self.prices.score(*self.prices.ahead(slot, wait), runs=2.0)

    def kappa_gb(self) -> float:
        """Waiting seconds worth one GB·s of slot, ahead: where following every candidate
        from now on leads, if that scores better than the baseline (compared exactly, not
        by a tangent: the score is convex, so a tangent at the far point flatters the move);
        else on the baseline (a tangent there undervalues a move: the safe side)."""
        prices = self.prices
        lead = prices.ahead(*self._point(self.saved_all))
        base = prices.ahead(*self.baseline)  # _point of no saving, without the call
        if prices.score(*lead, runs=2.0) > prices.score(*base, runs=2.0):
            return prices.kappa_gb(*lead, runs=2.0)
        return prices.kappa_gb(*base, runs=2.0)

    def kappa(self, fn: FunctionState) -> float:
        """Waiting seconds worth one second of this function's idle instance."""
        return self.kappa_gb() * fn.gb

    def lead_kappa(self, fn: FunctionState) -> float:
        """The same where the candidates lead: the rate they are planned at, so that
        they are plans for the run they make."""
        return self.prices.kappa_gb(*self._point(self.saved_all)) * fn.gb

    # -- the rule in force -----------------------------------------------------------------
    def candidate(self, fn: FunctionState) -> WindowPlan:
        """The candidate plan: learned, or before the first re-plan the ski-rental keep."""
        if fn.plan is not None:
            return fn.plan
        keep = break_even_s(self.cold_s(fn), self.lead_kappa(fn))
        return WindowPlan(keep_s=min(keep, HORIZON_S))

    def standing(self, fn: FunctionState) -> str:
        """EARNED if the candidate's accounted saving, at the current rate, exceeds the most
        it lost on one gap (and at least what one cold start of the function costs); LOST
        if it is negative; OPEN in between."""
        k = self.kappa_gb()
        value = k * fn.saved[0] + fn.saved[1]
        if value < 0.0:
            return LOST
        cold = self.cold_s(fn)
        worst = k * max(fn.worst[0], cold * fn.gb) + max(fn.worst[1], cold)
        return EARNED if value > worst else OPEN

    def _verdicts(self, now: float) -> tuple[bool, bool]:
        """(follow EARNED functions, follow OPEN ones), as of ``now``.

        OPEN functions follow the fleet's record: while the candidates of all functions,
        followed from the start, would have made the run ahead score better than the
        baseline, a function not yet known to lose is assumed to be like the others. The
        followers together must then make the run ahead score better than all on the
        baseline, or at least no worse (exactly: moving some functions only can cost more
        than it saves, the score being convex); if the open ones tip that, only the earned
        ones follow.
        """
        if now == self._verdicts_at:
            return self._verdict
        base = self._ahead([0.0, 0.0])
        earned, open_ = self.saved_by[EARNED], self.saved_by[OPEN]
        verdict = (False, False)
        if self._ahead(self.saved_all) > base:
            both = [earned[0] + open_[0], earned[1] + open_[1]]
            if self._ahead(both) >= base:  # open ones with no record yet change nothing
                verdict = (True, True)
        if not verdict[0] and self._ahead(earned) > base:
            verdict = (True, False)
        self._verdicts_at, self._verdict = now, verdict
        return verdict

    def trusted(self, fn: FunctionState, now: float) -> bool:
        """The next release of ``fn`` follows its candidate (module doc, step 4): an earned
        function while the followers' run ahead scores better, an open one while the
        fleet's record pays and it has no bet at stake, a lost one never."""
        if not self.gated:
            return True
        standing = fn.standing
        if standing == LOST:
            return False
        follow_earned, follow_open = self._verdicts(now)
        if standing == EARNED:
            return follow_earned
        if fn.bet is not None and now > fn.bet_until:
            fn.bet = None
        return follow_open and fn.bet is None

    def window(self, fn: FunctionState, now: float) -> WindowPlan:
        """The plan an instance released now gets."""
        return self.candidate(fn) if self.trusted(fn, now) else REFERENCE

    def committed(self, fn: FunctionState, now: float) -> bool:
        """Follows its candidate with every instance and request: scale-downs of instances
        kept on the baseline, queue-aware cold starts. An open function stakes only the one
        release it bets (what it can lose stays one gap)."""
        if not self.gated:
            return True
        return fn.standing == EARNED and self.trusted(fn, now)

    def _price(self, fn: FunctionState) -> None:
        """Account the gaps closed since the last call under both rules (O(1) each), and
        judge the standing again at the current rate, at every observation: judged only when
        a gap closes, a function found losing while slot was cheap stays so while the run's
        slot time grows and makes slot cheaper still (tests/test_fast_mode_clock.py)."""
        closed = fn.gaps.closed
        cold = self.cold_s(fn)
        for release, gap in closed:
            if release is fn.bet:
                fn.bet = None
            if release.plan is None:
                continue
            self._uncredit(fn, release)
            price = self._gap_price(fn, release, gap, cold)
            self._add(fn, *price)
            fn.worst[0] = max(fn.worst[0], -price[2])
            fn.worst[1] = max(fn.worst[1], -price[3])
        closed.clear()
        standing = self.standing(fn)
        if standing != fn.standing:
            self._move(fn, -1.0)
            fn.standing = standing
            self._move(fn, 1.0)

    @staticmethod
    def _gap_price(
        fn: FunctionState, release: Release, gap: float, cold: float
    ) -> tuple[float, float, float, float]:
        """One gap under the baseline (slot GB·s, waiting s) and what the release's plan
        saved on it against the baseline (slot GB·s, waiting s), each rule's lag applied."""
        assert release.plan is not None
        (ref_slot, ref_wait, _), (slot, wait, _) = _costs(release, gap, cold)
        return ref_slot * fn.gb, ref_wait, (ref_slot - slot) * fn.gb, ref_wait - wait

    def _uncredit(self, fn: FunctionState, release: Release) -> None:
        """Take back what :meth:`_settle` credited for the release's gap."""
        credit = release.credit
        if credit is not None:
            release.credit = None
            self._add(fn, -credit[0], -credit[1], -credit[2], -credit[3])

    def _settle(self, fn: FunctionState, now: float) -> bool:
        """Credit the function's open gaps with what they must at least save (module doc,
        step 3); True if it credited any. O(1) plus one step per release that reaches a
        stage: the walk goes from the oldest release and stops at the first not yet due."""
        cold = self.cold_s(fn)
        rate: list[float] = []  # the exchange rate, computed once and only if needed
        priced: dict[int, tuple[float, float, float, float]] = {}  # by id: the walk's prices

        def bound_worth_a_cold_start(release: Release) -> bool:
            plan, age = release.plan, now - release.at
            if plan is None or age - release.lag[0] <= settled_after_s(plan):
                return plan is None
            if not rate:
                rate.append(self.kappa(fn))
            kappa = rate[0]
            price = priced[id(release)] = self._gap_price(fn, release, age, cold)
            return kappa * price[2] / fn.gb + price[3] >= cold + kappa * cold

        def exact(release: Release) -> bool:
            plan = release.plan
            if plan is None:
                return True
            age = now - release.at - max(release.lag[0], release.ref_lag[0])
            return age > max(REFERENCE.keep_s, settled_after_s(plan))

        credited = False
        for stage, due in ((BOUND, bound_worth_a_cold_start), (EXACT, exact)):
            for release in fn.gaps.reached(stage, due):
                if release.plan is None or release.stage >= stage:
                    continue
                release.stage = stage
                self._uncredit(fn, release)
                price = priced.pop(id(release), None) or self._gap_price(
                    fn, release, now - release.at, cold
                )
                self._add(fn, *price)
                release.credit = price
                credited = True
        return credited

    def _move(self, fn: FunctionState, sign: float) -> None:
        """Add (``sign`` 1) or take (-1) the function's saving to its standing's sum."""
        sums = self.saved_by[fn.standing]
        sums[0] += sign * fn.saved[0]
        sums[1] += sign * fn.saved[1]
        self._verdicts_at = math.nan

    def _add(self, fn: FunctionState, slot: float, wait: float, ds: float, dw: float) -> None:
        """Add to the modelled baseline, and the candidate's saving from it."""
        self.baseline[0] += slot
        self.baseline[1] += wait
        self._verdicts_at = math.nan  # the verdicts move with the sums
        for sums in (fn.saved, self.saved_all, self.saved_by[fn.standing]):
            sums[0] += ds
            sums[1] += dw

    def replan(self, fn: FunctionState) -> bool:
        """Recompute the candidate plan if its gaps or its rate moved; True if it did."""
        gaps = fn.gaps
        kappa = self.lead_kappa(fn)
        if gaps.count == 0 or kappa <= 0:
            return False
        ratio = kappa / fn.plan_kappa if fn.plan_kappa > 0 else math.inf
        same_rate = 1.0 / REPLAN_RATE_FACTOR <= ratio <= REPLAN_RATE_FACTOR
        if fn.plan is not None and 4 * gaps.fresh < gaps.count and same_rate:
            return False
        cold = self.cold_s(fn)
        values, weights, censored, longest = gaps.summary(cold)
        fn.plan = choose_window(
            values, weights, censored, cold, kappa, max_keep_s=HORIZON_S, max_warm_from_s=longest
        )
        fn.plan_kappa = kappa
        gaps.fresh = 0
        return True

    # -- observations ----------------------------------------------------------------------
    def observe_arrival(self, pool: Pool, now: float, request_id: str = "") -> None:
        fn = self.state(pool, now)
        fn.recent_arrivals.append(now)
        release = fn.gaps.arrival(now)
        cold = self.cold_s(fn)
        if release is None:  # one more instance, whatever the rule: a cold start for all
            self._add(fn, cold * fn.gb, cold, 0.0, 0.0)
            waits = ((cold, now + cold), (cold, now + cold))
        else:
            if release.launch_at is not None and not release.launched:
                release.cancelled = True
            gap = now - release.at
            ref, ours = _costs(release, gap, cold)
            release.priced = (gap, ref, ours)
            waits = (ref[2], ours[2])
        if request_id:
            if len(fn.lags) > MAX_LAGS:
                fn.lags.clear()
            fn.lags[request_id] = waits
        self._price(fn)

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
            self.prices.wait_s += waited
            at -= waited
        release = fn.last_release = fn.gaps.release(at, self.candidate(fn))
        lags = fn.lags.pop(instance.request_id or "", None)
        if lags is not None:
            release.ref_lag, release.lag = lags
        fn.last_released_instance = instance.instance_id
        self._price(fn)

    def observe_cold_start(self, pool: Pool, create_ms: float, init_ms: float, now: float) -> None:
        fn = self.state(pool, now)
        fn.cold.add((create_ms + init_ms) / 1000.0)
        self.create.add(create_ms / 1000.0)
        self.init.add(init_ms / 1000.0)

    def forget(self, key: str) -> None:
        fn = self.functions.pop(key, None)
        if fn is not None:
            self._move(fn, -1.0)

    # -- keep-alive and pre-warm -----------------------------------------------------------
    def keep_alive_until(self, pool: Pool, instance: Instance, now: float) -> float:
        fn = self.state(pool, now)
        plan = self.window(fn, now)
        release = fn.last_release
        if instance.served == 0 or fn.last_released_instance != instance.instance_id:
            # A spare (started for a request another instance served): kept as a pre-warm
            # of the plan would be, or for the plan's keep.
            if plan.prewarms:
                assert plan.warm_from_s is not None and plan.warm_until_s is not None
                return now + plan.warm_until_s - plan.warm_from_s
            return now + plan.keep_s
        assert release is not None
        fn.last_released_instance = None
        if fn.standing == OPEN and plan is not REFERENCE:
            fn.bet = release
            fn.bet_until = release.at + max(plan.keep_s, plan.warm_until_s or 0.0)
            fn.bet_until += self.cold_s(fn)
        until = max(release.at + plan.keep_s, now)
        if plan.prewarms and not release.cancelled:
            assert plan.warm_from_s is not None and plan.warm_until_s is not None
            margin = 0.001 + 3.0 * fn.cold.dev  # a head start against the cold start's jitter
            launch = release.at + plan.warm_from_s - self.cold_s(fn) - margin
            release.launch_at = max(launch, now)
            release.warm_until = release.at + plan.warm_until_s + margin
            heapq.heappush(fn.pending, (release.launch_at, next(self._seq), release))
            until = min(until, release.launch_at)
        return until

    def expired(self, pool: Pool, now: float) -> Iterable[Instance]:
        """Re-plan (a bounded slice per pass), then scale down idle instances kept longer
        than the plan in force would keep them (pre-warmed ones keep their own deadline)."""
        fn = self.state(pool, now)
        if self._settle(fn, now):
            self._price(fn)
        if now != self._slice_at:
            self._slice_at, self._slice_left = now, REPLAN_SLICE
        if self._slice_left > 0 and self.replan(fn):
            self._slice_left -= 1
        keep = self.candidate(fn).keep_s if self.committed(fn, now) else REFERENCE.keep_s
        return [
            instance
            for instance in pool.idle_instances()
            if not instance.prewarmed
            and instance.keep_until > now
            and now - instance.changed_at > keep
        ]

    def prewarm(self, pool: Pool, now: float) -> Sequence[float]:
        fn = self.state(pool, now)
        orders: list[float] = []
        pending = fn.pending
        while pending and pending[0][0] <= now + EPSILON_S:
            _, _, release = heapq.heappop(pending)
            if not release.cancelled:
                release.launched = True
                orders.append(release.warm_until)
        return orders

    def next_wakeup(self, pool: Pool, now: float) -> float | None:
        fn = self.functions.get(pool.key)
        if fn is None:
            return None
        pending = fn.pending
        while pending and pending[0][2].cancelled:
            heapq.heappop(pending)
        return pending[0][0] if pending else None

    # -- cold starts: only when the instances already there would serve later -------------
    def _note_waiter(self, pool: Pool, fn: FunctionState) -> bool:
        """Remember when the newest waiting request arrived (for its release time); False
        for a re-check (it is already known)."""
        waiter = pool.waiters.newest()
        if waiter is not None:
            if waiter.request_id in fn.waited:
                return False
            if len(fn.waited) > 10_000:  # requests that failed never release: stay bounded
                fn.waited.clear()
            fn.waited[waiter.request_id] = waiter.arrived_at
        return True

    def patience_s(self, pool: Pool, now: float) -> float:
        """What a cold start is worth in waiting (its own wait plus its slot time at the
        current rate): a request waits at most that before it gets one (ski rental)."""
        fn = self.state(pool, now)
        if not self.queue_aware or not self.committed(fn, now):
            return 0.0
        cold = self.cold_s(fn)
        return cold + self.kappa(fn) * cold

    def on_no_idle(self, pool: Pool, now: float) -> ColdStartDecision:
        fn = self.state(pool, now)
        fresh = self._note_waiter(pool, fn)
        if not self.queue_aware or not self.committed(fn, now):
            return super().on_no_idle(pool, now)
        waiting = len(pool.waiters)
        if waiting <= 0:
            return ColdStartDecision(0)
        cold = self.cold_s(fn)
        price = self.kappa(fn) * cold
        arrivals = self.expected_arrivals(fn, now, horizon=cold)
        free = self.free_times(pool, fn, now)
        without, on_busy = self.queue_waits(free, fn, waiting, arrivals, now)
        with_one, _ = self.queue_waits([*free, (now + cold, False)], fn, waiting, arrivals, now)
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
        return ColdStartDecision(0, recheck_after=max(without[waiting - 1], 0.0) + 0.1 * cold)

    def expected_arrivals(self, fn: FunctionState, now: float, horizon: float) -> list[float]:
        """Arrival times expected in ``(now, now + horizon]`` at the function's current rate
        (at most 100: enough to see a queue grow): the rate of its arrivals in the
        ``RATE_WINDOW_COLD_STARTS`` cold starts up to its latest one (over the arrivals kept,
        when all of them are in the window), none unless at least three came in that window
        (a burst under way)."""
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
        return [now + (k + 1) * gap for k in range(min(int(horizon / gap), 100))]

    def free_times(self, pool: Pool, fn: FunctionState, now: float) -> list[tuple[float, bool]]:
        """When each instance of the function can take a request, and whether it is busy now
        (one pass over them, shared by the two queues :meth:`on_no_idle` compares).

        Starting instances are ready after a cold start, busy ones after a pessimistic
        duration (mean plus twice the deviation; one already past it gets as long again).
        """
        cold = self.cold_s(fn)
        slow = self.duration_s(fn) + 2.0 * fn.duration.dev
        free: list[tuple[float, bool]] = []
        for instance in pool.instances.values():
            state = instance.state
            if state in (CREATING, INITING):
                free.append((max(instance.created_at + cold, now), False))
            elif state == BUSY:
                due = instance.changed_at + slow
                free.append((due if due > now else now + slow, True))
            elif state == IDLE:
                free.append((now, True))
        return free

    def queue_waits(
        self,
        free: list[tuple[float, bool]],
        fn: FunctionState,
        waiting: int,
        arrivals: list[float],
        now: float,
    ) -> tuple[list[float], bool]:
        """Waits of the ``waiting`` queued requests, then of requests arriving at
        ``arrivals``, served FIFO by instances free at ``free`` (:meth:`free_times`); and
        whether the last queued request goes to a busy instance. With no instance, a request
        waits forever."""
        if not free:
            return [math.inf] * (waiting + len(arrivals)), False
        duration = self.duration_s(fn)
        free = list(free)
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

"""The default policy's decisions, given synthetic observations (no scheduler, no loop)."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterator

import pytest

from scaler.clock import ManualClock
from scaler.policy import POLICIES, AdaptivePolicy, make_policy
from scaler.policy.adaptive import EARNED, LOST, OPEN, REFERENCE, REPLAN_SLICE, FunctionState
from scaler.policy.observe import Prices, Release
from scaler.policy.reference import ReferencePolicy
from scaler.policy.windows import WindowPlan
from scaler.pool import Registry
from scaler.states import BUSY, IDLE, FunctionSpec, Instance, Journal
from scaler.waiters import Waiter

T0 = 1_700_000_000.0
_ids = itertools.count(1)


class Fixture:
    """A pool of real FSM instances on a manual clock, and the policy under test."""

    def __init__(self, policy: AdaptivePolicy, memory_mb: int = 512) -> None:
        self.policy = policy
        self.clock = ManualClock(T0)
        self.registry = Registry()
        self.pool = self.registry.pool(FunctionSpec("fn", memory_mb))
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def at(self, t: float) -> float:
        self.clock.t = T0 + t
        return self.clock.t

    def instance(self, state: str = IDLE, request: str = "r") -> Instance:
        inst = Instance(f"i{next(_ids)}", self.pool.spec, self.clock, Journal(), self.registry)
        inst.fire("create")
        if state != "creating":
            inst.fire("slot_created", slot_id=f"s-{inst.instance_id}")
            inst.fire("init_succeeded")
        if state == BUSY:
            inst.fire("assign", request=request)
        return inst

    def waiter(self, request_id: str, t: float) -> Waiter:
        waiter = Waiter(request_id, self.pool.key, self.loop.create_future(), T0 + t)
        self.pool.waiters.add(waiter)
        return waiter

    def cycle(self, start: float, duration: float, inst: Instance, skew: float = 0.0) -> None:
        """One warm request: arrival at ``start``, release ``duration`` later; the keep-alive
        is asked ``skew`` seconds after the release was observed (a wall clock moves)."""
        now = self.at(start)
        self.policy.observe_arrival(self.pool, now, f"q{start}")
        inst.fire("assign", request=f"q{start}")
        now = self.at(start + duration)
        self.policy.observe_release(self.pool, inst, int(duration * 1000), now)
        keep_until = self.policy.keep_alive_until(self.pool, inst, now + skew)
        inst.fire("release", request=f"q{start}", keep_until=keep_until)


def at_rate(policy: AdaptivePolicy, kappa_gb: float) -> None:
    """Totals large enough that a test's own cycles do not move them, whose exchange rate is
    ``kappa_gb`` waiting seconds per GB·s: no waiting, and as much idle slot time in the run
    so far as in the modelled baseline ahead (rate ``2Eg·2E / (2Eg + idle)²``)."""
    e, eg = 1e11, 1e9  # execution worth more than slot: rates up to E / Eg = 100 reachable
    idle = math.sqrt(4.0 * e * eg / kappa_gb) - 2.0 * eg
    policy.prices = Prices(execution_s=e, execution_gbs=eg, slot_gbs=eg + idle / 2)
    policy.baseline = [idle / 2, 0.0]


def trust(policy: AdaptivePolicy, key: str = "fn") -> None:
    """Make ``key``'s candidate followed: its record saved, and so does the run ahead."""
    if policy.prices.execution_s < 1e9:  # not yet at a test rate
        at_rate(policy, 0.5)
    fn = policy.functions[key]
    fn.saved = [1.0, 0.0]
    fn.standing = EARNED
    policy.saved_by[EARNED] = [1.0, 0.0]
    assert policy.trusted(fn, T0)


@pytest.fixture
def fx() -> Iterator[Fixture]:
    fixture = Fixture(AdaptivePolicy())
    at_rate(fixture.policy, 3.2)
    yield fixture
    fixture.close()


def timer_cycles(fx: Fixture, count: int) -> Instance:
    """A 30 s timer with 50 ms executions, cold start 149 ms; an expiry pass at each
    release (where plans are recomputed)."""
    fx.policy.observe_cold_start(fx.pool, 100.0, 49.0, fx.at(0.0))
    inst = fx.instance()
    for k in range(count):
        fx.cycle(30.0 * k, 0.05, inst)
        fx.policy.expired(fx.pool, fx.at(30.0 * k + 0.05))
    return inst


def test_a_new_function_keeps_the_five_minute_baseline(fx: Fixture) -> None:
    inst = timer_cycles(fx, 1)
    assert inst.keep_until == pytest.approx(T0 + 0.05 + 300.0)
    assert fx.policy.next_wakeup(fx.pool, fx.at(0.05)) is None


def test_periodic_function_is_destroyed_at_release_and_pre_warmed_once_that_has_paid(
    fx: Fixture,
) -> None:
    policy, pool = fx.policy, fx.pool
    inst = timer_cycles(fx, 20)
    release = 30.0 * 19 + 0.05
    assert policy.functions["fn"].standing == EARNED
    assert policy.trusted(policy.functions["fn"], fx.at(release))
    # Destroyed at release...
    assert inst.keep_until == pytest.approx(T0 + release)
    assert pool.past_deadline(fx.at(release)) == [inst]
    # ...and a fresh instance is started one cold start before the next arrival.
    launch = policy.next_wakeup(pool, fx.at(release))
    assert launch == pytest.approx(T0 + 30.0 * 20 - 0.149, abs=0.005)
    assert len(policy.prewarm(pool, launch - 0.01)) == 0
    orders = policy.prewarm(pool, fx.at(launch - T0))
    # One pre-warm, whose instance is kept just past the latest arrival seen.
    assert len(orders) == 1 and T0 + 600.0 <= orders[0] <= T0 + 600.05


def test_an_early_arrival_cancels_the_pending_pre_warm(fx: Fixture) -> None:
    policy, pool = fx.policy, fx.pool
    inst = timer_cycles(fx, 20)
    inst.fire("expire")
    policy.observe_arrival(pool, fx.at(575.0))  # long before the planned pre-warm
    assert len(policy.prewarm(pool, fx.at(600.0))) == 0


@pytest.mark.parametrize(
    ("gaps", "standing"),
    [
        # Gaps of 100 s, a 0.15 s cold start: re-creating saves 100 s of a 512 MB slot per
        # gap, far more than the cold start's wait it costs.
        ([100.0] * 3, EARNED),
        # One gap of 5 s saves a little more than its cold start's wait costs, but not yet
        # more than the worst it could lose (one cold start).
        ([5.0], OPEN),
        # Gaps of 1 s: the baseline's hits cost 1 s of slot, the candidate's misses a cold
        # start each, a loss at this rate.
        ([1.0] * 50, LOST),
    ],
)
def test_a_functions_standing_is_its_record_against_its_worst_loss(
    gaps: list[float], standing: str
) -> None:
    policy = AdaptivePolicy()
    at_rate(policy, 0.1)
    fn = FunctionState(512, T0)
    fn.cold.add(0.15)
    keep_zero = fn.plan = WindowPlan(keep_s=0.0)
    for gap in gaps:
        fn.gaps.closed.append((Release(T0, keep_zero, REFERENCE), gap))
    policy._price(fn)
    assert fn.standing == standing
    # Alone in the fleet, its record is the fleet's: followed unless it lost.
    assert policy.trusted(fn, T0) is (standing != LOST)
    assert policy.window(fn, T0) == (REFERENCE if standing == LOST else keep_zero)


def _burst(policy: AdaptivePolicy) -> FunctionState:
    """Ten instances of a 512 MB function released at once with a keep-zero candidate."""
    at_rate(policy, 0.1)
    fn = FunctionState(512, T0)
    fn.cold.add(0.15)
    fn.plan = WindowPlan(keep_s=0.0)
    for _ in range(10):
        fn.gaps.release(T0, fn.plan)
    return fn


def _burst_left_behind(policy: AdaptivePolicy, settle_at: tuple[float, ...]) -> FunctionState:
    """:func:`_burst`, none reused for 500 s; the open gaps are settled at ``settle_at``
    seconds, then all close by 520 s."""
    fn = _burst(policy)
    for t in settle_at:
        if policy._settle(fn, T0 + t):
            policy._price(fn)
    for t in (500.0, 505.0, 510.0, 515.0, 516.0, 517.0, 518.0, 519.0, 519.5, 520.0):
        fn.gaps.arrival(T0 + t)
    policy._price(fn)
    return fn


def test_instances_a_burst_left_behind_count_before_any_arrival_reuses_them() -> None:
    """A gap still open is credited with what it must at least save: the function earns
    its candidate long before the five minutes are out, and no arrival is needed."""
    policy = AdaptivePolicy()
    fn = _burst(policy)
    assert not policy._settle(fn, T0 + 0.1)  # the bound is not yet worth a cold start
    assert fn.standing == OPEN
    assert policy._settle(fn, T0 + 60.0)
    policy._price(fn)
    assert fn.standing == EARNED
    # Ten gaps of at least 60 s of a 512 MB slot, at one cold start's wait each.
    assert fn.saved == pytest.approx([10 * (60.0 - 0.15) * 0.5, -10 * 0.15])
    assert not policy._settle(fn, T0 + 61.0)  # credited once per stage, not per pass


def test_a_credited_gap_is_priced_exactly_once_it_closes() -> None:
    """The bound's credit is taken back when the gap closes: the sums are those of
    pricing every gap only at its close, and the last stage's credit was already exact."""
    exact = AdaptivePolicy()
    unsettled = _burst_left_behind(exact, ())
    settled_policy = AdaptivePolicy()
    settled = _burst_left_behind(settled_policy, (60.0, 200.0))
    assert settled.saved == pytest.approx(unsettled.saved)
    assert settled_policy.baseline == pytest.approx(exact.baseline)
    assert settled_policy.saved_all == pytest.approx(exact.saved_all)
    # Past the baseline's five minutes its cost is fixed too: the credit is the price.
    early_policy = AdaptivePolicy()
    early = _burst(early_policy)
    assert early_policy._settle(early, T0 + 301.0)
    assert early.saved == pytest.approx(unsettled.saved)


def test_a_miss_delays_the_reuses_queued_behind_it_until_its_cold_start_is_ready(
    fx: Fixture,
) -> None:
    """The keep-forever matching reuses an instance right after its request ends; under a
    rule that missed, that request ended a cold start later, so the reuses behind it wait
    too, until the cold start (and those the queue started) is ready."""
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 900.0, fx.at(0.0))  # a 1 s cold start
    fn = policy.state(pool, fx.at(0.0))
    fn.plan = WindowPlan(keep_s=0.0)  # the candidate destroys at release
    inst = fx.instance()
    fx.cycle(0.0, 0.05, inst)  # a new instance for both rules
    fx.cycle(10.0, 0.05, inst)  # the baseline hits; the candidate waits its 1 s cold start
    fx.cycle(10.1, 0.05, inst)  # queued behind it: 0.95 s more under the candidate
    assert fn.saved[1] == pytest.approx(-(1.0 + 0.95))
    fx.cycle(12.0, 0.05, inst)  # after the cold start is ready: a plain miss again
    assert fn.saved[1] == pytest.approx(-(1.0 + 0.95 + 1.0))


def test_an_open_function_follows_the_fleets_record_one_release_at_a_time(fx: Fixture) -> None:
    """A function with a thin record follows its candidate only while the candidates of
    all functions would have paid, and with at most one release at stake at a time."""
    policy, pool = fx.policy, fx.pool
    fn = policy.state(pool, fx.at(0.0))
    assert fn.standing == OPEN
    policy.baseline = [1000.0, 1.0]
    policy.saved_all = [-100.0, -1.0]  # the fleet's candidates lost: the baseline for all
    assert not policy.trusted(fn, fx.at(1.0))
    policy.saved_all = [500.0, -0.01]  # they paid: an open function follows...
    assert policy.trusted(fn, fx.at(2.0))
    inst = fx.instance()
    fx.cycle(2.0, 0.01, inst)
    # ...one release at a time: the next waits for that one's gap to be priced...
    assert fn.bet is not None
    assert not policy.trusted(fn, fx.at(3.0))
    # ...and stakes nothing else: no scale-down of instances kept on the baseline, no
    # queue-aware waits (those are for functions that earned their candidate).
    assert not policy.committed(fn, fx.at(3.0))
    assert policy.patience_s(pool, fx.at(3.0)) == 0.0
    # Once the bet's instance has played its plan out, what it could lose is settled even
    # if its gap is priced much later (a release deep in the gap stack): it follows again.
    assert policy.trusted(fn, fn.bet_until + 0.001)
    assert fn.bet is None


def test_a_losing_function_keeps_the_baseline_while_the_fleet_pays(fx: Fixture) -> None:
    policy, pool = fx.policy, fx.pool
    fn = policy.state(pool, fx.at(0.0))
    policy.baseline = [1000.0, 1.0]
    policy.saved_all = [500.0, -0.01]
    policy._move(fn, -1.0)
    fn.standing = LOST
    assert not policy.trusted(fn, fx.at(1.0))
    assert policy.window(fn, fx.at(1.0)) == REFERENCE


def test_the_fleets_verdict_moves_with_a_gap_priced_in_the_same_instant(fx: Fixture) -> None:
    """Verdicts are shared by one instant's decisions only until the sums move."""
    policy, pool = fx.policy, fx.pool
    fn = policy.state(pool, fx.at(0.0))
    fn.cold.add(0.15)
    policy.baseline = [1000.0, 1.0]
    policy.saved_all = [500.0, -0.01]
    now = fx.at(1.0)
    assert policy.trusted(fn, now)
    # At the same instant, a gap whose candidate cost the whole saving and more waiting:
    plan = WindowPlan(keep_s=0.0)
    other = FunctionState(512, now)
    other.cold.add(50.0)
    other.gaps.closed.append((Release(now, plan), 10.0))
    policy.saved_all = [-1000.0, -100.0]
    policy._price(other)
    assert not policy.trusted(fn, now)


def test_the_rate_is_taken_where_the_candidates_lead_only_if_that_scores_better() -> None:
    policy = AdaptivePolicy()
    policy.prices = Prices(execution_s=100.0, execution_gbs=100.0, slot_gbs=1100.0, wait_s=10.0)
    policy.baseline = [1000.0, 10.0]
    prices = policy.prices
    here = prices.kappa_gb(*prices.ahead(1000.0, 10.0), runs=2.0)
    assert policy.kappa_gb() == pytest.approx(here)
    # The candidates would have saved 500 GB·s for 1 s more waiting: a better score ahead,
    # and a higher rate there (slot is dearer where there is less of it).
    policy.saved_all = [500.0, -1.0]
    lead = prices.kappa_gb(*prices.ahead(500.0, 11.0), runs=2.0)
    assert policy.kappa_gb() == pytest.approx(lead) and lead > here
    # For 60 s more waiting instead: a worse score, so the rate stays on the baseline's.
    policy.saved_all = [500.0, -60.0]
    assert policy.kappa_gb() == pytest.approx(here)


def test_trusted_candidates_are_followed_only_while_the_run_ahead_scores_better() -> None:
    """Convexity: one function's saving of slot time can be worth less than the waiting it
    costs when the others keep the slot half low; the exact score ahead decides."""
    policy = AdaptivePolicy()
    policy.prices = Prices(execution_s=100.0, execution_gbs=100.0, slot_gbs=1100.0, wait_s=1.0)
    policy.baseline = [1000.0, 1.0]
    fn = FunctionState(1024, T0)
    fn.standing = EARNED
    # A tenth of the idle slot time for 0.5 s of waiting:
    policy.saved_by[EARNED] = [100.0, -0.5]
    assert policy.trusted(fn, T0)
    policy.saved_by[EARNED] = [10.0, -0.5]  # a hundredth: not worth it
    assert not policy.trusted(fn, T0 + 1.0)


def test_plans_are_recomputed_in_bounded_slices_off_the_request_path() -> None:
    policy = AdaptivePolicy()
    at_rate(policy, 3.2)
    registry = Registry()
    pools = [registry.pool(FunctionSpec(f"fn{i}", 256)) for i in range(REPLAN_SLICE + 3)]
    for pool in pools:
        policy.observe_release(pool, _idle(registry, pool), 10, T0)
        policy.observe_arrival(pool, T0 + 1.0)
    assert all(fn.plan is None for fn in policy.functions.values())  # Idle did not plan
    for pool in pools:  # one expiry pass
        policy.expired(pool, T0 + 2.0)
    assert sum(fn.plan is not None for fn in policy.functions.values()) == REPLAN_SLICE
    for pool in pools:  # the next pass does the rest
        policy.expired(pool, T0 + 32.0)
    assert all(fn.plan is not None for fn in policy.functions.values())


def _idle(registry: Registry, pool: object) -> Instance:
    spec = pool.spec  # type: ignore[attr-defined]
    inst = Instance(f"i{next(_ids)}", spec, ManualClock(T0), Journal(), registry)
    inst.fire("create")
    inst.fire("slot_created", slot_id=f"s-{inst.instance_id}")
    inst.fire("init_succeeded")
    return inst


@pytest.mark.parametrize(
    ("setup", "start"),
    [
        # Nothing exists: the request needs a cold start.
        ("empty", 1),
        # One busy instance of a 12 ms function whose cold start takes 3.8 s: wait for it.
        ("busy-short", 0),
        # Busy for 200 s more: a cold start serves sooner.
        ("busy-long", 1),
        # A cold start already on its way for this request: nothing more.
        ("starting", 0),
    ],
)
def test_queue_aware_cold_starts(setup: str, start: int) -> None:
    fx = Fixture(AdaptivePolicy(), memory_mb=4096)
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 3700.0, fx.at(0.0))
    duration = 200.0 if setup == "busy-long" else 0.012
    policy.observe_release(pool, fx.instance(), int(duration * 1000), fx.at(0.5))
    trust(policy)
    for inst in list(pool.instances.values()):
        inst.fire("expire")
        inst.fire("destroyed")
    if setup.startswith("busy"):
        fx.at(1.0)
        fx.instance(BUSY)
    if setup == "starting":
        fx.at(1.0)
        fx.instance("creating")
    fx.waiter("w1", 1.0)
    decision = policy.on_no_idle(pool, fx.at(1.001))
    assert decision.start == start
    if start == 0:
        assert decision.recheck_after is not None
    fx.close()


def test_a_request_stuck_behind_a_busy_instance_waits_at_most_what_a_cold_start_is_worth() -> None:
    """A 12 ms function whose only instance stays busy (a client that never calls Idle): the
    estimates keep saying "it frees in a moment", so the policy re-checks; the scheduler
    gives the request a cold start once it has waited the policy's patience, what a cold
    start is worth (its own wait plus its slot time at the current rate)."""
    fx = Fixture(AdaptivePolicy(), memory_mb=4096)
    policy, pool = fx.policy, fx.pool
    at_rate(policy, 0.5)
    policy.observe_cold_start(pool, 100.0, 3700.0, fx.at(0.0))
    policy.observe_release(pool, fx.instance(), 12, fx.at(0.5))
    trust(policy)
    for inst in list(pool.instances.values()):
        inst.fire("expire")
        inst.fire("destroyed")
    fx.at(1.0)
    fx.instance(BUSY)
    fx.waiter("w1", 1.0)
    decision = policy.on_no_idle(pool, fx.at(1.001))
    assert decision.start == 0 and decision.recheck_after is not None
    assert policy.patience_s(pool, fx.at(1.001)) == pytest.approx(3.8 * (1.0 + 0.5 * 4.0))
    fx.close()


@pytest.mark.parametrize(
    ("arrivals", "expected"),
    [
        # Nothing seen yet, or too little to call it a burst: nothing expected.
        ([], []),
        ([0.0, 0.05], []),
        # Four arrivals 50 ms apart with a 100 ms cold start (window 0.2 s): three gaps in
        # the window, so one every 0.2 / 3 s; one fits in the next cold start.
        ([0.0, 0.05, 0.1, 0.15], [0.2 / 3]),
        # The same burst after an hour of quiet: the quiet does not dilute the rate.
        ([-3600.0, 0.0, 0.05, 0.1, 0.15], [0.2 / 3]),
        # Arrivals a second apart are not a burst at this cold start.
        ([-3.0, -2.0, -1.0, 0.0], []),
        # Twenty arrivals 10 ms apart: nineteen gaps in the 0.2 s window, nine in the next
        # cold start (a rate over the window, not over the burst's own span).
        ([k * 0.01 for k in range(20)], [k * 0.2 / 19 for k in range(1, 10)]),
        # 200 arrivals 1 ms apart: the 64 kept span 63 ms of the window, so the rate is
        # theirs, one per ms, and the list stops at 100.
        ([k * 0.001 for k in range(200)], [k * 0.001 for k in range(1, 101)]),
    ],
)
def test_arrivals_expected_during_a_cold_start_come_at_the_current_bursts_rate(
    arrivals: list[float], expected: list[float]
) -> None:
    fx = Fixture(AdaptivePolicy())
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 0.0, fx.at(-7200.0))
    for t in arrivals:
        policy.observe_arrival(pool, fx.at(t))
    now = fx.at(arrivals[-1] if arrivals else 0.0)
    fn = policy.functions["fn"]
    got = policy.expected_arrivals(fn, now, horizon=policy.cold_s(fn))
    # Epoch-second clocks: microsecond round-off.
    assert [t - now for t in got] == pytest.approx(expected, abs=1e-6)
    fx.close()


def test_expected_arrivals_keep_the_bursts_rate_from_a_recheck_and_over_any_horizon() -> None:
    fx = Fixture(AdaptivePolicy())
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 0.0, fx.at(-7200.0))
    for t in (0.0, 0.05, 0.1, 0.15):
        policy.observe_arrival(pool, fx.at(t))
    fn = policy.functions["fn"]
    gap = 0.2 / 3
    # Asked again 30 ms after the latest arrival (a re-check): the same rate, from now on.
    now = fx.at(0.18)
    got = policy.expected_arrivals(fn, now, horizon=0.3)
    assert [t - now for t in got] == pytest.approx([k * gap for k in (1, 2, 3, 4)], abs=1e-6)
    # An arrival exactly one window (two 250 ms cold starts) back still counts.
    fx2 = Fixture(AdaptivePolicy())
    fx2.policy.observe_cold_start(fx2.pool, 250.0, 0.0, fx2.at(-7200.0))
    for t in (0.0, 0.25, 0.5):  # exact in binary, so the boundary is exact
        fx2.policy.observe_arrival(fx2.pool, fx2.at(t))
    fn2 = fx2.policy.functions["fn"]
    assert len(fx2.policy.expected_arrivals(fn2, fx2.at(0.5), horizon=1.0)) == 4
    fx.close()
    fx2.close()


def test_an_untrusted_function_gets_the_baselines_cold_starts() -> None:
    """Before its record shows a gain, a function is served as the sample scaler serves it:
    one cold start per waiting request, at once, even with a busy instance about to free."""
    fx = Fixture(AdaptivePolicy(), memory_mb=4096)
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 3700.0, fx.at(0.0))
    policy.observe_release(pool, fx.instance(), 12, fx.at(0.5))
    fx.instance(BUSY)
    fx.waiter("w1", 1.0)
    assert policy.on_no_idle(pool, fx.at(1.001)).start == 1
    assert policy.patience_s(pool, fx.at(1.001)) == 0.0
    fx.close()


def test_one_cold_start_per_waiter_without_queue_awareness() -> None:
    policy = AdaptivePolicy()
    policy.queue_aware = False
    fx = Fixture(policy, memory_mb=4096)
    fx.instance(BUSY)
    fx.waiter("w1", 0.0)
    assert fx.policy.on_no_idle(fx.pool, fx.at(0.0)).start == 1
    assert fx.policy.patience_s(fx.pool, fx.at(0.0)) == 0.0
    fx.close()


def test_registry_and_default() -> None:
    assert set(POLICIES) == {"reference", "hybrid", "adaptive"}
    assert make_policy().name == "adaptive"
    with pytest.raises(ValueError, match=r"unknown policy 'adaptive@0\.05'"):
        make_policy("adaptive@0.05")  # bench variants are not production policies


def test_reference_is_unchanged() -> None:
    policy = make_policy("reference")
    assert isinstance(policy, ReferencePolicy)
    assert policy.keep_alive_s == 300.0 and policy.gc_interval_s == 10.0
    pool = Registry().pool(FunctionSpec("fn", 128))
    assert policy.next_wakeup(pool, T0) is None
    assert len(policy.prewarm(pool, T0)) == 0


def test_a_replay_raises_nothing_the_guard_would_hide() -> None:
    """The scheduler contains policy exceptions (falling back to the baseline), so a bug
    would only show as a worse score: a replay must log no policy failure."""
    from loguru import logger

    from simulator.fast import run_fast
    from simulator.workload import generate_workload

    failures: list[str] = []
    sink = logger.add(lambda m: failures.append(str(m)), level="ERROR")
    try:
        policy = AdaptivePolicy()
        run = run_fast(generate_workload(seed=1, duration_s=600, functions=8), policy)
    finally:
        logger.remove(sink)
    assert not [m for m in failures if "policy adaptive failed" in m]
    assert run.totals.failed_requests == 0
    assert any(fn.standing == EARNED for fn in policy.functions.values())

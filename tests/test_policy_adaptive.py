"""The default policy's decisions, given synthetic observations (no scheduler, no loop)."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterator

import attrs
import pytest

from scaler.clock import ManualClock
from scaler.policy import (
    POLICIES,
    AdaptivePolicy,
    Components,
    ablation_name,
    grid_index,
    make_policy,
    rate_name,
)
from scaler.policy.adaptive import FIXED_INDEX, KAPPA_GRID
from scaler.policy.reference import ReferencePolicy
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
        self.policy.observe_arrival(self.pool, now)
        inst.fire("assign", request=f"q{start}")
        now = self.at(start + duration)
        self.policy.observe_release(self.pool, inst, int(duration * 1000), now)
        keep_until = self.policy.keep_alive_until(self.pool, inst, now + skew)
        inst.fire("release", request=f"q{start}", keep_until=keep_until)


@pytest.fixture
def fx() -> Iterator[Fixture]:
    fixture = Fixture(AdaptivePolicy(Components(online_prices=False)))
    yield fixture
    fixture.close()


def test_periodic_function_is_destroyed_at_release_and_pre_warmed_just_in_time(
    fx: Fixture,
) -> None:
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 49.0, fx.at(0.0))  # cold start: 149 ms
    inst = fx.instance()
    for k in range(20):  # a 30 s timer, 50 ms executions
        fx.cycle(30.0 * k, 0.05, inst)
    release = 30.0 * 19 + 0.05
    # Kept no longer than it takes to plan: destroyed at release...
    assert inst.keep_until == pytest.approx(T0 + release)
    assert pool.past_deadline(fx.at(release)) == [inst]
    # ...and a fresh instance is started one cold start before the next arrival.
    launch = policy.next_wakeup(pool, fx.at(release))
    assert launch == pytest.approx(T0 + 30.0 * 20 - 0.149, abs=0.005)
    assert len(policy.prewarm(pool, launch - 0.01)) == 0
    orders = policy.prewarm(pool, fx.at(launch - T0))
    # One pre-warm, whose instance is kept just past the latest arrival seen.
    assert len(orders) == 1 and T0 + 600.0 <= orders[0] <= T0 + 600.05


@pytest.mark.parametrize("skew", [0.0, 3e-6, 0.002])
def test_pre_warm_is_planned_however_far_the_clock_moved_since_the_release(
    fx: Fixture, skew: float
) -> None:
    """On a wall clock the release and the keep-alive question are read microseconds apart;
    the pre-warm plan must not depend on the two readings being equal (it did, and the
    default policy never pre-warmed over the wire)."""
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 49.0, fx.at(0.0))
    inst = fx.instance()
    for k in range(20):
        fx.cycle(30.0 * k, 0.05, inst, skew=skew)
    now = fx.at(30.0 * 19 + 0.05 + skew)
    assert pool.past_deadline(now) == [inst]  # destroyed at release...
    launch = policy.next_wakeup(pool, now)  # ...and re-created just in time
    assert launch == pytest.approx(T0 + 30.0 * 20 - 0.149, abs=0.005)


def test_an_early_arrival_cancels_the_pending_pre_warm(fx: Fixture) -> None:
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 49.0, fx.at(0.0))
    inst = fx.instance()
    for k in range(20):
        fx.cycle(30.0 * k, 0.05, inst)
    policy.expired(pool, fx.at(570.05))
    inst.fire("expire")
    policy.observe_arrival(pool, fx.at(575.0))  # long before the planned pre-warm
    assert len(policy.prewarm(pool, fx.at(600.0))) == 0


@pytest.mark.parametrize(
    ("gap", "kappa_index", "kept_for_the_gap"),
    [
        # Gaps of 2 s: cheap slot keeps the instance; dear slot does not wait 2 s for it.
        (2.0, 0, True),
        (2.0, 8, False),
        # Gaps of 20 ms: kept whatever the price (a cold start costs far more).
        (0.02, 8, True),
    ],
)
def test_cost_aware_keep_alive(gap: float, kappa_index: int, kept_for_the_gap: bool) -> None:
    components = Components(online_prices=False, prewarm=False)
    fx = Fixture(AdaptivePolicy(components, fixed_index=kappa_index), memory_mb=2048)
    fx.policy.observe_cold_start(fx.pool, 100.0, 100.0, fx.at(0.0))
    inst = fx.instance()
    t = 0.0
    for _ in range(50):
        fx.cycle(t, 0.01, inst)
        t += 0.01 + gap
    kept = inst.keep_until - (T0 + t - gap)
    assert (kept >= gap) is kept_for_the_gap, kept
    fx.close()


def test_a_function_that_goes_quiet_is_released(fx: Fixture) -> None:
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 400.0, fx.at(0.0))
    inst = fx.instance()
    for k in range(40):  # a request every 100 ms, then nothing
        fx.cycle(0.1 * k, 0.02, inst)
    deadline = pool.next_deadline()
    assert deadline is not None and deadline < fx.clock.t + 600.0
    assert pool.past_deadline(deadline - 0.001) == []
    assert pool.past_deadline(deadline) == [inst]
    inst.fire("expire")
    inst.fire("destroyed")
    assert pool.next_deadline() is None and policy.next_wakeup(pool, deadline) is None


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


def test_a_request_stuck_behind_a_busy_instance_gets_a_cold_start_in_time() -> None:
    """A 12 ms function whose only instance stays busy (a client that never calls Idle): the
    estimates keep saying "it frees in a moment", but the waiting request is given a cold
    start once it has waited what one is worth, and the re-checks come in time for that."""
    fx = Fixture(AdaptivePolicy(), memory_mb=4096)
    policy, pool = fx.policy, fx.pool
    policy.observe_cold_start(pool, 100.0, 3700.0, fx.at(0.0))
    policy.observe_release(pool, fx.instance(), 12, fx.at(0.5))
    for inst in list(pool.instances.values()):
        inst.fire("expire")
        inst.fire("destroyed")
    fx.at(1.0)
    fx.instance(BUSY)
    fx.waiter("w1", 1.0)
    t = 1.001
    decision = policy.on_no_idle(pool, fx.at(t))
    assert decision.start == 0  # a 12 ms request frees long before a 3.8 s cold start
    for _ in range(10_000):
        if decision.start:
            break
        assert decision.recheck_after is not None
        t += decision.recheck_after
        decision = policy.on_no_idle(pool, fx.at(t))
    assert decision.start == 1
    patience = 3.8 * (1.0 + policy.kappa(policy.functions["fn"], fx.at(t)))
    assert patience <= t - 1.0 <= patience + 0.01
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


def test_one_cold_start_per_waiter_without_queue_awareness() -> None:
    fx = Fixture(AdaptivePolicy(Components(queue_aware=False)), memory_mb=4096)
    fx.instance(BUSY)
    fx.waiter("w1", 0.0)
    assert fx.policy.on_no_idle(fx.pool, fx.at(0.0)).start == 1
    fx.close()


def test_the_rate_moves_one_step_towards_the_best_counterfactual() -> None:
    policy = AdaptivePolicy()
    policy.prices.execution_s = 100.0
    policy.prices.execution_gbs = 50.0
    start = policy.kappa_index
    # The ledger says the cheapest slot rate (the longest keeps) would have scored best:
    # waiting is what costs there.
    policy._ledger_wait = [100.0 * i for i in range(len(KAPPA_GRID))]
    assert policy.select_rate(T0) == start - 1
    assert policy.select_rate(T0 + 1.0) == start - 1  # at most once per period
    assert policy.select_rate(T0 + policy.select_every_s) == start - 2
    # And back up, one step a period, once the dearest rate leads.
    policy._ledger_wait = [0.0] * len(KAPPA_GRID)
    policy._ledger_slot = [1000.0 - 100.0 * i for i in range(len(KAPPA_GRID))]
    assert policy.select_rate(T0 + 2 * policy.select_every_s) == start - 1


def test_the_rate_starts_where_most_traces_end_up() -> None:
    # 3.2 waiting s per GB·s: the best fixed rate on dataSet_3r (whole-run gaps), Azure and
    # the built-in workload (docs/policies.md); a trace that wants less walks down.
    assert KAPPA_GRID[AdaptivePolicy().kappa_index] == pytest.approx(3.2)


def test_queue_wait_is_the_residual_of_the_first_busy_instance_to_free() -> None:
    fx = Fixture(AdaptivePolicy())
    policy = fx.policy
    fn = policy.state(fx.pool, fx.at(0.0))
    fn.duration.add(0.03)
    assert policy.queue_wait_s(fx.pool, fn) == math.inf  # nothing busy
    fx.instance(BUSY)
    assert policy.queue_wait_s(fx.pool, fn) == pytest.approx(0.015)
    fx.instance(BUSY, request="r2")
    assert policy.queue_wait_s(fx.pool, fn) == pytest.approx(0.01)
    fx.close()


@pytest.mark.parametrize("busy", [False, True])
def test_the_ledger_prices_a_miss_as_the_scheduler_serves_it(busy: bool) -> None:
    """A request that needs one more instance while a busy one frees in 15 ms queues (15 ms
    of waiting, no slot) under every rate; with nothing busy it is a cold start."""
    fx = Fixture(AdaptivePolicy(), memory_mb=1024)
    policy = fx.policy
    fn = policy.state(fx.pool, fx.at(0.0))
    fn.duration.add(0.03)
    fn.cold.add(0.2)
    if busy:
        fx.instance(BUSY)
    policy.observe_arrival(fx.pool, fx.at(0.01))
    policy._account(fn)
    expected_wait = 0.015 if busy else 0.2
    expected_slot = 0.0 if busy else 0.2
    assert policy._ledger_wait == [pytest.approx(expected_wait)] * len(KAPPA_GRID)
    assert policy._ledger_slot == [pytest.approx(expected_slot)] * len(KAPPA_GRID)
    fx.close()


def test_the_ledger_queues_where_slot_time_is_dear_and_starts_where_it_is_cheap() -> None:
    """A 256 MB function whose cold start (0.2 s) is a little shorter than the queue (0.25 s):
    at cheap rates the ledger pays the cold start (slot 0.2 s x 0.25 GB), at dear ones the
    queue; the crossing is where 0.2 + kappa x 0.25 x 0.2 passes 0.25 (kappa = 1)."""
    fx = Fixture(AdaptivePolicy(), memory_mb=256)
    policy = fx.policy
    fn = policy.state(fx.pool, fx.at(0.0))
    fn.duration.add(0.5)
    fn.cold.add(0.2)
    fx.instance(BUSY)
    policy.observe_arrival(fx.pool, fx.at(0.01))
    policy._account(fn)
    for rate, slot, wait in zip(KAPPA_GRID, policy._ledger_slot, policy._ledger_wait, strict=True):
        if rate < 1.0:
            assert (slot, wait) == (pytest.approx(0.2 * 0.25), pytest.approx(0.2))
        else:
            assert (slot, wait) == (0.0, pytest.approx(0.25))
    fx.close()


@pytest.mark.parametrize(
    ("leads", "moves"),
    [
        ({}, False),  # a tie: stay
        ({-1: 0.3}, False),  # the neighbour leads by less than the tolerance: stay
        ({-1: 0.8}, True),  # by more: one step towards it
        ({-3: 0.8}, False),  # a rate further away leads, but the way there is no better
        ({-3: 2.5}, True),  # ... unless it leads by more than the far tolerance
        ({-3: 0.8, -1: 0.1}, True),  # ... or the way there is better too
        ({-3: 0.8, -1: -0.5}, False),
    ],
)
def test_the_rate_moves_only_for_a_clear_lead(leads: dict[int, float], moves: bool) -> None:
    policy = AdaptivePolicy()
    policy.prices.execution_s = 100.0
    policy.prices.execution_gbs = 50.0
    start = policy.kappa_index
    policy.counterfactual_scores = lambda: [  # type: ignore[method-assign]
        60.0 + leads.get(i - start, 0.0) for i in range(len(KAPPA_GRID))
    ]
    assert (policy.tolerance, policy.far_tolerance) == (0.5, 2.0)
    assert policy.select_rate(T0) == (start - 1 if moves else start)


def test_fixed_rate_without_online_prices() -> None:
    policy = AdaptivePolicy(Components(online_prices=False))
    policy.prices.execution_s = 100.0
    policy.prices.execution_gbs = 50.0
    policy._ledger_slot = [1000.0 - 100.0 * i for i in range(len(KAPPA_GRID))]
    assert policy.select_rate(T0) == FIXED_INDEX
    assert AdaptivePolicy(Components(online_prices=False), fixed_index=2).select_rate(T0) == 2


def test_registry_default_and_ablation_names() -> None:
    assert {"reference", "hybrid", "adaptive"} <= set(POLICIES)
    assert make_policy().name == "adaptive"
    ablated = make_policy(ablation_name("prewarm", "queue_aware"))
    assert isinstance(ablated, AdaptivePolicy)
    assert ablated.components == attrs.evolve(Components(), prewarm=False, queue_aware=False)
    added = make_policy(ablation_name("miss_cost"))
    assert added.name == "adaptive-with-miss_cost" and added.components.miss_cost
    with pytest.raises(ValueError, match="unknown component"):
        make_policy("adaptive-without-telepathy")
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("nope")


@pytest.mark.parametrize(
    ("name", "index"),
    [("adaptive@0.0002", 0), ("adaptive@0.00078", 1), ("adaptive@0.05", 4), ("adaptive@13", 8)],
)
def test_fixed_rate_names(name: str, index: int) -> None:
    policy = make_policy(name)
    assert isinstance(policy, AdaptivePolicy) and policy.name == name
    assert not policy.components.online_prices and policy.select_rate(T0) == index
    assert rate_name(index) == name and grid_index(KAPPA_GRID[index] * 1.2) == index


def test_fixed_rate_names_have_one_spelling_per_grid_point() -> None:
    assert make_policy("adaptive@12.8").name == make_policy("adaptive@13").name == "adaptive@13"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("adaptive@0.1", "'adaptive@0.1': exchange rate 0.1 is not within a factor 1.3"),
        ("adaptive@-0.05", "not within a factor"),
        ("adaptive@inf", "not within a factor"),
        ("adaptive@fast", "'fast' is not a number"),
        ("adaptive@", "no rate given"),
    ],
)
def test_fixed_rate_names_off_the_grid_are_refused(name: str, message: str) -> None:
    """The message names the policy and why (tests match part of it)."""
    with pytest.raises(ValueError, match=message):
        make_policy(name)


def test_reference_is_unchanged() -> None:
    policy = make_policy("reference")
    assert isinstance(policy, ReferencePolicy)
    assert policy.keep_alive_s == 300.0 and policy.gc_interval_s == 10.0
    pool = Registry().pool(FunctionSpec("fn", 128))
    assert policy.next_wakeup(pool, T0) is None
    assert len(policy.prewarm(pool, T0)) == 0

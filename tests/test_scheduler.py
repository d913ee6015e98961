"""Scheduler behaviour against an in-process fake platform (no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from scaler.answers import InvalidArgument, InvalidAssignment, NotFound, RunResult, Unavailable
from scaler.clock import LoopClock
from scaler.policy import Policy, make_policy
from scaler.policy.reference import ReferencePolicy
from scaler.scheduler import Scheduler
from scaler.settings import SchedulerSettings
from scaler.states import BUSY, IDLE, FunctionSpec, Journal, TransitionRecord
from tests.fakes import FakePlatform

FN = FunctionSpec("fn", 256)
OTHER = FunctionSpec("other", 128)
OK = RunResult(200, 10)


class ShortKeep(ReferencePolicy):
    keep_alive_s = 0.05


def make(
    platform: FakePlatform | None = None,
    journal: Journal | None = None,
    settings: SchedulerSettings | None = None,
    policy: Policy | None = None,
) -> Scheduler:
    return Scheduler(
        platform or FakePlatform(),
        policy or make_policy("reference"),
        LoopClock(),
        journal or Journal(),
        settings,
    )


async def settle(scheduler: Scheduler) -> None:
    """Wait for every platform call (destroys) the scheduler's instances still run."""
    while scheduler.actuator.tasks:
        await asyncio.wait(list(scheduler.actuator.tasks))


async def test_cold_start_then_warm_hit_reuses_the_instance() -> None:
    platform = FakePlatform()
    s = make(platform)
    first = await s.assign("r1", FN)
    assert first.cold and platform.created == ["slot-1"]
    await s.idle("r1", "fn", first.instance_id, OK)
    second = await s.assign("r2", FN)
    assert not second.cold and second.instance_id == first.instance_id
    assert platform.created == ["slot-1"]
    assert s.stats == {"cold_starts": 1, "warm_hits": 1, "cold_start_failures": 0}


async def test_a_thousand_concurrent_assigns_get_distinct_instances() -> None:
    platform = FakePlatform()
    s = make(platform)
    answers = await asyncio.gather(*(s.assign(f"r{i}", FN) for i in range(1000)))
    ids = [a.instance_id for a in answers]
    assert len(set(ids)) == 1000
    assert all(s.instances[i].state == BUSY for i in ids)
    # Every assigned instance runs on its own initialised slot of the right function.
    assert all(platform.live_instance(i).key == "fn" for i in ids)
    await asyncio.gather(*(s.idle(a.request_id, "fn", a.instance_id, OK) for a in answers))
    again = await asyncio.gather(*(s.assign(f"q{i}", FN) for i in range(1000)))
    assert {a.instance_id for a in again} == set(ids)
    assert not any(a.cold for a in again) and len(platform.created) == 1000


async def test_retried_assign_returns_the_same_instance() -> None:
    platform = FakePlatform()
    platform.gate = asyncio.Event()
    s = make(platform)
    pending = [asyncio.ensure_future(s.assign("r1", FN)) for _ in range(3)]
    await asyncio.sleep(0)
    platform.gate.set()
    answers = await asyncio.gather(*pending)
    assert len({a.instance_id for a in answers}) == 1
    again = await s.assign("r1", FN)
    assert again.instance_id == answers[0].instance_id
    assert len(platform.created) == 1


async def test_assign_for_a_finished_request_id_is_refused() -> None:
    s = make()
    a = await s.assign("r1", FN)
    await s.idle("r1", "fn", a.instance_id, OK)
    with pytest.raises(InvalidArgument, match="already finished"):
        await s.assign("r1", FN)


async def test_retried_assign_with_another_function_is_refused() -> None:
    s = make()
    await s.assign("r1", FN)
    with pytest.raises(InvalidArgument, match="already assigned"):
        await s.assign("r1", OTHER)


def snapshot(s: Scheduler) -> tuple:
    return (
        {i: (x.state, x.request_id) for i, x in s.instances.items()},
        {r: i.instance_id for r, i in s.registry.serving.items()},
    )


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("unknown instance", NotFound, "does not exist"),
        ("other function", InvalidAssignment, "belongs to function fn"),
        ("other request", InvalidAssignment, "is not serving request"),
        ("second idle", InvalidAssignment, "already released"),
        ("idle after delete", InvalidAssignment, "already released"),
        ("idle instance", InvalidAssignment, "it is idle"),
    ],
)
async def test_bad_idle_is_refused_and_changes_nothing(case, error, message) -> None:
    s = make()
    a = await s.assign("r1", FN)
    b = await s.assign("r2", FN)
    args = {
        "unknown instance": ("r1", "fn", "nope"),
        "other function": ("r1", "other", a.instance_id),
        "other request": ("r2", "fn", a.instance_id),
        "second idle": ("r1", "fn", a.instance_id),
        "idle after delete": ("r2", "fn", b.instance_id),
        "idle instance": ("zz", "fn", a.instance_id),
    }[case]
    if case in ("second idle", "idle instance"):
        await s.idle("r1", "fn", a.instance_id, OK)
    if case == "idle after delete":
        await s.idle("r2", "fn", b.instance_id, RunResult(500, 1, need_destroy=True))
        await settle(s)
    before = snapshot(s)
    with pytest.raises(error, match=message):
        await s.idle(*args, OK)
    assert snapshot(s) == before


async def test_need_destroy_retires_and_destroys_the_slot() -> None:
    platform = FakePlatform()
    s = make(platform)
    a = await s.assign("r1", FN)
    await s.idle("r1", "fn", a.instance_id, RunResult(500, 3, need_destroy=True, reason="crash"))
    await settle(s)
    assert platform.destroyed == ["slot-1"] and not platform.slots
    assert a.instance_id not in s.instances
    nxt = await s.assign("r2", FN)
    assert nxt.cold and nxt.instance_id != a.instance_id


async def test_refused_create_is_retried_then_reported() -> None:
    platform = FakePlatform()
    platform.fail["create"] = 2
    s = make(platform)
    a = await s.assign("r1", FN)
    assert a.cold and len(platform.created) == 1
    platform.fail["create"] = 3
    with pytest.raises(Unavailable, match="cold start failed: CreateSlot failed"):
        await s.assign("r2", FN)
    assert s.stats["cold_start_failures"] == 5
    assert len(platform.slots) == 1  # only r1's slot; nothing leaked


async def test_unanswered_create_fails_fast_without_retry() -> None:
    platform = FakePlatform()
    platform.unanswered = 1
    s = make(platform)
    with pytest.raises(Unavailable, match="deadline"):
        await s.assign("r1", FN)
    assert s.stats["cold_start_failures"] == 1 and not platform.created


async def test_failed_init_destroys_its_slot_and_retries() -> None:
    platform = FakePlatform()
    platform.fail["init"] = 1
    s = make(platform)
    a = await s.assign("r1", FN)
    await settle(s)
    assert platform.created == ["slot-1", "slot-2"] and platform.destroyed == ["slot-1"]
    assert platform.live_instance(a.instance_id).id == "slot-2"


async def test_failed_init_thrice_answers_internal_error_and_leaks_nothing() -> None:
    platform = FakePlatform()
    platform.fail["init"] = 3
    s = make(platform)
    with pytest.raises(Unavailable, match="Init failed"):
        await s.assign("r1", FN)
    await settle(s)
    assert not platform.slots and len(platform.destroyed) == 3
    assert not s.instances


async def test_destroy_failures_are_retried_until_the_slot_is_gone() -> None:
    platform = FakePlatform()
    records: list[TransitionRecord] = []
    journal = Journal()
    journal.attach(records.append)
    s = make(
        platform, journal, SchedulerSettings(destroy_retry_first_s=0.001, destroy_retry_max_s=0.002)
    )
    a = await s.assign("r1", FN)
    platform.fail["destroy"] = 3
    await s.idle("r1", "fn", a.instance_id, RunResult(502, 1, need_destroy=True))
    await settle(s)
    assert not platform.slots
    assert [r.event for r in records][-4:] == ["destroy_failed"] * 3 + ["destroyed"]


async def test_released_instance_goes_to_the_oldest_waiter() -> None:
    platform = FakePlatform()
    s = make(platform)
    a = await s.assign("r1", FN)
    platform.gate = asyncio.Event()  # the next cold start hangs
    waiting = asyncio.ensure_future(s.assign("r2", FN))
    await asyncio.sleep(0)
    assert not waiting.done()
    await s.idle("r1", "fn", a.instance_id, OK)
    b = await waiting
    assert b.instance_id == a.instance_id
    platform.gate.set()
    await asyncio.sleep(0.01)
    # The cold start that r2 triggered finishes later and stays warm for the next request.
    assert sorted(i.state for i in s.instances.values()) == [BUSY, IDLE]


async def test_expiry_destroys_instances_past_their_deadline() -> None:
    platform = FakePlatform()
    s = make(platform, policy=ShortKeep())
    a = await s.assign("r1", FN)
    await s.idle("r1", "fn", a.instance_id, OK)
    assert s.collect() == 0
    assert s.instances[a.instance_id].keep_until == pytest.approx(s.clock.now() + 0.05, abs=0.01)
    await asyncio.sleep(0.06)
    assert s.collect() == 1
    await settle(s)
    assert not platform.slots and not s.instances


async def test_shutdown_destroys_every_slot_including_busy_ones() -> None:
    platform = FakePlatform()
    s = make(platform)
    busy = await s.assign("r1", FN)
    idle = await s.assign("r2", OTHER)
    await s.idle("r2", "other", idle.instance_id, OK)
    lost = await s.shutdown(grace_s=0.01, destroy_wait_s=1.0)
    assert lost == [] and not platform.slots and len(platform.destroyed) == 2
    assert busy.instance_id not in s.instances
    with pytest.raises(Unavailable, match="shutting down"):
        await s.assign("r3", FN)


async def test_shutdown_fails_waiting_requests() -> None:
    platform = FakePlatform()
    platform.gate = asyncio.Event()
    s = make(platform)
    waiting = asyncio.ensure_future(s.assign("r1", FN))
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(s.shutdown(grace_s=0.05, destroy_wait_s=1.0))
    with pytest.raises(Unavailable, match="shutting down"):
        await waiting
    platform.gate.set()
    assert await stopping == []
    assert not platform.slots


async def test_cancelled_assign_gives_its_instance_back() -> None:
    platform = FakePlatform()
    platform.gate = asyncio.Event()
    s = make(platform)
    waiting = asyncio.ensure_future(s.assign("r1", FN))
    await asyncio.sleep(0)
    waiting.cancel()
    platform.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0.01)
    assert [i.state for i in s.instances.values()] == [IDLE]
    assert s.registry.serving == {}


async def test_per_function_state_is_bounded() -> None:
    platform = FakePlatform()
    s = make(platform, settings=SchedulerSettings(max_functions=10))
    for i in range(10):
        a = await s.assign(f"r{i}", FunctionSpec(f"k{i}", 128))
        if i < 5:  # half the functions end up with nothing (their instance destroyed)
            await s.idle(f"r{i}", f"k{i}", a.instance_id, RunResult(500, 1, need_destroy=True))
    await settle(s)
    await s.assign("new", FunctionSpec("k-new", 128))
    assert len(s.pools) == 10 and "k-new" in s.pools and "k0" not in s.pools
    for i in range(10, 14):  # fill the four freed places with functions that keep instances
        await s.assign(f"r{i}", FunctionSpec(f"k{i}", 128))
    with pytest.raises(Unavailable, match="too many functions"):
        await s.assign("over", FunctionSpec("k-over", 128))
    assert len(s.pools) == 10

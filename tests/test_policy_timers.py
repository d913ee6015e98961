"""Precise wake-ups: a policy's deadlines are acted on when due, not at the next GC pass."""

from __future__ import annotations

import asyncio

from scaler.answers import RunResult
from scaler.clock import LoopClock
from scaler.policy.base import Policy
from scaler.policy.reference import ReferencePolicy
from scaler.pool import Pool
from scaler.scheduler import Scheduler
from scaler.states import FunctionSpec, Instance
from tests.fakes import FakePlatform

FN = FunctionSpec("fn", 256)


class ShortKeep(Policy):
    """Keeps 50 ms, pre-warms one instance 100 ms after the first release, GC every hour."""

    gc_interval_s = 3600.0
    precise_timers = True

    def __init__(self) -> None:
        self.prewarm_at: float | None = None

    def keep_alive_until(self, pool: Pool, instance: Instance, now: float) -> float:
        if self.prewarm_at is None:
            self.prewarm_at = now + 0.1
        return now + 0.05

    def prewarm(self, pool: Pool, now: float) -> list[float]:
        if self.prewarm_at is not None and now >= self.prewarm_at:
            self.prewarm_at = float("inf")
            return [now + 60.0]
        return []

    def next_wakeup(self, pool: Pool, now: float) -> float | None:
        if self.prewarm_at is not None and self.prewarm_at != float("inf"):
            return self.prewarm_at
        return None


async def test_deadlines_and_prewarms_fire_between_gc_passes() -> None:
    platform = FakePlatform()
    scheduler = Scheduler(platform, ShortKeep(), LoopClock())
    scheduler.start_gc()
    first = await scheduler.assign("r1", FN)
    await scheduler.idle("r1", "fn", first.instance_id, RunResult(200, 10))
    await asyncio.sleep(0.08)  # past the 50 ms keep-alive, long before the hourly GC
    assert platform.destroyed == ["slot-1"]
    await asyncio.sleep(0.1)  # past the pre-warm time
    assert platform.created == ["slot-1", "slot-2"]
    prewarmed = next(iter(scheduler.instances.values()))
    assert prewarmed.prewarmed and prewarmed.keep_until > scheduler.clock.now() + 59
    await scheduler.shutdown()


async def test_the_reference_policy_arms_no_timer() -> None:
    scheduler = Scheduler(FakePlatform(), ReferencePolicy(), LoopClock())
    first = await scheduler.assign("r1", FN)
    await scheduler.idle("r1", "fn", first.instance_id, RunResult(200, 10))
    assert scheduler.timers.armed(("fn", "wake")) is None
    await scheduler.shutdown()

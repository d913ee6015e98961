"""The paths issue 15 found broken, each reproduced: a burst on a loaded loop, an Assign
deadline that falls in the same loop iteration as the hand-over, a policy that raises, and a
transition-log sink that fails. All under virtual time, against the in-process fake platform."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from scaler.answers import RunResult, Unavailable
from scaler.clock import LoopClock
from scaler.policy import DEFAULT_POLICY, make_policy
from scaler.policy.reference import ReferencePolicy
from scaler.scheduler import Scheduler
from scaler.settings import SchedulerSettings
from scaler.states import BUSY, IDLE, FunctionSpec, Journal, TransitionRecord
from simulator.virtual_loop import VirtualTimeLoop
from tests.fakes import FakePlatform

T = TypeVar("T")
FN = FunctionSpec("fn", 256)


def run(main: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def scheduler(
    platform: FakePlatform,
    policy_name: str = "reference",
    journal: Journal | None = None,
    settings: SchedulerSettings | None = None,
    policy: Any = None,
) -> Scheduler:
    loop = asyncio.get_running_loop()
    return Scheduler(
        platform, policy or make_policy(policy_name), LoopClock(loop), journal, settings
    )


@pytest.mark.parametrize("policy_name", ["reference", DEFAULT_POLICY])
def test_a_burst_on_a_stalling_loop_gets_a_cold_start_for_every_request(policy_name) -> None:
    """100 first Assigns of a new function at once, nothing calls Idle, and the loop stalls
    50 ms every 10 ms (a machine whose cores are busy): every request gets its own instance,
    none waits past the patience bound plus the stalls."""

    async def main() -> tuple[list[float], int, set[str]]:
        loop = asyncio.get_running_loop()
        platform = FakePlatform(delay_s=0.015)
        s = scheduler(platform, policy_name, settings=SchedulerSettings(max_patience_s=0.5))
        s.start_gc()
        stalling = True

        def stall() -> None:
            loop.advance(0.05)
            if stalling:
                loop.call_later(0.01, stall)

        loop.call_soon(stall)
        started = loop.time()

        async def one(n: int) -> tuple[float, str]:
            answer = await s.assign(f"r{n}", FN)
            return loop.time() - started, answer.instance_id

        results = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(100))), 60)
        stalling = False
        await s.shutdown(grace_s=0.01, destroy_wait_s=5)
        return [t for t, _ in results], len(platform.created), {i for _, i in results}

    waits, created, instances = run(main())
    assert len(instances) == 100 and created == 100
    assert max(waits) <= 0.5 + 2 * 0.015 + 1.0, f"slowest Assign waited {max(waits):.3f} s"


def test_assign_deadline_in_the_same_iteration_as_the_hand_over_leaves_no_orphan() -> None:
    """The cold start answers exactly when the Assign's deadline passes: the request is either
    served or refused, and a refused request leaves no instance busy for it."""

    async def main() -> tuple[str, list[str]]:
        platform = FakePlatform(delay_s=0.5)  # CreateSlot 0.5 s + Init 0.5 s
        s = scheduler(platform, settings=SchedulerSettings(assign_timeout_s=1.0))
        try:
            answer = await s.assign("r1", FN)
            outcome = f"served by {answer.instance_id}"
        except Unavailable as err:
            outcome = f"refused: {err}"
        await asyncio.sleep(0.001)
        states = [f"{i.state}:{i.request_id}" for i in s.instances.values()]
        await s.shutdown(grace_s=0.01, destroy_wait_s=5)
        return outcome, states

    outcome, states = run(main())
    if outcome.startswith("refused"):
        assert states == [f"{IDLE}:None"], states
    else:
        assert states == [f"{BUSY}:r1"], states


class RaisingPolicy(ReferencePolicy):
    """A policy with a bug in its cold-start decision."""

    def on_no_idle(self, pool: Any, now: float) -> Any:
        raise ZeroDivisionError("policy bug")


def test_a_policy_that_raises_falls_back_to_a_cold_start_and_is_counted() -> None:
    async def main() -> tuple[list[str], dict[str, int], int]:
        platform = FakePlatform(delay_s=0.01)
        s = scheduler(platform, policy=RaisingPolicy())
        first = await asyncio.wait_for(s.assign("r1", FN), 5)
        second = await asyncio.wait_for(s.assign("r2", FN), 5)
        await s.idle("r1", FN.key, first.instance_id, RunResult(200, 1))
        third = await asyncio.wait_for(s.assign("r3", FN), 5)
        errors = dict(s.decide.errors)
        await s.shutdown(grace_s=0.01, destroy_wait_s=5)
        answered = [first.instance_id, second.instance_id, third.instance_id]
        return answered, errors, len(platform.slots)

    answered, errors, leaked = run(main())
    assert len(set(answered[:2])) == 2 and answered[2] == answered[0]  # r3: a warm hit
    assert errors == {"on_no_idle": 2}
    assert leaked == 0


def test_a_failing_log_sink_changes_no_scheduling() -> None:
    """Every record fails to reach one sink: records are counted as dropped, the Idle is
    answered, the instance is idle in the FSM and in the pool's index, and it expires."""

    def disk_full(record: TransitionRecord) -> None:
        raise OSError("No space left on device")

    async def main() -> tuple[int, str, int, int, bool]:
        journal = Journal()
        journal.attach(disk_full)
        platform = FakePlatform(delay_s=0.01)
        s = scheduler(platform, journal=journal)
        s.start_gc()
        answer = await s.assign("r1", FN)
        await s.idle("r1", FN.key, answer.instance_id, RunResult(200, 1))
        state = s.instances[answer.instance_id].state
        indexed = s.pools[FN.key].counts[IDLE]
        consistent = s.registry.indexes() == s.registry.recount()
        await asyncio.sleep(ReferencePolicy.keep_alive_s + 20)  # past the keep-alive
        return journal.dropped, state, indexed, len(platform.slots), consistent

    dropped, state, indexed, live_slots, consistent = run(main())
    assert dropped >= 5 and state == IDLE and indexed == 1 and consistent
    assert live_slots == 0


class BrokenScheduler:
    """A scheduler with a bug on both paths."""

    settings = SchedulerSettings()

    async def assign(self, request_id: str, spec: FunctionSpec) -> Any:
        raise KeyError("lost index entry")

    async def idle(self, *args: Any) -> None:
        raise AttributeError("no such thing")


def test_a_scheduler_bug_is_answered_internal_error_with_a_message() -> None:
    from scaler.server import ScalerServicer
    from scaler.wire import pb

    async def main() -> tuple[Any, Any]:
        servicer = ScalerServicer(BrokenScheduler())  # type: ignore[arg-type]
        meta = pb.Meta(key="fn", runtime="python3", timeout_in_secs=60, memory_in_mb=128)
        assign = await servicer.Assign(
            pb.AssignRequest(request_id="r1", timestamp=1, meta_data=meta)
        )
        assignment = pb.Assignment(request_id="r1", meta_key="fn", instance_id="i1")
        idle = await servicer.Idle(
            pb.IdleRequest(assigment=assignment, result=pb.Result(status_code=200))
        )
        return assign, idle

    assign, idle = run(main())
    assert assign.status == pb_status("InternalError") and "KeyError" in assign.error_message
    assert idle.status == pb_status("InternalError") and "AttributeError" in idle.error_message


def pb_status(name: str) -> int:
    from scaler.wire import pb

    return pb.Status.Value(name)


class ScaleDownAll(ReferencePolicy):
    """Scales every idle instance down at the first expiry pass."""

    def expired(self, pool: Any, now: float) -> Any:
        return list(pool.idle_instances())


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("keep-alive", "keep-alive expired"),
        ("scale-down", "policy scale-down"),
        ("need_destroy", "need_destroy"),
        ("init-failure", "init failed"),
        ("shutdown", "shutdown"),
    ],
)
def test_every_deletion_carries_its_true_cause_to_the_platform(case: str, cause: str) -> None:
    async def main() -> tuple[list[str], list[TransitionRecord]]:
        records: list[TransitionRecord] = []
        journal = Journal()
        journal.attach(records.append)
        platform = FakePlatform(delay_s=0.01)
        policy = ScaleDownAll() if case == "scale-down" else ReferencePolicy()
        s = scheduler(platform, journal=journal, policy=policy)
        s.start_gc()
        if case == "init-failure":
            platform.fail["init"] = 3
            with pytest.raises(Unavailable):
                await s.assign("r1", FN)
        else:
            answer = await s.assign("r1", FN)
            result = RunResult(500, 1, need_destroy=case == "need_destroy")
            if case != "shutdown":
                await s.idle("r1", FN.key, answer.instance_id, result)
        if case in ("keep-alive", "scale-down"):
            await asyncio.sleep(ReferencePolicy.keep_alive_s + 20)
        await asyncio.sleep(1)
        await s.shutdown(grace_s=0.01, destroy_wait_s=5)
        return list(platform.reasons.values()), records

    reasons, records = run(main())
    assert reasons and all(r.startswith(cause) for r in reasons), reasons
    assert records[0].event == "create" and records[0].source == "new"
    into_deleting = [r.reason for r in records if r.dest == "deleting" and r.source != "deleting"]
    assert into_deleting and all(r.startswith(cause) for r in into_deleting), into_deleting


def test_the_servicer_reuses_one_spec_per_meta_and_stays_bounded() -> None:
    from scaler.server import MAX_ID_LENGTH, spec_from_assign
    from scaler.wire import pb

    def request(key: str, memory: int = 128, runtime: str = "python3") -> Any:
        meta = pb.Meta(key=key, runtime=runtime, timeout_in_secs=60, memory_in_mb=memory)
        return pb.AssignRequest(request_id="r1", timestamp=1, meta_data=meta)

    cache: dict[Any, FunctionSpec] = {}
    first = spec_from_assign(request("fn"), cache, limit=2)
    assert first == FunctionSpec("fn", 128, "python3", 60)
    assert spec_from_assign(request("fn"), cache, limit=2) is first
    # Another Meta of the same key is another spec (a redeploy with more memory).
    assert spec_from_assign(request("fn", 256), cache, limit=2).memory_mb == 256
    # Past the limit the cache starts over; a runtime longer than an id is never kept.
    spec_from_assign(request("g"), cache, limit=2)
    assert len(cache) <= 2
    long = spec_from_assign(request("h", runtime="x" * (MAX_ID_LENGTH + 1)), cache, limit=2)
    assert long.runtime == "x" * (MAX_ID_LENGTH + 1) and all(k[0] != "h" for k in cache)

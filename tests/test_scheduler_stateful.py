"""Hypothesis drives the scheduler with arbitrary Assign/Idle/time/failure sequences.

Invariants: never two requests on one instance; an assignment is always of a live,
initialised instance of the right function; every transition is an edge of the table; after
shutdown every slot the platform created is destroyed.
"""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from scaler.clock import LoopClock
from scaler.policy import make_policy
from scaler.scheduler import RunResult, Scheduler, SchedulerError
from scaler.states import BUSY, FunctionSpec, Journal, TransitionRecord, allowed
from simulator.virtual_loop import VirtualTimeLoop
from tests.fakes import FakePlatform

FUNCTIONS = {k: FunctionSpec(k, m) for k, m in (("a", 128), ("b", 256), ("c", 512))}


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = VirtualTimeLoop()
        self.platform = FakePlatform(delay_s=0.05)
        self.bad_edges: list[TransitionRecord] = []
        journal = Journal()
        journal.attach(self._check_edge)
        self.scheduler = Scheduler(
            self.platform, make_policy("reference"), LoopClock(self.loop), journal
        )
        self.loop.run_until_complete(self._start())
        self.pending: dict[str, asyncio.Task] = {}
        self.holding: dict[str, tuple[str, str]] = {}  # request -> (key, instance)
        self.count = 0

    async def _start(self) -> None:
        self.scheduler.start_gc()

    def _check_edge(self, record: TransitionRecord) -> None:
        if allowed(record.source, record.event) != record.dest:
            self.bad_edges.append(record)

    def _run(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))
        for request_id, task in list(self.pending.items()):
            if task.done():
                del self.pending[request_id]
                if task.exception() is None:
                    answer = task.result()
                    self.holding[request_id] = (answer.key, answer.instance_id)

    @rule(key=st.sampled_from(sorted(FUNCTIONS)), burst=st.integers(1, 4))
    def assign(self, key: str, burst: int) -> None:
        for _ in range(burst):
            self.count += 1
            request_id = f"r{self.count}"
            self.pending[request_id] = self.loop.create_task(
                self.scheduler.assign(request_id, FUNCTIONS[key])
            )
        self._run(0.001)

    @precondition(lambda self: self.holding)
    @rule(data=st.data(), destroy=st.booleans())
    def idle(self, data: st.DataObject, destroy: bool) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.holding)))
        key, instance_id = self.holding.pop(request_id)
        result = RunResult(500 if destroy else 200, 5, need_destroy=destroy)
        self.loop.run_until_complete(self.scheduler.idle(request_id, key, instance_id, result))

    @rule(
        request=st.sampled_from(["r1", "r2", "nope", ""]),
        key=st.sampled_from(["a", "b", "zz"]),
        instance=st.sampled_from(["inst-1", "inst-2", "inst-999"]),
    )
    def bad_idle(self, request: str, key: str, instance: str) -> None:
        if self.holding.get(request) == (key, instance):
            return  # that would be a legitimate Idle
        before = {i: (x.state, x.request_id) for i, x in self.scheduler.instances.items()}
        try:
            self.loop.run_until_complete(
                self.scheduler.idle(request, key, instance, RunResult(200, 1))
            )
        except SchedulerError:
            pass
        else:
            raise AssertionError("a bad Idle was accepted")
        after = {i: (x.state, x.request_id) for i, x in self.scheduler.instances.items()}
        assert after == before

    @rule(seconds=st.sampled_from([0.01, 0.2, 5.0, 120.0, 400.0]))
    def advance(self, seconds: float) -> None:
        self._run(seconds)

    @rule(op=st.sampled_from(["create", "init", "destroy"]), times=st.integers(1, 3))
    def fail_next(self, op: str, times: int) -> None:
        self.platform.fail[op] += times

    @invariant()
    def one_request_per_instance_and_only_live_initialised_ones(self) -> None:
        seen: dict[str, str] = {}
        for request_id, (key, instance_id) in self.holding.items():
            assert instance_id not in seen, (
                f"{instance_id} serves {seen[instance_id]} and {request_id}"
            )
            seen[instance_id] = request_id
            instance = self.scheduler.instances[instance_id]
            assert instance.state == BUSY and instance.request_id == request_id
            slot = self.platform.live_instance(instance_id)
            assert slot is not None and slot.key == key

    @invariant()
    def only_table_edges(self) -> None:
        assert not self.bad_edges, self.bad_edges[:3]

    def teardown(self) -> None:
        try:
            self.platform.fail = {"create": 0, "init": 0, "destroy": 0}
            lost = self.loop.run_until_complete(
                self.scheduler.shutdown(grace_s=1.0, destroy_wait_s=60.0)
            )
            self._run(0.001)
            assert lost == []
            assert not self.platform.slots, f"leaked {sorted(self.platform.slots)}"
            assert set(self.platform.destroyed) == set(self.platform.created)
        finally:
            for task in self.pending.values():
                task.cancel()
            self.loop.close()


SchedulerMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestScheduler = SchedulerMachine.TestCase

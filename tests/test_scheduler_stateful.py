"""Hypothesis drives the scheduler under virtual time with arbitrary interleavings of Assign,
Idle, Assign deadlines, client cancellations, policy exceptions, transition-sink failures,
platform faults and loop stalls, for the ``reference`` and the default policy.

After every step: every index equals its recount from the FSM states; no instance is busy for
a request that is not live (answered and not yet released, or about to be answered); every
Assign is answered within its deadline; a waiting request that no starting instance covers has
not waited longer than the patience bound. After shutdown every slot the platform created is
destroyed, and the transition log passes ``./scaler log --check --require-clean``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from scaler.answers import RunResult, SchedulerError
from scaler.clock import LoopClock
from scaler.policy import DEFAULT_POLICY, make_policy
from scaler.scheduler import Scheduler
from scaler.settings import SchedulerSettings
from scaler.states import BUSY, FunctionSpec, Journal, TransitionRecord
from scaler.tools import logtool
from simulator.virtual_loop import VirtualTimeLoop
from tests.fakes import FakePlatform

FUNCTIONS = {k: FunctionSpec(k, m) for k, m in (("a", 128), ("b", 256), ("c", 512))}
#: Short enough that deadlines happen within a few steps of virtual time.
ASSIGN_TIMEOUT_S = 20.0
MAX_PATIENCE_S = 5.0
#: Policy decisions the flaky wrapper can make raise.
DECISIONS = (
    "observe_arrival",
    "observe_release",
    "observe_cold_start",
    "on_no_idle",
    "patience_s",
    "keep_alive_until",
    "expired",
    "prewarm",
    "next_wakeup",
)


class FlakyPolicy:
    """Makes the next ``raising`` policy calls raise (a policy bug)."""

    def __init__(self, policy: Any) -> None:
        self.raising = 0
        for name in DECISIONS:
            method = getattr(policy, name, None)
            if method is not None:
                setattr(policy, name, self._wrap(method))

    def _wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            if self.raising > 0:
                self.raising -= 1
                raise RuntimeError("injected policy bug")
            return method(*args)

        return call


class SchedulerMachine(RuleBasedStateMachine):
    policy_name = "reference"

    def __init__(self) -> None:
        super().__init__()
        self.loop = VirtualTimeLoop()
        self.platform = FakePlatform(delay_s=0.05)
        self._dir = tempfile.TemporaryDirectory()
        self.log_path = Path(self._dir.name) / "transitions.jsonl"
        self.sink_failing = 0
        journal = Journal()
        journal.write_json_lines(self.log_path)
        journal.attach(self._flaky_sink)
        policy = make_policy(self.policy_name)
        self.flaky = FlakyPolicy(policy)
        settings_ = SchedulerSettings(
            assign_timeout_s=ASSIGN_TIMEOUT_S, max_patience_s=MAX_PATIENCE_S
        )
        self.scheduler = Scheduler(self.platform, policy, LoopClock(self.loop), journal, settings_)
        self.loop.run_until_complete(self._start())
        self.pending: dict[str, tuple[asyncio.Task, float]] = {}  # request -> (task, sent)
        self.answered_at: dict[str, float] = {}
        self.holding: dict[str, tuple[str, str]] = {}  # request -> (key, instance)
        self.cancelled: set[str] = set()
        self.count = 0
        self.slack = 0.1  # how late the loop may act: its stalls, plus platform latency

    async def _start(self) -> None:
        self.scheduler.start_gc()

    def _flaky_sink(self, record: TransitionRecord) -> None:
        if self.sink_failing > 0:
            self.sink_failing -= 1
            raise OSError("injected: disk full")

    def _answered(self, request_id: str) -> None:
        self.answered_at[request_id] = self._now()

    def _now(self) -> float:
        return self.loop.time()

    def _run(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))
        now = self._now()
        for request_id, (task, sent) in list(self.pending.items()):
            if not task.done():
                continue
            del self.pending[request_id]
            if task.cancelled():
                continue
            took = self.answered_at.pop(request_id, now) - sent
            assert took <= ASSIGN_TIMEOUT_S + self.slack, (
                f"{request_id} answered after {took:.3f} s"
            )
            if task.exception() is None:
                answer = task.result()
                self.holding[request_id] = (answer.key, answer.instance_id)
            else:
                assert isinstance(task.exception(), SchedulerError), task.exception()

    @rule(key=st.sampled_from(sorted(FUNCTIONS)), burst=st.integers(1, 4))
    def assign(self, key: str, burst: int) -> None:
        for _ in range(burst):
            self.count += 1
            request_id = f"r{self.count}"
            task = self.loop.create_task(self.scheduler.assign(request_id, FUNCTIONS[key]))
            task.add_done_callback(lambda _, r=request_id: self._answered(r))
            self.pending[request_id] = (task, self._now())
        self._run(0.001)

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """The client goes away (its gRPC call is cancelled) while the Assign waits."""
        request_id = data.draw(st.sampled_from(sorted(self.pending)))
        task, _ = self.pending[request_id]
        task.cancel()
        self.cancelled.add(request_id)
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

    @rule(seconds=st.sampled_from([0.01, 0.2, 5.0, 30.0, 400.0]))
    def advance(self, seconds: float) -> None:
        self._run(seconds)

    @rule(seconds=st.sampled_from([0.05, 0.5, 3.0]))
    def stall(self, seconds: float) -> None:
        """A callback hogs the loop: time moves on while nothing else runs."""
        self.slack = max(self.slack, seconds + 0.1)
        self.loop.call_soon(self.loop.advance, seconds)
        self._run(0.001)

    @rule(op=st.sampled_from(["create", "init", "destroy"]), times=st.integers(1, 3))
    def fail_next(self, op: str, times: int) -> None:
        self.platform.fail[op] += times

    @rule(times=st.integers(1, 3))
    def policy_raises(self, times: int) -> None:
        self.flaky.raising += times

    @rule(times=st.integers(1, 5))
    def sink_fails(self, times: int) -> None:
        self.sink_failing += times

    @invariant()
    def indexes_equal_the_fsm_recount(self) -> None:
        registry = self.scheduler.registry
        assert registry.indexes() == registry.recount()

    @invariant()
    def busy_only_for_live_requests(self) -> None:
        live = set(self.holding) | (set(self.pending) - self.cancelled)
        for instance in self.scheduler.instances.values():
            if instance.state == BUSY:
                assert instance.request_id in live, (
                    f"{instance.instance_id} busy for {instance.request_id}, which is not live"
                )

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
    def every_assign_answered_within_its_deadline(self) -> None:
        now = self._now()
        for request_id, (task, sent) in self.pending.items():
            if not task.done():
                assert now - sent <= ASSIGN_TIMEOUT_S + self.slack, (
                    f"{request_id} unanswered after {now - sent:.3f} s"
                )

    @invariant()
    def no_uncovered_request_waits_past_patience(self) -> None:
        now = self._now()
        for pool in self.scheduler.pools.values():
            uncovered = pool.waiters.nth(pool.starting_count)
            if uncovered is not None:
                waited = now - uncovered.arrived_at
                assert waited <= MAX_PATIENCE_S + self.slack, (
                    f"{uncovered.request_id} of {pool.key} waited {waited:.3f} s uncovered"
                )

    def teardown(self) -> None:
        try:
            self.platform.fail = {"create": 0, "init": 0, "destroy": 0}
            self.flaky.raising = self.sink_failing = 0
            lost = self.loop.run_until_complete(
                self.scheduler.shutdown(grace_s=1.0, destroy_wait_s=60.0)
            )
            self._run(0.001)
            assert lost == []
            assert not self.platform.slots, f"leaked {sorted(self.platform.slots)}"
            assert set(self.platform.destroyed) == set(self.platform.created)
            self.scheduler.journal.close()
            with contextlib.redirect_stdout(None):
                code = logtool.main([str(self.log_path), "--check", "--require-clean"])
            assert code == 0, self.log_path.read_text()[-2000:]
        finally:
            for task, _ in self.pending.values():
                task.cancel()
            self.loop.close()
            self._dir.cleanup()


class DefaultPolicyMachine(SchedulerMachine):
    policy_name = DEFAULT_POLICY


_SETTINGS = settings(max_examples=100, stateful_step_count=40, deadline=None)
SchedulerMachine.TestCase.settings = _SETTINGS
DefaultPolicyMachine.TestCase.settings = _SETTINGS
TestReferencePolicy = SchedulerMachine.TestCase
TestDefaultPolicy = DefaultPolicyMachine.TestCase

"""Hypothesis throws arbitrary Assign/Idle traffic at the real gRPC server on 127.0.0.1.

The server must never crash or hang, every reply carries a known status (and a message when it
is not Ok), and the transition log stays valid. Afterwards every slot is destroyed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler.app import ScalerApp
from scaler.config import Settings
from scaler.wire import pb, rpc
from simulator.dataset import FunctionMeta
from simulator.platform import LatencyModel, PlatformService
from tests.invariants import TransitionChecker

KNOWN_STATUSES = set(pb.Status.values())
METAS = {"fn": FunctionMeta("fn", "python", 256, 60, 2), "g": FunctionMeta("g", "go", 128, 9, 1)}


class Stack:
    """Platform + scaler served on the test's own event loop."""

    def __init__(self) -> None:
        self.checker = TransitionChecker()
        self.service = PlatformService(METAS, LatencyModel(create_ms=1))
        self.held: list[pb.Assignment] = []

    async def start(self) -> None:
        self.platform_server = grpc.aio.server()
        rpc.add_PlatformServicer_to_server(self.service, self.platform_server)
        platform_port = self.platform_server.add_insecure_port("127.0.0.1:0")
        await self.platform_server.start()
        self.app = ScalerApp(
            Settings(
                listen="127.0.0.1:0",
                platform_address=f"127.0.0.1:{platform_port}",
                shutdown_grace=0.2,
                create_deadline=2.0,
                init_deadline=2.0,
            )
        )
        self.app.journal.attach(self.checker)
        port = await self.app.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = rpc.ScalerStub(self.channel)

    async def stop(self) -> list[str]:
        await self.channel.close()
        lost = await self.app.stop()
        await self.platform_server.stop(0)
        return lost


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    s = Stack()
    await s.start()
    yield s
    lost = await s.stop()
    assert lost == []
    assert s.service.ledger.live_count == 0, "slots leaked after shutdown"
    assert s.checker.records > 0, "the fuzzer never got an instance assigned"
    assert s.checker.violations == []
    assert s.checker.unfinished() == {}


ids = st.one_of(
    st.sampled_from(["r1", "r2", "fn", "inst-1", "inst-2", ""]),
    st.text(max_size=20),
    st.text(min_size=500, max_size=700),
)
keys = st.one_of(st.sampled_from(["fn", "g", "unknown", ""]), st.text(max_size=600))
metas = st.one_of(
    st.none(),
    st.builds(
        pb.Meta,
        key=keys,
        runtime=st.text(max_size=10),
        timeout_in_secs=st.integers(0, 2**32 - 1),
        memory_in_mb=st.one_of(st.sampled_from([0, 128, 256]), st.integers(0, 2**64 - 1)),
    ),
)
assign_ops = st.builds(lambda rid, meta: ("assign", rid, meta), ids, metas)
idle_ops = st.builds(
    lambda pick, rid, key, inst, code, dur, destroy, missing: (
        "idle",
        pick,
        rid,
        key,
        inst,
        code,
        dur,
        destroy,
        missing,
    ),
    st.booleans(),
    ids,
    keys,
    ids,
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**64 - 1),
    st.sampled_from([None, True, False]),
    st.booleans(),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(st.one_of(assign_ops, idle_ops), max_size=12))
async def test_arbitrary_traffic_gets_clear_answers(stack: Stack, ops) -> None:
    for op in ops:
        if op[0] == "assign":
            _, rid, meta = op
            request = pb.AssignRequest(request_id=rid, timestamp=1)
            if meta is not None:
                request.meta_data.CopyFrom(meta)
            reply = await stack.stub.Assign(request, timeout=15)
            assert reply.status in KNOWN_STATUSES
            if reply.status == pb.Ok:
                assert reply.assigment.instance_id and reply.assigment.request_id == rid
                stack.held.append(reply.assigment)
            else:
                assert reply.error_message
            continue
        _, pick, rid, key, inst, code, dur, destroy, missing = op
        if pick and stack.held:
            assignment = stack.held.pop()  # a legitimate Idle (maybe a duplicate later)
        else:
            assignment = pb.Assignment(request_id=rid, meta_key=key, instance_id=inst)
        result = pb.Result(status_code=code, duration_in_ms=dur)
        if destroy is not None:
            result.need_destroy = destroy
        request = pb.IdleRequest(result=result)
        if not missing:
            request.assigment.CopyFrom(assignment)
        reply = await stack.stub.Idle(request, timeout=15)
        assert reply.status in KNOWN_STATUSES
        if reply.status != pb.Ok:
            assert reply.error_message
    # The server is still responsive and consistent after every example.
    probe = await stack.stub.Assign(
        pb.AssignRequest(request_id="", meta_data=pb.Meta(key="fn", memory_in_mb=1)), timeout=5
    )
    assert probe.status == pb.InvalidArgument
    assert stack.checker.violations == []

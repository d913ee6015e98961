"""End to end over loopback gRPC: our server and our Platform service, both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from scaler.app import ScalerApp
from scaler.config import Settings
from scaler.wire import pb, rpc
from simulator.dataset import FunctionMeta
from simulator.platform import LatencyModel, PlatformService
from tests.processes import serving_port

ROOT = Path(__file__).resolve().parents[1]
METAS = {
    "fn": FunctionMeta("fn", "python", 256, 60, 10),
    "other": FunctionMeta("other", "go", 128, 60, 5),
}


def meta(key: str = "fn", memory: int = 256) -> pb.Meta:
    return pb.Meta(key=key, runtime="python", timeout_in_secs=60, memory_in_mb=memory)


async def start_platform(service: PlatformService) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    rpc.add_PlatformServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture
async def stack():
    service = PlatformService(METAS, LatencyModel(create_ms=5))
    platform_server, platform_port = await start_platform(service)
    # The reference policy keeps these tests about the mechanics (warm reuse, one instance per
    # concurrent request); the default policy is exercised end to end in test_wire_mode.py.
    app = ScalerApp(
        Settings(
            listen="127.0.0.1:0",
            platform_address=f"127.0.0.1:{platform_port}",
            policy="reference",
            shutdown_grace=0.5,
            destroy_wait=5.0,
        )
    )
    port = await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = rpc.ScalerStub(channel)
    try:
        yield stub, app, service
    finally:
        await channel.close()
        if not app.scheduler.closing:
            await app.stop()
        await platform_server.stop(0)


async def assign(stub, request_id: str, key: str = "fn") -> pb.AssignReply:
    return await stub.Assign(
        pb.AssignRequest(request_id=request_id, timestamp=1, meta_data=meta(key)), timeout=10
    )


async def idle(stub, request_id, instance_id, key="fn", need_destroy=None) -> pb.IdleReply:
    result = pb.Result(status_code=200, duration_in_ms=5)
    if need_destroy is not None:
        result.need_destroy = need_destroy
    return await stub.Idle(
        pb.IdleRequest(
            assigment=pb.Assignment(request_id=request_id, meta_key=key, instance_id=instance_id),
            result=result,
        ),
        timeout=10,
    )


async def test_cold_start_warm_hit_and_shutdown_over_grpc(stack) -> None:
    stub, app, service = stack
    first = await assign(stub, "r1")
    assert first.status == pb.Ok and first.assigment.meta_key == "fn"
    slot = service.ledger.instance(first.assigment.instance_id)
    assert slot is not None and slot.initialised and slot.key == "fn"
    assert (await idle(stub, "r1", first.assigment.instance_id)).status == pb.Ok
    second = await assign(stub, "r2")
    assert second.assigment.instance_id == first.assigment.instance_id
    assert service.calls["CreateSlot"] == 1
    lost = await app.stop()
    assert lost == [] and service.ledger.live_count == 0


async def test_concurrent_assigns_over_grpc_get_distinct_instances(stack) -> None:
    stub, _, service = stack
    replies = await asyncio.gather(*(assign(stub, f"r{i}") for i in range(200)))
    assert all(r.status == pb.Ok for r in replies)
    assert len({r.assigment.instance_id for r in replies}) == 200
    assert all(service.ledger.instance(r.assigment.instance_id) for r in replies)


@pytest.mark.parametrize(
    ("request_", "status", "message"),
    [
        (pb.AssignRequest(request_id="r"), pb.InvalidArgument, "meta_data is missing"),
        (pb.AssignRequest(meta_data=meta()), pb.InvalidArgument, "request_id is empty"),
        (pb.AssignRequest(request_id="r", meta_data=meta("")), pb.InvalidArgument, "key is empty"),
        (
            pb.AssignRequest(request_id="r", meta_data=meta(memory=0)),
            pb.InvalidArgument,
            "memory_in_mb is 0",
        ),
        (
            pb.AssignRequest(request_id="x" * 513, meta_data=meta()),
            pb.InvalidArgument,
            "limit 512",
        ),
    ],
)
async def test_bad_assign_answers_invalid_argument(stack, request_, status, message) -> None:
    stub, app, service = stack
    reply = await stub.Assign(request_, timeout=5)
    assert reply.status == status and message in reply.error_message
    assert service.calls["CreateSlot"] == 0 and not app.scheduler.instances


async def test_bad_idle_answers_with_clear_statuses(stack) -> None:
    stub, app, _ = stack
    held = await assign(stub, "r1")
    instance = held.assigment.instance_id
    missing = await stub.Idle(pb.IdleRequest(result=pb.Result(status_code=200)), timeout=5)
    assert missing.status == pb.InvalidArgument and "assigment is missing" in missing.error_message
    unknown = await idle(stub, "r1", "ghost")
    assert unknown.status == pb.NotFound and "ghost" in unknown.error_message
    wrong_fn = await idle(stub, "r1", instance, key="other")
    assert wrong_fn.status == pb.InvalidAssigment
    wrong_req = await idle(stub, "r9", instance)
    assert wrong_req.status == pb.InvalidAssigment and "not serving" in wrong_req.error_message
    assert app.scheduler.instances[instance].request_id == "r1"
    assert (await idle(stub, "r1", instance, need_destroy=True)).status == pb.Ok
    again = await idle(stub, "r1", instance)
    assert again.status == pb.InvalidAssigment and "already released" in again.error_message


async def test_platform_down_fails_fast_with_a_clear_error() -> None:
    app = ScalerApp(
        Settings(listen="127.0.0.1:0", platform_address="127.0.0.1:1", create_deadline=0.5)
    )
    port = await app.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await assign(rpc.ScalerStub(channel), "r1")
    assert reply.status == pb.InternalError
    assert "CreateSlot failed" in reply.error_message
    assert await app.stop() == []


def test_scaler_process_serves_and_exits_zero_on_sigterm(tmp_path) -> None:
    """`./scaler` (no sub-command) serves with SCALER_* settings and stops cleanly on SIGTERM."""

    async def run() -> tuple[int, int]:
        service = PlatformService(METAS, LatencyModel(create_ms=1))
        server, platform_port = await start_platform(service)
        log = tmp_path / "transitions.jsonl"
        env = dict(
            os.environ,
            SCALER_LISTEN="127.0.0.1:0",
            SCALER_PLATFORM_ADDRESS=f"127.0.0.1:{platform_port}",
            SCALER_TRANSITION_LOG=str(log),
            SCALER_SHUTDOWN_GRACE="0.5",
        )
        process = await asyncio.create_subprocess_exec(
            str(ROOT / "scaler"), env=env, stderr=subprocess.PIPE
        )
        port = await serving_port(process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await assign(rpc.ScalerStub(channel), "r1")
        assert reply.status == pb.Ok
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
        live = service.ledger.live_count
        await server.stop(0)
        assert '"event":"destroyed"' in log.read_text()
        return code, live

    code, live = asyncio.run(run())
    assert code == 0 and live == 0


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("POSIX signals needed", allow_module_level=True)

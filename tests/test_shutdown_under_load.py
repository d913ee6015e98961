"""SIGTERM in the middle of load: the `./scaler` process destroys every slot within 5 s,
exits 0, and every instance's last record in its transition log is `deleted`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import grpc

from scaler.wire import rpc
from simulator.platform import LatencyModel, PlatformService
from simulator.replay import GrpcTransport, Replayer
from simulator.workload import small_workload
from tests.processes import serving_port

ROOT = Path(__file__).resolve().parents[1]


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def run_and_terminate(log: Path) -> tuple[int, float, int, int, int]:
    dataset = small_workload(seed=11, duration_s=120)
    service = PlatformService(dataset.metas, LatencyModel(create_ms=20))
    server = grpc.aio.server()
    rpc.add_PlatformServicer_to_server(service, server)
    platform_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    env = dict(
        os.environ,
        SCALER_LISTEN="127.0.0.1:0",
        SCALER_PLATFORM_ADDRESS=f"127.0.0.1:{platform_port}",
        SCALER_TRANSITION_LOG=str(log),
    )
    process = await asyncio.create_subprocess_exec(
        str(ROOT / "scaler"), env=env, stderr=subprocess.PIPE
    )
    port = await serving_port(process)
    drain = asyncio.ensure_future(_drain(process.stderr))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    replayer = Replayer(
        dataset,
        GrpcTransport(rpc.ScalerStub(channel), assign_deadline_s=10, idle_deadline_s=10),
        service.ledger,
        speed=8,
    )
    load = asyncio.ensure_future(replayer.run())
    deadline = time.monotonic() + 30
    # Poll (bounded) until the run is under load: there is no event for "busy enough".
    while service.ledger.live_count < 5 or replayer.in_flight < 3:
        assert time.monotonic() < deadline, "the load never built up"
        await asyncio.sleep(0.05)
    slots_at_signal = service.ledger.live_count
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    code = await asyncio.wait_for(process.wait(), 30)
    exited_after = time.monotonic() - signalled
    await drain
    load.cancel()
    await asyncio.gather(load, return_exceptions=True)
    await channel.close()
    live = service.ledger.live_count
    created = service.ledger.created_count
    await server.stop(0)
    return code, exited_after, live, slots_at_signal, created


def test_sigterm_under_load_destroys_everything_within_5_s(tmp_path) -> None:
    log = tmp_path / "transitions.jsonl"
    code, exited_after, live, at_signal, created = asyncio.run(run_and_terminate(log))
    assert at_signal >= 5 and created >= at_signal
    assert code == 0
    assert exited_after < 5.0, f"took {exited_after:.2f} s"
    assert live == 0, f"{live} slot(s) still alive after the scaler exited"
    check = subprocess.run(
        [str(ROOT / "scaler"), "log", str(log), "--check", "--require-clean"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr

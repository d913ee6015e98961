"""Prometheus exposition: instance counts by state, counters, latency histograms, errors."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import generate_latest

from scaler.answers import RunResult
from scaler.clock import LoopClock
from scaler.metrics import Metrics
from scaler.platform import PlatformClient, SlotNotFound
from scaler.policy import make_policy
from scaler.scheduler import Scheduler
from scaler.server import ScalerServicer
from scaler.states import FunctionSpec, Journal
from scaler.wire import pb
from simulator.dataset import FunctionMeta
from simulator.platform import InProcessPlatformStub, LatencyModel, PlatformService
from tests.fakes import FakePlatform


async def test_scrape_shows_states_counters_and_latency() -> None:
    s = Scheduler(FakePlatform(), make_policy("reference"), LoopClock(), Journal())
    metrics = Metrics(s)
    servicer = ScalerServicer(s, metrics.observe)
    request = pb.AssignRequest(
        request_id="r1", meta_data=pb.Meta(key="fn", memory_in_mb=128, runtime="go")
    )
    reply = await servicer.Assign(request, None)
    await servicer.Assign(
        pb.AssignRequest(request_id="r2", meta_data=pb.Meta(key="fn", memory_in_mb=128)), None
    )
    await s.idle("r1", "fn", reply.assigment.instance_id, RunResult())
    text = generate_latest(metrics.registry).decode()
    assert 'scaler_instances{function="fn",state="idle"} 1.0' in text
    assert 'scaler_instances{function="fn",state="busy"} 1.0' in text
    assert "scaler_cold_starts_total 2.0" in text
    assert 'scaler_rpc_latency_seconds_count{rpc="Assign"} 2.0' in text


async def test_platform_errors_by_kind_and_http_scrape() -> None:
    service = PlatformService(
        {"fn": FunctionMeta("fn", "go", 128, 1, 1)}, LatencyModel(create_ms=0)
    )
    client = PlatformClient(InProcessPlatformStub(service))
    s = Scheduler(client, make_policy("reference"), LoopClock(), Journal())
    metrics = Metrics(s, client)
    await s.assign("r1", FunctionSpec("fn", 128))
    with pytest.raises(SlotNotFound):
        await client.destroy_slot("x", "no-such-slot", "test")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics.serve(port, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'scaler_platform_errors_total{kind="NotFound",operation="DestroySlot"} 1.0' in text
    assert "scaler_platform_calls_total 3.0" in text

"""Platform outage in the middle of a wire-mode run (real gRPC on 127.0.0.1).

While the platform is down, Assigns that need a cold start fail fast with a clear status
(bounded by retries and deadlines, never a hang) and warm hits keep working; when it comes
back the scaler recovers by itself, and after shutdown nothing is stuck or leaked.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from scaler.app import ScalerApp
from scaler.config import Settings
from scaler.policy import DEFAULT_POLICY
from scaler.wire import pb, rpc
from simulator.platform import LatencyModel, PlatformService
from simulator.replay import GrpcTransport, Replayer
from simulator.workload import small_workload
from tests.invariants import TransitionChecker

CREATE_DEADLINE_S = 1.0


class RecordingTransport(GrpcTransport):
    """Remembers (wall time sent, latency, status, message) of every Assign."""

    def __init__(self, stub) -> None:
        super().__init__(stub, assign_deadline_s=30.0, idle_deadline_s=30.0)
        self.assigns: list[tuple[float, float, int, str]] = []

    async def assign(self, request):
        sent = time.monotonic()
        reply = await super().assign(request)
        self.assigns.append((sent, time.monotonic() - sent, reply.status, reply.error_message))
        return reply


class HangingService(PlatformService):
    """A platform that, while ``hung``, accepts calls and never answers them."""

    hung = False

    async def _maybe_hang(self) -> None:
        while self.hung:
            await asyncio.sleep(0.05)  # the caller's deadline cancels this wait

    async def CreateSlot(self, request, context=None):
        await self._maybe_hang()
        return await super().CreateSlot(request, context)

    async def Init(self, request, context=None):
        await self._maybe_hang()
        return await super().Init(request, context)

    async def DestroySlot(self, request, context=None):
        await self._maybe_hang()
        return await super().DestroySlot(request, context)


class Platform:
    """Our Platform service on a fixed port that can stop answering and come back.

    ``closed``: the server goes away (connections refused); ``hung``: it accepts calls and
    answers none of them.
    """

    def __init__(self, service: HangingService, mode: str) -> None:
        self.service = service
        self.mode = mode
        self.port = 0
        self.server: grpc.aio.Server | None = None

    async def up(self) -> None:
        if self.mode == "hung" and self.server is not None:
            self.service.hung = False
            return
        self.server = grpc.aio.server()
        rpc.add_PlatformServicer_to_server(self.service, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        assert self.port, "could not bind the platform port"
        await self.server.start()

    async def outage(self) -> None:
        if self.mode == "hung":
            self.service.hung = True
            return
        await self.stop()

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.stop(0)
        self.server = None


# The reference policy cold-starts at once, so a failed Assign is bounded by the platform
# deadline and back-off alone; the default policy may first wait for a busy instance (its
# rechecks), so its bound adds that wait, still well under the default 10 s CreateSlot deadline.
@pytest.mark.parametrize(
    ("mode", "policy", "bound_s"),
    [
        ("closed", "reference", CREATE_DEADLINE_S * 2 + 3.0),
        ("hung", "reference", CREATE_DEADLINE_S * 2 + 3.0),
        ("closed", DEFAULT_POLICY, 10.0),
        ("hung", DEFAULT_POLICY, 10.0),
    ],
)
async def test_scaler_rides_out_a_10_s_platform_outage(
    mode: str, policy: str, bound_s: float
) -> None:
    dataset = small_workload(seed=5, duration_s=50)
    service = HangingService(dataset.metas, LatencyModel(create_ms=5))
    platform = Platform(service, mode)
    await platform.up()
    app = ScalerApp(
        Settings(
            listen="127.0.0.1:0",
            platform_address=f"127.0.0.1:{platform.port}",
            policy=policy,
            create_deadline=CREATE_DEADLINE_S,
            init_deadline=CREATE_DEADLINE_S + 5,
            destroy_deadline=CREATE_DEADLINE_S,
            destroy_wait=15.0,
            shutdown_grace=1.0,
        )
    )
    checker = TransitionChecker()
    app.journal.attach(checker)
    port = await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    transport = RecordingTransport(rpc.ScalerStub(channel))
    replayer = Replayer(dataset, transport, service.ledger, speed=2.0, epoch_timestamps=True)

    async def outage() -> tuple[float, float]:
        await asyncio.sleep(5.0)
        start = time.monotonic()
        await platform.outage()
        await asyncio.sleep(10.0)
        await platform.up()
        return start, time.monotonic()

    outage_task = asyncio.ensure_future(outage())
    totals = await replayer.run()
    down, up = await outage_task
    await channel.close()
    lost = await app.stop()
    await platform.stop()

    failed = [a for a in transport.assigns if a[2] != pb.Ok]
    assert failed, "the outage should have failed some cold starts"
    for sent, latency, status, message in failed:
        assert status == pb.InternalError and "CreateSlot failed" in message
        # up + 2 s: the channel reconnects within 1 s (capped back-off), plus retries.
        assert down - 1.0 <= sent <= up + 2.0, "a failure outside the outage window"
        assert ("deadline" in message.lower()) == (mode == "hung"), message
        assert latency < bound_s, f"an Assign hung for {latency:.1f} s"
    during = [a for a in transport.assigns if down + 0.5 < a[0] < up - 0.5]
    assert any(a[2] == pb.Ok for a in during), "warm hits should go on during the outage"
    after = [a for a in transport.assigns if a[0] > up + 2.0]
    assert after and all(a[2] == pb.Ok for a in after), "the scaler did not recover"
    assert totals.failed_requests == len(failed)
    assert lost == [] and service.ledger.live_count == 0
    assert checker.violations == [] and checker.unfinished() == {}

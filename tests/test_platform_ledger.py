"""The platform's ledger bills a slot from its accepted CreateSlot request (issue 14, item 1).

The contract charges a slot "from its CreateSlot to its DestroySlot", and the oracle pays the
create delay of every cold start; the ledger must agree, and a call the platform refused,
throttled or failed must cost nothing.
"""

from __future__ import annotations

import asyncio

import pytest

from scaler.wire import pb
from simulator.dataset import FunctionMeta
from simulator.faults import FaultSpec
from simulator.platform import LatencyModel, PlatformService
from simulator.virtual_loop import run_virtual

META = FunctionMeta(key="f", runtime="go", timeout_s=30, memory_mb=1024, init_duration_ms=400)


def _create(memory_mb: int = 1024) -> pb.CreateSlotRequest:
    return pb.CreateSlotRequest(
        request_id="c", resource_config=pb.ResourceConfig(memory_in_megabytes=memory_mb)
    )


def _service(faults: str = "", create_ms: float = 500.0) -> PlatformService:
    return PlatformService({"f": META}, LatencyModel(create_ms=create_ms), FaultSpec.parse(faults))


def test_a_slot_costs_from_its_create_slot_request_to_its_destroy_slot() -> None:
    service = _service(create_ms=500.0)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(1.0)  # the request is sent at t = 1.0, answered at 1.5
        reply = await service.CreateSlot(_create())
        assert reply.status == pb.Ok
        assert loop.time() == pytest.approx(1.5)
        await asyncio.sleep(2.0)  # destroyed at t = 3.5
        destroyed = await service.DestroySlot(pb.DestroySlotRequest(id=reply.slot.id))
        assert destroyed.status == pb.Ok
        return service.ledger.slot_gbs(10.0)

    # 1 GB from 1.0 (the request, not the answer at 1.5) to 3.5.
    assert run_virtual(scenario()) == pytest.approx(2.5)


def test_a_slot_never_destroyed_costs_until_the_end_of_the_run() -> None:
    service = _service(create_ms=100.0)

    async def scenario() -> float:
        await service.CreateSlot(_create(memory_mb=512))
        return service.ledger.slot_gbs(4.0)

    assert run_virtual(scenario()) == pytest.approx(4.0 * 0.5)


@pytest.mark.parametrize("faults", ["throttle=1", "create_error=1"])
def test_a_refused_create_slot_costs_nothing(faults: str) -> None:
    service = _service(faults)

    async def scenario() -> tuple[int, float]:
        reply = await service.CreateSlot(_create())
        assert reply.status != pb.Ok
        return service.ledger.live_count, service.ledger.slot_gbs(10.0)

    assert run_virtual(scenario()) == (0, 0.0)


def test_a_create_slot_with_zero_memory_costs_nothing() -> None:
    service = _service()

    async def scenario() -> float:
        reply = await service.CreateSlot(_create(memory_mb=0))
        assert reply.status == pb.InvalidArgument
        return service.ledger.slot_gbs(10.0)

    assert run_virtual(scenario()) == 0.0

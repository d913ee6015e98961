"""In-process fakes for the scheduler's edges: a platform without sockets."""

from __future__ import annotations

import asyncio
import itertools

import attrs

from scaler.platform import InitInfo, PlatformError, SlotInfo, SlotNotFound
from scaler.states import FunctionSpec


@attrs.define
class FakeSlot:
    id: str
    memory_mb: int
    instance_id: str | None = None
    key: str | None = None


class FakePlatform:
    """A PlatformApi that keeps its slots in a dict.

    ``fail`` holds per-operation counts of calls that should fail next (``create``, ``init``,
    ``destroy``); ``delay_s`` makes calls take (loop) time; ``gate`` holds CreateSlot until set.
    """

    def __init__(self, delay_s: float = 0.0) -> None:
        self.slots: dict[str, FakeSlot] = {}
        self.created: list[str] = []
        self.destroyed: list[str] = []
        self.reasons: dict[str, str] = {}  # slot -> the reason its DestroySlot carried
        self.fail = {"create": 0, "init": 0, "destroy": 0}
        self.delay_s = delay_s
        self.gate: asyncio.Event | None = None
        self.unanswered = 0  # CreateSlot calls that get no answer (a deadline error)
        self._ids = itertools.count(1)

    async def _pause(self) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)

    def _should_fail(self, op: str) -> bool:
        if self.fail[op] > 0:
            self.fail[op] -= 1
            return True
        return False

    async def create_slot(self, request_id: str, memory_mb: int) -> SlotInfo:
        if self.gate is not None:
            await self.gate.wait()
        await self._pause()
        if self.unanswered > 0:
            self.unanswered -= 1
            raise PlatformError("CreateSlot", "no answer within the 10 s deadline")
        if self._should_fail("create"):
            raise PlatformError("CreateSlot", "InternalError: injected", status=2)
        slot = FakeSlot(f"slot-{next(self._ids)}", memory_mb)
        self.slots[slot.id] = slot
        self.created.append(slot.id)
        return SlotInfo(slot.id, memory_mb, 0)

    async def init(
        self, request_id: str, slot_id: str, instance_id: str, spec: FunctionSpec
    ) -> InitInfo:
        await self._pause()
        slot = self.slots.get(slot_id)
        if slot is None:
            raise SlotNotFound("Init", "no such slot")
        if self._should_fail("init"):
            raise PlatformError("Init", "InternalError: injected", status=2)
        assert slot.instance_id is None, "Init on an initialised slot"
        slot.instance_id, slot.key = instance_id, spec.key
        return InitInfo(init_duration_ms=25)

    async def destroy_slot(self, request_id: str, slot_id: str, reason: str) -> None:
        await self._pause()
        if self._should_fail("destroy"):
            raise PlatformError("DestroySlot", "InternalError: injected", status=2)
        if self.slots.pop(slot_id, None) is None:
            raise SlotNotFound("DestroySlot", f"slot {slot_id} does not exist")
        self.destroyed.append(slot_id)
        self.reasons[slot_id] = reason

    def live_instance(self, instance_id: str) -> FakeSlot | None:
        return next((s for s in self.slots.values() if s.instance_id == instance_id), None)

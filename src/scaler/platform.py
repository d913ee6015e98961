"""Client of the platform service (CreateSlot, Init, DestroySlot).

Every call carries a deadline. ``Throttle`` answers and gRPC ``UNAVAILABLE`` are retried with
bounded exponential back-off; anything else is raised as :class:`PlatformError` for the
scheduler to drive the instance down its failure edge. The client works over any object with
the stub's three coroutine methods, so the fast simulator plugs in an in-process stub and the
retry logic runs unchanged in virtual time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Protocol

import attrs
import grpc

from scaler.states import FunctionSpec
from scaler.wire import pb

OK = pb.Ok
THROTTLE = pb.Throttle
NOT_FOUND = pb.NotFound


class PlatformError(Exception):
    """A platform call failed for good (after retries)."""

    def __init__(self, op: str, cause: str, *, status: int | None = None) -> None:
        super().__init__(f"{op} failed: {cause}")
        self.op = op
        self.cause = cause
        self.status = status


class SlotNotFound(PlatformError):
    """The platform does not know the slot (DestroySlot treats this as already destroyed)."""


@attrs.frozen(slots=True)
class SlotInfo:
    id: str
    memory_mb: int
    create_duration_ms: int


@attrs.frozen(slots=True)
class InitInfo:
    init_duration_ms: int


class PlatformApi(Protocol):
    """What the scheduler needs from the platform."""

    async def create_slot(self, request_id: str, memory_mb: int) -> SlotInfo: ...

    async def init(
        self, request_id: str, slot_id: str, instance_id: str, spec: FunctionSpec
    ) -> InitInfo: ...

    async def destroy_slot(self, request_id: str, slot_id: str, reason: str) -> None: ...


class PlatformStub(Protocol):
    """The generated ``PlatformStub`` shape (grpc.aio), or an in-process twin."""

    def CreateSlot(self, request: Any, *, timeout: float | None = None) -> Any: ...
    def Init(self, request: Any, *, timeout: float | None = None) -> Any: ...
    def DestroySlot(self, request: Any, *, timeout: float | None = None) -> Any: ...


@attrs.frozen
class RetryPolicy:
    """Bounded exponential back-off for retryable answers."""

    attempts: int = 6
    first_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def delays(self) -> list[float]:
        """The pauses between attempts (one fewer than the attempts)."""
        out, delay = [], self.first_delay_s
        for _ in range(self.attempts - 1):
            out.append(delay)
            delay = min(delay * 2, self.max_delay_s)
        return out


@attrs.frozen
class Deadlines:
    """Per-call deadlines in seconds (Init waits for the function's own initialisation)."""

    create_s: float = 10.0
    init_s: float = 300.0
    destroy_s: float = 10.0


_RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


class PlatformClient:
    """:class:`PlatformApi` over a Platform stub, with deadlines and retries."""

    def __init__(
        self,
        stub: PlatformStub,
        deadlines: Deadlines | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._stub = stub
        self._deadlines = deadlines or Deadlines()
        self._delays = (retry or RetryPolicy()).delays()
        self.calls = 0
        self.retries = 0
        #: Failed calls by (operation, kind): kind is a Status name, a gRPC code or "deadline".
        self.errors: Counter[tuple[str, str]] = Counter()

    async def create_slot(self, request_id: str, memory_mb: int) -> SlotInfo:
        request = pb.CreateSlotRequest(
            request_id=request_id, resource_config=pb.ResourceConfig(memory_in_megabytes=memory_mb)
        )
        reply = await self._call("CreateSlot", request, self._deadlines.create_s)
        if not reply.HasField("slot") or not reply.slot.id:
            raise self._fail("CreateSlot", "reply carries no slot", reply.status)
        slot = reply.slot
        return SlotInfo(
            id=slot.id,
            memory_mb=slot.resource_config.memory_in_megabytes or memory_mb,
            create_duration_ms=slot.create_duration_in_ms,
        )

    async def init(
        self, request_id: str, slot_id: str, instance_id: str, spec: FunctionSpec
    ) -> InitInfo:
        request = pb.InitRequest(
            request_id=request_id,
            slot_id=slot_id,
            instance_id=instance_id,
            meta_data=pb.Meta(
                key=spec.key,
                runtime=spec.runtime,
                timeout_in_secs=spec.timeout_s,
                memory_in_mb=spec.memory_mb,
            ),
        )
        reply = await self._call("Init", request, self._deadlines.init_s)
        return InitInfo(init_duration_ms=reply.init_duration_in_ms)

    async def destroy_slot(self, request_id: str, slot_id: str, reason: str) -> None:
        request = pb.DestroySlotRequest(request_id=request_id, id=slot_id, reason=reason)
        await self._call("DestroySlot", request, self._deadlines.destroy_s)

    async def _call(self, op: str, request: Any, deadline: float) -> Any:
        method = getattr(self._stub, op)
        last = ""
        for attempt in range(len(self._delays) + 1):
            if attempt:
                self.retries += 1
                await asyncio.sleep(self._delays[attempt - 1])
            self.calls += 1
            try:
                reply = await method(request, timeout=deadline)
            except grpc.RpcError as err:  # grpc.aio.AioRpcError is one
                code = err.code() if hasattr(err, "code") else None
                kind = str(getattr(code, "name", code))
                last = f"gRPC {kind}: {_details(err)}"
                if code in _RETRYABLE_CODES:
                    continue
                raise self._fail(op, last, kind) from None
            except TimeoutError:
                cause = f"no answer within the {deadline:g} s deadline"
                raise self._fail(op, cause, "deadline") from None
            if reply.status == OK:
                return reply
            message = reply.error_message if reply.HasField("error_message") else ""
            kind = pb.Status.Name(reply.status)
            last = f"{kind}: {message or 'no message'}"
            if reply.status == THROTTLE:
                continue
            raise self._fail(op, last, kind, reply.status)
        cause = f"still failing after {len(self._delays) + 1} attempts ({last})"
        raise self._fail(op, cause, "retries-exhausted")

    def _fail(self, op: str, cause: str, kind: str, status: int | None = None) -> PlatformError:
        self.errors[op, kind] += 1
        error = SlotNotFound if status == NOT_FOUND else PlatformError
        return error(op, cause, status=status)


def _details(err: grpc.RpcError) -> str:
    details = getattr(err, "details", None)
    return (details() if callable(details) else "") or "no details"

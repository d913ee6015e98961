"""gRPC servicer of ``serverless.simulator.Scaler``: validate, delegate, translate errors.

Every refusal is an answer, not an exception: the reply's ``status`` says what went wrong and
``error_message`` says why (the mapping is in docs/errors.md). Validation happens before the
scheduler is touched, so bad input changes no state. An unexpected failure inside the scaler is
answered ``InternalError`` with its message too: the caller never sees a transport error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from scaler.answers import RunResult, SchedulerError
from scaler.scheduler import Scheduler
from scaler.states import FunctionSpec, IllegalTransition
from scaler.wire import pb, rpc

#: Longest request id, instance id or function key accepted (longer ones: InvalidArgument).
MAX_ID_LENGTH = 512
#: Largest memory a function may ask for (1 TiB): beyond it the request is nonsense.
MAX_MEMORY_MB = 1 << 20

#: A function's Meta fields, as the servicer's spec cache keys them.
SpecFields = tuple[str, int, str, int]

_STATUS = {
    "InvalidArgument": pb.InvalidArgument,
    "NotFound": pb.NotFound,
    "InvalidAssigment": pb.InvalidAssigment,
    "InternalError": pb.InternalError,
}


class BadRequest(Exception):
    """The request is malformed: answered with InvalidArgument."""


def _check_id(name: str, value: str) -> None:
    if not value:
        raise BadRequest(f"{name} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise BadRequest(f"{name} is {len(value)} characters long (limit {MAX_ID_LENGTH})")


def spec_from_assign(
    request: Any, cache: dict[SpecFields, FunctionSpec] | None = None, limit: int = 0
) -> FunctionSpec:
    """Validate an AssignRequest and extract the function it asks for (from ``cache`` when
    the same Meta was seen: every Assign names its function's Meta, and building the frozen
    spec anew costs more than looking it up; at most ``limit`` specs are kept, and none with
    a runtime longer than an id, so the cache stays small whatever the callers send)."""
    _check_id("request_id", request.request_id)
    if not request.HasField("meta_data"):
        raise BadRequest("meta_data is missing")
    meta = request.meta_data
    _check_id("meta_data.key", meta.key)
    if meta.memory_in_mb == 0:
        raise BadRequest(f"meta_data.memory_in_mb is 0 for function {meta.key}")
    if meta.memory_in_mb > MAX_MEMORY_MB:
        raise BadRequest(f"meta_data.memory_in_mb {meta.memory_in_mb} exceeds {MAX_MEMORY_MB}")
    fields = (meta.key, meta.memory_in_mb, meta.runtime, meta.timeout_in_secs)
    if cache is None:
        return FunctionSpec(*fields)
    spec = cache.get(fields)
    if spec is None:
        spec = FunctionSpec(*fields)
        if len(meta.runtime) <= MAX_ID_LENGTH:
            if len(cache) >= limit:
                cache.clear()
            cache[fields] = spec
    return spec


def result_from_idle(request: Any) -> RunResult:
    """Validate an IdleRequest (its ids are checked here, its instance by the scheduler)."""
    if not request.HasField("assigment"):
        raise BadRequest("assigment is missing")
    a = request.assigment
    _check_id("assigment.request_id", a.request_id)
    _check_id("assigment.meta_key", a.meta_key)
    _check_id("assigment.instance_id", a.instance_id)
    r = request.result
    return RunResult(
        status_code=r.status_code,
        duration_ms=r.duration_in_ms,
        need_destroy=r.need_destroy if r.HasField("need_destroy") else False,
        reason=r.reason if r.HasField("reason") else "",
    )


def _internal(err: Exception) -> str:
    """The message of an unexpected failure: what went wrong, never a transport error."""
    kind = "illegal transition" if isinstance(err, IllegalTransition) else type(err).__name__
    return f"internal error ({kind}): {err}"


class ScalerServicer(rpc.ScalerServicer):
    """Translates the wire to :class:`Scheduler` calls and scheduler errors to statuses."""

    def __init__(
        self, scheduler: Scheduler, observe: Callable[[str, float], None] | None = None
    ) -> None:
        self.scheduler = scheduler
        self._observe = observe
        #: Specs by Meta, one per function the scheduler may track (spec_from_assign).
        self._specs: dict[SpecFields, FunctionSpec] = {}
        self._specs_limit = scheduler.settings.max_functions

    async def Assign(self, request: Any, context: Any = None) -> Any:
        if self._observe is None:
            return await self._assign(request)
        started = time.perf_counter()
        try:
            return await self._assign(request)
        finally:
            self._observe("Assign", time.perf_counter() - started)

    async def Idle(self, request: Any, context: Any = None) -> Any:
        if self._observe is None:
            return await self._idle(request)
        started = time.perf_counter()
        try:
            return await self._idle(request)
        finally:
            self._observe("Idle", time.perf_counter() - started)

    async def _assign(self, request: Any) -> Any:
        try:
            spec = spec_from_assign(request, self._specs, self._specs_limit)
            assigned = await self.scheduler.assign(request.request_id, spec)
        except BadRequest as err:
            return pb.AssignReply(status=pb.InvalidArgument, error_message=str(err))
        except SchedulerError as err:
            return pb.AssignReply(status=_STATUS[err.status], error_message=str(err))
        except Exception as err:  # a scheduler bug, never the caller's fault: still an answer
            logger.exception("Assign failed inside the scaler")
            return pb.AssignReply(status=pb.InternalError, error_message=_internal(err))
        return pb.AssignReply(
            status=pb.Ok,
            assigment=pb.Assignment(
                request_id=assigned.request_id,
                meta_key=assigned.key,
                instance_id=assigned.instance_id,
            ),
        )

    async def _idle(self, request: Any) -> Any:
        try:
            result = result_from_idle(request)
            a = request.assigment
            await self.scheduler.idle(a.request_id, a.meta_key, a.instance_id, result)
        except BadRequest as err:
            return pb.IdleReply(status=pb.InvalidArgument, error_message=str(err))
        except SchedulerError as err:
            return pb.IdleReply(status=_STATUS[err.status], error_message=str(err))
        except Exception as err:
            logger.exception("Idle failed inside the scaler")
            return pb.IdleReply(status=pb.InternalError, error_message=_internal(err))
        return pb.IdleReply(status=pb.Ok)

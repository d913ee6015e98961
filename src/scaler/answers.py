"""What the scheduler answers: an assignment, the finished request's result, and refusals.

Each refusal names the wire ``Status`` the servicer answers with (docs/errors.md).
"""

from __future__ import annotations

import attrs


class SchedulerError(Exception):
    """A request the scheduler refuses; ``status`` names the wire Status to answer with."""

    status = "InternalError"


class InvalidArgument(SchedulerError):
    status = "InvalidArgument"


class NotFound(SchedulerError):
    status = "NotFound"


class InvalidAssignment(SchedulerError):
    status = "InvalidAssigment"


class Unavailable(SchedulerError):
    """Cold start failed, timed out, or the scaler is shutting down."""

    status = "InternalError"


@attrs.frozen(slots=True)
class RunResult:
    """What Idle reports about the finished request."""

    status_code: int = 200
    duration_ms: int = 0
    need_destroy: bool = False
    reason: str = ""


@attrs.frozen(slots=True)
class Assigned:
    """The answer to an Assign; ``cold`` when the request had to wait for its instance."""

    request_id: str
    key: str
    instance_id: str
    cold: bool

"""Which instance an Idle may release, and a bounded memory of requests already released, so a
duplicate or late Idle gets a clear answer instead of touching an instance now serving another
request."""

from __future__ import annotations

from collections.abc import Mapping

from scaler.answers import InvalidAssignment, NotFound
from scaler.states import BUSY, Instance


class FinishedRequests:
    """At least the last ``capacity`` released requests (request id → instance id).

    Two generations of plain dicts: the newest fills to ``capacity``, then replaces the
    older one, so memory is bounded by twice ``capacity`` and every operation is O(1). A
    plain dict of strings is not tracked by the cyclic collector; an OrderedDict is, and a
    full collection would walk its hundreds of thousands of ids inside whichever Assign or
    Idle triggers it.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._recent: dict[str, str] = {}
        self._older: dict[str, str] = {}

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._recent or request_id in self._older

    def remember(self, request_id: str, instance_id: str) -> None:
        if len(self._recent) >= self.capacity:
            self._older, self._recent = self._recent, {}
        self._recent[request_id] = instance_id

    def _released_to(self, request_id: str) -> str | None:
        found = self._recent.get(request_id)
        return found if found is not None else self._older.get(request_id)

    def check(
        self, instances: Mapping[str, Instance], request_id: str, key: str, instance_id: str
    ) -> Instance:
        """The instance ``request_id`` may release, else the refusal that says why."""
        instance = instances.get(instance_id)
        released = self._released_to(request_id) == instance_id
        if instance is None:
            if released:
                raise InvalidAssignment(f"request {request_id} was already released")
            raise NotFound(f"instance {instance_id} does not exist (never created or deleted)")
        if instance.function.key != key:
            raise InvalidAssignment(
                f"instance {instance_id} belongs to function {instance.function.key}, not {key}"
            )
        if instance.state != BUSY or instance.request_id != request_id:
            if released:
                raise InvalidAssignment(f"request {request_id} was already released")
            serving = f" and serves request {instance.request_id}" if instance.state == BUSY else ""
            raise InvalidAssignment(
                f"instance {instance_id} is not serving request {request_id} "
                f"(it is {instance.state}{serving})"
            )
        return instance

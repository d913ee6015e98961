"""Which instance an Idle may release, and a bounded memory of requests already released, so a
duplicate or late Idle gets a clear answer instead of touching an instance now serving another
request."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from scaler.answers import InvalidAssignment, NotFound
from scaler.states import BUSY, Instance


class FinishedRequests:
    """The last ``capacity`` released requests (request id → instance id), oldest dropped."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._released: OrderedDict[str, str] = OrderedDict()

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._released

    def remember(self, request_id: str, instance_id: str) -> None:
        self._released[request_id] = instance_id
        if len(self._released) > self.capacity:
            self._released.popitem(last=False)

    def check(
        self, instances: Mapping[str, Instance], request_id: str, key: str, instance_id: str
    ) -> Instance:
        """The instance ``request_id`` may release, else the refusal that says why."""
        instance = instances.get(instance_id)
        released = self._released.get(request_id) == instance_id
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

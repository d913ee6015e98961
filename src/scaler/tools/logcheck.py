"""``scaler log --check``: verify a transition log against the FSM, in one streaming pass.

State is kept only for live instances (an instance is forgotten when it reaches ``deleted``)
plus a fixed-size memory of recent deletions for clearer messages, so memory does not grow with
the length of the log. The first violation stops the check; it is named by file:line.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import attrs

from scaler.states.lifecycle import (
    BUSY,
    CREATING,
    DELETED,
    DELETING,
    INITIAL_STATE,
    INITING,
    allowed,
)
from scaler.tools.logread import Record, Where

#: States an instance's first record may start from: ``new`` (its ``create`` record), or
#: ``creating`` in logs written before creation was recorded (still read, unchanged).
FIRST_STATES = (INITIAL_STATE, CREATING)

RECENT_DELETIONS = 1024
"""How many deleted instances are remembered to say "was deleted at ..." (bounded memory)."""


class _Life:
    """What the check knows of one live instance."""

    __slots__ = ("assigned_at", "function", "request", "slot", "state", "time", "where")

    def __init__(self, rec: Record, where: Where) -> None:
        self.state: str = rec["from"]
        self.time: float = rec["time"]
        self.function: str = rec["function"]
        self.slot: str | None = rec["slot"]
        self.request: str | None = None
        self.where: Where = where
        self.assigned_at: Where = where


@attrs.frozen
class LiveInstance:
    """An instance that had not reached ``deleted`` when the log ended."""

    instance: str
    state: str
    slot: str | None
    where: Where


class Checker:
    """Feeds records one at a time; :meth:`feed` returns a message for a violating record."""

    def __init__(self, describe: Callable[[Where], str] = str) -> None:
        self._describe = describe
        self._live: dict[str, _Life] = {}
        self._serving: dict[str, str] = {}  # request -> instance, while busy
        self._deleted: OrderedDict[str, Where] = OrderedDict()
        self.records = 0
        self.instances = 0

    def feed(self, where: Where, rec: Record) -> str | None:
        """Check one record and apply it; a message names the broken invariant, else None."""
        instance = rec["instance"]
        event = rec["event"]
        source = rec["from"]
        dest = rec["to"]
        expected = allowed(source, event)
        if expected is None:
            return _forbidden(event, source, rec)
        if expected != dest:
            return f"event {event!r} leads from {source!r} to {expected!r}, not {dest!r}"
        life = self._live.get(instance)
        if life is None:
            if source not in FIRST_STATES:
                return self._unknown(instance, event, source)
            life = _Life(rec, where)
            self._live[instance] = life
            self._deleted.pop(instance, None)
            self.instances += 1
        else:
            problem = self._continuity(life, instance, event, source, rec)
            if problem:
                return problem
        problem = self._requests(life, instance, event, source, rec, where)
        if problem:
            return problem
        self.records += 1
        life.state = dest
        life.time = rec["time"]
        life.where = where
        if rec["slot"] is not None:
            life.slot = rec["slot"]
        if dest == DELETED:
            del self._live[instance]
            self._deleted[instance] = where
            if len(self._deleted) > RECENT_DELETIONS:
                self._deleted.popitem(last=False)
        return None

    def live(self) -> list[LiveInstance]:
        """Instances still alive (holding a slot, or about to) at the end of what was fed."""
        return [
            LiveInstance(instance, life.state, life.slot, life.where)
            for instance, life in self._live.items()
        ]

    def _unknown(self, instance: str, event: str, source: str) -> str:
        gone = self._deleted.get(instance)
        if gone is not None:
            what = "assignment of a deleted instance" if event == "assign" else "deleted instance"
            return (
                f"{what}: {instance} was deleted at {self._describe(gone)}, "
                f"this record says it was {source!r}"
            )
        return (
            f"first record of instance {instance} must start from {INITIAL_STATE!r} (or "
            f"{CREATING!r} in older logs), "
            f"not {source!r} (a record is missing, or the log starts mid-run)"
        )

    def _continuity(
        self, life: _Life, instance: str, event: str, source: str, rec: Record
    ) -> str | None:
        if source != life.state:
            if event == "assign" and life.state == BUSY:
                return (
                    f"instance {instance} serving two requests at once: assign of "
                    f"{rec['request']} while it serves {life.request} "
                    f"(assigned at {self._describe(life.assigned_at)})"
                )
            if event == "assign" and life.state in (CREATING, INITING):
                return (
                    f"assignment of an uninitialised instance: {instance} is {life.state!r} "
                    f"(since {self._describe(life.where)})"
                )
            return (
                f"record says {instance} was {source!r}, but it is {life.state!r} "
                f"(since {self._describe(life.where)})"
            )
        if rec["time"] < life.time:
            return (
                f"time goes backwards for {instance}: {rec['time']} < {life.time} "
                f"(at {self._describe(life.where)})"
            )
        if rec["function"] != life.function:
            return f"instance {instance} changed function: {life.function} -> {rec['function']}"
        if life.slot is not None and rec["slot"] is not None and rec["slot"] != life.slot:
            return f"instance {instance} changed slot: {life.slot} -> {rec['slot']}"
        return None

    def _requests(
        self, life: _Life, instance: str, event: str, source: str, rec: Record, where: Where
    ) -> str | None:
        request = rec["request"]
        if event == "assign":
            if not request:
                return f"assign of {instance} names no request"
            other = self._serving.get(request)
            if other is not None:
                return f"request {request} assigned to {instance} while {other} still serves it"
            self._serving[request] = instance
            life.request = request
            life.assigned_at = where
            return None
        if source == BUSY:
            if request != life.request:
                return (
                    f"{event} of {instance} for request {request}, but it serves "
                    f"{life.request} (assigned at {self._describe(life.assigned_at)})"
                )
            self._serving.pop(life.request, None)  # type: ignore[arg-type]
            life.request = None
        return None


def _forbidden(event: str, source: str, rec: Record) -> str:
    """Why an edge the FSM does not have is wrong, in the words of the invariant it breaks."""
    if event == "assign":
        if source == DELETED:
            return f"assignment of a deleted instance ({rec['instance']} is 'deleted')"
        if source in (CREATING, INITING):
            return f"assignment of an uninitialised instance ({rec['instance']} is {source!r})"
        if source == BUSY:
            return (
                f"instance {rec['instance']} serving two requests at once: assign of "
                f"{rec['request']} while busy"
            )
        if source == DELETING:
            return f"assignment of an instance being deleted ({rec['instance']})"
    return f"the FSM has no event {event!r} from state {source!r}"

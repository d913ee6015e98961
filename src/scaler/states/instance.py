"""One instance, one state machine.

Every instance is driven by one shared ``transitions.Machine`` built from
:mod:`scaler.states.lifecycle`: events are fired through the machine's ``Event.trigger`` with
the instance as the model, so the machine validates the edge, sets ``state`` and runs the
after-transition hook. Instances are not registered with the machine (``add_model``): that would
bind ~30 methods per instance and make every registration scan every live instance (measured:
170 µs per creation and 8.9 KB per instance at 10,000 live ones). The ``state`` attribute,
written only by the machine, is the only record of where an instance is in its life; pools keep
indexes that are updated from the transition callback, never written on their own. An event the
current state does not allow raises :class:`IllegalTransition` before anything changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
from transitions import EventData, Machine, MachineError

from scaler.states.journal import Journal, TransitionRecord
from scaler.states.lifecycle import BUSY, EDGES, EVENTS, INITIAL_STATE, STATES

if TYPE_CHECKING:
    from scaler.clock import Clock


class IllegalTransition(Exception):
    """An event was fired that the instance's current state does not allow."""

    def __init__(self, instance_id: str, state: str, event: str) -> None:
        super().__init__(
            f"instance {instance_id}: event {event!r} is not allowed in state {state!r}"
        )
        self.instance_id = instance_id
        self.state = state
        self.event = event


@attrs.frozen(slots=True)
class FunctionSpec:
    """What the scaler knows of a function from the request's Meta."""

    key: str
    memory_mb: int
    runtime: str = ""
    timeout_s: int = 0


StateListener = Callable[["Instance", str, str], None]

MACHINE = Machine(
    model=None,
    states=list(STATES),
    transitions=[{"trigger": e.event, "source": e.source, "dest": e.dest} for e in EDGES],
    initial=INITIAL_STATE,
    auto_transitions=False,
    send_event=True,
    after_state_change="_after_transition",
    ignore_invalid_triggers=False,
)


#: The machine's events by name (only the table's events: never a method of the instance).
_EVENTS = {name: MACHINE.events[name] for name in EVENTS}


class Instance:
    """A function instance on a slot; its lifecycle is the FSM's ``state``."""

    __slots__ = (
        "_clock",
        "_journal",
        "_listener",
        "changed_at",
        "created_at",
        "function",
        "init_duration_ms",
        "instance_id",
        "keep_until",
        "request_id",
        "served",
        "slot_id",
        "state",
    )

    def __init__(
        self,
        instance_id: str,
        function: FunctionSpec,
        clock: Clock,
        journal: Journal,
        listener: StateListener | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.function = function
        self.slot_id: str | None = None
        self.request_id: str | None = None
        self.created_at = clock.now()
        self.changed_at = self.created_at
        self.served = 0
        self.init_duration_ms: int | None = None
        self.keep_until: float = float("inf")
        self._clock = clock
        self._journal = journal
        self._listener = listener
        self.state = INITIAL_STATE  # from here on written only by MACHINE

    def __repr__(self) -> str:
        return f"Instance({self.instance_id}, {self.function.key}, {self.state})"

    def fire(
        self,
        event: str,
        reason: str = "",
        *,
        request: str | None = None,
        slot_id: str | None = None,
    ) -> None:
        """Fire ``event``; raise :class:`IllegalTransition` (changing nothing) if not allowed."""
        machine_event = _EVENTS.get(event)
        if machine_event is None:
            raise IllegalTransition(self.instance_id, self.state, event)
        try:
            machine_event.trigger(self, reason=reason, request=request, slot_id=slot_id)
        except MachineError:
            raise IllegalTransition(self.instance_id, self.state, event) from None

    def _after_transition(self, event_data: EventData) -> None:
        kwargs = event_data.kwargs
        source = event_data.transition.source
        dest = event_data.transition.dest
        if kwargs.get("slot_id"):
            self.slot_id = kwargs["slot_id"]
        request = kwargs.get("request") or self.request_id
        if dest == BUSY:
            self.request_id = request
            self.served += 1
        elif source == BUSY:
            self.request_id = None
        now = self._clock.now()
        self.changed_at = now
        if self._journal.active:
            self._journal.emit(
                TransitionRecord(
                    time=now,
                    instance=self.instance_id,
                    slot=self.slot_id,
                    function=self.function.key,
                    request=request,
                    event=event_data.event.name,
                    source=source,
                    dest=dest,
                    reason=kwargs.get("reason", ""),
                )
            )
        if self._listener is not None:
            self._listener(self, source, dest)

"""One instance, one state machine, and the data that goes with its state.

Every instance is driven by one shared ``transitions.Machine`` built from
:mod:`scaler.states.lifecycle`: events are fired through the machine's ``Event.trigger`` with
the instance as the model, so the machine checks the edge and its guard (a real ``transitions``
condition), sets ``state`` and runs the one after-transition callback. That callback is the only
writer of the instance's lifecycle data: the request a busy instance serves, the keep-alive
deadline of an idle one, its slot, why it is being deleted. It then tells the instance's
:class:`Lifecycle` (which derives every index from the transition and starts the platform call
the new state implies) and the journal, in that order, so a failing log sink cannot leave an
index behind the FSM.

The machine is a :class:`~scaler.states.machine.LeanMachine`: the library's classes, minus
their walks of the callback lists this machine leaves empty (about 40 % of an event's cost).

Instances are not registered with the machine (``add_model``): that would bind ~30 methods per
instance and make every registration scan every live instance (measured: 170 µs per creation
and 8.9 KB per instance at 10,000 live ones). An event the current state does not allow, or
whose guard fails, raises :class:`IllegalTransition` before anything changes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

import attrs
from transitions import EventData, Machine, MachineError

from scaler.states.journal import Journal, TransitionRecord
from scaler.states.lifecycle import (
    BUSY,
    DELETING,
    EDGES,
    EVENTS,
    IDLE,
    INITIAL_STATE,
    STATES,
)
from scaler.states.machine import LeanMachine

if TYPE_CHECKING:
    import asyncio

    from scaler.clock import Clock


class IllegalTransition(Exception):
    """An event was fired that the instance's current state (or the edge's guard) refuses."""

    def __init__(self, instance_id: str, state: str, event: str, why: str = "") -> None:
        detail = f" ({why})" if why else ""
        super().__init__(
            f"instance {instance_id}: event {event!r} is not allowed in state {state!r}{detail}"
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


class Lifecycle(Protocol):
    """Who hears of an instance's transitions: indexes first, then effects."""

    def on_transition(
        self, instance: Instance, source: str, dest: str, request: str | None
    ) -> None:
        """Update every index derived from instance states (must not fail). ``request``: the
        request the instance now serves (into ``busy``) or served (out of it)."""

    def on_entered(self, instance: Instance, source: str, dest: str) -> None:
        """Start what the new state implies (a platform call), after the record is out."""


def build_machine(cls: type[Machine] = LeanMachine, **options: Any) -> Machine:
    """A machine of class ``cls`` built from the lifecycle table (``options`` override or add
    ``transitions.Machine`` arguments; the tests compare the lean machine with the stock one)."""
    return cls(
        **{
            "model": None,
            "states": list(STATES),
            "transitions": [
                {
                    "trigger": e.event,
                    "source": e.source,
                    "dest": e.dest,
                    "conditions": [e.condition] if e.condition else [],
                }
                for e in EDGES
            ],
            "initial": INITIAL_STATE,
            "auto_transitions": False,
            "send_event": True,
            "after_state_change": "_after_transition",
            "ignore_invalid_triggers": False,
            **options,
        }
    )


MACHINE = build_machine()


#: The machine's events by name (only the table's events: never a method of the instance).
_EVENTS = {name: MACHINE.events[name] for name in EVENTS}
_GUARDS = {e.event: e.condition for e in EDGES if e.condition}


class Instance:
    """A function instance on a slot; its lifecycle is the FSM's ``state`` and the data below,
    all written by the transition callback only."""

    __slots__ = (
        "_clock",
        "_journal",
        "_lifecycle",
        "cause",
        "changed_at",
        "create_ms",
        "created_at",
        "for_request",
        "function",
        "init_ms",
        "instance_id",
        "keep_until",
        "prewarm_until",
        "request_id",
        "served",
        "slot_id",
        "state",
        "task",
    )

    def __init__(
        self,
        instance_id: str,
        function: FunctionSpec,
        clock: Clock,
        journal: Journal,
        lifecycle: Lifecycle | None = None,
        *,
        for_request: str | None = None,
        prewarm_until: float | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.function = function
        #: The request whose wait started it (None: a pre-warm); its failure retries for it.
        self.for_request = for_request
        #: A pre-warm's deadline, from the policy's order: kept until then if nobody takes it.
        self.prewarm_until = prewarm_until
        self.slot_id: str | None = None
        #: The request a busy instance serves (None in every other state).
        self.request_id: str | None = None
        #: Epoch second until which an idle instance is kept (inf in every other state).
        self.keep_until = math.inf
        #: Why the instance is being deleted (a cause of :mod:`scaler.states.lifecycle`).
        self.cause = ""
        #: How long CreateSlot took, and what Init reported (ms), once known.
        self.create_ms: float | None = None
        self.init_ms: int | None = None
        self.created_at = clock.now()
        self.changed_at = self.created_at
        self.served = 0
        #: The platform call in flight for this instance (it ends with the instance).
        self.task: asyncio.Task[Any] | None = None
        self._clock = clock
        self._journal = journal
        self._lifecycle = lifecycle
        self.state = INITIAL_STATE  # from here on written only by MACHINE

    def __repr__(self) -> str:
        return f"Instance({self.instance_id}, {self.function.key}, {self.state})"

    @property
    def prewarmed(self) -> bool:
        """Started ahead of demand (a pre-warm) and not used yet."""
        return self.for_request is None and self.served == 0

    def fire(self, event: str, reason: str = "", **data: Any) -> None:
        """Fire ``event`` with its data (``request``, ``slot_id``, ``keep_until``, ``create_ms``,
        ``init_ms``);
        raise :class:`IllegalTransition`, changing nothing, if the state or guard refuses."""
        machine_event = _EVENTS.get(event)
        if machine_event is None:
            raise IllegalTransition(self.instance_id, self.state, event)
        try:
            taken = machine_event.trigger(self, reason=reason, **data)
        except MachineError:
            raise IllegalTransition(self.instance_id, self.state, event) from None
        if not taken:
            raise IllegalTransition(
                self.instance_id, self.state, event, f"guard {_GUARDS[event]} does not hold"
            )

    # -- guards (transitions conditions) --------------------------------------------------------
    def has_slot(self, event_data: EventData) -> bool:
        return bool(event_data.kwargs.get("slot_id"))

    def names_request(self, event_data: EventData) -> bool:
        return bool(event_data.kwargs.get("request"))

    def serves_request(self, event_data: EventData) -> bool:
        request = event_data.kwargs.get("request")
        return request is not None and request == self.request_id

    # -- the one callback -----------------------------------------------------------------------
    def _after_transition(self, event_data: EventData) -> None:
        kwargs = event_data.kwargs
        transition = event_data.transition
        source = transition.source
        dest = transition.dest
        request = self.for_request if source == INITIAL_STATE else self.request_id
        if dest == BUSY:
            request = self.request_id = kwargs["request"]
            self.served += 1
        elif source == BUSY:
            self.request_id = None
        reason = kwargs["reason"]
        if len(kwargs) > 1:  # data beside the reason (fire always passes one)
            self.keep_until = kwargs.get("keep_until", math.inf) if dest == IDLE else math.inf
            slot_id = kwargs.get("slot_id")
            if slot_id:
                self.slot_id = slot_id
            if "create_ms" in kwargs:
                self.create_ms = kwargs["create_ms"]
            if "init_ms" in kwargs:
                self.init_ms = kwargs["init_ms"]
        else:
            self.keep_until = math.inf
        if dest == DELETING and source != DELETING:
            self.cause = reason
        now = self._clock.now()
        self.changed_at = now
        lifecycle = self._lifecycle
        if lifecycle is not None:
            lifecycle.on_transition(self, source, dest, request)
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
                    reason=reason,
                )
            )
        if lifecycle is not None:
            lifecycle.on_entered(self, source, dest)

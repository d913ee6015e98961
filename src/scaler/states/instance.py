"""One instance, one state machine.

The lifecycle is one shared ``transitions.Machine`` built from :mod:`scaler.states.lifecycle`.
Instances are not registered with it (``add_model`` binds ~30 methods per instance and makes
every registration scan every live instance: 170 µs and 8.9 KB each at 10,000 live ones), and
events do not go through the library's generic ``Event.trigger`` either: that path builds an
``EventData``, walks seven callback lists and makes eight debug-log calls per event (6.6 µs per
event against 0.3 µs here; a fifth of a fast-mode replay went there). Instead
:func:`compile_machine` turns the machine into its edge table ``(state, event) -> dest`` once,
refusing any machine with a callback or condition the table would skip, so
:meth:`Instance.fire` does exactly what the machine would: validate the edge, set ``state``,
run the after-transition hook. The ``state`` attribute, written only by ``fire``, is the only
record of where an instance is in its life; pools keep indexes that are updated from the
transition callback, never written on their own. An event the current state does not allow
raises :class:`IllegalTransition` before anything changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
from transitions import Machine

from scaler.states.journal import Journal, TransitionRecord
from scaler.states.lifecycle import BUSY, EDGES, INITIAL_STATE, STATES

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
    ignore_invalid_triggers=False,
)


def compile_machine(machine: Machine) -> dict[tuple[str, str], str]:
    """The machine's edges as ``(source state, event) -> destination``.

    Firing through the table is exactly firing through the machine only while the machine is
    plain edges: no callbacks (machine, state or transition), no conditions, no queue, one
    destination per source and event, invalid triggers raising. Anything else is refused here,
    so a callback added to the machine fails at import instead of being skipped.
    """
    hooks = ("prepare_event", "before_state_change", "after_state_change", "finalize_event")
    if any(getattr(machine, hook) for hook in (*hooks, "on_exception", "on_final")):
        raise ValueError("the lifecycle machine must not have callbacks")
    if machine.has_queue or machine.ignore_invalid_triggers:
        raise ValueError("the lifecycle machine must be unqueued and refuse invalid triggers")
    for state in machine.states.values():
        if state.on_enter or state.on_exit or state.ignore_invalid_triggers:
            raise ValueError(f"state {state.name} must not have callbacks or ignore triggers")
    table: dict[tuple[str, str], str] = {}
    for name, event in machine.events.items():
        for source, transitions in event.transitions.items():
            if len(transitions) != 1:
                raise ValueError(f"event {name} has several edges from {source}")
            edge = transitions[0]
            if edge.dest is None or edge.conditions or edge.prepare or edge.before or edge.after:
                raise ValueError(f"event {name} from {source} must be a plain edge")
            table[source, name] = edge.dest
    return table


#: ``(state, event) -> next state``: the machine's edges, the only transitions ``fire`` makes.
_NEXT = compile_machine(MACHINE)


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
        self.state = INITIAL_STATE  # from here on written only by fire()

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
        source = self.state
        dest = _NEXT.get((source, event))
        if dest is None:
            raise IllegalTransition(self.instance_id, source, event)
        self.state = dest
        self._after_transition(event, source, dest, reason, request, slot_id)

    def _after_transition(
        self,
        event: str,
        source: str,
        dest: str,
        reason: str,
        request: str | None,
        slot_id: str | None,
    ) -> None:
        if slot_id:
            self.slot_id = slot_id
        request = request or self.request_id
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
                    event=event,
                    source=source,
                    dest=dest,
                    reason=reason,
                )
            )
        if self._listener is not None:
            self._listener(self, source, dest)

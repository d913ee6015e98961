"""The ``transitions`` classes the lifecycle machine is built from, without their idle work.

The library runs every event through the same steps whatever the machine uses: seven callback
lists (``prepare_event``, ``prepare``, ``before_state_change``, ``before``, the states'
``on_exit`` and ``on_enter``, ``after``, ``finalize_event``), each walked even when empty, and
about eight log calls. The lifecycle machine uses one callback (``after_state_change``) and real
conditions, nothing else, so much of an event's cost was that idle work: an assign+release
pair took 18.6 µs with the library's classes and takes 10.9 µs with these
(``python -m bench.footprint fsm``).

These subclasses are the library's documented extension point (``Machine.state_cls``,
``transition_cls``, ``event_cls``). Each skips a step only while the list it would walk is
empty, and hands the event to the library's own code as soon as any of those lists is not. The
library still resolves the event's transitions for the current state, raises ``MachineError``
for an event the state does not allow, checks the conditions, sets the state and runs the
callback; ``tests/test_lean_machine.py`` compares the two machines event for event (the one
liberty taken is in ``LeanTransition._change_state``, said there).
"""

from __future__ import annotations

from typing import Any

from transitions import Event, EventData, Machine, State, Transition


class LeanState(State):
    """A state whose enter and exit do nothing (no log lines) while it has no callbacks."""

    def enter(self, event_data: EventData) -> None:
        if self.on_enter:
            super().enter(event_data)

    def exit(self, event_data: EventData) -> None:
        if self.on_exit:
            super().exit(event_data)


class LeanTransition(Transition):
    """The library's ``execute`` minus the walks of its empty callback lists."""

    def execute(self, event_data: EventData) -> bool:
        machine = event_data.machine
        if self.prepare or self.before or self.after or machine.before_state_change:
            return bool(super().execute(event_data))
        if not self._eval_conditions(event_data):
            return False
        if self.dest:  # None: an internal transition, no state change (as the library)
            self._change_state(event_data)
        machine.callbacks(machine.after_state_change, event_data)
        return True

    def _change_state(self, event_data: EventData) -> None:
        machine = event_data.machine
        source, dest = machine.get_state(self.source), machine.get_state(self.dest)
        if source.on_exit or dest.on_enter or dest.final:
            super()._change_state(event_data)
            return
        machine.set_state(dest, event_data.model)  # a State: not looked up again
        # The library reads the model's attribute back; the same state unless the model's
        # setter rewrites what it is given (an Instance's ``state`` is a plain slot).
        event_data.state = dest


class LeanEvent(Event):
    """The library's ``_trigger`` and ``_process`` minus the walks of empty machine lists."""

    def _trigger(self, event_data: EventData) -> bool:
        machine = self.machine
        if machine.finalize_event or machine.on_exception:
            return bool(super()._trigger(event_data))
        try:
            event_data.state = machine.get_model_state(event_data.model)
            if self._is_valid_source(event_data.state):  # raises MachineError, as the library
                self._process(event_data)
        except BaseException as err:  # recorded and re-raised, as the library does
            event_data.error = err
            raise
        return bool(event_data.result)

    def _process(self, event_data: EventData) -> None:
        if self.machine.prepare_event:
            super()._process(event_data)
            return
        for transition in self.transitions[event_data.state.name]:
            event_data.transition = transition
            if transition.execute(event_data):
                event_data.result = True
                break


class LeanMachine(Machine):
    """A ``transitions.Machine`` built from the lean classes above."""

    state_cls: Any = LeanState
    transition_cls: Any = LeanTransition
    event_cls: Any = LeanEvent

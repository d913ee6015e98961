"""The lean ``transitions`` classes behave as the library's own, event for event.

The lifecycle machine is built from :mod:`scaler.states.machine`, which skips the library's
walks of empty callback lists. Built from the same table, a stock ``transitions.Machine`` and
a ``LeanMachine`` must agree on every event sequence (state reached, result, refusal), and a
lean machine given callbacks the shortcuts skip must still run them, in the library's order.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transitions import EventData, Machine, MachineError

from scaler.states.instance import build_machine
from scaler.states.lifecycle import EVENTS, INITIAL_STATE
from scaler.states.machine import LeanMachine


class Model:
    """A model with the lifecycle's guards, answering from the event's data."""

    def __init__(self) -> None:
        self.state = INITIAL_STATE
        self.request: str | None = None
        self.calls: list[str] = []

    def has_slot(self, event_data) -> bool:
        return bool(event_data.kwargs.get("slot_id"))

    def names_request(self, event_data) -> bool:
        return bool(event_data.kwargs.get("request"))

    def serves_request(self, event_data) -> bool:
        return event_data.kwargs.get("request") == self.request

    def after(self, event_data) -> None:
        self.calls.append(f"after_state_change:{event_data.state.name}")
        if event_data.transition.dest == "busy":
            self.request = event_data.kwargs.get("request")

    def note(self, what: str):
        return lambda event_data: self.calls.append(f"{what}:{event_data.state.name}")


def build(cls: type[Machine], **extra) -> Machine:
    return build_machine(cls, after_state_change="after", **extra)


STOCK, LEAN = build(Machine), build(LeanMachine)

steps = st.lists(
    st.tuples(
        st.sampled_from(sorted(EVENTS)),
        st.sampled_from([None, "", "r-1", "r-2"]),  # request
        st.sampled_from([None, "", "s-1"]),  # slot id
    ),
    max_size=30,
)


def fire(machine: Machine, model: Model, event: str, request, slot) -> str:
    try:
        taken = machine.events[event].trigger(model, request=request, slot_id=slot)
    except MachineError:
        return "refused"
    return "taken" if taken else "guard failed"


@settings(max_examples=300, deadline=None)
@given(steps)
def test_every_event_sequence_ends_where_the_library_ends(sequence) -> None:
    stock, lean = Model(), Model()
    for event, request, slot in sequence:
        outcome = fire(STOCK, stock, event, request, slot)
        assert fire(LEAN, lean, event, request, slot) == outcome, (event, stock.state)
        assert lean.state == stock.state
        assert lean.calls == stock.calls


def test_callbacks_the_shortcuts_skip_still_run_in_the_library_order() -> None:
    runs: dict[str, list[str]] = {}
    for cls in (Machine, LeanMachine):
        model = Model()
        machine = build(
            cls,
            prepare_event=[model.note("prepare_event")],
            before_state_change=[model.note("before_state_change")],
            finalize_event=[model.note("finalize_event")],
        )
        machine.get_state("creating").add_callback("enter", model.note("enter creating"))
        machine.get_state("new").add_callback("exit", model.note("exit new"))
        machine.get_transitions("create")[0].add_callback("after", model.note("after create"))
        machine.events["create"].trigger(model)
        machine.events["slot_created"].trigger(model, slot_id="s-1")
        runs[cls.__name__] = model.calls
    assert runs["LeanMachine"] == runs["Machine"]
    assert "enter creating:creating" in runs["LeanMachine"]
    assert "finalize_event:initing" in runs["LeanMachine"]


def test_a_refused_event_raises_as_the_library_does_and_changes_nothing() -> None:
    model = Model()
    try:
        LEAN.events["assign"].trigger(model, request="r-1")
    except MachineError as err:
        assert "Can't trigger event assign from state new" in str(err)
    else:
        raise AssertionError("assign from new was accepted")
    assert model.state == INITIAL_STATE and model.calls == []


class Strict(Model):
    """A model whose guard on ``release`` raises: the error must reach the caller."""

    def serves_request(self, event_data) -> bool:
        if event_data.kwargs.get("request") == "boom":
            raise RuntimeError("guard failed loudly")
        return super().serves_request(event_data)


SEQUENCE = [
    ("create", None, None),
    ("slot_created", None, "s-1"),
    ("init_succeeded", None, None),
    ("assign", "r-1", None),
    ("release", "r-2", None),  # guard fails: not the request served
    ("release", "boom", None),  # guard raises
    ("release", "r-1", None),
    ("assign", None, None),  # guard fails: no request
    ("expire", None, None),
    ("destroyed", None, None),
    ("create", None, None),  # refused: deleted is the end
]


def _run(machine: Machine, model: Model) -> list[str]:
    outcomes = []
    for event, request, slot in SEQUENCE:
        try:
            outcomes.append(fire(machine, model, event, request, slot))
        except RuntimeError as err:
            outcomes.append(f"raised {err}")
        outcomes.append(model.state)
    return outcomes + model.calls


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"queued": True},  # the library's queue: handled by the library's own _process
        {"on_exception": "note_error"},  # errors go to a callback instead of the caller
        {"finalize_event": "note_final"},
    ],
    ids=["plain", "queued", "on_exception", "finalize_event"],
)
def test_machine_options_give_the_library_s_outcomes(options) -> None:
    runs = []
    for cls in (Machine, LeanMachine):
        model = Strict()
        model.note_error = lambda event_data, m=model: m.calls.append(  # type: ignore[attr-defined]
            f"error {event_data.error}"
        )
        model.note_final = lambda event_data, m=model: m.calls.append(  # type: ignore[attr-defined]
            f"final {event_data.result} {event_data.error}"
        )
        runs.append(_run(build(cls, **options), model))
    assert runs[1] == runs[0]
    assert "raised guard failed loudly" in runs[0] or "error guard failed loudly" in runs[0]


def test_an_error_is_left_on_the_event_data_as_the_library_leaves_it() -> None:
    seen = []
    for cls in (Machine, LeanMachine):
        model = Strict()
        machine = build(cls)
        for event, request, slot in SEQUENCE[:4]:
            fire(machine, model, event, request, slot)
        event_data = EventData(None, machine.events["release"], machine, model, (), {})
        event_data.kwargs = {"request": "boom"}
        with pytest.raises(RuntimeError):
            machine.events["release"]._trigger(event_data)
        seen.append(str(event_data.error))
    assert seen == ["guard failed loudly", "guard failed loudly"]

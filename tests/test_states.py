"""The lifecycle FSM: every legal edge, every illegal event, and the records it emits."""

from __future__ import annotations

import json

import pytest

from scaler.clock import ManualClock
from scaler.states import (
    BUSY,
    CREATING,
    DELETED,
    DELETING,
    EDGES,
    EVENTS,
    IDLE,
    INITING,
    NEW,
    STATES,
    FunctionSpec,
    IllegalTransition,
    Instance,
    Journal,
    TransitionRecord,
    allowed,
)
from scaler.states.instance import MACHINE

# A path of legal events from `creating` to each state, used to put an instance there.
PATH_TO = {
    NEW: [],
    CREATING: ["create"],
    INITING: ["create", "slot_created"],
    IDLE: ["create", "slot_created", "init_succeeded"],
    BUSY: ["create", "slot_created", "init_succeeded", "assign"],
    DELETING: ["create", "slot_created", "init_succeeded", "expire"],
    DELETED: ["create", "slot_failed"],
}


def make_instance(state: str = CREATING, journal: Journal | None = None) -> Instance:
    instance = Instance("i-1", FunctionSpec("fn", 256), ManualClock(), journal or Journal())
    for event in PATH_TO[state]:
        instance.fire(event, request="r-1" if event == "assign" else None, slot_id="s-1")
    assert instance.state == state
    return instance


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: f"{e.source}-{e.event}-{e.dest}")
def test_every_legal_edge_moves_to_its_destination(edge) -> None:
    instance = make_instance(edge.source)
    instance.fire(edge.event, "test", request="r-1", slot_id="s-1")
    assert instance.state == edge.dest


@pytest.mark.parametrize(
    ("state", "event", "data"),
    [
        (CREATING, "slot_created", {}),
        (IDLE, "assign", {}),
        (IDLE, "assign", {"request": ""}),
        (BUSY, "release", {"request": "r-other"}),
        (BUSY, "release", {}),
    ],
    ids=[
        "slot without id",
        "assign without request",
        "assign empty",
        "release by another",
        "release by nobody",
    ],
)
def test_guards_refuse_and_change_nothing(state: str, event: str, data: dict) -> None:
    records: list[TransitionRecord] = []
    journal = Journal()
    instance = make_instance(state, journal)
    journal.attach(records.append)
    before = (instance.state, instance.slot_id, instance.request_id, instance.served)
    with pytest.raises(IllegalTransition, match="guard"):
        instance.fire(event, **data)
    assert (instance.state, instance.slot_id, instance.request_id, instance.served) == before
    assert records == []


def test_fsm_data_follows_the_state() -> None:
    instance = make_instance(INITING)
    instance.fire("init_succeeded", keep_until=123.0, init_ms=40)
    assert instance.keep_until == 123.0 and instance.init_ms == 40 and instance.prewarmed
    instance.fire("assign", request="r-9")
    assert instance.request_id == "r-9" and instance.keep_until == float("inf")
    assert not instance.prewarmed
    instance.fire("retire", "need_destroy: crash", request="r-9")
    assert instance.request_id is None and instance.cause == "need_destroy: crash"


def test_a_failing_sink_drops_records_but_not_transitions() -> None:
    kept: list[TransitionRecord] = []
    journal = Journal()

    def broken(record: TransitionRecord) -> None:
        raise OSError("disk full")

    journal.attach(broken)
    journal.attach(kept.append)
    instance = make_instance(IDLE, journal)
    assert instance.state == IDLE
    assert journal.dropped == 3 and len(kept) == 3


ILLEGAL = [(s, e) for s in STATES for e in EVENTS if allowed(s, e) is None]


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=lambda v: str(v))
def test_every_illegal_event_raises_and_changes_nothing(state: str, event: str) -> None:
    records: list[TransitionRecord] = []
    journal = Journal()
    instance = make_instance(state, journal)
    journal.attach(records.append)
    before = (instance.state, instance.slot_id, instance.request_id, instance.served)
    with pytest.raises(IllegalTransition) as info:
        instance.fire(event, request="other", slot_id="other-slot")
    assert info.value.state == state and info.value.event == event
    assert (instance.state, instance.slot_id, instance.request_id, instance.served) == before
    assert records == []


def test_illegal_table_is_not_empty_and_covers_deleted() -> None:
    # deleted is final: every event is illegal there.
    assert all((DELETED, e) in ILLEGAL for e in EVENTS)
    assert len(ILLEGAL) == len(STATES) * len(EVENTS) - len(EDGES)


def test_unknown_event_and_method_names_are_refused() -> None:
    instance = make_instance(IDLE)
    for name in ("bogus", "fire", "to_busy", "_after_transition"):
        with pytest.raises(IllegalTransition):
            instance.fire(name)
    assert instance.state == IDLE


def test_one_record_per_transition_with_every_field() -> None:
    records: list[TransitionRecord] = []
    journal = Journal()
    journal.attach(records.append)
    clock = ManualClock(100.0)
    instance = Instance("i-9", FunctionSpec("fn-a", 128), clock, journal)
    instance.fire("create", "pre-warm")
    instance.fire("slot_created", "created", slot_id="slot-3")
    clock.advance(0.5)
    instance.fire("init_succeeded", "ready")
    instance.fire("assign", "warm", request="req-7")
    clock.advance(1.0)
    instance.fire("release", "done", request="req-7")
    assert [(r.event, r.source, r.dest) for r in records] == [
        ("create", NEW, CREATING),
        ("slot_created", CREATING, INITING),
        ("init_succeeded", INITING, IDLE),
        ("assign", IDLE, BUSY),
        ("release", BUSY, IDLE),
    ]
    last = records[-1]
    assert last == TransitionRecord(
        time=101.5,
        instance="i-9",
        slot="slot-3",
        function="fn-a",
        request="req-7",
        event="release",
        source=BUSY,
        dest=IDLE,
        reason="done",
    )
    assert instance.request_id is None and instance.served == 1


def test_busy_instance_remembers_its_request() -> None:
    instance = make_instance(BUSY)
    assert instance.request_id == "r-1"
    with pytest.raises(IllegalTransition):
        instance.fire("assign", request="r-2")
    assert instance.request_id == "r-1"


def test_instances_are_driven_by_the_shared_machine_without_registering() -> None:
    before = list(MACHINE.models)
    instance = make_instance(IDLE)
    assert MACHINE.models == before  # nothing to leak, nothing to scan per creation
    assert not hasattr(instance, "assign") and not hasattr(instance, "__dict__")
    instance.fire("expire")
    instance.fire("destroyed")
    with pytest.raises(IllegalTransition):
        instance.fire("assign", request="late")
    assert instance.state == DELETED


def test_transition_log_writes_json_lines(tmp_path) -> None:
    path = tmp_path / "log" / "transitions.jsonl"
    journal = Journal()
    journal.write_json_lines(path)
    instance = make_instance(CREATING, journal)
    instance.fire("slot_created", slot_id="s-5")
    instance.fire("init_failed", "boom")
    journal.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["create", "slot_created", "init_failed"]
    assert set(lines[0]) == {
        "time",
        "instance",
        "slot",
        "function",
        "request",
        "event",
        "from",
        "to",
        "reason",
    }
    assert lines[2]["from"] == INITING and lines[2]["to"] == DELETING
    assert lines[2]["reason"] == "boom" and lines[2]["slot"] == "s-5"


def test_gzip_transition_log(tmp_path) -> None:
    import gzip

    path = tmp_path / "t.jsonl.gz"
    journal = Journal()
    journal.write_json_lines(path)
    make_instance(IDLE, journal)
    journal.close()
    with gzip.open(path, "rt") as stream:
        assert len(stream.read().splitlines()) == 3


def test_edge_table_is_consistent() -> None:
    assert {e.source for e in EDGES} | {e.dest for e in EDGES} == set(STATES)
    assert len({(e.source, e.event) for e in EDGES}) == len(EDGES)
    assert not any(e.source == DELETED for e in EDGES)


def test_loguru_sink_carries_the_record_in_extra() -> None:
    from loguru import logger

    seen: list[dict] = []
    handler = logger.add(lambda m: seen.append(m.record["extra"]), level="DEBUG")
    try:
        journal = Journal()
        journal.log_with_loguru("DEBUG")
        make_instance(INITING, journal)
    finally:
        logger.remove(handler)
    assert seen[1:] == [
        {
            "time": 1_700_000_000.0,
            "instance": "i-1",
            "slot": "s-1",
            "function": "fn",
            "request": None,
            "event": "slot_created",
            "source": CREATING,
            "dest": INITING,
            "reason": "",
        }
    ]


def test_a_journal_is_active_exactly_while_a_sink_is_attached() -> None:
    journal = Journal()
    seen: list[TransitionRecord] = []
    assert not journal.active
    journal.attach(seen.append)
    assert journal.active
    make_instance(IDLE, journal)
    records = len(seen)
    assert records > 0
    journal.close()
    assert not journal.active
    make_instance(IDLE, journal)
    assert len(seen) == records

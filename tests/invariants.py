"""An in-process transition-log checker: every record is an edge of the FSM table, continues
from the instance's previous state, and a busy instance serves exactly one request."""

from __future__ import annotations

from scaler.states import BUSY, DELETED, TransitionRecord, allowed
from scaler.states.lifecycle import INITIAL_STATE


class TransitionChecker:
    """A Journal sink that collects violations instead of raising inside the scaler."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.serving: dict[str, str | None] = {}
        self.violations: list[str] = []
        self.records = 0

    def __call__(self, record: TransitionRecord) -> None:
        self.records += 1
        previous = self.state.get(record.instance, INITIAL_STATE)
        if record.source != previous:
            self.violations.append(f"{record}: from {record.source}, but was {previous}")
        if allowed(record.source, record.event) != record.dest:
            self.violations.append(f"{record}: not an edge of the FSM")
        if record.event == "assign":
            if self.serving.get(record.instance):
                self.violations.append(f"{record}: already serving {self.serving[record.instance]}")
            self.serving[record.instance] = record.request
        elif record.source == BUSY:
            if record.request != self.serving.get(record.instance):
                self.violations.append(f"{record}: released by another request")
            self.serving[record.instance] = None
        self.state[record.instance] = record.dest

    def unfinished(self) -> dict[str, str]:
        """Instances whose last record is not ``deleted``."""
        return {i: s for i, s in self.state.items() if s != DELETED}

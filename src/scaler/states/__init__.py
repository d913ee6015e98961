"""Instance lifecycle: the state table, the FSM built from it, and transition records."""

from scaler.states.instance import FunctionSpec, IllegalTransition, Instance
from scaler.states.journal import Journal, TransitionRecord
from scaler.states.lifecycle import (
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
    Edge,
    allowed,
)

__all__ = [
    "BUSY",
    "CREATING",
    "DELETED",
    "DELETING",
    "EDGES",
    "EVENTS",
    "IDLE",
    "INITING",
    "NEW",
    "STATES",
    "Edge",
    "FunctionSpec",
    "IllegalTransition",
    "Instance",
    "Journal",
    "TransitionRecord",
    "allowed",
]

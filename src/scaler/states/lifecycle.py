"""The instance lifecycle as data: states and named edges.

This table is the single definition of what an instance may do. The FSM is built from it,
and the diagram, the docs table and the transition-log checker read it too, so they cannot
drift apart.
"""

from __future__ import annotations

import attrs

CREATING = "creating"
INITING = "initing"
IDLE = "idle"
BUSY = "busy"
DELETING = "deleting"
DELETED = "deleted"

STATES: tuple[str, ...] = (CREATING, INITING, IDLE, BUSY, DELETING, DELETED)
INITIAL_STATE = CREATING
FINAL_STATES: frozenset[str] = frozenset({DELETED})
#: States in which the instance's slot exists (or may exist) on the platform.
SLOT_HELD_STATES: frozenset[str] = frozenset({INITING, IDLE, BUSY, DELETING})


@attrs.frozen
class Edge:
    """One allowed transition: ``event`` moves an instance from ``source`` to ``dest``."""

    event: str
    source: str
    dest: str
    guard: str
    action: str


EDGES: tuple[Edge, ...] = (
    Edge(
        "slot_created",
        CREATING,
        INITING,
        "CreateSlot answered Ok with a slot",
        "records the slot id, then calls Init on it",
    ),
    Edge(
        "slot_failed",
        CREATING,
        DELETED,
        "CreateSlot failed after retries (no slot exists)",
        "cold-starts again once for the waiting request, or answers InternalError",
    ),
    Edge(
        "init_succeeded",
        INITING,
        IDLE,
        "Init answered Ok",
        "learns the init duration; hands the instance to the oldest waiting request",
    ),
    Edge(
        "init_failed",
        INITING,
        DELETING,
        "Init failed after retries",
        "destroys the slot; cold-starts again once or answers InternalError",
    ),
    Edge(
        "assign",
        IDLE,
        BUSY,
        "a request takes the instance (warm hit or its own cold start)",
        "answers Assign with this instance",
    ),
    Edge(
        "release",
        BUSY,
        IDLE,
        "Idle for the request it serves, need_destroy unset",
        "hands it to a waiting request, else keeps it warm until the policy's deadline",
    ),
    Edge(
        "expire",
        IDLE,
        DELETING,
        "keep-alive deadline passed, policy scale-down, or shutdown",
        "calls DestroySlot",
    ),
    Edge(
        "retire",
        BUSY,
        DELETING,
        "Idle with need_destroy set, or shutdown after the grace period",
        "calls DestroySlot",
    ),
    Edge(
        "destroyed",
        DELETING,
        DELETED,
        "DestroySlot answered Ok (or the slot is already gone: NotFound)",
        "forgets the instance",
    ),
    Edge(
        "destroy_failed",
        DELETING,
        DELETING,
        "DestroySlot failed",
        "retries DestroySlot with capped exponential back-off",
    ),
)

EVENTS: tuple[str, ...] = tuple(dict.fromkeys(edge.event for edge in EDGES))


def allowed(source: str, event: str) -> str | None:
    """The destination of ``event`` from ``source``, or None when the FSM forbids it."""
    return _EDGE_INDEX.get((source, event))


_EDGE_INDEX: dict[tuple[str, str], str] = {(e.source, e.event): e.dest for e in EDGES}

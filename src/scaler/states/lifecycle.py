"""The instance lifecycle as data: states, named edges, their guards, and the causes of deletion.

This table is the single definition of what an instance may do. The FSM is built from it (each
edge's ``condition`` becomes a real ``transitions`` condition), and the diagram, the docs table
and the transition-log checker read it too, so they cannot drift apart.
"""

from __future__ import annotations

import attrs

NEW = "new"
CREATING = "creating"
INITING = "initing"
IDLE = "idle"
BUSY = "busy"
DELETING = "deleting"
DELETED = "deleted"

STATES: tuple[str, ...] = (NEW, CREATING, INITING, IDLE, BUSY, DELETING, DELETED)
INITIAL_STATE = NEW
FINAL_STATES: frozenset[str] = frozenset({DELETED})
#: States in which the instance's slot exists (or may exist) on the platform.
SLOT_HELD_STATES: frozenset[str] = frozenset({INITING, IDLE, BUSY, DELETING})
#: States of an instance that is on its way to serving (a cold start or a pre-warm in flight).
STARTING_STATES: frozenset[str] = frozenset({CREATING, INITING})


# Why an instance is deleted: the first word of the reason of the edge into ``deleting`` (or
# ``deleted``), and the reason DestroySlot carries to the platform. There is no "duplicate"
# cause: no path makes one (a retried Assign gets the instance it holds or awaits, each
# CreateSlot belongs to one instance entering ``creating``, and each slot to that instance).
KEEPALIVE_EXPIRED = "keep-alive expired"
SCALE_DOWN = "policy scale-down"
NEED_DESTROY = "need_destroy"
CREATE_FAILED = "create failed"
INIT_FAILED = "init failed"
SHUTDOWN = "shutdown"
CAUSES: tuple[str, ...] = (
    KEEPALIVE_EXPIRED,
    SCALE_DOWN,
    NEED_DESTROY,
    CREATE_FAILED,
    INIT_FAILED,
    SHUTDOWN,
)


@attrs.frozen
class Edge:
    """One allowed transition: ``event`` moves an instance from ``source`` to ``dest``.

    ``condition`` names a guard method of the instance that must hold for the edge to be taken
    (empty: none); ``guard`` says in words when the scheduler fires the event.
    """

    event: str
    source: str
    dest: str
    guard: str
    action: str
    condition: str = ""


EDGES: tuple[Edge, ...] = (
    Edge(
        "create",
        NEW,
        CREATING,
        "the policy (or a waiting request's patience) asked for an instance",
        "calls CreateSlot with the function's memory",
    ),
    Edge(
        "slot_created",
        CREATING,
        INITING,
        "CreateSlot answered Ok with a slot",
        "records the slot id, then calls Init on it",
        condition="has_slot",
    ),
    Edge(
        "slot_failed",
        CREATING,
        DELETED,
        "CreateSlot failed after retries (no slot exists)",
        "retries the cold start for its request (2 retries by default), or answers InternalError",
    ),
    Edge(
        "init_succeeded",
        INITING,
        IDLE,
        "Init answered Ok",
        "learns the init duration; hands the instance to the oldest waiting request, else keeps "
        "it until the policy's deadline",
    ),
    Edge(
        "init_failed",
        INITING,
        DELETING,
        "Init failed after retries",
        "calls DestroySlot; retries the cold start (2 retries by default) or answers InternalError",
    ),
    Edge(
        "assign",
        IDLE,
        BUSY,
        "a request takes the instance (a warm hit, or the oldest waiting request)",
        "answers Assign with this instance",
        condition="names_request",
    ),
    Edge(
        "release",
        BUSY,
        IDLE,
        "Idle from the request it serves, need_destroy unset (or that request's Assign was "
        "cancelled)",
        "hands it to the oldest waiting request, else keeps it until the policy's deadline",
        condition="serves_request",
    ),
    Edge(
        "expire",
        IDLE,
        DELETING,
        "keep-alive deadline passed, policy scale-down, or shutdown",
        "calls DestroySlot with the cause",
    ),
    Edge(
        "retire",
        BUSY,
        DELETING,
        "Idle with need_destroy set, or shutdown after the grace period",
        "calls DestroySlot with the cause",
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

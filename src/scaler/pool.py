"""One function's instances, indexed by state, and the requests waiting for one.

The indexes (idle set, per-state counts) are updated only from the FSM's transition callback
(:meth:`Pool.on_transition`), so they are views of the FSM, never a second source of truth.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator

import attrs

from scaler.states import DELETED, IDLE, STATES, FunctionSpec, Instance
from scaler.states.lifecycle import CREATING, INITING


@attrs.define(slots=True, eq=False)
class Waiter:
    """An Assign that found no idle instance and waits for one."""

    request_id: str
    future: asyncio.Future[Instance]
    arrived_at: float
    cold_start_attempts: int = 0


class Pool:
    """Instances of one function key, plus the FIFO of waiting requests."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.instances: dict[str, Instance] = {}
        self.waiters: deque[Waiter] = deque()
        self.counts: dict[str, int] = dict.fromkeys(STATES, 0)
        self._idle: dict[str, Instance] = {}
        self.last_activity = 0.0

    @property
    def key(self) -> str:
        return self.spec.key

    # -- index maintenance: called by the FSM's after-transition hook only ----------------
    def on_transition(self, instance: Instance, source: str, dest: str) -> None:
        counts = self.counts
        counts[source] -= 1
        counts[dest] += 1
        if source == IDLE and dest != IDLE:
            del self._idle[instance.instance_id]
        if dest == IDLE and source != IDLE:
            self._idle[instance.instance_id] = instance
        if dest == DELETED:
            self.instances.pop(instance.instance_id, None)

    def adopt(self, instance: Instance) -> None:
        """Start tracking a freshly created instance (state ``creating``)."""
        self.instances[instance.instance_id] = instance
        self.counts[instance.state] += 1

    # -- read-only views for the scheduler and the policy ----------------------------------
    def most_recent_idle(self) -> Instance | None:
        """The instance that went idle last (LIFO keeps the others ageing towards expiry)."""
        if not self._idle:
            return None
        return self._idle[next(reversed(self._idle))]

    def idle_instances(self) -> Iterator[Instance]:
        """Idle instances, the longest idle first."""
        return iter(list(self._idle.values()))

    @property
    def starting_count(self) -> int:
        return self.counts[CREATING] + self.counts[INITING]

    @property
    def live_count(self) -> int:
        return len(self.instances)

    def pending_waiters(self) -> int:
        return sum(1 for w in self.waiters if not w.future.done())

    def oldest_waiter(self) -> Waiter | None:
        """The oldest waiter still waiting, left in the queue (None if none waits)."""
        return next((w for w in self.waiters if not w.future.done()), None)

    def next_waiter(self) -> Waiter | None:
        """Pop the oldest waiter still waiting (cancelled ones are dropped)."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.future.done():
                return waiter
        return None

    def is_quiet(self) -> bool:
        return not self.instances and not self.waiters

"""Indexes derived from the FSM: per function a :class:`Pool`, and the scheduler-wide maps.

Every index here (the instances by id, the request a busy instance serves, each function's
idle stack, its idle deadlines and its counts by state) is written in one place only,
:meth:`Registry.on_transition`, which every instance's FSM calls after each transition. So an
index is a view of FSM states and can never say something the FSM does not; ``recount``
rebuilds them all from the states, for tests to compare.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator

from scaler.states import BUSY, DELETED, IDLE, STATES, FunctionSpec, Instance
from scaler.states.lifecycle import INITIAL_STATE, STARTING_STATES
from scaler.waiters import Waiter, WaitQueue


class Pool:
    """One function's instances, indexed by state, and the FIFO of its waiting requests."""

    def __init__(self, spec: FunctionSpec, waiting: dict[str, Waiter]) -> None:
        self.spec = spec
        self.key = spec.key
        self.instances: dict[str, Instance] = {}
        self.waiters = WaitQueue(waiting)
        self.counts: dict[str, int] = dict.fromkeys(STATES, 0)
        self._idle: dict[str, Instance] = {}  # insertion order: the last to go idle is last
        #: (keep_until, seq, instance, idle since): stale entries are skipped lazily.
        self._deadlines: list[tuple[float, int, Instance, float]] = []
        self._seq = itertools.count()
        self.last_activity = 0.0

    # -- the index, updated by Registry.on_transition only -------------------------------------
    def _update(self, instance: Instance, source: str, dest: str) -> None:
        counts = self.counts
        if dest != DELETED:  # counts are of live instances: a gauge, not a running total
            counts[dest] += 1
        if source == INITIAL_STATE:  # an instance is born by its first transition
            self.instances[instance.instance_id] = instance
        else:
            counts[source] -= 1
        if source == IDLE and dest != IDLE:
            del self._idle[instance.instance_id]
        if dest == IDLE:
            self._idle[instance.instance_id] = instance
            if instance.keep_until < math.inf:
                entry = (instance.keep_until, next(self._seq), instance, instance.changed_at)
                heapq.heappush(self._deadlines, entry)
        if dest == DELETED:
            del self.instances[instance.instance_id]

    # -- read-only views for the scheduler and the policy --------------------------------------
    def most_recent_idle(self) -> Instance | None:
        """The instance that went idle last (LIFO keeps the others ageing towards expiry)."""
        if not self._idle:
            return None
        return self._idle[next(reversed(self._idle))]

    def idle_instances(self) -> Iterator[Instance]:
        """Idle instances, the longest idle first."""
        return iter(list(self._idle.values()))

    def next_deadline(self) -> float | None:
        """The earliest keep-alive deadline of an idle instance (None when none is idle)."""
        deadlines = self._deadlines
        while deadlines:
            until, _, instance, since = deadlines[0]
            if instance.state == IDLE and instance.changed_at == since:
                return until
            heapq.heappop(deadlines)
        return None

    def past_deadline(self, now: float) -> list[Instance]:
        """Idle instances whose keep-alive deadline is at or before ``now``."""
        out = []
        while self.next_deadline() is not None and self._deadlines[0][0] <= now:
            out.append(heapq.heappop(self._deadlines)[2])
        return out

    @property
    def starting_count(self) -> int:
        return sum(self.counts[state] for state in STARTING_STATES)

    @property
    def live_count(self) -> int:
        return len(self.instances)

    def uncovered(self) -> int:
        """Waiting requests that no instance on its way will serve (instances go FIFO)."""
        return len(self.waiters) - self.starting_count

    def is_quiet(self) -> bool:
        return not self.instances and not self.waiters


class Registry:
    """Every function's pool and the scheduler-wide indexes, all derived from transitions.

    ``effects`` hears of each transition after the indexes and the transition record (the
    platform calls a state implies); ``on_change`` after that (e.g. "nothing in use any more").
    """

    def __init__(self) -> None:
        self.pools: dict[str, Pool] = {}
        #: Live instances (not yet ``deleted``) by id.
        self.instances: dict[str, Instance] = {}
        #: Request id -> the busy instance serving it.
        self.serving: dict[str, Instance] = {}
        #: Request id -> its waiter (kept by the pools' wait queues).
        self.waiting: dict[str, Waiter] = {}
        #: Instances busy or on their way (what a graceful shutdown waits for).
        self.in_use = 0
        self.effects: Callable[[Instance, str, str], None] | None = None
        self.on_change: Callable[[], None] | None = None

    def pool(self, spec: FunctionSpec) -> Pool:
        pool = self.pools.get(spec.key)
        if pool is None:
            pool = self.pools[spec.key] = Pool(spec, self.waiting)
        return pool

    # -- the one transition callback (scaler.states.Lifecycle) ---------------------------------
    def on_transition(
        self, instance: Instance, source: str, dest: str, request: str | None
    ) -> None:
        self.pools[instance.function.key]._update(instance, source, dest)
        if source == INITIAL_STATE:
            self.instances[instance.instance_id] = instance
        elif dest == DELETED:
            del self.instances[instance.instance_id]
        if dest == BUSY:
            self.serving[request] = instance  # type: ignore[index]
        elif source == BUSY:
            del self.serving[request]  # type: ignore[arg-type]
        self.in_use += (dest in _IN_USE) - (source in _IN_USE)

    def on_entered(self, instance: Instance, source: str, dest: str) -> None:
        if self.effects is not None:
            self.effects(instance, source, dest)
        if self.on_change is not None:
            self.on_change()

    # -- checking ------------------------------------------------------------------------------
    def recount(self) -> dict[str, object]:
        """Every index rebuilt from the instances' FSM states (what the indexes must equal)."""
        live = [i for p in self.pools.values() for i in p.instances.values()]
        return {
            "instances": {i.instance_id for i in live if i.state != DELETED},
            "serving": {i.request_id: i.instance_id for i in live if i.state == BUSY},
            "in_use": sum(_in_use(i.state) for i in live),
            "counts": {
                key: {s: sum(1 for i in p.instances.values() if i.state == s) for s in STATES}
                for key, p in self.pools.items()
            },
            "idle": {
                key: {i.instance_id for i in p.instances.values() if i.state == IDLE}
                for key, p in self.pools.items()
            },
        }

    def indexes(self) -> dict[str, object]:
        """The indexes as kept, in the shape of :meth:`recount`."""
        return {
            "instances": set(self.instances),
            "serving": {r: i.instance_id for r, i in self.serving.items()},
            "in_use": self.in_use,
            "counts": {key: dict(p.counts) for key, p in self.pools.items()},
            "idle": {key: set(p._idle) for key, p in self.pools.items()},
        }


#: States an instance is in use in: busy, or on its way to serving.
_IN_USE = STARTING_STATES | {BUSY}


def _in_use(state: str) -> int:
    return 1 if state in _IN_USE else 0

"""What the default policy learns per function: release-to-reuse gaps, and running means.

Idle gaps (:class:`GapTracker`). The gap that matters for an instance is the time from its
release to the arrival that reuses it. The tracker replays the clairvoyant bound's own
matching online: a stack of release times (last released on top); an arrival takes the top,
and ``arrival - release`` is one gap sample. An arrival that finds the stack empty needed a
new instance (concurrency grew) and yields no sample; a release that waits longer than
``horizon_s`` at the bottom of the stack is a censored sample (longer than any window). The
samples are therefore what an instance would see under keep-forever, largely independent of
what the policy did, so learning, and the counterfactual accounting of rules against each
other, do not feed on the policy's own decisions.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Iterator

import attrs

from scaler.policy.windows import WindowPlan, compress

#: One gap under one rule: slot seconds, waiting seconds, and the lag (seconds, and the epoch
#: second it lasts to) the reusing request passes on to its own release.
Cost = tuple[float, float, tuple[float, float]]


@attrs.define(slots=True, eq=False)
class Release:
    """One release on the gap stack: the plan its gap is priced with, and the pre-warm
    planned for it."""

    at: float
    #: The candidate plan at the release (the counterfactual accounting prices the gap that
    #: follows with it: online, as the rule would have played).
    plan: WindowPlan | None = None
    #: Epoch second at which the planned pre-warm starts (None: nothing planned).
    launch_at: float | None = None
    #: Epoch second until which the pre-warmed instance is kept.
    warm_until: float = 0.0
    #: The planned pre-warm has been handed to the scheduler.
    launched: bool = False
    #: An arrival consumed the gap before the pre-warm started: do not start it.
    cancelled: bool = False
    #: While the gap is open, what the owner credited for it from a bound (its own units),
    #: and the last stage of :meth:`GapTracker.reached` that it reached (-1: none).
    credit: tuple[float, ...] | None = None
    stage: int = -1
    #: How much later than ``at`` the instance is released under the baseline and under
    #: the candidate (the wait its request had under that rule: a cold start delays the
    #: reuse the keep-forever matching sees; :func:`~scaler.policy.windows.lagged_cost`),
    #: each with the epoch second it lasts to: the cold start that began the queue is ready
    #: then, and so are those the requests queued behind it started.
    ref_lag: tuple[float, float] = (0.0, 0.0)
    lag: tuple[float, float] = (0.0, 0.0)
    #: The gap the arrival that reused it closed, and that gap's cost under the baseline and
    #: under the plan (the owner's; priced once at the arrival, read again by its accounting).
    priced: tuple[float, Cost, Cost] | None = None


class RecentSamples:
    """The last ``capacity`` gap samples, oldest first, in a flat ``array('d')``.

    A deque of floats is a container the cyclic collector walks element by element: with a
    thousand samples for each of hundreds of functions, every full collection visits
    hundreds of thousands of floats, a pause of tens of milliseconds inside whichever
    Assign or Idle triggers it. An array holds raw doubles and is not a container.
    """

    __slots__ = ("_next", "_values", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._values = array("d")
        #: Where the next sample goes once the buffer is full (the oldest one).
        self._next = 0

    def append(self, value: float) -> None:
        values = self._values
        if len(values) < self.capacity:
            values.append(value)
            return
        values[self._next] = value
        self._next = (self._next + 1) % self.capacity

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[float]:
        values, split = self._values, self._next
        return iter(values[split:] + values[:split] if split else values)


class GapTracker:
    """Release-to-reuse gaps of one function, as the clairvoyant matching sees them."""

    __slots__ = ("_reached", "_stack", "closed", "fresh", "horizon_s", "samples")

    def __init__(self, horizon_s: float = 3600.0, keep_samples: int = 1024) -> None:
        self.horizon_s = horizon_s
        self._stack: deque[Release] = deque()
        self.samples = RecentSamples(keep_samples)
        #: Samples added since the owner last recomputed what it derives from them.
        self.fresh = 0
        #: Gaps closed since the owner last priced them: (release, gap; inf when censored).
        self.closed: list[tuple[Release, float]] = []
        #: Per stage of :meth:`reached`: how many releases from the bottom passed it.
        self._reached = [0, 0]

    def _add(self, release: Release, gap: float) -> None:
        self.samples.append(gap)
        self.closed.append((release, gap))
        self.fresh += 1

    def _censor(self, now: float) -> None:
        stack = self._stack
        limit = now - self.horizon_s
        while stack and stack[0].at < limit:
            self._add(stack.popleft(), math.inf)
            reached = self._reached
            for stage, count in enumerate(reached):
                if count:
                    reached[stage] = count - 1

    def arrival(self, now: float) -> Release | None:
        """A request arrived: it reuses the latest release (returned), if any."""
        self._censor(now)
        if not self._stack:
            return None
        release = self._stack.pop()
        self._add(release, max(0.0, now - release.at))
        depth = len(self._stack)
        reached = self._reached
        for stage, count in enumerate(reached):
            if count > depth:
                reached[stage] = depth
        return release

    def reached(self, stage: int, due: Callable[[Release], bool]) -> list[Release]:
        """Open releases newly at ``stage``, oldest first: from the oldest not yet counted,
        while ``due`` holds (the first that is not due stops the walk, so each pass is O(1)
        plus what it returns; the stack is in release order, so what is older is mostly
        due first)."""
        stack = self._stack
        i = self._reached[stage]
        newly = []
        while i < len(stack) and due(stack[i]):
            newly.append(stack[i])
            i += 1
        self._reached[stage] = i
        return newly

    def release(self, now: float, plan: WindowPlan) -> Release:
        """An instance was released with candidate ``plan``: push it on top of the stack."""
        self._censor(now)
        release = Release(now, plan)
        self._stack.append(release)
        return release

    def summary(self, long_s: float = 0.0) -> tuple[list[float], list[float], float, float]:
        """The samples as weighted points (see :func:`~scaler.policy.windows.compress`),
        plus some weight spread over the unseen tail; and the longest gap actually seen.

        An empirical distribution says a gap longer than the longest seen never happens. By
        the rule of succession the next gap is longer with probability about 1/(m+1), m the
        number of independent observations of how long the function stays quiet. Gaps of a
        burst are not independent of each other, so m counts the gaps longer than ``long_s``
        (a cold start: the ones that decide between keeping and re-creating), and the tail
        gets the weight of all samples over m+1. It is spread evenly over points doubling
        from the longest gap to the horizon, so a function whose misses are expensive keeps
        its instance a while past what it has seen (ski rental), one whose misses are cheap
        does not, and a function seen in one burst only does not bet that it never returns.
        """
        values, weights, censored = compress(self.samples)
        total = sum(weights) + censored
        longer = censored + sum(w for v, w in zip(values, weights, strict=True) if v > long_s)
        tail_weight = max(1.0, total / (longer + 1.0))
        longest = values[-1] if values else 0.0
        if longest <= 0.0 or longest >= self.horizon_s:
            return values, weights, censored + tail_weight, longest
        tail = []
        point = longest * 2.0
        while point < self.horizon_s:
            tail.append(point)
            point *= 2.0
        tail.append(self.horizon_s)
        share = tail_weight / len(tail)
        return values + tail, weights + [share] * len(tail), censored, longest

    @property
    def count(self) -> int:
        return len(self.samples)


class Ewma:
    """Exponentially weighted mean and mean absolute deviation; None until the first value."""

    __slots__ = ("alpha", "dev", "mean")

    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self.mean: float | None = None
        self.dev = 0.0

    def add(self, x: float) -> None:
        if self.mean is None:
            self.mean = x
            return
        err = x - self.mean
        self.mean += self.alpha * err
        self.dev += self.alpha * (abs(err) - self.dev)

    def get(self, default: float) -> float:
        return default if self.mean is None else self.mean


@attrs.define(slots=True)
class Prices:
    """The score's terms as the policy sees them, and the score and exchange rate at any
    slot time and waiting.

    The score is ``50*Eg/S + 50*E/(E+L)``: execution GB·s over slot GB·s, plus execution
    seconds over execution plus waiting. ``slot_gbs`` integrates the policy's live instances
    over time, ``wait_s`` sums the waits of the requests it saw wait.
    """

    execution_s: float = 0.0
    execution_gbs: float = 0.0
    slot_gbs: float = 0.0
    wait_s: float = 0.0

    def score(self, idle_gbs: float, wait_s: float, runs: float = 1.0) -> float:
        """The score of ``runs`` times the executions seen, with ``idle_gbs`` of slot time
        beyond execution (idle instances, cold starts) and ``wait_s`` of waiting."""
        e, eg = runs * self.execution_s, runs * self.execution_gbs
        if e <= 0 or eg <= 0:
            return 0.0
        return 50.0 * eg / (eg + max(idle_gbs, 0.0)) + 50.0 * e / (e + max(wait_s, 0.0))

    def kappa_gb(self, idle_gbs: float, wait_s: float, runs: float = 1.0) -> float:
        """Waiting seconds one GB·s of slot is worth there: the ratio of the score's
        marginal costs, ``(50*Eg/S**2) / (50*E/(E+L)**2)``; 0 (slot is free) before
        anything ran."""
        e, eg = runs * self.execution_s, runs * self.execution_gbs
        if e <= 0 or eg <= 0:
            return 0.0
        s = eg + max(idle_gbs, 0.0)
        return eg * (e + max(wait_s, 0.0)) ** 2 / (e * s * s)

    def ahead(self, idle_gbs: float, wait_s: float) -> tuple[float, float]:
        """Slot time beyond execution and waiting after the run so far repeats once, the
        repeat costing ``idle_gbs`` and ``wait_s`` (the score of it is ``runs=2``)."""
        return self.slot_gbs - self.execution_gbs + idle_gbs, self.wait_s + wait_s

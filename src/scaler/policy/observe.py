"""What the adaptive policy learns from observations: per-function gaps, global prices.

Idle gaps (:class:`GapTracker`). The gap that matters for an instance is the time from its
release to the arrival that reuses it. The tracker replays the clairvoyant bound's own
matching online: a stack of release times (last released on top); an arrival takes the top,
and ``arrival - release`` is one gap sample. An arrival that finds the stack empty needed a
new instance (concurrency grew) and yields no sample; a release that waits longer than
``horizon_s`` at the bottom of the stack is a censored sample (longer than any window). The
samples are therefore what an instance would see under keep-forever, largely independent of
what the policy did (the planned policy credits a request that waited with its wait), so
learning does not feed on its own decisions. Each arrival is also kept, until the ledger
prices it, with what it would wait for a busy instance to free (:class:`Arrival`): a miss
need not be a cold start when one will free up sooner.

Prices (:class:`Prices`). The score is ``50*Eg/S + 50*E/(E+L)`` (execution GB·s over slot
GB·s, plus execution seconds over execution plus waiting). Its marginal costs are global:
one GB·s of slot costs ``50*Eg/S**2`` points, one second of waiting ``50*E/(E+L)**2``, a
ratio of ``Eg*(E+L)**2 / (E*S**2)`` waiting seconds per GB·s. Because the score is convex
that ratio has several self-confirming values, so the adaptive policy does not follow it; it
keeps the running totals here and compares rates on a counterfactual ledger instead.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from scaler.policy.windows import compress


@attrs.frozen(slots=True)
class Arrival:
    """One arrival, as the ledger prices it under each exchange rate.

    ``gap``: seconds since the release it reuses; None when nothing was released (the
    function needed one more instance); ``math.inf`` for a release that was never reused
    (censored, not an arrival). ``queue_wait``: how long it would wait for one of the
    function's busy instances to free, instead of a cold start (``math.inf`` if none is busy).
    """

    gap: float | None
    queue_wait: float = math.inf


@attrs.define(slots=True, eq=False)
class Release:
    """One release on the gap stack, and the pre-warm planned for the gap that follows."""

    at: float
    #: Epoch second at which the planned pre-warm starts (None: nothing planned).
    launch_at: float | None = None
    #: Epoch second until which the pre-warmed instance is kept.
    warm_until: float = 0.0
    #: The planned pre-warm has been handed to the scheduler.
    launched: bool = False
    #: An arrival consumed the gap before the pre-warm started: do not start it.
    cancelled: bool = False


class GapTracker:
    """Release-to-reuse gaps of one function, as the clairvoyant matching sees them."""

    __slots__ = (
        "_new",
        "_stack",
        "fresh",
        "horizon_s",
        "new_instances",
        "record_arrivals",
        "samples",
        "total",
    )

    def __init__(
        self, horizon_s: float = 3600.0, keep_samples: int = 1024, record_arrivals: bool = False
    ) -> None:
        self.horizon_s = horizon_s
        #: Keep every arrival for :meth:`drain` (only a policy with a ledger drains them).
        self.record_arrivals = record_arrivals
        self._stack: deque[Release] = deque()
        self.samples: deque[float] = deque(maxlen=keep_samples)
        #: Samples added since the owner last recomputed what it derives from them.
        self.fresh = 0
        #: Samples ever taken (censored included), and arrivals that found the stack empty.
        self.total = 0
        self.new_instances = 0
        self._new: list[Arrival] = []

    def _add(self, sample: float, queue_wait: float = math.inf) -> None:
        self.samples.append(sample)
        if self.record_arrivals:
            self._new.append(Arrival(sample, queue_wait))
        self.fresh += 1
        self.total += 1

    def drain(self) -> list[Arrival]:
        """Arrivals and censored releases since the last drain (for the ledger to price);
        always empty unless ``record_arrivals``."""
        new, self._new = self._new, []
        return new

    def _censor(self, now: float) -> None:
        stack = self._stack
        limit = now - self.horizon_s
        while stack and stack[0].at < limit:
            stack.popleft()
            self._add(math.inf)

    def arrival(self, now: float, queue_wait: float = math.inf) -> Release | None:
        """A request arrived: it reuses the latest release (returned), if any.

        ``queue_wait``: how long it would wait for a busy instance (see :class:`Arrival`).
        """
        self._censor(now)
        if not self._stack:
            self.new_instances += 1
            if self.record_arrivals:
                self._new.append(Arrival(None, queue_wait))
            return None
        release = self._stack.pop()
        self._add(max(0.0, now - release.at), queue_wait)
        return release

    def release(self, now: float) -> Release:
        """An instance was released: push it on top of the stack."""
        self._censor(now)
        release = Release(now)
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
    """Running totals of the score's terms, as far as the policy sees them.

    ``slot_gbs`` integrates the policy's live instances over time; ``wait_s`` sums the waits
    of the requests it saw wait.
    """

    execution_s: float = 0.0
    execution_gbs: float = 0.0
    slot_gbs: float = 0.0
    wait_s: float = 0.0

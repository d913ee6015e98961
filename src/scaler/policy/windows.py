"""Choosing what to do with an instance that just went idle, from its function's idle gaps.

Every released instance gets a *window plan*, all times counted from its release:

- keep it warm for ``keep_s`` (a request arriving by then is a warm hit);
- or, when ``warm_from_s`` is set, destroy it at once and start a fresh instance so that it
  is ready at ``warm_from_s``, kept until ``warm_until_s`` (just-in-time pre-warm, the shape
  of the "Serverless in the Wild" hybrid policy).

The plan minimises the expected cost over the function's recent release-to-reuse gaps, in
*waiting seconds*: a second a request waits costs 1, a second of idle slot costs ``kappa``
(the exchange rate of slot time to waiting time for this function's memory size), a cold
start costs ``cold_s`` of slot and ``cold_s`` of waiting. Gaps that never ended (censored)
count as longer than any window. A gap sample carries a weight (see :func:`compress`).

Pure functions of numbers: no pools, no clock, so the tables in the tests pin them down.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

import attrs

#: Rounding allowed for in the pre-warm search's bounds, relative to the size of the costs'
#: terms (far above a float's 1e-16).
_SLACK = 1e-9


@attrs.frozen(slots=True)
class WindowPlan:
    """What to do with an instance released at time r (all fields relative to r, seconds)."""

    keep_s: float
    warm_from_s: float | None = None
    warm_until_s: float | None = None
    #: Expected cost per unit of gap weight, in waiting seconds (for comparisons and tests).
    cost: float = 0.0

    @property
    def prewarms(self) -> bool:
        return self.warm_from_s is not None


def break_even_s(cold_s: float, kappa: float) -> float:
    """Ski-rental keep-alive: stay idle as long as one cold start costs (2-competitive).

    Keeping costs ``kappa`` per second; a cold start costs ``cold_s`` of waiting and
    ``kappa * cold_s`` of slot.
    """
    if kappa <= 0:
        return math.inf
    return (cold_s + kappa * cold_s) / kappa


def compress(
    samples: Iterable[float], max_points: int = 96, tolerance: float = 0.02
) -> tuple[list[float], list[float], float]:
    """Summarise gap samples as weighted points: (sorted values, weights, censored weight).

    Sorted samples are grouped while a group spans at most ``tolerance`` of its smallest
    value (and 1 ms); each group becomes its smallest and largest value with half its weight
    each, so a pre-warm can still be timed before the earliest gap of a tight cluster and
    kept past the latest. Unlike quantiles this keeps the rare long gaps, where a busy
    function's extra instances live. The tolerance doubles until at most ``max_points``
    remain. Infinite samples are censored.
    """
    ordered = sorted(samples)
    censored = 0.0
    while ordered and ordered[-1] == math.inf:
        ordered.pop()
        censored += 1.0
    while True:
        values: list[float] = []
        weights: list[float] = []
        i = 0
        n = len(ordered)
        while i < n:
            low = ordered[i]
            limit = low + max(0.001, tolerance * low)
            j = i
            while j + 1 < n and ordered[j + 1] <= limit:
                j += 1
            count = j - i + 1
            high = ordered[j]
            if high == low:
                values.append(low)
                weights.append(float(count))
            else:
                values.extend((low, high))
                weights.extend((count / 2.0, count / 2.0))
            i = j + 1
        if len(values) <= max_points:
            return values, weights, censored
        tolerance *= 2.0


def choose_window(
    values: Sequence[float],
    weights: Sequence[float] | None,
    censored: float,
    cold_s: float,
    kappa: float,
    *,
    max_keep_s: float = math.inf,
    max_warm_from_s: float = math.inf,
    min_warm_weight: float = 2.0,
) -> WindowPlan:
    """The plan of least expected cost over gaps ``values`` (sorted ascending, seconds).

    ``weights`` default to 1 each; ``censored`` is the weight of gaps longer than any window.
    A pre-warm is never timed later than ``max_warm_from_s`` (past the gaps actually seen,
    values are a prior's, fit to keep for, not to time a pre-warm on), nor for fewer than
    ``min_warm_weight`` gaps (one gap seen once is no reason to expect another of the same
    length to the millisecond). Candidate times are the gaps themselves: the cost is
    piecewise linear between them, so an optimum sits on one.
    """
    g = list(values)
    n = len(g)
    w = [1.0] * n if weights is None else list(weights)
    total = sum(w) + censored
    miss = cold_s + kappa * cold_s  # a cold start: the waiting it causes plus its slot time
    if total <= 0:
        return WindowPlan(keep_s=min(break_even_s(cold_s, kappa), max_keep_s))
    count = [0.0] * (n + 1)  # prefix weights
    mass = [0.0] * (n + 1)  # prefix weighted values
    for i in range(n):
        count[i + 1] = count[i] + w[i]
        mass[i + 1] = mass[i] + w[i] * g[i]

    # Keep for k: K(k) = sum_{G<=k} kappa*G + W(G>k) * (kappa*k + miss).
    best = WindowPlan(keep_s=0.0, cost=miss)
    for j in range(n):
        x = g[j]
        if x > max_keep_s:
            break
        if j + 1 < n and g[j + 1] == x:
            continue  # evaluate a run of equal gaps once, with all of them inside
        cost = kappa * mass[j + 1] + (total - count[j + 1]) * (kappa * x + miss)
        if cost < best.cost * total:
            best = WindowPlan(keep_s=x, cost=cost / total)
    best_total = best.cost * total

    # Pre-warm, ready at a, kept to b: a gap G costs
    #   G < a-cold: a cold start (the pre-warm comes too late): miss
    #   a-cold <= G < a: waits a-G, the fresh slot ran cold_s: (a-G) + kappa*cold
    #   a <= G <= b: kappa*(cold + G - a)
    #   G > b: kappa*(cold + b - a) + miss
    # Every gap from a on costs at least kappa*cold, and one beyond b at least
    # kappa*(cold + b - a), however far b goes: the bounds below skip the (a, b) pairs that
    # cannot beat the best plan so far (exactly the pairs the full search would not take;
    # ``slack`` covers rounding), which makes the search far shorter than n*n/2 steps.
    # The size of the terms the costs are sums of (their rounding is relative to it).
    scale = 1.0 + miss * total + kappa * (mass[n] + (g[-1] if n else 0.0) * total + cold_s * total)
    i = 0
    while i < n:
        a = g[i]
        first_a = i
        while i + 1 < n and g[i + 1] == a:
            i += 1
        i += 1
        if a < cold_s:
            continue
        if a > max_warm_from_s:
            break
        lo = bisect.bisect_left(g, a - cold_s)
        n_wait = count[first_a] - count[lo]
        head = count[lo] * miss + n_wait * (a + kappa * cold_s) - (mass[first_a] - mass[lo])
        slack = _SLACK * (abs(best_total) + scale)
        if head + kappa * cold_s * (total - count[first_a]) > best_total + slack:
            continue
        j = first_a
        while j < n:
            b = g[j]
            while j + 1 < n and g[j + 1] == b:
                j += 1
            inside = count[j + 1] - count[first_a]
            if inside < min_warm_weight - 1e-9:
                j += 1
                continue
            inside_sum = mass[j + 1] - mass[first_a]
            beyond = total - count[j + 1]
            settled = head + kappa * (inside * (cold_s - a) + inside_sum)
            if settled + beyond * kappa * (cold_s + b - a) > best_total + slack:
                break  # no later b can do better: each adds to what is settled
            cost = settled + beyond * (kappa * (cold_s + b - a) + miss)
            if cost < best_total - 1e-12:
                best_total = cost
                best = WindowPlan(keep_s=0.0, warm_from_s=a, warm_until_s=b, cost=cost / total)
            j += 1
    return best


def lagged_cost(
    plan: WindowPlan, gap: float, lag: float, cold_s: float
) -> tuple[float, float, bool]:
    """:func:`gap_cost` where the instance was released ``lag`` seconds later than the
    matching saw (its request waited that long under ``plan``'s rule), and whether the
    reuse queued behind that lag. A reuse that comes before the instance is free waits for
    it, or at most a cold start: in a burst, one miss delays the reuses behind it, as a
    queue does.
    """
    gap -= lag
    if gap >= 0.0:
        return (*gap_cost(plan, gap, cold_s), False)
    if -gap < cold_s:
        return 0.0, -gap, True
    return cold_s, cold_s, False


def gap_cost(plan: WindowPlan, gap: float, cold_s: float) -> tuple[float, float]:
    """(slot seconds, waiting seconds) ``plan`` costs for one gap (``inf``: never reused).

    Slot time counts idle time and the slot time of cold starts and pre-warms, not execution.
    """
    keep = plan.keep_s
    if gap <= keep:
        return gap, 0.0
    a, b = plan.warm_from_s, plan.warm_until_s
    if a is None or b is None or gap < a - cold_s:
        return keep + cold_s, cold_s
    if gap < a:
        return keep + cold_s, a - gap
    if gap <= b:
        return keep + cold_s + gap - a, 0.0
    return keep + cold_s + b - a + cold_s, cold_s

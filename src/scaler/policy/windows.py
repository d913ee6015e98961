"""Choosing what to do with an instance that just went idle, from its function's idle gaps.

Every released instance gets a *window plan*, all times counted from its release:

- keep it warm for ``keep_s`` (a request arriving by then is a warm hit);
- then destroy it, and, when ``warm_from_s`` is set, start a fresh instance so that it is
  ready at ``warm_from_s`` and keep that one until ``warm_until_s`` (just-in-time pre-warm,
  the shape of the "Serverless in the Wild" hybrid policy, with a first keep phase added so a
  bimodal function, bursts separated by pauses, keeps warm inside a burst and re-creates
  between bursts).

The plan minimises the expected cost over the function's recent release-to-reuse gaps, in
*waiting seconds*: a second a request waits costs 1, a second of idle slot costs ``kappa``
(the exchange rate of slot time to waiting time for this function's memory size), a cold
start costs ``cold_s`` of slot and ``miss_wait_s`` of waiting (``cold_s`` for the request
itself, more when requests queue behind it). Gaps that never ended (censored) count as longer
than any window. A gap sample carries a weight (see :func:`compress`).

Pure functions of numbers: no pools, no clock, so the tables in the tests pin them down.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import attrs


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


def break_even_s(cold_s: float, kappa: float, miss_wait_s: float | None = None) -> float:
    """Ski-rental keep-alive: stay idle as long as one cold start costs (2-competitive).

    Keeping costs ``kappa`` per second; a cold start costs ``miss_wait_s`` (default
    ``cold_s``) of waiting and ``kappa * cold_s`` of slot.
    """
    if kappa <= 0:
        return math.inf
    wait = cold_s if miss_wait_s is None else miss_wait_s
    return (wait + kappa * cold_s) / kappa


def compress(
    samples: Sequence[float], max_points: int = 96, tolerance: float = 0.02
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
    miss_wait_s: float | None = None,
    prewarm: bool = True,
    two_phase: bool = True,
    max_keep_s: float = math.inf,
    max_warm_from_s: float = math.inf,
    min_warm_weight: float = 2.0,
) -> WindowPlan:
    """The plan of least expected cost over gaps ``values`` (sorted ascending, seconds).

    ``weights`` default to 1 each; ``censored`` is the weight of gaps longer than any window.
    ``prewarm=False`` restricts the answer to keep-alive plans; ``two_phase=False`` forbids
    a keep phase before a pre-warm; a pre-warm is never timed later than ``max_warm_from_s``
    (past the gaps actually seen, values are a prior's, fit to keep for, not to time a
    pre-warm on), nor for fewer than ``min_warm_weight`` gaps (one gap seen once is no
    reason to expect another of the same length to the millisecond). Candidate times are
    the gaps themselves: the cost is piecewise linear between them, so an optimum sits on
    one.
    """
    g = list(values)
    n = len(g)
    w = [1.0] * n if weights is None else list(weights)
    total = sum(w) + censored
    wait = cold_s if miss_wait_s is None else miss_wait_s
    miss = wait + kappa * cold_s  # a cold start: the waiting it causes plus its slot time
    if total <= 0:
        return WindowPlan(keep_s=min(break_even_s(cold_s, kappa, wait), max_keep_s))
    count = [0.0] * (n + 1)  # prefix weights
    mass = [0.0] * (n + 1)  # prefix weighted values
    for i in range(n):
        count[i + 1] = count[i] + w[i]
        mass[i + 1] = mass[i] + w[i] * g[i]

    # Keep phase: K(k) = sum_{G<=k} (kappa*G - miss) + W(G>k) * kappa*k. Adding total * miss
    # gives the cost of "keep for k, then cold-start whatever comes".
    keep_times = [0.0]
    keep_costs = [0.0]
    for j in range(n):
        x = g[j]
        if x > max_keep_s:
            break
        if j + 1 < n and g[j + 1] == x:
            continue  # evaluate a run of equal gaps once, with all of them inside
        keep_times.append(x)
        keep_costs.append(
            kappa * mass[j + 1] - miss * count[j + 1] + (total - count[j + 1]) * kappa * x
        )
    best_keep = min(range(len(keep_costs)), key=keep_costs.__getitem__)
    best = WindowPlan(
        keep_s=keep_times[best_keep], cost=(keep_costs[best_keep] + total * miss) / total
    )
    if not prewarm:
        return best
    best_total = best.cost * total

    # Prefix minimum of K over keep candidates, for "best keep phase that ends by a - cold".
    run_min: list[float] = []
    run_arg: list[int] = []
    for idx, cost in enumerate(keep_costs):
        if not run_min or cost < run_min[-1]:
            run_min.append(cost)
            run_arg.append(idx)
        else:
            run_min.append(run_min[-1])
            run_arg.append(run_arg[-1])

    # Pre-warm phase, ready at a, kept to b: a gap G costs
    #   G < a-cold: a cold start (the pre-warm comes too late): miss
    #   a-cold <= G < a: waits a-G, the fresh slot ran cold_s: (a-G) + kappa*cold
    #   a <= G <= b: kappa*(cold + G - a)
    #   G > b: kappa*(cold + b - a) + miss
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
        k_limit = 0 if not two_phase else bisect.bisect_right(keep_times, a - cold_s) - 1
        k_idx = run_arg[k_limit]
        head += run_min[k_limit]  # K(k) - K(0), and K(0) = 0
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
            cost = (
                head
                + kappa * (inside * (cold_s - a) + inside_sum)
                + beyond * (kappa * (cold_s + b - a) + miss)
            )
            if cost < best_total - 1e-12:
                best_total = cost
                best = WindowPlan(
                    keep_s=keep_times[k_idx], warm_from_s=a, warm_until_s=b, cost=cost / total
                )
            j += 1
    return best


def gap_cost(
    plan: WindowPlan, gap: float, cold_s: float, miss_wait_s: float
) -> tuple[float, float]:
    """(slot seconds, waiting seconds) ``plan`` costs for one gap (``inf``: never reused).

    Slot time counts idle time and the slot time of cold starts and pre-warms, not execution.
    """
    keep = plan.keep_s
    if gap <= keep:
        return gap, 0.0
    a, b = plan.warm_from_s, plan.warm_until_s
    if a is None or b is None or gap < a - cold_s:
        return keep + cold_s, miss_wait_s
    if gap < a:
        return keep + cold_s, a - gap
    if gap <= b:
        return keep + cold_s + gap - a, 0.0
    return keep + cold_s + b - a + cold_s, miss_wait_s


def arrival_cost(
    plan: WindowPlan,
    gap: float | None,
    queue_wait: float,
    cold_s: float,
    miss_wait_s: float,
    kappa: float,
) -> tuple[float, float]:
    """(slot seconds, waiting seconds) of one arrival under ``plan``, served the way the
    queue-aware scheduler serves it: where the plan leaves no instance ready, the request
    waits ``queue_wait`` for a busy instance instead of a cold start when that costs less
    than the cold start (its wait plus ``kappa`` times its slot time).

    ``gap`` None is an arrival that needed one more instance whatever the plan; ``inf`` a
    release never reused (:func:`gap_cost`). Pricing every miss as a cold start made high
    exchange rates look worse than they play out: on the built-in workload the ledger
    ranked 0.8 s per GB·s best where 3.2 scored 3.6 points more (docs/policies.md).
    """
    queue_is_cheaper = queue_wait < miss_wait_s + kappa * cold_s
    if gap is None:
        return (0.0, queue_wait) if queue_is_cheaper else (cold_s, miss_wait_s)
    slot, wait = gap_cost(plan, gap, cold_s, miss_wait_s)
    if wait <= 0.0 or gap == math.inf:
        return slot, wait
    a = plan.warm_from_s
    if a is not None and a - cold_s <= gap < a:
        # The pre-warm is on its way (its slot time is spent anyway): the sooner wins. If the
        # busy instance wins, the pre-warmed one then idles until the next arrival or its
        # window's end; that idle time is not charged here (an approximation: it is usually
        # the instance the next arrival takes).
        return slot, min(wait, queue_wait)
    # A miss: the plan's cold start, or a place in the queue.
    return (slot - cold_s, queue_wait) if queue_is_cheaper else (slot, wait)


def outcome(
    values: Sequence[float],
    weights: Sequence[float] | None,
    censored: float,
    cold_s: float,
    plan: WindowPlan,
    miss_wait_s: float | None = None,
) -> tuple[float, float]:
    """Total (slot seconds, waiting seconds) ``plan`` would have cost over the gaps."""
    wait_miss = cold_s if miss_wait_s is None else miss_wait_s
    slot = 0.0
    wait = 0.0
    for index, gap in enumerate(values):
        weight = 1.0 if weights is None else weights[index]
        gap_slot, gap_wait = gap_cost(plan, gap, cold_s, wait_miss)
        slot += weight * gap_slot
        wait += weight * gap_wait
    if censored:
        gap_slot, gap_wait = gap_cost(plan, math.inf, cold_s, wait_miss)
        slot += censored * gap_slot
        wait += censored * gap_wait
    return slot, wait

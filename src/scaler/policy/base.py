"""The policy interface: pure decisions from observations and the injected clock's ``now``.

A policy never does I/O and never reads a clock: the scheduler hands it what it observed
(``observe_*``) and asks it what to do (the decision methods), passing ``now`` explicitly. That
makes a policy a table-testable function and lets the fast simulator run it in virtual time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from scaler.pool import Pool
    from scaler.states import Instance


@attrs.frozen
class ColdStartDecision:
    """What to do for a request that found no idle instance.

    ``start``: how many instances to cold-start now. ``recheck_after``: when ``start`` is 0, the
    scheduler asks again after this many seconds if the request is still waiting (the policy
    bets that a busy instance frees up sooner than a cold start would take).
    """

    start: int
    recheck_after: float | None = None


START_ONE = ColdStartDecision(1)


class Policy:
    """Base policy: observations are ignored; subclasses override the decisions they shape.

    Keep-alive expiry is the scheduler's: an idle instance carries the deadline
    :meth:`keep_alive_until` gave it (FSM data) and is destroyed when it passes, at the next
    expiry pass, or to the millisecond when ``precise_timers`` is set.
    """

    name = "base"
    #: How often the scheduler's expiry pass runs (seconds).
    gc_interval_s: float = 10.0
    #: Act on deadlines and pre-warms when due (``next_wakeup``), not only at expiry passes.
    precise_timers: bool = False
    #: Decisions for one function depend on the totals of the other functions the process
    #: holds (a fleet-wide rate, say), so N replicas that split the functions may
    #: decide otherwise than one process would (docs/scaling-out.md).
    steers_by_fleet: bool = False

    # -- observations ----------------------------------------------------------------------
    def observe_arrival(self, pool: Pool, now: float, request_id: str = "") -> None:
        """Request ``request_id`` for ``pool``'s function arrived (before it is served)."""

    def observe_release(self, pool: Pool, instance: Instance, duration_ms: int, now: float) -> None:
        """A request finished on ``instance`` (Idle was called)."""

    def observe_cold_start(self, pool: Pool, create_ms: float, init_ms: float, now: float) -> None:
        """A cold start finished: the slot took ``create_ms``, Init reported ``init_ms``."""

    def forget(self, key: str) -> None:
        """The scheduler dropped the function's pool (bounded per-key state)."""

    # -- decisions -------------------------------------------------------------------------
    def on_no_idle(self, pool: Pool, now: float) -> ColdStartDecision:
        """Requests wait: by default every waiting request gets its own cold start."""
        return START_ONE if pool.uncovered() > 0 else ColdStartDecision(0)

    def patience_s(self, pool: Pool, now: float) -> float:
        """Longest a waiting request that no starting instance covers waits before it gets a
        cold start whatever :meth:`on_no_idle` says (the scheduler enforces it, bounded by its
        ``max_patience_s``); 0 by default: at once."""
        return 0.0

    def keep_alive_until(self, pool: Pool, instance: Instance, now: float) -> float:
        """Epoch second until which an instance that goes idle now is kept warm."""
        raise NotImplementedError

    def expired(self, pool: Pool, now: float) -> Iterable[Instance]:
        """Idle instances to scale down now, before their deadline (none by default)."""
        return ()

    def prewarm(self, pool: Pool, now: float) -> Sequence[float]:
        """Instances to start ahead of demand now: one epoch-second deadline each, until which
        the pre-warmed instance is kept if nobody takes it (none by default)."""
        return ()

    def next_wakeup(self, pool: Pool, now: float) -> float | None:
        """Epoch second of the policy's next pre-warm or scale-down for the pool (None: none),
        for a precise timer (with ``precise_timers``)."""
        return None

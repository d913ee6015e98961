"""The policy interface: pure decisions from observations and the injected clock's ``now``.

A policy never does I/O and never reads a clock: the scheduler hands it what it observed
(``observe_*``) and asks it what to do (the decision methods), passing ``now`` explicitly. That
makes a policy a table-testable function and lets the fast simulator run it in virtual time.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    """Base policy: observations are ignored; subclasses override the decisions they shape."""

    name = "base"
    #: How often the scheduler's expiry task runs (seconds).
    gc_interval_s: float = 10.0

    # -- observations ----------------------------------------------------------------------
    def observe_arrival(self, pool: Pool, now: float) -> None:
        """A request for ``pool``'s function arrived (before it is served)."""

    def observe_release(self, pool: Pool, instance: Instance, duration_ms: int, now: float) -> None:
        """A request finished on ``instance`` (Idle was called)."""

    def observe_cold_start(self, pool: Pool, create_ms: float, init_ms: float, now: float) -> None:
        """A cold start finished: the slot took ``create_ms``, Init reported ``init_ms``."""

    def forget(self, key: str) -> None:
        """The scheduler dropped the function's pool (bounded per-key state)."""

    # -- decisions -------------------------------------------------------------------------
    def on_no_idle(self, pool: Pool, now: float) -> ColdStartDecision:
        """A request waits: by default every waiting request gets its own cold start."""
        return START_ONE if pool.pending_waiters() > pool.starting_count else ColdStartDecision(0)

    def keep_alive_until(self, pool: Pool, instance: Instance, now: float) -> float:
        """Epoch second until which an instance that just went idle is kept warm."""
        raise NotImplementedError

    def expired(self, pool: Pool, now: float) -> Iterable[Instance]:
        """Idle instances to destroy now: by default those past their keep-alive deadline."""
        return [i for i in pool.idle_instances() if i.keep_until <= now]

    def prewarm(self, pool: Pool, now: float) -> int:
        """How many instances to start ahead of demand now (none by default)."""
        return 0

    def next_wakeup(self, pool: Pool, now: float) -> float | None:
        """Epoch second of the pool's next deadline or pre-warm, for a precise timer.

        None (the default) leaves expiry and pre-warm to the periodic GC pass alone; a policy
        with short keep-alives or timed pre-warms answers its earliest deadline, and the
        scheduler runs ``expired``/``prewarm`` for this pool when it is due.
        """
        return None

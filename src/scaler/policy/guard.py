"""The policy seen through a guard: a policy that raises never corrupts the scheduler.

Every call into the policy goes through :class:`GuardedPolicy`. An exception is contained: the
decision falls back to what the challenge's sample scaler would do (a cold start for a waiting
request, a 5-minute keep-alive, no pre-warm, no scale-down), the error is counted
(``errors``) and logged once per function, and the request is served. An optional ``meter``
hears how long each decision took (monotonic perf counter), for the simulator's measured
compute and the metrics endpoint.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from loguru import logger

from scaler.policy.base import START_ONE, ColdStartDecision, Policy

if TYPE_CHECKING:
    from scaler.pool import Pool
    from scaler.states import Instance

#: Keep-alive after a policy failure: the challenge's sample scaler's 5 minutes, the
#: baseline that is never far from right.
FALLBACK_KEEP_S = 300.0
#: Most functions remembered as "already logged a policy error for" (bounded memory).
_LOGGED_LIMIT = 10_000

#: ``meter(decision, seconds)``: how long one policy call took.
Meter = Callable[[str, float], None]


class GuardedPolicy:
    """Calls ``policy``, contains its exceptions, and optionally times each call."""

    def __init__(self, policy: Policy, meter: Meter | None = None) -> None:
        self.policy = policy
        self.meter = meter
        #: Policy exceptions by decision name.
        self.errors: Counter[str] = Counter()
        self._logged: set[str] = set()

    def _call(self, name: str, key: str, fallback: Any, *args: Any) -> Any:
        meter = self.meter
        if meter is None:
            try:
                return getattr(self.policy, name)(*args)
            except Exception:
                return self._failed(name, key, fallback)
        started = time.perf_counter()
        try:
            return getattr(self.policy, name)(*args)
        except Exception:
            return self._failed(name, key, fallback)
        finally:
            meter(name, time.perf_counter() - started)

    def _failed(self, name: str, key: str, fallback: Any) -> Any:
        """Count the exception being handled, log it once per function, answer ``fallback``."""
        self.errors[name] += 1
        if key not in self._logged and len(self._logged) < _LOGGED_LIMIT:
            self._logged.add(key)
            logger.exception(
                "policy {} failed in {} for function {}; falling back (logged once per function)",
                self.policy.name,
                name,
                key,
            )
        return fallback

    # -- observations --------------------------------------------------------------------------
    def observe_arrival(self, pool: Pool, now: float, request_id: str = "") -> None:
        self._call("observe_arrival", pool.key, None, pool, now, request_id)

    def observe_release(self, pool: Pool, instance: Instance, duration_ms: int, now: float) -> None:
        self._call("observe_release", pool.key, None, pool, instance, duration_ms, now)

    def observe_cold_start(self, pool: Pool, create_ms: float, init_ms: float, now: float) -> None:
        self._call("observe_cold_start", pool.key, None, pool, create_ms, init_ms, now)

    def forget(self, key: str) -> None:
        self._call("forget", key, None, key)

    # -- decisions -----------------------------------------------------------------------------
    def on_no_idle(self, pool: Pool, now: float) -> ColdStartDecision:
        decision = self._call("on_no_idle", pool.key, START_ONE, pool, now)
        if not isinstance(decision, ColdStartDecision) or decision.start < 0:
            self.errors["on_no_idle"] += 1
            return START_ONE
        return decision

    def patience_s(self, pool: Pool, now: float) -> float:
        return float(self._call("patience_s", pool.key, 0.0, pool, now))

    def keep_alive_until(self, pool: Pool, instance: Instance, now: float) -> float:
        until = self._call("keep_alive_until", pool.key, now + FALLBACK_KEEP_S, pool, instance, now)
        return float(until) if until == until else now + FALLBACK_KEEP_S  # NaN: fall back

    def expired(self, pool: Pool, now: float) -> Sequence[Instance]:
        return list(self._call("expired", pool.key, (), pool, now))

    def prewarm(self, pool: Pool, now: float) -> Sequence[float]:
        return list(self._call("prewarm", pool.key, (), pool, now))

    def next_wakeup(self, pool: Pool, now: float) -> float | None:
        return self._call("next_wakeup", pool.key, None, pool, now)

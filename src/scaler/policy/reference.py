"""The challenge's sample scaler: keep idle instances 5 minutes, GC every 10 s, no pre-warm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.policy.base import Policy

if TYPE_CHECKING:
    from scaler.pool import Pool
    from scaler.states import Instance


class ReferencePolicy(Policy):
    """Fixed keep-alive; a cold start for every request that finds no idle instance."""

    name = "reference"
    gc_interval_s = 10.0
    keep_alive_s = 300.0

    def keep_alive_until(self, pool: Pool, instance: Instance, now: float) -> float:
        return now + self.keep_alive_s

"""Bench-only variants of the default policy (``python -m bench.policies --ablation``).

Not offered by ``--policy``: they answer what each part of the default is worth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from scaler.policy import AdaptivePolicy, Policy

if TYPE_CHECKING:
    from scaler.pool import Pool


class Ungated(AdaptivePolicy):
    """The candidate plan from the first gap on, without the counterfactual gate."""

    name = "adaptive-ungated"
    gated = False


class NotQueueAware(AdaptivePolicy):
    """One cold start per waiting request, as the reference."""

    name = "adaptive-not-queue-aware"
    queue_aware = False


class NoPrewarm(AdaptivePolicy):
    """Starts an instance only for a request that waits, never during a quiet (the
    foresight bound's tests compare such scalers with it)."""

    name = "adaptive-no-prewarm"

    def prewarm(self, pool: Pool, now: float) -> Sequence[float]:
        return ()


VARIANTS: dict[str, Callable[[], Policy]] = {v.name: v for v in (Ungated, NotQueueAware, NoPrewarm)}

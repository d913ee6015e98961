"""Bench-only variants of the default policy (``python -m bench.policies --ablation``).

Not offered by ``--policy``: they answer what each part of the default is worth.
"""

from __future__ import annotations

from collections.abc import Callable

from scaler.policy import AdaptivePolicy, Policy


class Ungated(AdaptivePolicy):
    """The candidate plan from the first gap on, without the counterfactual gate."""

    name = "adaptive-ungated"
    gated = False


class NotQueueAware(AdaptivePolicy):
    """One cold start per waiting request, as the reference."""

    name = "adaptive-not-queue-aware"
    queue_aware = False


VARIANTS: dict[str, Callable[[], Policy]] = {v.name: v for v in (Ungated, NotQueueAware)}

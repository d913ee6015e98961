"""Scaling policies, selected by name (``--policy NAME``; docs/policies.md).

To add one: subclass :class:`Policy` in a module here and register it in ``POLICIES``.
Variants for the bench only (the default without its gate, say) live in ``bench/``.
"""

from __future__ import annotations

from collections.abc import Callable

from scaler.policy.adaptive import AdaptivePolicy
from scaler.policy.base import ColdStartDecision, Policy
from scaler.policy.hybrid import HybridHistogramPolicy
from scaler.policy.reference import ReferencePolicy

POLICIES: dict[str, Callable[[], Policy]] = {
    "reference": ReferencePolicy,
    "hybrid": HybridHistogramPolicy,
    "adaptive": AdaptivePolicy,
}
DEFAULT_POLICY = "adaptive"


def make_policy(name: str = DEFAULT_POLICY) -> Policy:
    """A fresh policy by name; unknown names list the known ones."""
    factory = POLICIES.get(name)
    if factory is None:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(sorted(POLICIES))})")
    return factory()


__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "AdaptivePolicy",
    "ColdStartDecision",
    "HybridHistogramPolicy",
    "Policy",
    "make_policy",
]

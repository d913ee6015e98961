"""Scaling policies, selected by name (``--policy NAME``; docs/policies.md).

To add one: subclass :class:`Policy` in a module here and register it in ``POLICIES``.
Besides the registered names, ``adaptive-without-<component>[,<component>...]`` is the
default policy with those :class:`Components` switched off, ``adaptive-with-...`` with them
switched on (the ablation of ``python -m bench.policies --ablation``).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from scaler.policy.adaptive import AdaptivePolicy, Components
from scaler.policy.base import ColdStartDecision, Policy
from scaler.policy.hybrid import HybridHistogramPolicy
from scaler.policy.reference import ReferencePolicy

POLICIES: dict[str, Callable[[], Policy]] = {
    "reference": ReferencePolicy,
    "hybrid": HybridHistogramPolicy,
    "adaptive": AdaptivePolicy,
}
DEFAULT_POLICY = "adaptive"
ABLATION_PREFIX = "adaptive-without-"
ADDITION_PREFIX = "adaptive-with-"


def ablation_name(*components: str) -> str:
    """The name of the default policy with ``components`` flipped from their default (off
    for those on by default: ``adaptive-without-...``; on for the others)."""
    defaults = Components()
    if all(getattr(defaults, c, True) for c in components):
        return ABLATION_PREFIX + ",".join(components)
    return ADDITION_PREFIX + ",".join(components)


def make_policy(name: str = DEFAULT_POLICY) -> Policy:
    """A fresh policy by name; unknown names list the known ones."""
    factory = POLICIES.get(name)
    if factory is not None:
        return factory()
    for prefix, value in ((ABLATION_PREFIX, False), (ADDITION_PREFIX, True)):
        if not name.startswith(prefix):
            continue
        flipped = [part for part in name[len(prefix) :].split(",") if part]
        unknown = sorted(set(flipped) - set(Components.names()))
        if unknown or not flipped:
            known = ", ".join(Components.names())
            raise ValueError(f"unknown component(s) {', '.join(unknown)} (known: {known})")
        policy = AdaptivePolicy(attrs.evolve(Components(), **dict.fromkeys(flipped, value)))
        policy.name = name
        return policy
    known = ", ".join(sorted(POLICIES))
    raise ValueError(
        f"unknown policy {name!r} (known: {known}, or {ABLATION_PREFIX}<component>,... "
        f"or {ADDITION_PREFIX}<component>,...)"
    )


__all__ = [
    "ABLATION_PREFIX",
    "ADDITION_PREFIX",
    "DEFAULT_POLICY",
    "POLICIES",
    "AdaptivePolicy",
    "ColdStartDecision",
    "Components",
    "HybridHistogramPolicy",
    "Policy",
    "ablation_name",
    "make_policy",
]

"""Scaling policies, selected by name (``--policy NAME``).

To add one: subclass :class:`Policy` in a module here and register it in ``POLICIES``.
"""

from __future__ import annotations

from collections.abc import Callable

from scaler.policy.base import ColdStartDecision, Policy
from scaler.policy.reference import ReferencePolicy

POLICIES: dict[str, Callable[[], Policy]] = {
    "reference": ReferencePolicy,
}
DEFAULT_POLICY = "reference"


def make_policy(name: str = DEFAULT_POLICY) -> Policy:
    """A fresh policy by name; unknown names list the known ones."""
    try:
        factory = POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise ValueError(f"unknown policy {name!r} (known: {known})") from None
    return factory()


__all__ = ["DEFAULT_POLICY", "POLICIES", "ColdStartDecision", "Policy", "make_policy"]

"""Scaling policies, selected by name (``--policy NAME``; docs/policies.md).

To add one: subclass :class:`Policy` in a module here and register it in ``POLICIES``.
Besides the registered names, ``adaptive-without-<component>[,<component>...]`` is the
default policy with those :class:`Components` switched off, ``adaptive-with-...`` with them
switched on (the ablation of ``python -m bench.policies --ablation``), and ``adaptive@RATE``
the default with its exchange rate fixed at the grid point ``RATE`` (waiting seconds per GB·s,
e.g. ``adaptive@0.05``; ``python -m bench.policies --rate-sweep``): what the rate selector
could reach with a perfect choice made once for the whole run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from scaler.policy.adaptive import KAPPA_GRID, AdaptivePolicy, Components
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
FIXED_RATE_PREFIX = "adaptive@"
#: How far (a factor) a requested fixed rate may be from its grid point: the grid is a factor
#: 4 apart, so rounded spellings (``0.0002`` for 0.000195) match one point only.
_RATE_MATCH = 1.3


def ablation_name(*components: str) -> str:
    """The name of the default policy with ``components`` flipped from their default (off
    for those on by default: ``adaptive-without-...``; on for the others)."""
    defaults = Components()
    if all(getattr(defaults, c, True) for c in components):
        return ABLATION_PREFIX + ",".join(components)
    return ADDITION_PREFIX + ",".join(components)


def rate_name(index: int, prefix: str = FIXED_RATE_PREFIX) -> str:
    """``adaptive@RATE`` (or ``prefix`` then the rate) for grid point ``index``, with the
    rate in 2 significant digits."""
    return f"{prefix}{KAPPA_GRID[index]:.2g}"


def grid_index(rate: float) -> int:
    """The exchange-rate grid point within a factor 1.3 of ``rate``, else ValueError."""
    if rate > 0 and math.isfinite(rate):
        nearest = min(range(len(KAPPA_GRID)), key=lambda i: abs(math.log(KAPPA_GRID[i] / rate)))
        if abs(math.log(KAPPA_GRID[nearest] / rate)) <= math.log(_RATE_MATCH):
            return nearest
    grid = ", ".join(f"{k:.2g}" for k in KAPPA_GRID)
    raise ValueError(
        f"exchange rate {rate:g} is not within a factor {_RATE_MATCH:g} of a grid point "
        f"({grid} waiting s per GB·s)"
    )


def rate_index(name: str, prefix: str) -> int:
    """The grid index of the rate in ``name`` (``prefix`` then a rate, e.g.
    ``adaptive@0.05``); ValueError naming the policy when it is not a grid point."""
    text = name[len(prefix) :]
    try:
        rate = float(text)
    except ValueError:
        reason = f"{text!r} is not a number" if text.strip() else "no rate given"
        raise ValueError(f"policy {name!r}: {reason}") from None
    try:
        return grid_index(rate)
    except ValueError as err:
        raise ValueError(f"policy {name!r}: {err}") from None


def make_policy(name: str = DEFAULT_POLICY) -> Policy:
    """A fresh policy by name; unknown names list the known ones."""
    factory = POLICIES.get(name)
    if factory is not None:
        return factory()
    if name.startswith(FIXED_RATE_PREFIX):
        index = rate_index(name, FIXED_RATE_PREFIX)
        policy = AdaptivePolicy(Components(online_prices=False), fixed_index=index)
        # One spelling per grid point, so results of adaptive@12.8 and adaptive@13 are one row.
        policy.name = rate_name(index)
        return policy
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
        f"or {ADDITION_PREFIX}<component>,..., or {FIXED_RATE_PREFIX}<rate>)"
    )


__all__ = [
    "ABLATION_PREFIX",
    "ADDITION_PREFIX",
    "DEFAULT_POLICY",
    "FIXED_RATE_PREFIX",
    "POLICIES",
    "AdaptivePolicy",
    "ColdStartDecision",
    "Components",
    "HybridHistogramPolicy",
    "Policy",
    "ablation_name",
    "grid_index",
    "make_policy",
    "rate_index",
    "rate_name",
]

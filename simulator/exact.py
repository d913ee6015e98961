"""Exact sums of floats, so that a record does not depend on the order it was added up in.

A sharded replay adds the same per-request and per-slot terms as one process, but in another
order and in several parts; with plain ``+=`` the totals would differ in their last bits. Every
finite double is an integer multiple of 2**-1074, so the sum is kept as that integer (exact,
any order, any split) and rounded once, correctly, when read.
"""

from __future__ import annotations

from collections.abc import Iterable

_SCALE_BITS = 1074  # 2**-1074 is the smallest positive double
_SCALE = 1 << _SCALE_BITS


def scaled(value: float) -> int:
    """``value`` as an exact integer count of 2**-1074 (ValueError for inf and nan)."""
    numerator, denominator = value.as_integer_ratio()
    return numerator << (_SCALE_BITS + 1 - denominator.bit_length())


def unscaled(total: int) -> float:
    """The double nearest to ``total`` * 2**-1074 (int true division rounds correctly)."""
    return total / _SCALE


class ExactSum:
    """A running sum of floats kept exactly; ``float(s)`` is the correctly rounded total."""

    __slots__ = ("total",)

    def __init__(self, total: int = 0) -> None:
        self.total = total

    def add(self, value: float) -> None:
        self.total += scaled(value)

    def __float__(self) -> float:
        return unscaled(self.total)


def exact_sum(values: Iterable[float]) -> int:
    """The exact scaled sum of ``values`` (see :func:`scaled`)."""
    return sum(map(scaled, values))

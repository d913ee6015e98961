"""Exact sums of floats, so that a record does not depend on the order it was added up in;
exact multisets of floats, so that percentiles merged from shards are those of one list.

A sharded replay adds the same per-request and per-slot terms as one process, but in another
order and in several parts; with plain ``+=`` the totals would differ in their last bits. Every
finite double is an integer multiple of 2**-1074, so the sum is kept as that integer (exact,
any order, any split) and rounded once, correctly, when read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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


class ValueCounts:
    """A multiset of floats as sorted distinct values and their counts: exact, and small when
    values repeat (most Assign and Idle latencies are one RPC charge). It reads as the sorted
    list it stands for (``len``, ``[k]``), so percentiles taken from it are those of the list,
    to the bit; a sharded replay sends its latencies this way (8 bytes per distinct value, not
    per request)."""

    __slots__ = ("_ends", "counts", "values")

    def __init__(self, values: Any, counts: Any) -> None:
        import numpy as np

        self.values = np.asarray(values, dtype=float)
        self.counts = np.asarray(counts, dtype=np.int64)
        self._ends = np.cumsum(self.counts)

    @classmethod
    def of(cls, values: Iterable[float]) -> ValueCounts:
        import numpy as np

        distinct, counts = np.unique(np.fromiter(values, dtype=float), return_counts=True)
        return cls(distinct, counts)

    @classmethod
    def merged(cls, parts: Iterable[ValueCounts]) -> ValueCounts:
        import numpy as np

        parts = list(parts)
        if not parts:
            return cls([], [])
        values = np.concatenate([p.values for p in parts])
        counts = np.concatenate([p.counts for p in parts])
        distinct, where = np.unique(values, return_inverse=True)
        return cls(distinct, np.bincount(where, weights=counts).astype(np.int64))

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, k: int) -> float:
        """The ``k``-th smallest value (0-based), as the sorted list would answer."""
        import numpy as np

        if not 0 <= k < len(self):
            raise IndexError(k)
        return float(self.values[int(np.searchsorted(self._ends, k, side="right"))])

    def __eq__(self, other: object) -> bool:
        import numpy as np

        return (
            isinstance(other, ValueCounts)
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]

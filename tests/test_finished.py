"""The bounded memory of released requests that names a duplicate Idle."""

from __future__ import annotations

import gc

import pytest

from scaler.finished import FinishedRequests


def test_remembers_at_least_the_last_capacity_and_at_most_twice_that() -> None:
    capacity = 3
    finished = FinishedRequests(capacity)
    for i in range(20):
        finished.remember(f"req-{i}", f"slot-{i}")
        for back in range(min(i + 1, capacity)):
            assert f"req-{i - back}" in finished
        remembered = sum(f"req-{j}" in finished for j in range(i + 1))
        assert remembered <= 2 * capacity
    assert "req-0" not in finished  # bounded: the oldest are forgotten


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FinishedRequests(capacity=0)


def test_the_memory_is_not_walked_by_the_cyclic_collector() -> None:
    # Why plain dicts: a full collection visits every key and value of a tracked container,
    # a pause of tens of ms inside whichever Assign or Idle triggers it.
    finished = FinishedRequests(capacity=1000)
    for i in range(1500):
        finished.remember(f"req-{i}", f"slot-{i}")
    gc.collect()
    visited, frontier = 0, [finished]
    while frontier:
        referents = [r for r in gc.get_referents(*frontier) if not isinstance(r, type)]
        visited += len(referents)
        frontier = [r for r in referents if gc.is_tracked(r)]
    assert visited < 20  # an OrderedDict of 1,500 pairs would show 3,000 here

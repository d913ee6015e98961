"""The bounded memory of released requests that names a duplicate Idle."""

from __future__ import annotations

import gc

import pytest

from scaler.finished import FinishedRequests


def test_remembers_at_least_the_last_capacity_requests() -> None:
    finished = FinishedRequests(capacity=3)
    for i in range(10):
        finished.remember(f"req-{i}", f"slot-{i}")
        for back in range(min(i + 1, 3)):
            assert f"req-{i - back}" in finished
    assert "req-0" not in finished  # bounded: the oldest are forgotten
    assert "req-5" not in finished


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FinishedRequests(capacity=0)


def test_the_memory_is_not_walked_by_the_cyclic_collector() -> None:
    finished = FinishedRequests(capacity=1000)
    for i in range(1500):
        finished.remember(f"req-{i}", f"slot-{i}")
    gc.collect()
    assert not gc.is_tracked(finished._recent) and not gc.is_tracked(finished._older)

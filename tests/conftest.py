"""Shared fixtures: one local Ray for the whole session (started on first use, bounded, and
shut down at the end), for the tests that run shards and sweeps as Ray tasks."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

RAY_START_TIMEOUT_S = 120
"""A cold local Ray starts in about 6 s here; far more means a stuck start, not a slow one."""


def _too_slow(_signum: int, _frame: Any) -> None:
    raise TimeoutError(f"a local Ray did not start within {RAY_START_TIMEOUT_S} s")


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """A private local Ray with 2 CPUs (CI's machine), started once for the session.

    Started in the main thread, bounded by an alarm: Ray's own processes die with the thread
    that started them, so a helper thread cannot start it.
    """
    ray = pytest.importorskip("ray")
    from simulator import cluster

    previous = signal.signal(signal.SIGALRM, _too_slow)
    signal.alarm(RAY_START_TIMEOUT_S)
    try:
        cluster.start(num_cpus=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    try:
        yield
    finally:
        ray.shutdown()

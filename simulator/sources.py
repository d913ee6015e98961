"""Where a worker gets its dataset: a small, picklable spec, read or generated in the worker.

A Ray task is given a *source* (a folder path, or the generator's arguments), never the
requests themselves: shipping a 50 MB trace with every task would cost more than replaying it.
Each worker process reads a folder once and keeps it for the next task on the same trace
(:func:`load_cached`); the generator makes only the functions of the shard asked for, so a
worker of a 20-million-request day holds its own share only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

import attrs

from simulator.dataset import Dataset, load_dataset


class Source(Protocol):
    """A dataset that a worker can make by itself; equal sources give equal datasets."""

    @property
    def label(self) -> str: ...

    def load(self) -> Dataset: ...


@attrs.frozen
class FolderSource:
    """A challenge dataset folder, read (and validated) in the worker."""

    path: str

    @property
    def label(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    def load(self) -> Dataset:
        return load_dataset(self.path)


@attrs.frozen
class GeneratorSource:
    """The built-in generator's arguments (simulator/workload.py)."""

    seed: int = 7
    duration_s: float = 1800.0
    functions: int = 40
    popularity: bool = False

    @property
    def label(self) -> str:
        return self.load_part(lambda _key: False).name

    def load(self) -> Dataset:
        return self.load_part(None)

    def load_part(self, keep: Callable[[str], bool] | None) -> Dataset:
        """Only the functions ``keep`` accepts (all of them for None)."""
        from simulator.workload import generate_workload

        return generate_workload(
            seed=self.seed,
            duration_s=self.duration_s,
            functions=self.functions,
            popularity=self.popularity,
            keep=keep,
        )

    @property
    def origin_ms(self) -> int:
        """Epoch ms of the generator's time 0."""
        from simulator.workload import START_MS

        return START_MS

    @property
    def end_bound_ms(self) -> int:
        """No request of the workload ends later than this: its horizon plus the longest
        timeout an archetype can draw (executions are capped at the timeout)."""
        from simulator.workload import LONGEST_TIMEOUT_S, START_MS

        return START_MS + int(self.duration_s * 1000) + LONGEST_TIMEOUT_S * 1000


_cache: dict[object, Dataset] = {}


def load_cached(source: Source) -> Dataset:
    """``source.load()``, kept for the next call in this process (one dataset at a time, so a
    worker that moves on to another trace frees the last one)."""
    dataset = _cache.get(source)
    if dataset is None:
        _cache.clear()
        dataset = source.load()
        _cache[source] = dataset
    return dataset

"""Split a dataset into shards by the function-key hash (``scaler.sharding.shard_of``).

Shard ``i`` of ``N`` holds the functions whose key hashes to ``i`` and all of their requests,
in the dataset's order: the traffic that replica ``i`` of an N-replica deployment would see.
Every request is in exactly one shard. A shard is replayed on the *whole* dataset's clock
(:class:`ShardData` ``origin_ms``), so its scaler's timers tick when they would in one process.
"""

from __future__ import annotations

import attrs

from scaler.sharding import shard_of
from simulator.dataset import Dataset
from simulator.sources import GeneratorSource, Source, load_cached

LINGER_SLACK_MS = 3600 * 1000
"""How far past the last request's latest possible end (its start plus its duration) a shard's
scaler keeps running: room for the requests that waited for an instance. A merge refuses to
price slots past the point a shard kept running to, so too little slack is an error, never a
wrong record."""


@attrs.frozen
class ShardData:
    """One shard's requests, and the whole dataset's clock it is replayed on."""

    dataset: Dataset
    origin_ms: int
    """Epoch ms of the whole dataset's time 0 (its first request, or a generator's start)."""
    linger_until_ms: int
    """Epoch ms up to which the shard's scaler runs, whenever its own last request ends."""


def shard_dataset(dataset: Dataset, shards: int, index: int) -> Dataset:
    """Shard ``index`` of ``shards``: its functions' metas and requests, in order."""
    if not 0 <= index < shards:
        raise ValueError(f"shard {index} is not in 0..{shards - 1}")
    mine = {key for key in dataset.metas if shard_of(key, shards) == index}
    return Dataset(
        name=f"{dataset.name}#{index}/{shards}",
        meta_path=dataset.meta_path,
        request_path=dataset.request_path,
        metas={k: m for k, m in dataset.metas.items() if k in mine},
        requests=[r for r in dataset.requests if r.key in mine],
    )


def split(dataset: Dataset, shards: int) -> list[Dataset]:
    """All ``shards`` shards of ``dataset`` (one pass over the requests)."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    owner = {key: shard_of(key, shards) for key in dataset.metas}
    parts: list[list] = [[] for _ in range(shards)]
    for request in dataset.requests:
        parts[owner[request.key]].append(request)
    return [
        Dataset(
            name=f"{dataset.name}#{i}/{shards}",
            meta_path=dataset.meta_path,
            request_path=dataset.request_path,
            metas={k: m for k, m in dataset.metas.items() if owner[k] == i},
            requests=parts[i],
        )
        for i in range(shards)
    ]


def load_shard(source: Source, shards: int, index: int) -> ShardData:
    """Shard ``index`` of ``shards`` of ``source``, made in this process.

    A generator makes only this shard's functions; any other source is loaded whole once per
    process (:func:`simulator.sources.load_cached`) and filtered, so the next shard of the same
    trace on this worker does not read it again.
    """
    if isinstance(source, GeneratorSource):
        part = source.load_part(lambda key: shard_of(key, shards) == index)
        part = attrs.evolve(part, name=f"{part.name}#{index}/{shards}")
        return ShardData(part, source.origin_ms, source.end_bound_ms + LINGER_SLACK_MS)
    whole = load_cached(source)
    return ShardData(
        shard_dataset(whole, shards, index), whole.start_ms, whole.end_ms + LINGER_SLACK_MS
    )

"""Which replica owns a function: the stable hash that splits function keys into shards.

A scaler that outgrows one process is deployed as N replicas, each owning a partition of the
function keys (docs/scaling-out.md); ``scaler simulate --shards N`` replays the same split. Both
must agree on the partition, on every machine and in every language, so it is spelled out here
exactly:

1. ``h`` = the first 8 bytes of BLAKE2b of the key's UTF-8 bytes with ``digest_size=8`` (no
   key, no salt), read as a big-endian unsigned 64-bit integer;
2. the shard is Lamping and Veach's *jump consistent hash* of ``h`` into ``N`` buckets.

Why these two: BLAKE2b is in every standard library or a well-known package and mixes any key
shape (hex digests, ``app/func`` names, sequential ``timer-07``) evenly, unlike CRC32 whose
low bits follow the key's last characters. Jump hash, unlike ``h mod N``, moves only a
``1/(N+1)`` share of the keys when a deployment grows from N to N + 1 replicas, so a resize
keeps most functions' warm instances and learned state where they are. Python's built-in
``hash`` is salted per process and must never be used for this.
"""

from __future__ import annotations

import hashlib

_MASK64 = (1 << 64) - 1
_JUMP_MULTIPLIER = 2862933555777941757  # the paper's 64-bit linear congruential step


def key_hash(key: str) -> int:
    """The 64-bit hash of a function key (step 1 of the module docstring)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def jump_hash(value: int, buckets: int) -> int:
    """Jump consistent hash (Lamping and Veach, 2014) of a 64-bit ``value`` into
    ``0..buckets-1``."""
    if buckets < 1:
        raise ValueError("buckets must be >= 1")
    bucket, jump = -1, 0
    while jump < buckets:
        bucket = jump
        value = (value * _JUMP_MULTIPLIER + 1) & _MASK64
        jump = int((bucket + 1) * (float(1 << 31) / float((value >> 33) + 1)))
    return bucket


def shard_of(key: str, shards: int) -> int:
    """The shard (``0..shards-1``) that owns function ``key`` among ``shards`` replicas."""
    return jump_hash(key_hash(key), shards)

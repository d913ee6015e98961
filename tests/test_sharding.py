"""The shard hash: the published jump-hash vectors, fixed values for our keys, the same answer
in another process (no salted ``hash``), an even spread, and the minimal move on a resize."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from scaler.sharding import jump_hash, key_hash, shard_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("value", "buckets", "bucket"),
    # From the reference implementations' own tests (Python `jump`, Rust crates).
    [(256, 1024, 520), (0, 60, 0), (1, 60, 55), (2, 60, 46), (1, 1, 0), (42, 57, 43)],
)
def test_jump_hash_matches_the_published_vectors(value: int, buckets: int, bucket: int) -> None:
    assert jump_hash(value, buckets) == bucket


def test_fixed_values_for_some_keys() -> None:
    # A change here re-partitions every sharded deployment: docs/scaling-out.md spells it out.
    assert key_hash("timer-01") == 0xAD713A9B10612821
    assert [shard_of("timer-01", n) for n in (1, 2, 3, 8, 100)] == [0, 1, 1, 4, 61]
    key = "35c9b6fcb64e1fde9fedf3b16c7b0fc8536f27af"
    assert [shard_of(key, n) for n in (1, 2, 3, 8, 100)] == [0, 1, 2, 2, 10]


def test_the_same_in_another_process_with_another_hash_seed() -> None:
    keys = [f"fn-{i}" for i in range(50)]
    code = f"from scaler.sharding import shard_of; print([shard_of(k, 7) for k in {keys!r}])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(ROOT / "src"), "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == str([shard_of(k, 7) for k in keys])


def test_spread_is_even_over_many_keys() -> None:
    counts = Counter(shard_of(f"app-{i}/func", 4) for i in range(8000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(1800 <= n <= 2200 for n in counts.values()), counts


def test_growing_by_one_moves_keys_only_to_the_new_shard() -> None:
    keys = [f"k{i}" for i in range(4000)]
    moved = [k for k in keys if shard_of(k, 5) != shard_of(k, 6)]
    assert all(shard_of(k, 6) == 5 for k in moved)
    assert 0.12 < len(moved) / len(keys) < 0.22  # about 1/6


def test_one_shard_and_bad_counts() -> None:
    assert shard_of("anything", 1) == 0
    with pytest.raises(ValueError):
        shard_of("anything", 0)

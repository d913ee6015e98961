"""Splitting a dataset by the key hash: a partition in order, the generator making one shard
alone exactly as the whole would, a folder read once per process for all its shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler.sharding import shard_of
from simulator import sources
from simulator.dataset import write_dataset
from simulator.shards import LINGER_SLACK_MS, load_shard, shard_dataset, split
from simulator.sources import FolderSource, GeneratorSource, load_cached
from simulator.workload import generate_workload


def test_split_is_a_partition_in_the_dataset_order() -> None:
    whole = generate_workload(duration_s=300, functions=15)
    parts = split(whole, 3)
    assert sum(len(p.requests) for p in parts) == len(whole.requests)
    for index, part in enumerate(parts):
        assert part.requests == [r for r in whole.requests if shard_of(r.key, 3) == index]
        assert set(part.metas) == {k for k in whole.metas if shard_of(k, 3) == index}
        assert part == shard_dataset(whole, 3, index)
        assert part.name == f"{whole.name}#{index}/3"
    with pytest.raises(ValueError):
        shard_dataset(whole, 3, 3)


def test_a_generated_shard_is_the_same_as_the_whole_workloads_share() -> None:
    source = GeneratorSource(duration_s=600, functions=30, popularity=True)
    whole = source.load()
    for index in range(4):
        data = load_shard(source, 4, index)
        expected = shard_dataset(whole, 4, index)
        assert data.dataset.requests == expected.requests
        assert data.dataset.metas == expected.metas
        assert data.origin_ms == source.origin_ms <= whole.start_ms
        assert data.linger_until_ms >= whole.end_ms + LINGER_SLACK_MS


def test_popularity_thins_rates_but_leaves_timers_and_the_default_alone() -> None:
    plain = generate_workload(duration_s=600, functions=30)
    popular = generate_workload(duration_s=600, functions=30, popularity=True)
    assert plain.metas == popular.metas
    assert len(popular.requests) < len(plain.requests)
    timers = [r for r in plain.requests if r.key.startswith("timer")]
    assert timers == [r for r in popular.requests if r.key.startswith("timer")]
    assert generate_workload(keep=lambda _k: True) == generate_workload()


def test_a_folder_is_read_once_per_process_for_all_its_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = generate_workload(duration_s=120, functions=8)
    write_dataset(whole, tmp_path / "ds")
    reads: list[str] = []
    real = sources.load_dataset
    monkeypatch.setattr(sources, "load_dataset", lambda p: reads.append(p) or real(p))
    monkeypatch.setattr(sources, "_cache", {})
    source = FolderSource(str(tmp_path / "ds"))
    data = [load_shard(source, 2, i) for i in range(2)]
    assert reads == [str(tmp_path / "ds")]
    assert data[0].origin_ms == data[1].origin_ms == whole.start_ms
    assert sum(len(d.dataset.requests) for d in data) == len(whole.requests)
    assert load_cached(source).requests == whole.requests
    assert len(reads) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scale", "many:24"], "expected FUNCTIONS:HOURS"),
        (["--scale", "0:24"], "FUNCTIONS must be >= 1"),
        (["--shards", "2", "--mode", "wire"], "fast mode only, without --mode wire"),
        (["--shards", "2", "--slice", "0:60"], "without --slice"),
        (["--shards", "-1"], "--shards must be >= 0"),
        (["--ray-address", "x:1"], "--ray-address needs --shards N"),
        (["--shards", "2", "/nowhere/at/all"], "no such dataset folder"),
    ],
)
def test_bad_sharded_arguments_exit_2_before_ray_starts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from scaler.cli import main

    assert main(["simulate", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_sharded_replay_of_a_fleet_steered_policy_is_flagged() -> None:
    # The default's replicas each steer by their own shard (docs/scaling-out.md): the user is
    # told the sharded score is the deployment's; reference decides per function, no note.
    from simulator.cli import shards_note

    note = shards_note("adaptive", 2)
    assert note is not None and "adaptive" in note and "--shards 2" in note
    assert shards_note("adaptive", 1) is None
    assert shards_note("reference", 8) is None
    assert shards_note("hybrid", 2) is None  # windows from each function's own gaps

"""``scaler simulate --shards 2`` on a local Ray: a few thousand requests in two tasks give the
exact record of the in-process merge, with progress on stderr; a failing task names its shard
and the run prints no record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaler.cli import main
from simulator.dataset import write_dataset
from simulator.merge import merged_record
from simulator.sharded import ShardOptions, replay_shard
from simulator.sources import FolderSource
from simulator.workload import generate_workload
from tests.test_merge import without

pytestmark = [pytest.mark.usefixtures("local_ray"), pytest.mark.slow]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "small"
    write_dataset(generate_workload(seed=2, duration_s=300, functions=10), path)
    return path


def test_two_shards_on_ray_give_the_exact_merged_record(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", str(folder), "--shards", "2", "--policy", "reference", "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    record = json.loads(out.strip().splitlines()[-1])
    assert 2000 <= record["totalRequestsCount"] <= 10_000
    assert "shards: 2/2 done" in err
    assert "steers by its own shard" not in err  # reference decides per function
    options = ShardOptions(policy="reference", rpc_latency_ms=1.0)
    local = merged_record(
        [replay_shard(FolderSource(str(folder)), 2, i, options) for i in range(2)],
        name="small",
        record_id=1,
        wall_s=0.0,
    )
    local = json.loads(json.dumps(local))  # the same float spelling as the printed record
    for shard in record["shards"] + local["shards"]:
        del shard["wallTimeInSecs"], shard["peakRssMb"], shard["worker"]
    assert without(record) == without(local)


def test_a_failed_shard_is_named_and_no_record_is_printed(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metas").write_text((folder / "metas").read_text())
    (broken / "requests").write_text('{"metaKey": 1}\n')
    assert main(["simulate", str(broken), "--shards", "2", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "of 2 failed: DatasetError:" in err and "no record" in err
    assert "each replica of adaptive steers by its own shard's totals" in err  # the default

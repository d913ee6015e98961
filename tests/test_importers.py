"""Azure 2019/2021 importers: counts kept, durations in range, missing fields filled by rule."""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from collections import Counter
from pathlib import Path

import pytest

from simulator.dataset import Dataset, load_dataset
from simulator.importers import (
    DEFAULT_EPOCH_MS,
    FILL_MEMORY_TIERS_MB,
    INIT_MAX_MS,
    INIT_MIN_MS,
    add_subcommands,
    fill_init_duration_ms,
    fill_memory_mb,
    make_keys,
    round_up_memory_mb,
)
from simulator.importers.azure2019 import (
    PERCENTILES,
    DurationProfile,
    import_azure2019,
    main_azure2019,
)
from simulator.importers.azure2021 import import_azure2021, main_azure2021

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
MINUTE_MS = 60_000

# Three hand-made functions (64-hex ids, like the trace) over one day.
F_TIMER = ("a" * 64, "b" * 64, "c" * 64)  # once a minute, all day
F_BUSY = ("d" * 64, "e" * 64, "f" * 64)  # a few busy minutes
F_IDLE = ("1" * 64, "2" * 64, "3" * 64)  # nothing in the test windows
BUSY_COUNTS = {10: 5, 11: 0, 12: 37, 13: 1, 14: 250}  # 0-based minute -> invocations
RUN_ROWS = {  # Minimum, Maximum, percentiles 0, 1, 25, 50, 75, 99, 100
    F_TIMER: (40, 90, (42, 45, 50, 55, 60, 80, 88)),
    F_BUSY: (5, 30_000, (10, 20, 100, 200, 400, 5000, 20_000)),
    F_IDLE: (1, 2, (1, 1, 1, 1, 2, 2, 2)),
}
MEM_P99 = {F_TIMER: 100, F_BUSY: 129, F_IDLE: 300}  # -> 128, 256, 384 MB


def day_counts(fid: tuple[str, str, str]) -> list[int]:
    if fid == F_TIMER:
        return [1] * 1440
    if fid == F_BUSY:
        return [BUSY_COUNTS.get(m, 0) for m in range(1440)]
    return [7 if m == 1000 else 0 for m in range(1440)]


def write_2019(folder: Path, original_names: bool = False, with_mem: bool = True) -> Path:
    """Write a 3-function day in the invitro layout (or the original one, with Trigger)."""
    folder.mkdir(parents=True, exist_ok=True)
    fids = (F_TIMER, F_BUSY, F_IDLE)
    if original_names:
        names = [f"{kind}.anon.d01.csv" for kind in ("invocations_per_function_md",
                 "function_durations_percentiles", "app_memory_percentiles")]  # fmt: skip
        inv_header = ["HashOwner", "HashApp", "HashFunction", "Trigger"]
        inv_header += [str(m) for m in range(1, 1441)]
        inv_rows = [[o, a, f, "http", *day_counts((o, a, f))] for o, a, f in fids]
    else:
        names = ["day_inv.csv", "day_run.csv", "day_mem.csv"]
        inv_header = ["HashFunction", "HashOwner", "HashApp"]
        inv_header += [f"minute_{m}" for m in range(1, 1441)]
        inv_rows = [[f, o, a, *day_counts((o, a, f))] for o, a, f in fids]
    run_header = ["HashOwner", "HashApp", "HashFunction", "Average", "Count", "Minimum", "Maximum"]
    run_header += [f"percentile_Average_{p}" for p in PERCENTILES]
    run_rows = [[*fid, pts[3], 1, lo, hi, *pts] for fid, (lo, hi, pts) in RUN_ROWS.items()]
    mem_header = ["HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb"]
    mem_header += [f"AverageAllocatedMb_pct{p}" for p in (1, 5, 25, 50, 75, 95, 99, 100)]
    mem_rows = [[o, a, 10, p, *([p] * 6), p, p + 5] for (o, a, _), p in MEM_P99.items()]
    for name, header, rows in zip(
        names, (inv_header, run_header, mem_header), (inv_rows, run_rows, mem_rows), strict=True
    ):
        if name.startswith(("app_memory", "day_mem")) and not with_mem:
            continue
        with (folder / name).open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            writer.writerows(rows)
    return folder


def minute_counts(dataset: Dataset, key: str, epoch_ms: int = DEFAULT_EPOCH_MS) -> Counter:
    return Counter((r.start_ms - epoch_ms) // MINUTE_MS for r in dataset.requests if r.key == key)


# ---------------------------------------------------------------------------------- helpers


def test_fill_rules_are_deterministic_and_in_range() -> None:
    inits = [fill_init_duration_ms(f"{i:064x}") for i in range(500)]
    assert all(INIT_MIN_MS <= x <= INIT_MAX_MS for x in inits)
    assert min(inits) < 100 and max(inits) > 2000
    assert fill_init_duration_ms("abc") == fill_init_duration_ms("abc")
    tiers = Counter(fill_memory_mb(f"{i:064x}") for i in range(1000))
    assert set(tiers) <= set(FILL_MEMORY_TIERS_MB)
    assert tiers[128] > tiers[512] > tiers[1024] > 0


@pytest.mark.parametrize(("mb", "tier"), [(0, 128), (1, 128), (128, 128), (129, 256), (300, 384)])
def test_round_up_memory(mb: float, tier: int) -> None:
    assert round_up_memory_mb(mb) == tier


def test_make_keys_shortens_and_resolves_collisions() -> None:
    a, b, c = ("o", "app1", "f" * 64), ("o", "app2", "f" * 64), ("o", "app1", "e" * 64)
    keys = make_keys([a, b, c])
    assert keys[c] == "e" * 40
    assert keys[a] != keys[b]
    assert all(len(k) == 40 for k in keys.values())


def test_inverse_cdf_hits_the_percentiles() -> None:
    profile = DurationProfile((10, 20, 100, 200, 400, 5000, 20_000), 5, 30_000)
    assert profile.sample(0.0) == 10
    assert profile.sample(0.25) == 100
    assert profile.sample(0.5) == 200
    assert profile.sample(0.99) == 5000
    assert profile.sample(0.999999) <= 20_000
    assert profile.sample(0.375) == 150  # halfway between p25 and p50


# -------------------------------------------------------------------------------- azure2019


@pytest.mark.parametrize("spread", ["even", "uniform"])
def test_2019_counts_per_minute_preserved(tmp_path: Path, spread: str) -> None:
    folder = write_2019(tmp_path / "day")
    ds = import_azure2019(folder, start_minute=5, minutes=15, seed=1, spread=spread)
    timer, busy = "c" * 40, "f" * 40
    assert set(ds.metas) == {timer, busy}  # the idle function has no traffic here: omitted
    assert minute_counts(ds, timer) == {m: 1 for m in range(5, 20)}
    assert minute_counts(ds, busy) == {m: c for m, c in BUSY_COUNTS.items() if c}
    assert len(ds.requests) == 15 + sum(BUSY_COUNTS.values())
    starts = [r.start_ms for r in ds.requests]
    assert starts == sorted(starts)
    assert ds.name == "azure2019-day-m5-20"


def test_2019_even_spread_keeps_a_timer_periodic(tmp_path: Path) -> None:
    ds = import_azure2019(write_2019(tmp_path / "day"), 0, 60)
    starts = [r.start_ms for r in ds.requests if r.key == "c" * 40]
    assert {b - a for a, b in itertools.pairwise(starts)} == {MINUTE_MS}


def test_2019_durations_within_min_max_and_follow_percentiles(tmp_path: Path) -> None:
    ds = import_azure2019(write_2019(tmp_path / "day"), 0, 30, seed=3)
    for fid in (F_TIMER, F_BUSY):
        lo, hi, pts = RUN_ROWS[fid]
        durations = sorted(r.duration_ms for r in ds.requests if r.key == fid[2][:40])
        assert all(max(1, lo) <= d <= hi for d in durations)
        assert all(pts[0] <= d <= pts[-1] for d in durations)
    busy = sorted(r.duration_ms for r in ds.requests if r.key == "f" * 40)
    assert 100 <= busy[len(busy) // 2] <= 400  # median between p25 and p75 (293 samples)


def test_2019_memory_init_timeout_runtime(tmp_path: Path) -> None:
    ds = import_azure2019(write_2019(tmp_path / "day"), 0, 1440)
    assert len(ds.requests) == 1440 + sum(BUSY_COUNTS.values()) + 7
    assert ds.metas["c" * 40].memory_mb == 128  # p99 100 MB
    assert ds.metas["f" * 40].memory_mb == 256  # p99 129 MB
    assert ds.metas["3" * 40].memory_mb == 384  # p99 300 MB
    for fid in (F_TIMER, F_BUSY, F_IDLE):
        meta = ds.metas[fid[2][:40]]
        assert meta.init_duration_ms == fill_init_duration_ms(fid[2])
        assert meta.timeout_s == 600
        assert meta.runtime == "unknown"


def test_2019_deterministic_by_seed_and_window_independent(tmp_path: Path) -> None:
    folder = write_2019(tmp_path / "day")
    for spread in ("even", "uniform"):
        a = import_azure2019(folder, 0, 30, seed=5, spread=spread)
        assert a.requests == import_azure2019(folder, 0, 30, seed=5, spread=spread).requests
        assert a.requests != import_azure2019(folder, 0, 30, seed=6, spread=spread).requests
        # The same minute gives the same requests whatever window holds it.
        inner = import_azure2019(folder, 12, 3, seed=5, spread=spread)
        lo, hi = DEFAULT_EPOCH_MS + 12 * MINUTE_MS, DEFAULT_EPOCH_MS + 15 * MINUTE_MS
        assert inner.requests == [r for r in a.requests if lo <= r.start_ms < hi]


def test_2019_original_layout_with_trigger(tmp_path: Path) -> None:
    ds = import_azure2019(write_2019(tmp_path / "orig", original_names=True), 10, 5)
    assert {m.runtime for m in ds.metas.values()} == {"azure-http"}
    assert len(ds.requests) == 5 + sum(BUSY_COUNTS.values())
    assert ds.name == "azure2019-d01-m10-15"


def test_2019_prefix_or_inv_path_and_missing_mem(tmp_path: Path) -> None:
    folder = write_2019(tmp_path / "day", with_mem=False)
    by_prefix = import_azure2019(folder / "day", 10, 5)
    by_inv = import_azure2019(folder / "day_inv.csv", 10, 5)
    assert by_prefix.requests == by_inv.requests
    for key, meta in by_prefix.metas.items():
        assert meta.memory_mb == fill_memory_mb(key[0] * 64)


def test_2019_missing_run_row_uses_median_of_medians(tmp_path: Path) -> None:
    folder = write_2019(tmp_path / "day")
    lines = (folder / "day_run.csv").read_text().splitlines()
    (folder / "day_run.csv").write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # drop F_BUSY
    ds = import_azure2019(folder, 10, 5)
    # Medians left: timer 55, idle 1 -> 28.
    assert {r.duration_ms for r in ds.requests if r.key == "f" * 40} == {28}


@pytest.mark.parametrize(("start", "minutes"), [(-1, 5), (0, 0), (1400, 41)])
def test_2019_rejects_bad_windows(tmp_path: Path, start: int, minutes: int) -> None:
    with pytest.raises(ValueError):
        import_azure2019(write_2019(tmp_path / "day"), start, minutes)


def test_2019_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        import_azure2019(tmp_path, 0, 5)


def test_2019_cli_writes_a_loadable_folder(tmp_path: Path, capsys) -> None:
    folder = write_2019(tmp_path / "day")
    out = tmp_path / "out"
    argv = [str(folder), "--out", str(out), "--start-minute", "10", "--minutes", "5", "--gzip"]
    assert main_azure2019(argv) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("azure2019-day-m10-15: 2 functions, 298 requests, span ")
    assert line.endswith(f" s -> {out}")
    loaded = load_dataset(out)
    assert loaded.requests == import_azure2019(folder, 10, 5).requests
    assert (out / "requests.gz").is_file()


def test_2019_cli_empty_window_fails(tmp_path: Path, capsys) -> None:
    folder = write_2019(tmp_path / "day")
    # Keep only the busy function (header + its row): nothing runs from minute 100 on.
    lines = (folder / "day_inv.csv").read_text().splitlines()
    (folder / "day_inv.csv").write_text("\n".join([lines[0], lines[2]]) + "\n")
    argv = [str(folder), "--out", str(tmp_path / "out"), "--start-minute", "100"]
    assert main_azure2019(argv) == 1
    assert "no invocation" in capsys.readouterr().err


def test_subcommands_mount(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="import-trace")
    add_subcommands(parser.add_subparsers(dest="trace", required=True))
    folder = write_2019(tmp_path / "day")
    args = parser.parse_args(["azure2019", str(folder), "--out", str(tmp_path / "o")])
    assert args.func(args) == 0
    assert "functions" in capsys.readouterr().out


# -------------------------------------------------------------------------------- azure2021

ROWS_2021 = [  # app, func, end_timestamp, duration (seconds); deliberately unsorted
    ("app1", "9" * 64, 10.5, 0.5),
    ("app1", "9" * 64, 3.0, 1.0),
    ("app2", "8" * 64, 100.0, 0.0),
    ("app2", "7" * 64, 700.25, 650.0),
    ("app1", "9" * 64, 0.001, 0.002),
]


def write_2021(path: Path) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["app", "func", "end_timestamp", "duration"])
        writer.writerows(ROWS_2021)
    return path


def test_2021_whole_file(tmp_path: Path) -> None:
    ds = import_azure2021(write_2021(tmp_path / "t.csv"))
    assert len(ds.requests) == len(ROWS_2021)
    # start = end - duration, clamped at 0; a zero duration becomes 1 ms.
    starts = [r.start_ms - DEFAULT_EPOCH_MS for r in ds.requests]
    assert starts == [0, 2000, 10_000, 50_250, 100_000]
    assert [r.duration_ms for r in ds.requests] == [2, 1000, 500, 650_000, 1]
    assert {r.status_code for r in ds.requests} == {200}
    assert set(ds.metas) == {"9" * 40, "8" * 40, "7" * 40}
    assert ds.metas["7" * 40].timeout_s == 650  # raised above the default to cover 650 s
    assert ds.metas["9" * 40].timeout_s == 600
    for key, meta in ds.metas.items():
        assert meta.memory_mb == fill_memory_mb(key[0] * 64)
        assert meta.init_duration_ms == fill_init_duration_ms(key[0] * 64)
        assert meta.runtime == "unknown"


def test_2021_window_and_memory(tmp_path: Path) -> None:
    ds = import_azure2021(write_2021(tmp_path / "t.csv"), 1.0, 99.0, memory_mb=512)
    assert [r.key for r in ds.requests] == ["9" * 40, "9" * 40, "7" * 40]  # start 100 is out
    assert {m.memory_mb for m in ds.metas.values()} == {512}
    assert set(ds.metas) == {"9" * 40, "7" * 40}
    assert ds.name == "azure2021-t-s1-100"


def test_2021_cli(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main_azure2021([str(write_2021(tmp_path / "t.csv")), "--out", str(out)]) == 0
    assert "3 functions, 5 requests, span 100.0 s" in capsys.readouterr().out
    assert len(load_dataset(out).requests) == 5


# ------------------------------------------------------------------------- real trace samples


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} absent: the shared traces are not checked out next to the repo")
    return path


def test_real_azure2019_four_hours() -> None:
    folder = need(TRACES / "azure2019-200")
    start, minutes = 480, 240
    expected: dict[str, Counter] = {}
    with (folder / "200_inv.csv").open(newline="") as stream:
        for row in csv.DictReader(stream):
            counts = Counter(
                {m: int(row[f"minute_{m + 1}"]) for m in range(start, start + minutes)}
            )
            counts = +counts  # drop zeros
            if counts:
                expected[row["HashFunction"][:40]] = counts
    bounds = {}
    with (folder / "200_run.csv").open(newline="") as stream:
        for row in csv.DictReader(stream):
            bounds[row["HashFunction"][:40]] = (float(row["Minimum"]), float(row["Maximum"]))

    began = time.perf_counter()
    ds = import_azure2019(folder, start, minutes)
    elapsed = time.perf_counter() - began

    assert len(ds.requests) == sum(sum(c.values()) for c in expected.values())
    assert set(ds.metas) == set(expected)
    for key, counts in expected.items():
        assert minute_counts(ds, key) == counts, key
    for r in ds.requests:
        lo, hi = bounds[r.key]
        assert max(1, lo) <= r.duration_ms <= hi
    assert all(m.memory_mb % 128 == 0 for m in ds.metas.values())
    assert elapsed < 10


def test_real_azure2021_sample() -> None:
    path = need(TRACES / "azure2021-sample" / "Azure2021_200.csv")
    ds = import_azure2021(path)
    assert len(ds.requests) == 199
    assert len(ds.metas) == 31
    with path.open(newline="") as stream:
        total_ms = sum(max(1, round(float(r["duration"]) * 1000)) for r in csv.DictReader(stream))
    assert sum(r.duration_ms for r in ds.requests) == total_ms

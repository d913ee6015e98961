"""Dataset reader/writer: formats, every validation error, round trips, slicing."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.dataset import (
    Dataset,
    DatasetError,
    FunctionMeta,
    Request,
    load_dataset,
    write_dataset,
)

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"

META_A = {
    "key": "fa",
    "runtime": "go",
    "memoryInMb": 512,
    "timeoutInSecs": 60,
    "initDurationInMs": 40,
}
META_B = {
    "key": "fb",
    "runtime": "python",
    "memoryInMb": 128,
    "timeoutInSecs": 30,
    "initDurationInMs": 7,
}


def req(key: str, start: Any, duration: Any = 50, status: Any = 200) -> dict[str, Any]:
    return {"metaKey": key, "startTime": start, "durationsInMs": duration, "statusCode": status}


REQUESTS = [req("fa", 1000), req("fb", 1000, 20), req("fa", 1500, 70, 500), req("fb", 3000, 5)]


def lines_of(objs: list[Any]) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


def write_raw(path: Path, text: str, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_folder(
    root: Path,
    metas: list[Any] | None = None,
    requests: list[Any] | None = None,
    *,
    gz_metas: bool = False,
    gz_requests: bool = False,
) -> Path:
    folder = root / "ds"
    metas = [META_A, META_B] if metas is None else metas
    requests = REQUESTS if requests is None else requests
    write_raw(folder / ("metas.gz" if gz_metas else "metas"), lines_of(metas), gz_metas)
    write_raw(
        folder / ("requests.gz" if gz_requests else "requests"), lines_of(requests), gz_requests
    )
    return folder


def expect_error(folder: Path, file_name: str, line: int | None, fragment: str) -> None:
    """Loading ``folder`` fails with a message naming ``file_name`` (and ``line``)."""
    with pytest.raises(DatasetError) as info:
        load_dataset(folder)
    message = str(info.value)
    where = f"{folder / file_name}:{line}:" if line is not None else f"{folder / file_name}:"
    assert message.startswith(where), message
    assert fragment in message, message


# --------------------------------------------------------------------------------------------
# Reading well-formed folders


def check_small(ds: Dataset) -> None:
    assert ds.name == "ds"
    assert ds.metas["fa"] == FunctionMeta("fa", "go", 512, 60, 40)
    assert ds.metas["fb"] == FunctionMeta("fb", "python", 128, 30, 7)
    assert ds.requests == [
        Request(1000, "fa", 50, 200),
        Request(1000, "fb", 20, 200),
        Request(1500, "fa", 70, 500),
        Request(3000, "fb", 5, 200),
    ]


def test_load_plain(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    ds = load_dataset(folder)
    check_small(ds)
    assert ds.meta_path == str(folder / "metas")
    assert ds.request_path == str(folder / "requests")
    assert ds.requests[0].key is ds.metas["fa"].key  # keys are shared, not one string per line


def test_load_gzip_by_name(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, gz_metas=True, gz_requests=True)
    ds = load_dataset(folder)
    check_small(ds)
    assert ds.meta_path == str(folder / "metas.gz")
    assert ds.request_path == str(folder / "requests.gz")


def test_load_gzip_by_magic_bytes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    write_raw(folder / "requests", lines_of(REQUESTS), gz=True)
    check_small(load_dataset(folder))


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, requests=[req("fa", 1), "", "   ", req("fa", 0)])
    expect_error(folder, "requests", 4, "sorted")


def test_extra_keys_are_ignored(tmp_path: Path) -> None:
    meta = {**META_A, "extra": [1, 2]}
    folder = make_folder(tmp_path, metas=[meta], requests=[{**req("fa", 5), "note": "x"}])
    ds = load_dataset(folder)
    assert ds.requests == [Request(5, "fa", 50, 200)]


def test_equal_start_times_are_sorted(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, requests=[req("fa", 7), req("fb", 7), req("fa", 7)])
    assert len(load_dataset(folder).requests) == 3


# --------------------------------------------------------------------------------------------
# Validation errors, each naming file and line


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        ("{not json", "bad JSON"),
        ('{"metaKey": "fa"', "bad JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
        ('"just a string"', "expected a JSON object"),
        ({"startTime": 5, "durationsInMs": 1, "statusCode": 200}, "missing field 'metaKey'"),
        ({"metaKey": "fa", "durationsInMs": 1, "statusCode": 200}, "missing field 'startTime'"),
        ({"metaKey": "fa", "startTime": 5, "statusCode": 200}, "missing field 'durationsInMs'"),
        ({"metaKey": "fa", "startTime": 5, "durationsInMs": 1}, "missing field 'statusCode'"),
        (req(7, 5), "field 'metaKey' must be str"),  # type: ignore[arg-type]
        (req("fa", "5"), "field 'startTime' must be int"),
        (req("fa", 5.0), "field 'startTime' must be int, got float"),
        (req("fa", True), "field 'startTime' must be int, got bool"),
        (req("fa", 5, 1.5), "field 'durationsInMs' must be int"),
        (req("fa", 5, 1.0), "field 'durationsInMs' must be int"),
        (req("fa", 5, None), "field 'durationsInMs' must be int, got NoneType"),
        (req("fa", 5, 1, "200"), "field 'statusCode' must be int"),
        (req("fa", 5, 1, False), "field 'statusCode' must be int, got bool"),
        (req("fa", 5, -1), "field 'durationsInMs' must be >= 0"),
        (req("fa", -5), "field 'startTime' must be >= 0"),
        (req("nope", 5), "unknown function 'nope'"),
        (req("fa", 3), "must be sorted by startTime"),
    ],
)
def test_request_errors(tmp_path: Path, bad_line: Any, fragment: str) -> None:
    folder = make_folder(tmp_path, requests=[req("fa", 4), bad_line, req("fa", 9)])
    expect_error(folder, "requests", 2, fragment)


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        ("{oops}", "bad JSON"),
        ("42", "expected a JSON object"),
        ({k: v for k, v in META_B.items() if k != "runtime"}, "missing field 'runtime'"),
        ({k: v for k, v in META_B.items() if k != "key"}, "missing field 'key'"),
        ({**META_B, "key": ""}, "'key' must not be empty"),
        ({**META_B, "memoryInMb": True}, "field 'memoryInMb' must be int, got bool"),
        ({**META_B, "memoryInMb": 128.0}, "field 'memoryInMb' must be int, got float"),
        ({**META_B, "memoryInMb": -128}, "field 'memoryInMb' must be >= 1"),
        ({**META_B, "memoryInMb": 0}, "field 'memoryInMb' must be >= 1"),
        ({**META_B, "timeoutInSecs": -1}, "field 'timeoutInSecs' must be >= 0"),
        ({**META_B, "initDurationInMs": -3}, "field 'initDurationInMs' must be >= 0"),
        ({**META_B, "initDurationInMs": "7"}, "field 'initDurationInMs' must be int"),
        ({**META_B, "runtime": 3}, "field 'runtime' must be str"),
        ({**META_A, "runtime": "other"}, "duplicate meta key 'fa' (first on line 1)"),
    ],
)
def test_meta_errors(tmp_path: Path, bad_line: Any, fragment: str) -> None:
    folder = make_folder(tmp_path, metas=[META_A, bad_line], requests=[req("fa", 1)])
    expect_error(folder, "metas", 2, fragment)


def test_errors_in_gzip_files_name_the_gz_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, requests=[req("fa", 1), req("fb", 2, -4)], gz_requests=True)
    expect_error(folder, "requests.gz", 2, "'durationsInMs' must be >= 0")


def test_empty_requests_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, requests=[])
    expect_error(folder, "requests", None, "no requests")


def test_blank_only_requests_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, requests=["", ""])
    expect_error(folder, "requests", None, "no requests")


def test_empty_metas_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, metas=[])
    expect_error(folder, "metas", None, "no functions")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_dataset(tmp_path / "absent")


def test_folder_is_a_file(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "file", "x")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: no such dataset folder")):
        load_dataset(path)


@pytest.mark.parametrize("name", ["metas", "requests"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    folder = make_folder(tmp_path)
    (folder / name).unlink()
    expect_error(folder, name, None, f"missing (also looked for {name}.gz)")


def test_plain_and_gz_both_present_is_ambiguous(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    write_raw(folder / "metas.gz", lines_of([META_A]), gz=True)
    expect_error(folder, "metas", None, "both metas and metas.gz exist")


def test_corrupt_gzip(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder / "requests").unlink()
    data = gzip.compress(lines_of(REQUESTS * 50).encode())
    write_raw(folder / "requests.gz", "")
    (folder / "requests.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=re.escape(f"{folder / 'requests.gz'}:")) as info:
        load_dataset(folder)
    assert re.search(r"requests\.gz:\d+: unreadable", str(info.value))


def test_not_gzip_despite_name(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder / "metas").rename(folder / "metas.gz")
    expect_error(folder, "metas.gz", 1, "unreadable")


def test_invalid_utf8(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    good = lines_of([req("fa", 1)]).encode()
    (folder / "requests").write_bytes(good + b'{"metaKey": "\xff\xfe"}\n')
    with pytest.raises(DatasetError, match="unreadable") as info:
        load_dataset(folder)
    assert str(info.value).startswith(f"{folder / 'requests'}:")


# --------------------------------------------------------------------------------------------
# Writing and round trips


def small_dataset() -> Dataset:
    metas = {
        "fa": FunctionMeta("fa", "go", 512, 60, 40),
        'f"b\u00e9': FunctionMeta('f"b\u00e9', "python", 128, 30, 7),
    }
    requests = [
        Request(1000, "fa", 50, 200),
        Request(1000, 'f"b\u00e9', 20, 200),
        Request(1500, "fa", 70, 500),
        Request(3000, 'f"b\u00e9', 0, 200),
    ]
    return Dataset("ds", "m", "r", metas, requests)


@pytest.mark.parametrize("gz", [False, True])
def test_round_trip(tmp_path: Path, gz: bool) -> None:
    original = small_dataset()
    meta_path, request_path = write_dataset(original, tmp_path / "ds", gzip=gz)
    assert meta_path.name == ("metas.gz" if gz else "metas")
    assert request_path.name == ("requests.gz" if gz else "requests")
    loaded = load_dataset(tmp_path / "ds")
    assert loaded.metas == original.metas
    assert loaded.requests == original.requests
    assert list(loaded.metas) == list(original.metas)
    assert not list((tmp_path / "ds").glob("*.tmp"))


def test_written_format_is_the_challenge_format(tmp_path: Path) -> None:
    metas = {"nodes1": FunctionMeta("nodes1", "go", 512, 627, 49)}
    ds = Dataset("x", "m", "r", metas, [Request(1685980824304, "nodes1", 50, 200)])
    write_dataset(ds, tmp_path)
    assert (tmp_path / "metas").read_text() == (
        '{"key": "nodes1", "runtime": "go", "memoryInMb": 512, "timeoutInSecs": 627, '
        '"initDurationInMs": 49}\n'
    )
    assert (tmp_path / "requests").read_text() == (
        '{"metaKey": "nodes1", "startTime": 1685980824304, "durationsInMs": 50, '
        '"statusCode": 200}\n'
    )


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    write_dataset(small_dataset(), tmp_path / "a", gzip=True)
    write_dataset(small_dataset(), tmp_path / "b", gzip=True)
    for name in ("metas.gz", "requests.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_write_refuses_mixed_formats(tmp_path: Path) -> None:
    write_dataset(small_dataset(), tmp_path, gzip=True)
    with pytest.raises(DatasetError, match="already exists"):
        write_dataset(small_dataset(), tmp_path, gzip=False)
    load_dataset(tmp_path)  # still intact


@pytest.mark.parametrize(
    ("requests", "fragment"),
    [
        ([], "no requests"),
        ([Request(1, "zz", 1, 200)], "unknown function"),
        ([Request(5, "fa", 1, 200), Request(4, "fa", 1, 200)], "not sorted"),
    ],
)
def test_write_rejects_invalid_dataset_before_writing(
    tmp_path: Path, requests: list[Request], fragment: str
) -> None:
    ds = Dataset("bad", "m", "r", small_dataset().metas, requests)
    with pytest.raises(DatasetError, match=fragment):
        write_dataset(ds, tmp_path / "out")
    assert not (tmp_path / "out").exists()


meta_keys = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)


@settings(max_examples=50, deadline=None)
@given(
    keys=st.lists(meta_keys, min_size=1, max_size=4, unique=True),
    picks=st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.integers(0, 3),
            st.integers(0, 10**7),
            st.integers(-(2**31), 2**31 - 1),
        ),
        min_size=1,
        max_size=20,
    ),
    gz=st.booleans(),
)
def test_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory,
    keys: list[str],
    picks: list[tuple[int, int, int, int]],
    gz: bool,
) -> None:
    metas = {k: FunctionMeta(k, "rt", 1 + i, i, i * 3) for i, k in enumerate(keys)}
    requests = [
        Request(start, keys[i % len(keys)], duration, status)
        for start, i, duration, status in sorted(picks)
    ]
    folder = tmp_path_factory.mktemp("prop")
    write_dataset(Dataset("p", "m", "r", metas, requests), folder, gzip=gz)
    loaded = load_dataset(folder)
    assert loaded.metas == metas
    assert loaded.requests == requests


# --------------------------------------------------------------------------------------------
# Dataset helpers


def helper_dataset() -> Dataset:
    metas = {"fa": FunctionMeta("fa", "go", 512, 60, 40)}
    requests = [
        Request(10_000, "fa", 30_000, 200),  # ends last, at 40_000
        Request(11_000, "fa", 100, 200),
        Request(12_000, "fa", 100, 200),
        Request(13_000, "fa", 100, 200),
        Request(15_000, "fa", 500, 200),
    ]
    return Dataset("h", "m", "r", metas, requests)


def test_start_end_duration() -> None:
    ds = helper_dataset()
    assert ds.start_ms == 10_000
    assert ds.end_ms == 40_000  # the latest end, not the last request's end
    assert ds.duration_s == 30.0


def test_empty_dataset_helpers() -> None:
    ds = helper_dataset().head(0)
    assert ds.duration_s == 0.0
    with pytest.raises(ValueError, match="no requests"):
        _ = ds.start_ms
    with pytest.raises(ValueError, match="no requests"):
        _ = ds.end_ms
    assert ds.slice(0, 5).requests == []


def test_slice_is_half_open_on_start_times() -> None:
    ds = helper_dataset()
    window = ds.slice(1, 2)  # starts in [11_000, 13_000)
    assert [r.start_ms for r in window.requests] == [11_000, 12_000]
    assert window.name == "h[1s+2s]"
    assert window.metas is ds.metas
    assert (window.meta_path, window.request_path) == ("m", "r")
    assert [r.start_ms for r in ds.slice(0.5, 100).requests] == [11_000, 12_000, 13_000, 15_000]
    assert ds.slice(100, 1).requests == []


def test_slice_rejects_bad_window() -> None:
    with pytest.raises(ValueError):
        helper_dataset().slice(-1, 5)
    with pytest.raises(ValueError):
        helper_dataset().slice(0, 0)


def test_head() -> None:
    ds = helper_dataset()
    assert ds.head(2).requests == ds.requests[:2]
    assert ds.head(2).name == "h[:2]"
    assert ds.head(99).requests == ds.requests
    with pytest.raises(ValueError):
        ds.head(-1)


# --------------------------------------------------------------------------------------------
# Real trace


def test_real_dataset_1(tmp_path: Path) -> None:
    folder = TRACES / "dataSet_1"
    if not folder.is_dir():
        pytest.skip(f"shared traces absent: {folder} not found (see shared/traces/README.md)")
    ds = load_dataset(folder)
    assert len(ds.metas) == 6
    assert len(ds.requests) == 22_868
    assert len({r.key for r in ds.requests}) == 5
    write_dataset(ds, tmp_path / "copy")
    assert (tmp_path / "copy" / "requests").read_bytes() == (folder / "requests").read_bytes()
    assert load_dataset(tmp_path / "copy").metas == ds.metas

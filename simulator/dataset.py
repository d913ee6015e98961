"""Challenge dataset folders: read, validate, slice and write them.

A dataset folder holds two JSON-lines files, ``metas`` and ``requests``, each either plain or
gzip-compressed (``metas.gz`` / ``requests.gz``, or any of them starting with the gzip magic
bytes). The format is the challenge simulator's, see ``shared/traces/README.md``.

Validation is strict, because the challenge's own simulator (Go, ``encoding/json`` into unsigned
integer fields) rejects what we would otherwise silently accept:

- integers must be JSON integers: an integral float such as ``1.0`` is rejected, as Go's decoder
  rejects it for an integer field; booleans are not integers;
- ``startTime``, ``durationsInMs``, ``timeoutInSecs`` and ``initDurationInMs`` must be >= 0 and
  ``memoryInMb`` > 0 (a zero-memory slot would cost nothing and break the GB·s score);
- ``statusCode`` may be any integer (200 = success);
- extra keys are ignored; blank lines are skipped (but still counted for line numbers);
- meta keys are unique, every request names a known function, start times never decrease, and
  neither file is empty.

Every error is a :class:`DatasetError` whose message starts with ``<file>:<line>:`` (or
``<file>:`` when no line is involved). A file is never half-returned: any error raises.
"""

from __future__ import annotations

import bisect
import gzip as gzip_module
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import attrs

META_FILE = "metas"
REQUEST_FILE = "requests"
GZIP_MAGIC = b"\x1f\x8b"


class DatasetError(ValueError):
    """A dataset folder or file is missing, unreadable or malformed."""


@attrs.frozen(slots=True)
class FunctionMeta:
    """One function of the workload, as a line of ``metas``."""

    key: str
    runtime: str
    memory_mb: int
    timeout_s: int
    init_duration_ms: int


@attrs.frozen(slots=True)
class Request:
    """One invocation, as a line of ``requests``; ``key`` is the function's ``metaKey``."""

    start_ms: int
    key: str
    duration_ms: int
    status_code: int


@attrs.frozen(slots=True)
class Dataset:
    """A whole workload: functions by key, and requests sorted by start time."""

    name: str
    meta_path: str
    request_path: str
    metas: dict[str, FunctionMeta]
    requests: list[Request]

    @property
    def start_ms(self) -> int:
        """Epoch ms of the first request's start."""
        if not self.requests:
            raise ValueError(f"dataset {self.name!r} has no requests")
        return self.requests[0].start_ms

    @property
    def end_ms(self) -> int:
        """Epoch ms at which the last request to finish ends (max of start + duration)."""
        if not self.requests:
            raise ValueError(f"dataset {self.name!r} has no requests")
        return max(r.start_ms + r.duration_ms for r in self.requests)

    @property
    def duration_s(self) -> float:
        """Seconds from the first start to the last end; 0.0 for an empty dataset."""
        if not self.requests:
            return 0.0
        return (self.end_ms - self.start_ms) / 1000.0

    def slice(self, start_offset_s: float, length_s: float) -> Dataset:
        """The requests starting in ``[start + offset, start + offset + length)``, same metas.

        Useful to replay a short window of a long trace; the result may be empty.
        """
        if start_offset_s < 0 or length_s <= 0:
            raise ValueError("slice needs start_offset_s >= 0 and length_s > 0")
        if not self.requests:
            return self._derive(f"[{start_offset_s:g}s+{length_s:g}s]", [])
        lo_ms = self.start_ms + start_offset_s * 1000.0
        hi_ms = lo_ms + length_s * 1000.0
        lo = bisect.bisect_left(self.requests, lo_ms, key=_start_of)
        hi = bisect.bisect_left(self.requests, hi_ms, key=_start_of)
        return self._derive(f"[{start_offset_s:g}s+{length_s:g}s]", self.requests[lo:hi])

    def head(self, n: int) -> Dataset:
        """The first ``n`` requests, same metas."""
        if n < 0:
            raise ValueError("head needs n >= 0")
        return self._derive(f"[:{n}]", self.requests[:n])

    def _derive(self, suffix: str, requests: list[Request]) -> Dataset:
        return Dataset(
            name=self.name + suffix,
            meta_path=self.meta_path,
            request_path=self.request_path,
            metas=self.metas,
            requests=requests,
        )


def _start_of(request: Request) -> int:
    return request.start_ms


# --------------------------------------------------------------------------------------------
# Reading


def load_dataset(folder: str | os.PathLike[str]) -> Dataset:
    """Read and validate a dataset folder; raise :class:`DatasetError` on any defect."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    meta_path = _find_file(root, META_FILE)
    request_path = _find_file(root, REQUEST_FILE)
    metas = _read_metas(meta_path)
    requests = _read_requests(request_path, metas)
    return Dataset(
        name=root.name,
        meta_path=str(meta_path),
        request_path=str(request_path),
        metas=metas,
        requests=requests,
    )


def _find_file(root: Path, stem: str) -> Path:
    """``root/stem`` or ``root/stem.gz``; both at once is ambiguous, so an error."""
    found = [p for p in (root / stem, root / f"{stem}.gz") if p.is_file()]
    if not found:
        raise DatasetError(f"{root / stem}: missing (also looked for {stem}.gz)")
    if len(found) > 1:
        raise DatasetError(f"{root / stem}: both {stem} and {stem}.gz exist; keep only one")
    return found[0]


def _is_gzip(path: Path) -> bool:
    if path.name.endswith(".gz"):
        return True
    with path.open("rb") as raw:
        return raw.read(2) == GZIP_MAGIC


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)`` of non-blank lines; read errors become DatasetError.

    For a read error the line named is the first one not delivered; gzip and text decoding
    read ahead in blocks, so there it is only approximate.
    """
    lineno = 0
    try:
        opener = gzip_module.open if _is_gzip(path) else open
        with opener(path, "rt", encoding="utf-8") as stream:
            for lineno, line in enumerate(stream, 1):
                if line.strip():
                    yield lineno, line
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}:{lineno + 1}: unreadable: {exc}") from exc


def _parse_object(path: Path, lineno: int, line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{lineno}: bad JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _field(path: Path, lineno: int, obj: dict[str, Any], name: str, kind: type) -> Any:
    """``obj[name]`` checked to be exactly of ``kind`` (so bool is not int, 1.0 is not int)."""
    if name not in obj:
        raise DatasetError(f"{path}:{lineno}: missing field {name!r}")
    value = obj[name]
    if type(value) is not kind:
        raise DatasetError(
            f"{path}:{lineno}: field {name!r} must be {kind.__name__}, "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def _at_least(path: Path, lineno: int, name: str, value: int, low: int) -> int:
    if value < low:
        raise DatasetError(f"{path}:{lineno}: field {name!r} must be >= {low}, got {value}")
    return value


def _read_metas(path: Path) -> dict[str, FunctionMeta]:
    metas: dict[str, FunctionMeta] = {}
    first_line: dict[str, int] = {}
    for lineno, line in _lines(path):
        meta = _parse_meta(path, lineno, _parse_object(path, lineno, line))
        if meta.key in metas:
            raise DatasetError(
                f"{path}:{lineno}: duplicate meta key {meta.key!r} "
                f"(first on line {first_line[meta.key]})"
            )
        metas[meta.key] = meta
        first_line[meta.key] = lineno
    if not metas:
        raise DatasetError(f"{path}: no functions (empty file)")
    return metas


def _parse_meta(path: Path, lineno: int, obj: dict[str, Any]) -> FunctionMeta:
    key = _field(path, lineno, obj, "key", str)
    if not key:
        raise DatasetError(f"{path}:{lineno}: field 'key' must not be empty")

    def int_field(name: str, low: int) -> int:
        return _at_least(path, lineno, name, _field(path, lineno, obj, name, int), low)

    return FunctionMeta(
        key=key,
        runtime=_field(path, lineno, obj, "runtime", str),
        memory_mb=int_field("memoryInMb", 1),
        timeout_s=int_field("timeoutInSecs", 0),
        init_duration_ms=int_field("initDurationInMs", 0),
    )


def _read_requests(path: Path, metas: dict[str, FunctionMeta]) -> list[Request]:
    """Parse requests with a fast path for well-formed lines; defects go to the slow path.

    The fast path does one ``json.loads`` and a handful of exact type checks per line; the
    request's key is the meta's own string object, so 400k requests share a few hundred keys.
    """
    requests: list[Request] = []
    append = requests.append
    loads = json.loads
    get_meta = metas.get
    previous = 0
    for lineno, line in _lines(path):
        try:
            obj = loads(line)
            key = obj["metaKey"]
            start = obj["startTime"]
            duration = obj["durationsInMs"]
            status = obj["statusCode"]
        except (ValueError, KeyError, TypeError, IndexError):
            _diagnose_request(path, lineno, line)
        meta = get_meta(key) if type(key) is str else None
        if (
            meta is None
            or type(start) is not int
            or type(duration) is not int
            or type(status) is not int
            or start < previous
            or duration < 0
        ):
            _diagnose_request(path, lineno, line, metas, previous)
        append(Request(start, meta.key, duration, status))
        previous = start
    if not requests:
        raise DatasetError(f"{path}: no requests (empty file)")
    return requests


def _diagnose_request(
    path: Path,
    lineno: int,
    line: str,
    metas: dict[str, FunctionMeta] | None = None,
    previous: int = 0,
) -> NoReturn:
    """Raise the precise DatasetError for a request line the fast path refused."""
    obj = _parse_object(path, lineno, line)
    key = _field(path, lineno, obj, "metaKey", str)
    start = _at_least(path, lineno, "startTime", _field(path, lineno, obj, "startTime", int), 0)
    duration = _field(path, lineno, obj, "durationsInMs", int)
    _at_least(path, lineno, "durationsInMs", duration, 0)
    _field(path, lineno, obj, "statusCode", int)
    if metas is not None and key not in metas:
        raise DatasetError(f"{path}:{lineno}: request for unknown function {key!r}")
    if start < previous:
        raise DatasetError(
            f"{path}:{lineno}: startTime {start} is before the previous line's {previous} "
            "(requests must be sorted by startTime)"
        )
    raise DatasetError(f"{path}:{lineno}: invalid request")  # defensive: fast path disagreed


# --------------------------------------------------------------------------------------------
# Writing


def write_dataset(
    dataset: Dataset, folder: str | os.PathLike[str], gzip: bool = False
) -> tuple[Path, Path]:
    """Write ``dataset`` as a challenge folder; return ``(metas path, requests path)``.

    Key order and spacing follow the original challenge files (``json.dumps`` defaults). Each
    file is written to a temporary name and renamed, so a crash never leaves a half file; gzip
    output has a zero mtime, so equal datasets give equal bytes. The dataset is checked first
    (known keys, sorted, non-empty) so that whatever is written loads back.
    """
    _check_writable(dataset)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gzip else ""
    other = "" if gzip else ".gz"
    for stem in (META_FILE, REQUEST_FILE):
        if (root / f"{stem}{other}").exists():
            raise DatasetError(
                f"{root / (stem + other)}: already exists; remove it or write gzip={not gzip}"
            )
    meta_path = root / f"{META_FILE}{suffix}"
    request_path = root / f"{REQUEST_FILE}{suffix}"
    _write_text(meta_path, _metas_text(dataset.metas), gzip)
    _write_text(request_path, _requests_text(dataset), gzip)
    return meta_path, request_path


def _check_writable(dataset: Dataset) -> None:
    if not dataset.metas:
        raise DatasetError(f"dataset {dataset.name!r}: no functions")
    if not dataset.requests:
        raise DatasetError(f"dataset {dataset.name!r}: no requests")
    previous = 0
    for index, request in enumerate(dataset.requests, 1):
        if request.key not in dataset.metas:
            raise DatasetError(f"dataset {dataset.name!r}: request {index}: unknown function")
        if request.start_ms < previous:
            raise DatasetError(f"dataset {dataset.name!r}: request {index}: not sorted")
        previous = request.start_ms


def _metas_text(metas: dict[str, FunctionMeta]) -> str:
    lines = (
        json.dumps(
            {
                "key": m.key,
                "runtime": m.runtime,
                "memoryInMb": m.memory_mb,
                "timeoutInSecs": m.timeout_s,
                "initDurationInMs": m.init_duration_ms,
            }
        )
        + "\n"
        for m in metas.values()
    )
    return "".join(lines)


def _requests_text(dataset: Dataset) -> str:
    encoded = {key: json.dumps(key) for key in dataset.metas}
    return "".join(
        f'{{"metaKey": {encoded[r.key]}, "startTime": {r.start_ms}, '
        f'"durationsInMs": {r.duration_ms}, "statusCode": {r.status_code}}}\n'
        for r in dataset.requests
    )


def _write_text(path: Path, text: str, gzip: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    data = text.encode("utf-8")
    with tmp.open("wb") as raw:
        if gzip:
            with gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
                zipped.write(data)
        else:
            raw.write(data)
    os.replace(tmp, path)

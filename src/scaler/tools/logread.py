"""Reading transition logs: JSON lines, plain or gzip, one record at a time.

Shared by every ``scaler log`` mode. Files are read in the order given, as one log (the parts
of one run, or runs whose instance ids are not reused while alive), one line in memory at a
time, so a log of any size reads in constant memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import IO, Any

import attrs

Record = dict[str, Any]
Where = tuple[int, int]
"""(index of the file in the argument list, 1-based line number)."""

FIELDS = ("time", "instance", "slot", "function", "request", "event", "from", "to", "reason")
_STRINGS = ("instance", "function", "event", "from", "to", "reason")
_OPTIONAL_STRINGS = ("slot", "request")
_GZIP_MAGIC = b"\x1f\x8b"


class BadRecord(ValueError):
    """A line that is not a transition record."""


_scan = json.JSONDecoder().scan_once  # the C scanner behind json.loads, without its wrappers


def parse_record(raw: bytes) -> Record:
    """One JSON line as a record, with every field of the schema of the right type."""
    try:
        text = raw.decode()
        rec, end = _scan(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError):
        try:  # the slow path: leading blanks are fine, and errors get json's own message
            rec, end = json.loads(raw), len(raw)
            text = ""
        except ValueError as err:
            raise BadRecord(f"not JSON ({err})") from None
    if end < len(text) and text[end:].strip():
        raise BadRecord("not JSON (extra data after the object)")
    if type(rec) is not dict:
        raise BadRecord("not a JSON object")
    try:
        t = rec["time"]
        if (
            (type(t) is float or type(t) is int)
            and type(rec["instance"]) is str
            and type(rec["function"]) is str
            and type(rec["event"]) is str
            and type(rec["from"]) is str
            and type(rec["to"]) is str
            and type(rec["reason"]) is str
            and (rec["slot"] is None or type(rec["slot"]) is str)
            and (rec["request"] is None or type(rec["request"]) is str)
        ):
            return rec
    except KeyError:
        missing = ", ".join(key for key in FIELDS if key not in rec)
        raise BadRecord(f"missing field(s): {missing}") from None
    raise BadRecord(_wrong_type(rec))


def _wrong_type(rec: Record) -> str:
    """Which field has the wrong type (only called for a bad record)."""
    if type(rec["time"]) not in (float, int):
        return "'time' is not a number"
    for key in _STRINGS:
        if type(rec[key]) is not str:
            return f"{key!r} is not a string"
    for key in _OPTIONAL_STRINGS:
        if rec[key] is not None and type(rec[key]) is not str:
            return f"{key!r} is neither a string nor null"
    return "unexpected field types"


@attrs.frozen
class Filters:
    """Which records or instances the user asked about (empty sets select everything)."""

    instances: frozenset[str] = frozenset()
    requests: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    since: float | None = None
    until: float | None = None

    def instance_match(self, rec: Record) -> bool:
        """The record's instance is selected by ``--instance`` and ``--function``."""
        return (not self.instances or rec["instance"] in self.instances) and (
            not self.functions or rec["function"] in self.functions
        )

    def in_window(self, t: float) -> bool:
        return (self.since is None or t >= self.since) and (self.until is None or t <= self.until)

    def record_match(self, rec: Record) -> bool:
        """Every filter holds for this record."""
        return (
            self.instance_match(rec)
            and (not self.requests or rec["request"] in self.requests)
            and self.in_window(rec["time"])
        )

    def prefilter(self, *, requests: bool) -> tuple[tuple[bytes, ...], ...]:
        """Byte strings a selected line must contain (one of each group), to skip JSON parsing.

        Only ids whose JSON form is themselves in quotes are used, so the test cannot miss a
        line a writer escaped differently; anything else just turns the shortcut off.
        """
        groups = [self.instances, self.functions]
        if requests:
            groups.append(self.requests)
        tokens = []
        for group in groups:
            if not group:
                continue
            encoded = [json.dumps(value) for value in group]
            if not all(
                e[1:-1] == v and v.isprintable() for e, v in zip(encoded, group, strict=True)
            ):
                continue
            tokens.append(tuple(e.encode() for e in encoded))
        return tuple(tokens)


OnBad = Callable[[Where, bytes, str], None]


class LogReader:
    """Iterates ``(where, raw line, record)`` over several logs; bad lines go to ``on_bad``."""

    def __init__(
        self,
        paths: Sequence[str],
        on_bad: OnBad,
        prefilter: tuple[tuple[bytes, ...], ...] = (),
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.on_bad = on_bad
        self.prefilter = prefilter
        self.on_warning = on_warning or (lambda text: print(f"log: {text}", file=sys.stderr))

    def where(self, where: Where) -> str:
        return f"{self.paths[where[0]]}:{where[1]}"

    def __iter__(self) -> Iterator[tuple[Where, bytes, Record]]:
        prefilter = self.prefilter
        parse = parse_record
        for index, path in enumerate(self.paths):
            with contextlib.ExitStack() as stack:
                stream = _open(path, stack)
                lineno = 0
                try:
                    for raw in stream:
                        lineno += 1
                        if prefilter and not all(
                            any(token in raw for token in group) for group in prefilter
                        ):
                            continue
                        try:
                            rec = parse(raw)
                        except BadRecord as err:
                            if not raw.strip():
                                continue
                            if not raw.endswith(b"\n"):
                                self.on_warning(
                                    f"{path}:{lineno}: incomplete last line skipped "
                                    f"(was the writer interrupted?): {err}"
                                )
                                continue
                            self.on_bad((index, lineno), raw, str(err))
                            continue
                        yield (index, lineno), raw, rec
                except (EOFError, zlib.error) as err:
                    self.on_warning(
                        f"{path}: compressed stream ends early after line {lineno}: {err}"
                    )


def _open(path: str, stack: contextlib.ExitStack) -> Iterator[bytes]:
    """The file's lines; gzip is recognised by its magic bytes, not the file name."""
    raw: io.BufferedReader
    if path == "-":
        raw = sys.stdin.buffer  # type: ignore[assignment]
    else:
        raw = stack.enter_context(open(path, "rb", buffering=1 << 20))  # noqa: SIM115
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return _gunzip_lines(raw)
    return iter(raw)


def _gunzip_lines(raw: IO[bytes], chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Lines of a gzip stream (several members allowed), inflated a bounded piece at a time.

    Unlike ``gzip.GzipFile`` behind a read buffer, a stream cut short (a scaler killed while
    writing) still yields every line before the cut, then raises ``EOFError``. At most
    ``4 * chunk_size`` bytes are inflated per step, so memory stays small.
    """
    limit = 4 * chunk_size
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    member_open = False
    tail = b""
    while chunk := raw.read(chunk_size):
        pending = chunk
        while True:
            data = inflate.decompress(pending, limit)
            pending = inflate.unconsumed_tail
            member_open = True
            if inflate.eof:  # end of one member; another may follow
                member_open = False
                pending = inflate.unused_data
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            if data:
                lines = (tail + data).split(b"\n")
                tail = lines.pop()
                for line in lines:
                    yield line + b"\n"
            if not pending and len(data) < limit:
                break
    if tail:
        yield tail
    if member_open:
        raise EOFError("compressed stream ended before the end-of-stream marker")


# --------------------------------------------------------------------------------------------
# Formatting


def format_time(t: float) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS.mmm`` in UTC (what ``--since`` accepts back)."""
    try:
        stamp = datetime.fromtimestamp(t, UTC)
    except (OverflowError, ValueError, OSError):  # not a plausible epoch: show it raw
        return f"{t:.3f}"
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"


def format_duration(seconds: float) -> str:
    """A short human duration: ``0ms``, ``47ms``, ``4.20s``, ``12.3s``, ``4m05s``, ``2h03m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes}m{rest:02d}s"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours}h{rest:02d}m"


def format_record(rec: Record) -> str:
    """One record on one readable line."""
    parts = [
        format_time(rec["time"]),
        rec["instance"],
        f"{rec['event']} {rec['from']}->{rec['to']}",
        f"fn={rec['function']}",
    ]
    if rec["request"] is not None:
        parts.append(f"req={rec['request']}")
    if rec["slot"] is not None:
        parts.append(f"slot={rec['slot']}")
    if rec["reason"]:
        parts.append(f'"{rec["reason"]}"')
    return "  ".join(parts)


def parse_time(text: str) -> float:
    """``--since``/``--until``: epoch seconds, or an ISO 8601 time (UTC unless it says)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither epoch seconds nor an ISO 8601 time "
            "(e.g. 1700000000.5 or '2023-11-14 22:13:20.500')"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()

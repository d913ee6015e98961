"""Transition records: one structured record per FSM transition, fanned out to sinks.

A record is plain data (time from the injected clock, ids, event, from/to, reason). Sinks are
the edge: loguru for the human log, a JSON-lines file for ``--transition-log``. With no sink
attached, emitting costs almost nothing, which keeps the fast simulator fast.

A sink that raises (disk full, a closed file) never reaches the scheduler: the record is counted
as dropped for that sink, one error line says so the first time, and scheduling goes on.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import attrs
from loguru import logger


@attrs.frozen(slots=True)
class TransitionRecord:
    """What happened to one instance at one moment (the JSON-lines schema)."""

    time: float
    instance: str
    slot: str | None
    function: str
    request: str | None
    event: str
    source: str
    dest: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 6),
            "instance": self.instance,
            "slot": self.slot,
            "function": self.function,
            "request": self.request,
            "event": self.event,
            "from": self.source,
            "to": self.dest,
            "reason": self.reason,
        }


Sink = Callable[[TransitionRecord], None]


class Journal:
    """Fans transition records out to the attached sinks; a failing sink only drops records."""

    def __init__(self) -> None:
        self._sinks: list[Sink] = []
        self._closers: list[Callable[[], None]] = []
        #: Records a sink failed to take, over all sinks (the metric ``scaler_journal_dropped``).
        self.dropped = 0
        self._failing: set[int] = set()  # sinks already reported as failing (by position)
        #: Some sink is attached (a plain attribute: read on every transition).
        self.active = False

    def attach(self, sink: Sink, close: Callable[[], None] | None = None) -> None:
        self._sinks.append(sink)
        self.active = True
        if close is not None:
            self._closers.append(close)

    def emit(self, record: TransitionRecord) -> None:
        for position, sink in enumerate(self._sinks):
            try:
                sink(record)
            except Exception as err:  # an edge: it must never reach the FSM or the scheduler
                self.dropped += 1
                if position not in self._failing:
                    self._failing.add(position)
                    logger.error(
                        "transition-log sink {} failed ({}: {}); its records are dropped",
                        getattr(sink, "__qualname__", sink),
                        type(err).__name__,
                        err,
                    )

    def close(self) -> None:
        for close in self._closers:
            try:
                close()
            except Exception as err:  # a sink that cannot even close loses nothing more
                logger.error("closing a transition-log sink failed: {}", err)
        self._closers.clear()
        self._sinks.clear()
        self.active = False
        self._failing.clear()

    def write_json_lines(self, path: str | Path) -> None:
        """Attach a JSON-lines file sink (gzip-compressed when the name ends in ``.gz``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".gz":
            stream: IO[str] = gzip.open(path, "wt", encoding="utf-8")  # noqa: SIM115
        else:
            stream = open(path, "w", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        dumps = json.dumps

        def sink(record: TransitionRecord) -> None:
            stream.write(dumps(record.to_json(), separators=(",", ":")) + "\n")

        self.attach(sink, stream.close)

    def log_with_loguru(self, level: str = "DEBUG") -> None:
        """Attach a sink that logs each record through loguru with the fields in ``extra``."""
        bound = logger.opt(depth=0)

        def sink(record: TransitionRecord) -> None:
            bound.log(
                level,
                "{instance} {event}: {source} -> {dest} ({reason})",
                **attrs.asdict(record),
            )

        self.attach(sink)

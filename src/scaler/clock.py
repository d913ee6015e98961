"""The one injected clock: every time the core reads comes from here.

The scheduler runs inside an asyncio loop. Under real time that loop is the ordinary one; in
the simulator's fast mode it is a virtual-time loop whose ``time()`` jumps from event to event.
Reading time through the loop keeps both worlds honest with one code path.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Epoch seconds as the core sees them (wall clock, or virtual in fast mode)."""

    def now(self) -> float: ...


class LoopClock:
    """Epoch time derived from the running loop's monotonic ``time()``.

    ``epoch_at_zero`` is the epoch second that corresponds to ``loop.time() == 0``; by default
    it is taken from the wall clock when the clock is bound to a loop.
    """

    __slots__ = ("_epoch_offset", "_loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, epoch_at_zero: float | None = None
    ) -> None:
        self._loop = loop
        self._epoch_offset = epoch_at_zero
        if loop is not None:
            self._bind(loop)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self._epoch_offset is None:
            self._epoch_offset = time.time() - loop.time()

    def now(self) -> float:
        loop = self._loop
        if loop is None:
            self._bind(asyncio.get_running_loop())
            loop = self._loop
        return self._epoch_offset + loop.time()  # type: ignore[operator,union-attr]


class ManualClock:
    """A clock tests move by hand."""

    __slots__ = ("t",)

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

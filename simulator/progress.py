"""A one-line progress bar on stderr, for runs long enough to wonder about.

Hand-made rather than a dependency: it only needs ``\\r`` and a width. It stays silent for the
first ``delay_s`` seconds, so quick runs print nothing, and redraws at most ``rate_hz`` times a
second, so callers may call it as often as they like.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def _clock_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


class ProgressBar:
    """Callable as a replay ``Progress``: ``bar(done, total, trace_seconds)``.

    With ``trace_total_s`` the fill and the ETA follow trace time, which is what a real-time
    replay spends its time on; otherwise they follow the requests done.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        delay_s: float = 3.0,
        rate_hz: float = 4.0,
        width: int = 24,
        trace_total_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay_s = delay_s
        self.interval_s = 1.0 / rate_hz
        self.width = width
        self.trace_total_s = trace_total_s
        self._clock = clock
        self._started = clock()
        self._last_draw = float("-inf")
        self._drawn = 0  # length of the line on screen

    def __call__(self, done: int, total: int, trace_s: float) -> None:
        now = self._clock()
        wall = now - self._started
        if wall < self.delay_s or now - self._last_draw < self.interval_s:
            return
        self._last_draw = now
        self.draw(self.line(done, total, trace_s, wall))

    def line(self, done: int, total: int, trace_s: float, wall: float) -> str:
        if total and done >= total:
            fraction = 1.0
        elif self.trace_total_s:
            fraction = min(1.0, trace_s / self.trace_total_s)
        else:
            fraction = done / total if total else 1.0
        filled = round(fraction * self.width)
        eta = f" eta {_clock_text(wall / fraction - wall)}" if 0.0 < fraction < 1.0 else ""
        return (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {fraction:6.1%} "
            f"{done}/{total} req, trace {_clock_text(trace_s)}, wall {_clock_text(wall)}{eta}"
        )

    def draw(self, line: str) -> None:
        pad = " " * max(0, self._drawn - len(line))
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._drawn = len(line)

    def close(self) -> None:
        """Erase the bar (if one was drawn) so the summary starts on a clean line."""
        if self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0

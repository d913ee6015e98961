"""The scheduler's one timer mechanism: at most one pending timer per key, on the running loop.

Keys name what is due: a function's next deadline or pre-warm, a function's next cold-start
decision, the periodic expiry pass, the policy's background work. Timers are plain loop
callbacks (``call_at``), so they run the same under real and virtual time, and a callback that
raises is logged without stopping the timers of anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

from loguru import logger

from scaler.clock import Clock

#: Deadline timers fire this much after the deadline rather than on it: a timer that fires a
#: rounding error early would find nothing due and re-arm for the same instant.
LATE_S = 0.001


class Timers:
    """Keyed one-shot timers at epoch times of ``clock``; ``closed`` refuses new ones."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._armed: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self.closed = False

    def at(
        self,
        key: Hashable,
        when: float,
        callback: Callable[[], None],
        *,
        keep_earlier: bool = True,
        late_s: float = 0.0,
    ) -> None:
        """Run ``callback`` at epoch second ``when`` (+ ``late_s``). With ``keep_earlier`` an
        already armed earlier timer for ``key`` stays (and this one is dropped); otherwise the
        new time replaces the old one."""
        if self.closed:
            return
        armed = self._armed.get(key)
        if armed is not None:
            if keep_earlier and armed[0] <= when:
                return
            armed[1].cancel()
        delay = max(0.0, when - self._clock.now()) + late_s
        handle = asyncio.get_running_loop().call_later(delay, self._fire, key, callback)
        self._armed[key] = (when, handle)

    def cancel(self, key: Hashable) -> None:
        armed = self._armed.pop(key, None)
        if armed is not None:
            armed[1].cancel()

    def armed(self, key: Hashable) -> float | None:
        """Epoch second the timer for ``key`` is due at, or None."""
        armed = self._armed.get(key)
        return None if armed is None else armed[0]

    def close(self) -> None:
        """Cancel every timer and refuse new ones."""
        self.closed = True
        for _, handle in self._armed.values():
            handle.cancel()
        self._armed.clear()

    def _fire(self, key: Hashable, callback: Callable[[], None]) -> None:
        self._armed.pop(key, None)
        try:
            callback()
        except Exception:  # one function's bug must not stop every other timer
            logger.exception("timer {} failed", key)

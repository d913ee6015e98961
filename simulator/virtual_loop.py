"""An asyncio event loop whose clock is virtual: when nothing is ready, time jumps to the next
timer instead of sleeping. Coroutines written for real time (``asyncio.sleep``, ``wait_for``,
``call_later``) run unchanged, hours of trace in seconds, deterministically.

There are no sockets: the selector only pretends to wait. If nothing is ready and no timer is
pending, the program can never progress, and the loop says so instead of hanging.

The loop's hot path (``_run_once``, ``call_at``, ``call_soon``) is CPython 3.11's own, with the
selector call folded into a clock jump and the timer heap keyed by plain floats: each heap entry
is ``(when, handle)``, which orders exactly as the handles themselves (``TimerHandle`` compares
by ``when`` only; on a tie the tuple compares the handles, which again answer "not less") but
compares in C instead of calling ``TimerHandle.__lt__``, tens of millions of times per long
replay. Same answers, same heap, so timers due at the same instant still fire in the stock
loop's order (``tests/test_virtual_loop.py`` checks it), and replays stay identical to the bit.
"""

from __future__ import annotations

import asyncio
import heapq
import selectors
from asyncio import base_events
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, TypeVar

from simulator.compute import IN_SCALER, ComputeMeter

T = TypeVar("T")

_heappop = heapq.heappop
_heappush = heapq.heappush


class VirtualDeadlock(RuntimeError):
    """Every task waits and no timer is pending: virtual time cannot advance."""


class _VirtualSelector(selectors.BaseSelector):
    """Holds registrations (the loop's self-pipe) and never waits. ``VirtualTimeLoop`` does not
    call ``select``; the stock loop on this selector (the tests' reference) does."""

    def __init__(self) -> None:
        self._keys: dict[int, selectors.SelectorKey] = {}
        self.loop: VirtualTimeLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise VirtualDeadlock("no task can progress and no timer is pending")
        if timeout > 0 and self.loop is not None:
            self.loop.advance(timeout)
        return []

    def get_map(self) -> Any:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` starts at 0 and only moves when the loop would otherwise wait."""

    _scheduled: list[tuple[float, asyncio.TimerHandle]]  # type: ignore[assignment]

    def __init__(self) -> None:
        self._virtual_now = 0.0
        #: Times the scaler's callbacks when set (``simulator.compute``; fast mode sets it).
        self.compute: ComputeMeter | None = None
        selector = _VirtualSelector()
        super().__init__(selector=selector)
        selector.loop = self

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds

    # -- scheduling (the stock methods, minus the selector and the Python heap comparisons) --
    def call_soon(
        self, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        if self._debug:
            return super().call_soon(callback, *args, context=context)
        if self._closed:
            raise RuntimeError("Event loop is closed")
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        if delay is None:
            raise TypeError("delay must not be None")
        timer = self.call_at(self._virtual_now + delay, callback, *args, context=context)
        if timer._source_traceback:
            del timer._source_traceback[-1]
        return timer

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        if timer._source_traceback:
            del timer._source_traceback[-1]
        _heappush(self._scheduled, (when, timer))
        timer._scheduled = True
        return timer

    def _run_once(self) -> None:
        """One iteration of the stock loop: drop cancelled timers, jump the clock to the next
        timer if nothing is ready, move due timers to the ready queue, run what was ready."""
        scheduled = self._scheduled
        count = len(scheduled)
        if (
            count > base_events._MIN_SCHEDULED_TIMER_HANDLES
            and self._timer_cancelled_count / count
            > base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION
        ):
            scheduled = self._purge_cancelled_timers()
        else:
            while scheduled and scheduled[0][1]._cancelled:
                self._timer_cancelled_count -= 1
                _heappop(scheduled)[1]._scheduled = False
        ready = self._ready
        if not ready and not self._stopping:
            if not scheduled:
                raise VirtualDeadlock("no task can progress and no timer is pending")
            timeout = min(
                max(0, scheduled[0][0] - self._virtual_now), base_events.MAXIMUM_SELECT_TIMEOUT
            )
            if timeout > 0:
                self._virtual_now += timeout
        end_time = self._virtual_now + self._clock_resolution
        while scheduled and scheduled[0][0] < end_time:
            handle = _heappop(scheduled)[1]
            handle._scheduled = False
            ready.append(handle)
        popleft = ready.popleft
        if self.compute is not None:
            self._run_ready_metered(self.compute)
            return
        for _ in range(len(ready)):
            handle = popleft()
            if handle._cancelled:
                continue
            if self._debug:  # no slow-callback warning: virtual time stands still in a callback
                self._current_handle = handle
                try:
                    handle._run()
                finally:
                    self._current_handle = None
            else:
                handle._run()
        handle = None  # break cycles when an exception occurs

    def _run_ready_metered(self, compute: ComputeMeter) -> None:
        """Run what is ready, timing each callback that carries the scaler's mark (minus the
        platform code it ran) for ``compute``."""
        popleft = self._ready.popleft
        clock = compute.clock
        charge = compute.charge
        for _ in range(len(self._ready)):
            handle = popleft()
            if handle._cancelled:
                continue
            if not handle._context.get(IN_SCALER, False):
                handle._run()
                continue
            excluded = compute.excluded
            started = clock()
            handle._run()
            spent = clock() - started - (compute.excluded - excluded)
            compute.calls += 1  # ComputeMeter.callback, inline: this runs millions of times
            compute.total_s += spent
            if spent > compute.longest_s:
                compute.longest_s = spent
            if charge:
                self._virtual_now += spent
        handle = None  # break cycles when an exception occurs

    def _purge_cancelled_timers(self) -> list[tuple[float, asyncio.TimerHandle]]:
        """Rebuild the heap without cancelled timers (when they are over half of it)."""
        live = []
        for entry in self._scheduled:
            if entry[1]._cancelled:
                entry[1]._scheduled = False
            else:
                live.append(entry)
        heapq.heapify(live)
        self._scheduled = live
        self._timer_cancelled_count = 0
        return live


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()

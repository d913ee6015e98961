"""An asyncio event loop whose clock is virtual: when nothing is ready, time jumps to the next
timer instead of sleeping. Coroutines written for real time (``asyncio.sleep``, ``wait_for``,
``call_later``) run unchanged, hours of trace in seconds, deterministically.

There are no sockets: the selector only pretends to wait. If nothing is ready and no timer is
pending, the program can never progress, and the loop says so instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualDeadlock(RuntimeError):
    """Every task waits and no timer is pending: virtual time cannot advance."""


class _VirtualSelector(selectors.BaseSelector):
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

    def __init__(self) -> None:
        self._virtual_now = 0.0
        selector = _VirtualSelector()
        super().__init__(selector=selector)
        selector.loop = self

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()

"""Requests waiting for an instance: one FIFO per function, each settled exactly once.

A waiter is settled in exactly one way: handed an instance, failed with an error (its Assign
deadline, a failed cold start, shutdown) or abandoned by its caller. Each of these removes it
from the queue at once, synchronously on the loop, so the queue only ever holds requests that
still wait: counts are exact, a cancelled request is never handed an instance, and a timeout
and a handover can never both happen to one request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from scaler.states import Instance


@attrs.define(slots=True, eq=False)
class Waiter:
    """An Assign that found no idle instance and waits for one."""

    request_id: str
    key: str
    future: asyncio.Future[Instance]
    arrived_at: float
    #: Assign calls waiting on it (a retried Assign joins the first one's wait).
    callers: int = 1
    #: Cold starts started for this request after its own failed (bounded by the settings).
    attempts: int = 0
    #: The timer that fails it at its Assign deadline.
    deadline: asyncio.TimerHandle | None = None


class WaitQueue:
    """The waiting requests of one function, oldest first (O(1) removal from anywhere).

    ``index`` is the scheduler-wide map of request id to waiter (a retried Assign finds its
    waiter there); the queue keeps it in step with itself.
    """

    __slots__ = ("_index", "_queue")

    def __init__(self, index: dict[str, Waiter]) -> None:
        self._queue: dict[str, Waiter] = {}
        self._index = index

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def __iter__(self) -> Iterator[Waiter]:
        return iter(list(self._queue.values()))

    def add(self, waiter: Waiter) -> None:
        self._queue[waiter.request_id] = waiter
        self._index[waiter.request_id] = waiter

    def get(self, request_id: str | None) -> Waiter | None:
        return None if request_id is None else self._queue.get(request_id)

    def oldest(self) -> Waiter | None:
        return next(iter(self._queue.values()), None)

    def newest(self) -> Waiter | None:
        return self._queue[next(reversed(self._queue))] if self._queue else None

    def nth(self, n: int) -> Waiter | None:
        """The ``n``-th oldest waiter (0 is the oldest), or None when fewer wait."""
        if n < 0 or n >= len(self._queue):
            return None
        for position, waiter in enumerate(self._queue.values()):
            if position == n:
                return waiter
        return None  # pragma: no cover - the length was checked

    def hand(self, waiter: Waiter, instance: Instance) -> None:
        """Settle ``waiter`` with ``instance`` (already fired ``assign`` for it)."""
        self._remove(waiter)
        waiter.future.set_result(instance)

    def fail(self, waiter: Waiter, error: BaseException) -> bool:
        """Settle ``waiter`` with ``error``; False when it was no longer waiting."""
        if self._queue.get(waiter.request_id) is not waiter:
            return False
        self._remove(waiter)
        waiter.future.set_exception(error)
        return True

    def discard(self, waiter: Waiter) -> None:
        """Its caller went away: stop waiting (a no-op when already settled)."""
        if self._queue.get(waiter.request_id) is waiter:
            self._remove(waiter)
            waiter.future.cancel()

    def _remove(self, waiter: Waiter) -> None:
        del self._queue[waiter.request_id]
        if self._index.get(waiter.request_id) is waiter:
            del self._index[waiter.request_id]
        if waiter.deadline is not None:
            waiter.deadline.cancel()
            waiter.deadline = None

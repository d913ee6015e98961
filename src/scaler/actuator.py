"""Platform calls that follow from transitions; their results come back as events.

Entering ``creating`` starts CreateSlot, entering ``initing`` starts Init, entering ``deleting``
starts DestroySlot (with the cause of the deletion as its reason), the way OpenWhisk's
ContainerProxy drives its containers. Each call runs as the instance's own task
(``Instance.task``), which ends by firing the event its result means: ``slot_created`` or
``slot_failed``, ``init_failed``, ``destroyed`` or ``destroy_failed`` (then a retry with capped
back-off). A successful Init is handed to the scheduler (``ready``), which decides what the
instance does next; a failed cold start is reported to it (``failed``) after its event.

Nothing else calls the platform, so no path can forget to destroy a slot: every instance that
enters ``deleting`` has its DestroySlot running until the slot is gone or shutdown gives up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
from loguru import logger

from scaler.clock import Clock
from scaler.platform import InitInfo, PlatformApi, PlatformError, SlotNotFound
from scaler.states import Instance
from scaler.states.lifecycle import CREATE_FAILED, CREATING, DELETING, INIT_FAILED, INITING


@attrs.frozen
class DestroyRetry:
    """Capped exponential back-off of DestroySlot retries (seconds)."""

    first_s: float = 0.1
    max_s: float = 5.0


#: ``ready(instance, init)``: Init answered Ok; the instance is still initing.
Ready = Callable[[Instance, InitInfo], None]
#: ``failed(instance, error)``: the cold start failed; the instance has left ``initing``.
Failed = Callable[[Instance, PlatformError], None]


class Actuator:
    """Runs the platform call each entered state implies, as the instance's task."""

    def __init__(
        self,
        platform: PlatformApi,
        clock: Clock,
        ready: Ready,
        failed: Failed,
        retry: DestroyRetry | None = None,
    ) -> None:
        self.platform = platform
        self.clock = clock
        self.retry = retry or DestroyRetry()
        self._ready = ready
        self._failed = failed
        #: Every instance task still running (asyncio keeps only weak references to tasks).
        self.tasks: set[asyncio.Task[Any]] = set()

    def on_entered(self, instance: Instance, source: str, dest: str) -> None:
        if dest == CREATING:
            self._spawn(instance, self._create(instance))
        elif dest == INITING:
            self._spawn(instance, self._init(instance))
        elif dest == DELETING and source != DELETING:
            self._spawn(instance, self._destroy(instance))

    def _spawn(self, instance: Instance, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        instance.task = task
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.opt(exception=task.exception()).error("instance task failed")

    async def _create(self, instance: Instance) -> None:
        started = self.clock.now()
        try:
            slot = await self.platform.create_slot(
                instance.instance_id, instance.function.memory_mb
            )
        except Exception as err:
            error = _platform_error("CreateSlot", err)
            instance.fire("slot_failed", f"{CREATE_FAILED}: {error.cause}")
            self._failed(instance, error)
            return
        create_ms = (self.clock.now() - started) * 1000.0
        instance.fire(
            "slot_created",
            f"slot {slot.id} in {create_ms:.0f} ms",
            slot_id=slot.id,
            create_ms=create_ms,
        )

    async def _init(self, instance: Instance) -> None:
        try:
            init = await self.platform.init(
                instance.instance_id,
                instance.slot_id or "",
                instance.instance_id,
                instance.function,
            )
        except Exception as err:
            error = _platform_error("Init", err)
            instance.fire("init_failed", f"{INIT_FAILED}: {error.cause}")
            self._failed(instance, error)
            return
        self._ready(instance, init)

    async def _destroy(self, instance: Instance) -> None:
        delay = self.retry.first_s
        while True:
            try:
                await self.platform.destroy_slot(
                    instance.instance_id, instance.slot_id or "", reason=instance.cause
                )
            except SlotNotFound as err:
                instance.fire("destroyed", f"slot already gone: {err.cause}")
                return
            except Exception as err:
                instance.fire("destroy_failed", _platform_error("DestroySlot", err).cause)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry.max_s)
                continue
            instance.fire("destroyed", "slot destroyed")
            return


def _platform_error(op: str, err: Exception) -> PlatformError:
    """The error as the platform client reports it; anything else (a bug, an unexpected
    exception) becomes an unanswered call, so the instance still leaves its state."""
    if isinstance(err, PlatformError):
        return err
    return PlatformError(op, f"{type(err).__name__}: {err}")

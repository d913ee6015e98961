"""Shutdown: let what is running finish, within bounds, then destroy every slot.

A created slot is always destroyed in the end: idle instances expire and busy ones retire with
cause ``shutdown`` (the actuator's DestroySlot carries it), and cold starts still under way end
in a destroy once they answer (the scheduler starts nothing new while closing).
"""

from __future__ import annotations

import asyncio

from loguru import logger

from scaler.actuator import Actuator
from scaler.pool import Registry
from scaler.states import BUSY, IDLE
from scaler.states.lifecycle import SHUTDOWN


async def drain_and_destroy(
    registry: Registry, actuator: Actuator, grace_s: float, destroy_wait_s: float
) -> list[str]:
    """Wait up to ``grace_s`` for busy requests and cold starts to finish, destroy every
    instance, and wait up to ``destroy_wait_s`` for the platform calls.

    Returns the slots (or instance ids, for slots still being created) that could not be
    destroyed in time; empty when nothing leaked.
    """
    if registry.in_use:
        drained = asyncio.Event()
        registry.on_change = lambda: registry.in_use or drained.set()
        try:
            await asyncio.wait_for(drained.wait(), grace_s)
        except TimeoutError:
            pass
        finally:
            registry.on_change = None
    for instance in list(registry.instances.values()):
        if instance.state == IDLE:
            instance.fire("expire", SHUTDOWN)
        elif instance.state == BUSY:
            instance.fire("retire", SHUTDOWN)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + destroy_wait_s
    tasks = actuator.tasks
    while tasks and loop.time() < deadline:  # a cold start may still end in a destroy
        await asyncio.wait(list(tasks), timeout=deadline - loop.time())
    lost = [i.slot_id or i.instance_id for i in registry.instances.values()]
    for task in list(tasks):
        task.cancel()
    if lost:
        logger.error("shutdown left {} slot(s) undestroyed: {}", len(lost), lost[:20])
    return lost

"""The virtual-time loop: time jumps, deadlocks are reported, and timers due at the same instant
fire in exactly the order the stock asyncio loop fires them (replays must not change)."""

from __future__ import annotations

import asyncio
import random

import pytest

from simulator.virtual_loop import VirtualDeadlock, VirtualTimeLoop, _VirtualSelector, run_virtual


class StockVirtualLoop(asyncio.SelectorEventLoop):
    """The stock loop on a virtual clock (the selector jumps time): the reference order."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        selector = _VirtualSelector()
        super().__init__(selector=selector)
        selector.loop = self  # type: ignore[assignment]

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


async def _busy_schedule(seed: int, fired: list[tuple[int, float]]) -> None:
    """Timers on few distinct instants (many ties), nested timers, and enough cancellations
    to make the loop rebuild its heap."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    handles: list[asyncio.TimerHandle] = []
    ids = iter(range(1_000_000))

    def fire(n: int) -> None:
        fired.append((n, loop.time()))
        if rng.random() < 0.3:
            handles.append(loop.call_later(rng.choice((0.0, 0.001, 0.5)), fire, next(ids)))
        if handles and rng.random() < 0.4:
            handles.pop(rng.randrange(len(handles))).cancel()
        if rng.random() < 0.2:
            loop.call_soon(fire, next(ids))

    for _ in range(3000):
        handles.append(loop.call_later(rng.randrange(50) / 10, fire, next(ids)))
    for handle in rng.sample(handles, 1700):
        handle.cancel()
    while True:
        await asyncio.sleep(rng.choice((0.1, 0.25)))
        if loop.time() > 8.0:
            return


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_firing_order_as_the_stock_loop(seed: int) -> None:
    orders = []
    for make in (StockVirtualLoop, VirtualTimeLoop):
        fired: list[tuple[int, float]] = []
        loop = make()
        try:
            loop.run_until_complete(_busy_schedule(seed, fired))
        finally:
            loop.close()
        orders.append(fired)
    assert len(orders[0]) > 2000
    assert orders[0] == orders[1]


def test_time_jumps_to_the_next_timer() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(3600.0)
        at_hour = loop.time()
        await asyncio.wait_for(asyncio.sleep(0.5), timeout=10.0)
        return at_hour, loop.time()

    assert run_virtual(main()) == (3600.0, 3600.5)


def test_a_program_that_can_never_progress_is_reported() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(VirtualDeadlock):
        run_virtual(main())

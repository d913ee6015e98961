"""Fast mode with a clock that moves between reads, as a wall clock does.

The virtual clock returns the same instant for every read inside one event, so code that
matches two events by equal timestamps works in fast mode and silently fails over the wire
(it did: the default policy planned no pre-warm after a release on a real clock). Here every
read within one virtual instant is a microsecond later than the one before.
"""

from __future__ import annotations

import pytest

import simulator.fast as fast
from scaler.clock import LoopClock
from scaler.states import Journal, TransitionRecord
from simulator.workload import generate_workload


class CreepingClock(LoopClock):
    """Each read within one loop instant is 1 µs later than the previous one."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._instant: float | None = None
        self._reads = 0

    def now(self) -> float:
        base = super().now()
        if base != self._instant:
            self._instant = base
            self._reads = 0
        self._reads += 1
        return base + self._reads * 1e-6


def _prewarms(clock: type[LoopClock], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(fast, "LoopClock", clock)
    records: list[TransitionRecord] = []
    journal = Journal()
    journal.attach(records.append)
    # 20 minutes: the default pre-warms a function only once its record shows it pays.
    dataset = generate_workload(seed=3, duration_s=1200, functions=10)
    run = fast.run_fast(dataset, "adaptive", journal=journal)
    assert run.totals.leaked_slots == 0
    return sum(1 for r in records if r.event == "create" and r.reason.startswith("pre-warm"))


def test_default_policy_pre_warms_as_much_on_a_moving_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen = _prewarms(LoopClock, monkeypatch)
    moving = _prewarms(CreepingClock, monkeypatch)
    assert frozen > 10  # the workload has timers worth pre-warming (18 at the default latencies)
    assert moving >= 0.8 * frozen, (frozen, moving)

"""Per trace-second time series of one replay, for the ``--report`` charts.

The replayer calls :meth:`Timeline.begin`, :meth:`Timeline.end` and :meth:`Timeline.cold_start`
as requests come and go, and a sampler calls :meth:`Timeline.sample` once per trace second with
the ledger. Only the busiest functions (most execution time) are kept one by one, the rest only
in the totals, so a trace of hundreds of functions over hours stays a few MB. Without a
timeline the replayer does none of this.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from simulator.dataset import Dataset
from simulator.platform import SlotRecord

TOTAL = "*"
"""Key of the all-functions series."""


def busiest_functions(dataset: Dataset, top: int) -> list[str]:
    """The ``top`` functions by total execution time (the mean concurrency they need)."""
    busy: Counter[str] = Counter()
    for request in dataset.requests:
        busy[request.key] += request.duration_ms
    return [key for key, _ in busy.most_common(top)]


def _raise_to(series: list[int], second: int, value: int) -> None:
    """``series[second] = max(series[second], value)``, growing the list with zeros."""
    if second >= len(series):
        series.extend([0] * (second + 1 - len(series)))
    if value > series[second]:
        series[second] = value


class Timeline:
    """Demand (peak concurrent requests), live slots and cold starts per trace second.

    Demand counts a request from its Assign to its Idle's answer: the instances it wants.
    Live slots are sampled (a slot counts for its function once initialised; slots still
    starting count only in the total). Seconds are trace seconds since the run started.
    """

    def __init__(self, tracked: Iterable[str]) -> None:
        self.tracked: list[str] = list(tracked)
        keys = [TOTAL, *self.tracked]
        self.demand: dict[str, list[int]] = {k: [] for k in keys}
        self.slots: dict[str, list[int]] = {k: [] for k in keys}
        self.cold_starts: dict[str, list[int]] = {k: [] for k in keys}
        self._in_flight: Counter[str] = Counter()

    @classmethod
    def for_dataset(cls, dataset: Dataset, top: int = 6) -> Timeline:
        return cls(busiest_functions(dataset, top))

    @property
    def seconds(self) -> int:
        """Length of the longest series."""
        return max((len(s) for d in (self.demand, self.slots) for s in d.values()), default=0)

    def begin(self, key: str, t: float) -> None:
        second = int(t)
        self._in_flight[TOTAL] += 1
        _raise_to(self.demand[TOTAL], second, self._in_flight[TOTAL])
        if key in self.demand:
            self._in_flight[key] += 1
            _raise_to(self.demand[key], second, self._in_flight[key])

    def end(self, key: str, t: float) -> None:
        self._in_flight[TOTAL] -= 1
        if key in self.demand:
            self._in_flight[key] -= 1

    def cold_start(self, key: str, t: float) -> None:
        second = int(t)
        for k in (TOTAL, key) if key in self.cold_starts else (TOTAL,):
            series = self.cold_starts[k]
            _raise_to(series, second, 0)
            series[second] += 1

    def sample(self, t: float, live: Iterable[SlotRecord]) -> None:
        """Record the live slots at ``t``, and carry the demand still in flight into it."""
        second = int(t)
        counts: Counter[str] = Counter()
        total = 0
        for record in live:
            total += 1
            if record.key is not None and record.key in self.slots:
                counts[record.key] += 1
        _raise_to(self.slots[TOTAL], second, total)
        for key in self.tracked:
            _raise_to(self.slots[key], second, counts[key])
        for key, series in self.demand.items():
            _raise_to(series, second, self._in_flight[key])

    def padded(self, series: list[int]) -> list[int]:
        """``series`` extended with zeros to :attr:`seconds`."""
        return series + [0] * (self.seconds - len(series))

"""Small measurement helpers: percentiles, process and machine CPU, RSS from /proc.

The machine is shared (2 cores, other engineers at work), so every load step records how much
CPU went to processes that are not ours; a step disturbed by others can then be repeated and
the report says what was running.
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Iterable, Sequence
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (NaN when empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Iterable[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max of latencies in ms (rounded to µs)."""
    ordered = sorted(values)
    out = {
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "p999": percentile(ordered, 99.9),
        "max": ordered[-1] if ordered else math.nan,
    }
    return {k: (round(v, 3) if not math.isnan(v) else None) for k, v in out.items()}


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return (total - idle) / _TICK, total / _TICK


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0.0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            text = f.read()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def self_cpu() -> float:
    """CPU seconds (user + system) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def proc_status_kb(pid: int | str, field: str) -> int | None:
    """A ``kB`` line of /proc/PID/status (VmRSS, VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def process_table() -> dict[int, tuple[str, float]]:
    """Every process's (command, CPU seconds) right now."""
    table: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        head, _, tail = text.rpartition(")")
        fields = tail.split()
        comm = head.split("(", 1)[1] if "(" in head else "?"
        table[int(entry)] = (comm, (int(fields[11]) + int(fields[12])) / _TICK)
    return table


def _busiest(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    exclude: set[int],
    wall: float,
    limit: int = 5,
) -> list[str]:
    used = []
    for pid, (comm, cpu) in after.items():
        if pid in exclude or wall <= 0:
            continue
        delta = cpu - before[pid][1] if pid in before else cpu  # new: its whole life
        if delta > 0.01 * wall:
            used.append((delta / wall, f"{pid} {comm} {delta / wall:.2f} cores"))
    return [text for _, text in sorted(used, reverse=True)[:limit]]


class CpuWindow:
    """Machine CPU and our processes' CPU between :meth:`start` and :meth:`stop`.

    ``others_cores`` is the machine's busy CPU minus what our processes used: the share taken
    by other engineers' jobs while we measured (cores, averaged over the window; it also
    holds the kernel's softirq time for our own loopback traffic, charged to no process).
    ``busiest_others`` names the processes that are not ours and used the most.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.exclude: set[int] = {os.getpid(), *pids.values()}
        self._busy0 = self._total0 = 0.0
        self._proc0: dict[int, tuple[str, float]] = {}

    def start(self) -> None:
        self._busy0, self._total0 = machine_cpu()
        self._proc0 = process_table()

    def stop(self, extra_ours: dict[str, float] | None = None) -> dict[str, Any]:
        busy1, total1 = machine_cpu()
        proc1 = process_table()
        ncpu = os.cpu_count() or 1
        wall = (total1 - self._total0) / ncpu
        out: dict[str, Any] = {"wall_s": round(wall, 2)}

        def cores(seconds: float) -> float:
            return round(seconds / wall, 3) if wall > 0 else 0.0

        ours = 0.0
        for name, pid in self.pids.items():
            used = proc1.get(pid, ("", 0.0))[1] - self._proc0.get(pid, ("", 0.0))[1]
            out[f"{name}_cores"] = cores(used)
            ours += used
        for name, used in (extra_ours or {}).items():
            out[f"{name}_cores"] = cores(used)
            ours += used
        parent = proc1.get(os.getpid(), ("", 0.0))[1] - self._proc0.get(os.getpid(), ("", 0.0))[1]
        ours += parent
        busy = busy1 - self._busy0
        out["machine_busy_cores"] = cores(busy)
        out["others_cores"] = cores(max(0.0, busy - ours))
        out["busiest_others"] = _busiest(self._proc0, proc1, self.exclude, wall)
        return out


def quiet_sample(ours: dict[str, int], seconds: float = 1.0) -> dict[str, Any]:
    """CPU used by processes other than ``ours`` over ``seconds`` (ours should be idle)."""
    window = CpuWindow(ours)
    window.start()
    time.sleep(seconds)
    return window.stop()

"""Fault matrix figures for docs/reliability.md: `python -m bench.faults [--quick]`.

Fast mode, seeded: each platform fault alone and all together, on dataSet_1 and a 15-minute
slice of dataSet_3r (skipped when ../shared/traces is absent) and the built-in workload.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from loguru import logger

from scaler.policy import DEFAULT_POLICY
from scaler.states import Journal
from simulator.dataset import Dataset, load_dataset
from simulator.fast import run_fast
from simulator.faults import FAULT_MATRIX, FaultSpec
from simulator.score import official_score
from simulator.workload import generate_workload

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
MATRIX = {"none": "", **FAULT_MATRIX}


class Unfinished:
    """Journal sink: the last state of every instance (to count any not `deleted`)."""

    def __init__(self) -> None:
        self.last: dict[str, str] = {}

    def __call__(self, record) -> None:
        self.last[record.instance] = record.dest

    def count(self) -> int:
        return sum(1 for state in self.last.values() if state != "deleted")


def traces(quick: bool) -> list[tuple[str, Dataset]]:
    out = [("builtin", generate_workload(duration_s=600 if quick else 1800))]
    if (TRACES / "dataSet_1").is_dir():
        out.append(("dataSet_1", load_dataset(TRACES / "dataSet_1")))
    else:
        print(f"skipping dataSet_1: {TRACES} is absent", file=sys.stderr)
    if (TRACES / "dataSet_3r").is_dir() and not quick:
        out.append(("dataSet_3r[0:15min]", load_dataset(TRACES / "dataSet_3r").slice(0, 900)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="builtin (10 min) and dataSet_1")
    parser.add_argument("--policy", default=DEFAULT_POLICY)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    header = (
        f"{'trace':<20} {'faults':<13} {'requests':>8} {'failed':>6} {'success %':>10} "
        f"{'leaked':>6} {'stuck':>5} {'injected':>8} {'score':>6} {'wall s':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, dataset in traces(args.quick):
        for label, spec in MATRIX.items():
            unfinished = Unfinished()
            journal = Journal()
            journal.attach(unfinished)
            started = time.perf_counter()
            run = run_fast(
                dataset, args.policy, faults=FaultSpec.parse(spec), seed=args.seed, journal=journal
            )
            t = run.totals
            score = official_score(
                t.execution_s, t.execution_gbs, t.schedule_s, t.idle_s, t.slot_gbs, t.success_rate
            )
            print(
                f"{name:<20} {label:<13} {t.total_requests:>8} {t.failed_requests:>6} "
                f"{100 * t.success_rate:>10.4f} {t.leaked_slots:>6} {unfinished.count():>5} "
                f"{sum(run.injected_faults.values()):>8} {score:>6.2f} "
                f"{time.perf_counter() - started:>6.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

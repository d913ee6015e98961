"""Fault matrix in fast mode: each platform fault alone and all together, seeded.

Every run must keep the challenge's success gate (99.95%), leak no slot (every slot the ledger
saw created is destroyed after the scaler shut down) and leave no instance short of `deleted`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler.policy import DEFAULT_POLICY
from scaler.states import Journal
from simulator.dataset import Dataset, load_dataset
from simulator.fast import run_fast
from simulator.faults import FAULT_MATRIX, FaultSpec
from simulator.workload import small_workload
from tests.invariants import TransitionChecker

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"


def check_run(dataset: Dataset, spec: str, seed: int = 1, policy: str = DEFAULT_POLICY) -> None:
    checker = TransitionChecker()
    journal = Journal()
    journal.attach(checker)
    faults = FaultSpec.parse(spec)
    run = run_fast(dataset, policy, faults=faults, seed=seed, journal=journal)
    totals = run.totals
    assert sum(run.injected_faults.values()) > 0, "no fault was injected"
    assert totals.success_rate >= 0.9995, (totals.failed_requests, run.first_failures[:3])
    assert totals.leaked_slots == 0
    assert checker.violations == []
    assert checker.unfinished() == {}, "instances left short of deleted"


@pytest.mark.parametrize("name", sorted(FAULT_MATRIX))
def test_generated_workload_survives(name: str) -> None:
    check_run(small_workload(seed=3, duration_s=300), FAULT_MATRIX[name])


def _trace(name: str) -> Dataset:
    if not (TRACES / name).is_dir():
        pytest.skip(f"{TRACES / name} is absent (the real traces live in ../shared/traces)")
    return load_dataset(TRACES / name)


@pytest.mark.parametrize("name", sorted(FAULT_MATRIX))
def test_dataset_1_survives(name: str) -> None:
    check_run(_trace("dataSet_1"), FAULT_MATRIX[name])


@pytest.mark.parametrize("name", sorted(FAULT_MATRIX))
def test_dataset_3r_15_minutes_survive(name: str) -> None:
    check_run(_trace("dataSet_3r").slice(0, 900), FAULT_MATRIX[name])

"""The one default latency model: every entry point (CLI, ``run_fast``, ``make bench``, every
bench module) charges the same, so a figure in docs/ means the same thing wherever it came from.

- CreateSlot takes 100 ms: what was reported for the challenge's simulator (the contract).
- Every RPC (Assign, Idle, CreateSlot, Init, DestroySlot) costs one loopback gRPC round trip,
  as wire mode and production pay it. The figure is the mean Idle latency wire mode measures
  against our scaler over loopback on dataSet_1's busy windows (an Idle does almost no work,
  so it is the round trip itself; docs/simulator.md, "Fast vs wire"), not a tuned value.

A table measured at another setting says so in its title.
"""

from __future__ import annotations

DEFAULT_CREATE_MS = 100.0
"""CreateSlot latency reported for the challenge simulator (ms)."""

DEFAULT_RPC_LATENCY_MS = 1.0
"""Charge per RPC round trip (ms): the mean loopback Idle latency of wire mode (see above)."""

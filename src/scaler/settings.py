"""The scheduler's own settings (policy knobs live in the policy); ``./scaler serve`` sets
them from its flags and SCALER_* variables (scaler.config)."""

from __future__ import annotations

import attrs


@attrs.frozen
class SchedulerSettings:
    """Knobs of the scheduler itself (policy knobs live in the policy)."""

    #: Longest an Assign waits for an instance before it is answered InternalError.
    assign_timeout_s: float = 600.0
    #: Extra cold starts a request gets after its own failed. Only failures the platform
    #: answered (an error Status) are retried: when it does not answer at all (unreachable,
    #: deadline) the Assign fails fast instead of piling up waits.
    cold_start_retries: int = 2
    #: Bound on the policy's patience: a request no starting instance covers gets a cold start
    #: after at most this long. A policy that never starts one cannot hold a request to its
    #: Assign deadline; 30 s is above any cold start seen in the traces (init ≤ 10 s).
    max_patience_s: float = 30.0
    #: How many finished request ids are at least remembered to name a duplicate Idle clearly
    #: (at most twice as many are kept: scaler/finished.py).
    remember_finished: int = 100_000
    #: Capped exponential back-off of DestroySlot retries.
    destroy_retry_first_s: float = 0.1
    destroy_retry_max_s: float = 5.0
    #: Pools with no instance are dropped after this long without a request.
    forget_quiet_pool_after_s: float = 3600.0
    #: Most functions tracked at once. Past it, pools without instances are forgotten
    #: (least recently used first); if every pool has instances, a new function is refused.
    max_functions: int = 50_000
    #: Prefix of instance ids (instance ids are "<prefix>-<n>").
    instance_prefix: str = "inst"

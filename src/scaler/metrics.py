"""Prometheus metrics (``--metrics-port``): read from the scheduler at scrape time.

Instance counts come straight from the pools' FSM-maintained indexes when Prometheus scrapes,
so the metrics keep no copy of any state. Only the RPC latency histograms are observed as
requests are served (at the servicer, the edge), and the policy's decision times as it decides
(the scheduler's ``GuardedPolicy`` meter): with the process' CPU seconds they are the scaler's
compute, which the simulator's wire mode reads back (``simulator/scrape.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from scaler.states import STATES

if TYPE_CHECKING:
    from scaler.platform import PlatformClient
    from scaler.scheduler import Scheduler

#: RPC latency buckets (seconds): sub-millisecond warm hits up to multi-second cold starts.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Policy decision buckets (seconds): a microsecond lookup up to a 0.5 s re-plan.
DECISION_BUCKETS = (
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
    0.1, 0.2, 0.5, 1.0,
)  # fmt: skip


class SchedulerCollector(Collector):
    """Exposes what the scheduler and platform client know, computed at scrape time."""

    def __init__(self, scheduler: Scheduler, platform: PlatformClient | None) -> None:
        self.scheduler = scheduler
        self.platform = platform

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        instances = GaugeMetricFamily(
            "scaler_instances",
            "Instances by function and lifecycle state",
            labels=["function", "state"],
        )
        for key, pool in list(self.scheduler.pools.items()):
            for state in STATES:
                count = pool.counts[state]
                if count:
                    instances.add_metric([key, state], count)
        yield instances
        waiting = GaugeMetricFamily("scaler_waiting_requests", "Assigns waiting for an instance")
        waiting.add_metric([], sum(len(p.waiters) for p in self.scheduler.pools.values()))
        yield waiting
        stats = self.scheduler.stats
        for name, help_text in (
            ("cold_starts", "Assigns served by a cold start (the request waited)"),
            ("warm_hits", "Assigns served at once by an idle instance"),
            ("cold_start_failures", "Cold starts that failed (CreateSlot or Init)"),
        ):
            counter = CounterMetricFamily(f"scaler_{name}", help_text)
            counter.add_metric([], stats[name])
            yield counter
        policy_errors = CounterMetricFamily(
            "scaler_policy_errors",
            "Policy calls that raised (the decision fell back to the sample scaler's)",
            labels=["decision"],
        )
        for decision, n in sorted(self.scheduler.decide.errors.items()):
            policy_errors.add_metric([decision], n)
        yield policy_errors
        dropped = CounterMetricFamily(
            "scaler_journal_dropped", "Transition records a failing log sink could not take"
        )
        dropped.add_metric([], self.scheduler.journal.dropped)
        yield dropped
        if self.platform is not None:
            errors = CounterMetricFamily(
                "scaler_platform_errors",
                "Failed platform calls by operation and kind",
                labels=["operation", "kind"],
            )
            for (op, kind), n in sorted(self.platform.errors.items()):
                errors.add_metric([op, kind], n)
            yield errors
            calls = CounterMetricFamily("scaler_platform_calls", "Platform calls, retries included")
            calls.add_metric([], self.platform.calls)
            yield calls
            retries = CounterMetricFamily("scaler_platform_retries", "Platform call retries")
            retries.add_metric([], self.platform.retries)
            yield retries


class Metrics:
    """The registry, the RPC latency histograms, and the scrape endpoint."""

    def __init__(self, scheduler: Scheduler, platform: PlatformClient | None = None) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(SchedulerCollector(scheduler, platform))
        self.latency = Histogram(
            "scaler_rpc_latency_seconds",
            "Scaler RPC latency as served (Assign includes any cold start it waited for)",
            labelnames=["rpc"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._assign = self.latency.labels("Assign")
        self._idle = self.latency.labels("Idle")
        self.decisions = Histogram(
            "scaler_policy_decision_seconds",
            "Time of each policy call (monotonic perf counter)",
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )
        self.longest_decision = Gauge(
            "scaler_policy_decision_max_seconds",
            "Longest policy call since the scaler started",
            registry=self.registry,
        )
        self._longest = 0.0
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total and memory

    def observe(self, rpc: str, seconds: float) -> None:
        (self._assign if rpc == "Assign" else self._idle).observe(seconds)

    def decision(self, name: str, seconds: float) -> None:
        """The scheduler's policy meter (``GuardedPolicy``): one decision took ``seconds``."""
        self.decisions.observe(seconds)
        if seconds > self._longest:
            self._longest = seconds
            self.longest_decision.set(seconds)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)

"""``scaler serve``: wire the scheduler to gRPC, the platform client and signals.

Shutdown on SIGTERM/SIGINT: refuse new Assigns, keep answering Idle while in-flight requests
finish (bounded), destroy every remaining slot, stop the server, exit 0 (1 if a slot could not
be destroyed).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
from loguru import logger

from scaler.clock import LoopClock
from scaler.config import Settings
from scaler.metrics import Metrics
from scaler.platform import Deadlines, PlatformClient
from scaler.policy import make_policy
from scaler.scheduler import Scheduler
from scaler.server import ScalerServicer
from scaler.settings import SchedulerSettings
from scaler.states import Journal
from scaler.wire import rpc

#: Largest message accepted or sent (requests are tiny; this stops a flood of huge ones).
MAX_MESSAGE_BYTES = 1 << 20
#: Concurrent HTTP/2 streams per client connection.
MAX_CONCURRENT_STREAMS = 4096


def configure_logging(level: str) -> None:
    logger.remove()
    logger.add(sys.stderr, level=level.upper(), enqueue=False, backtrace=False)


def build_journal(settings: Settings) -> Journal:
    journal = Journal()
    if settings.transition_log:
        journal.write_json_lines(settings.transition_log)
    if settings.log_level.upper() in ("TRACE", "DEBUG"):
        journal.log_with_loguru("DEBUG")
    return journal


class ScalerApp:
    """The running service: gRPC server, scheduler, platform channel, journal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = make_policy(settings.policy)
        if settings.gc_interval > 0:
            self.policy.gc_interval_s = settings.gc_interval
        self.journal = build_journal(settings)
        self.channel = grpc.aio.insecure_channel(
            settings.platform_address,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                # Reconnect within a second once the platform is back (gRPC's default back-off
                # grows to minutes, which would keep failing cold starts after an outage).
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )
        self.platform = PlatformClient(
            rpc.PlatformStub(self.channel),
            Deadlines(settings.create_deadline, settings.init_deadline, settings.destroy_deadline),
        )
        self.scheduler = Scheduler(
            self.platform,
            self.policy,
            LoopClock(asyncio.get_running_loop()),
            self.journal,
            SchedulerSettings(
                assign_timeout_s=settings.assign_timeout,
                cold_start_retries=settings.cold_start_retries,
            ),
        )
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
        )
        self.metrics: Metrics | None = None
        if settings.metrics_port:
            self.metrics = Metrics(self.scheduler, self.platform)
            self.scheduler.decide.meter = self.metrics.decision  # time every policy call
        observe = self.metrics.observe if self.metrics else None
        rpc.add_ScalerServicer_to_server(ScalerServicer(self.scheduler, observe), self.server)
        self.port = 0

    async def start(self) -> int:
        """Bind and start serving; return the bound port (0 when binding failed)."""
        self.port = self.server.add_insecure_port(self.settings.listen)
        if self.port == 0:
            return 0
        await self.server.start()
        self.scheduler.start_gc()
        if self.metrics is not None:
            self.metrics.serve(self.settings.metrics_port)
            logger.info("metrics on :{}/metrics", self.settings.metrics_port)
        logger.info(
            "scaler serving on {} (port {}, policy {}, platform {})",
            self.settings.listen,
            self.port,
            self.policy.name,
            self.settings.platform_address,
        )
        return self.port

    async def stop(self) -> list[str]:
        """Graceful stop; returns the slots that could not be destroyed."""
        logger.info("shutting down: refusing new Assigns, letting in-flight requests finish")
        # The server keeps answering Idle while busy instances drain; new Assigns are refused.
        lost = await self.scheduler.shutdown(
            grace_s=self.settings.shutdown_grace, destroy_wait_s=self.settings.destroy_wait
        )
        await self.server.stop(1.0)
        await self.channel.close()
        self.journal.close()
        logger.info("stopped: {} slot(s) left undestroyed", len(lost))
        return lost


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); return the process exit status."""
    app = ScalerApp(settings)
    if await app.start() == 0:
        logger.error("cannot listen on {}", settings.listen)
        return 2
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    lost = await app.stop()
    return 1 if lost else 0

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
from scaler.platform import Deadlines, PlatformClient
from scaler.policy import make_policy
from scaler.scheduler import Scheduler, SchedulerSettings
from scaler.server import ScalerServicer
from scaler.states import Journal
from scaler.wire import rpc

#: Largest message accepted or sent (requests are tiny; this stops a flood of huge ones).
MAX_MESSAGE_BYTES = 1 << 20


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


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); return the process exit status."""
    policy = make_policy(settings.policy)
    if settings.gc_interval > 0:
        policy.gc_interval_s = settings.gc_interval
    journal = build_journal(settings)
    channel = grpc.aio.insecure_channel(
        settings.platform_address,
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
    )
    platform = PlatformClient(
        rpc.PlatformStub(channel),
        Deadlines(settings.create_deadline, settings.init_deadline, settings.destroy_deadline),
    )
    scheduler = Scheduler(
        platform,
        policy,
        LoopClock(asyncio.get_running_loop()),
        journal,
        SchedulerSettings(assign_timeout_s=settings.assign_timeout),
    )
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
    )
    rpc.add_ScalerServicer_to_server(ScalerServicer(scheduler), server)
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        logger.error("cannot listen on {}", settings.listen)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    scheduler.start_gc()
    logger.info(
        "scaler serving on {} (policy {}, platform {})",
        settings.listen,
        policy.name,
        settings.platform_address,
    )
    if ready is not None:
        ready.set()
    await stop.wait()
    logger.info("shutting down: refusing new Assigns, letting in-flight requests finish")
    # The server keeps answering Idle while busy instances drain; new Assigns are refused.
    lost = await scheduler.shutdown(
        grace_s=settings.shutdown_grace, destroy_wait_s=settings.destroy_wait
    )
    await server.stop(1.0)
    await channel.close()
    journal.close()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    logger.info("stopped: {} slot(s) left undestroyed", len(lost))
    return 1 if lost else 0

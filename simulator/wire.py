"""Wire mode: our platform on gRPC, a scaler at an address, datasets replayed in real time.

The session follows the contract's choreography (``shared/docs/wire-contract.md``): the
Platform service listens (default ``127.0.0.1:50051``), the simulator waits, bounded, until the
scaler (default ``127.0.0.1:9001``) accepts, then opens the statistics port (default ``:9000``),
replays each dataset in turn, and closes the statistics port when the last one ends, which is
what makes the contract's ``run.sh`` stop the scaler. Any scaler that follows the contract
works, in any language; nothing here knows ours, except ``start_scaler``, which launches
``scaler serve`` as a subprocess and stops it with SIGTERM at the end, so that the slots it
failed to destroy can be counted (``leakedSlots``). ``scaler_cmd`` does the same for any
command (``simulator/scaler_process.py``), always after the platform listens.

A bad scaler cannot hold the session: every Assign and Idle has a deadline (a miss fails that
request), and a started scaler that dies ends the replay at once, its remaining requests
failed with the reason; every dataset still gets its record.

One platform and one ledger serve the whole session (a scaler keeps its instances from one
dataset to the next); each dataset is charged only for slot time inside its own run.
``speed`` divides trace time, and the platform's latencies with it; results are in trace time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import grpc

from scaler.policy import DEFAULT_POLICY
from scaler.wire import rpc
from simulator.dataset import Dataset
from simulator.faults import FaultSpec
from simulator.platform import LatencyModel, PlatformService
from simulator.replay import (
    DEFAULT_ASSIGN_DEADLINE_S,
    DEFAULT_IDLE_DEADLINE_S,
    GrpcTransport,
    Progress,
    Replayer,
)
from simulator.scaler_process import ScalerProcess, child_env, command_argv, our_scaler_argv
from simulator.score import RunTotals, build_record
from simulator.scrape import figures as compute_figures
from simulator.scrape import scrape
from simulator.stats_http import StatsServer, split_address
from simulator.timeline import Timeline

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: where ``scaler`` (src/) and ``simulator`` live."""

#: How often the progress callback is fed, wall seconds.
PROGRESS_TICK_S = 0.25


class WireError(RuntimeError):
    """The session could not start or finish: a port is taken, the scaler never answered."""


@attrs.frozen
class WireOptions:
    """Everything a wire-mode session needs besides the datasets."""

    scaler: str = "127.0.0.1:9001"
    platform_listen: str = "127.0.0.1:50051"
    stats_listen: str = "0.0.0.0:9000"
    speed: float = 1.0
    latency: LatencyModel = attrs.Factory(LatencyModel)
    faults: FaultSpec = attrs.Factory(FaultSpec)
    seed: int = 0
    connect_timeout_s: float = 30.0
    #: Bounds on one Assign / one Idle, wall seconds; a miss fails that request.
    assign_deadline_s: float = DEFAULT_ASSIGN_DEADLINE_S
    idle_deadline_s: float = DEFAULT_IDLE_DEADLINE_S
    start_scaler: bool = False
    policy: str = DEFAULT_POLICY
    #: Any scaler to start instead: a command with ``{listen}``, ``{port}``, ``{platform}``.
    scaler_cmd: str = ""
    #: Where the started scaler's output goes (when empty: a temporary file, removed if our
    #: scaler exits 0, always kept for ``scaler_cmd``).
    scaler_log: str = ""
    #: Passed to the started scaler as ``--transition-log``.
    transition_log: str = ""
    #: Bound on the started scaler's graceful shutdown before SIGKILL.
    stop_timeout_s: float = 60.0
    #: Without ``start_scaler``: keep the platform up this long after the stats port closed
    #: (or until no slot is left), so a scaler stopped by ``run.sh`` can destroy its slots.
    linger_s: float = 0.0


@attrs.define
class WireRun:
    """One dataset's replay: the same fields as fast mode's ``FastRun``, plus the timeline."""

    dataset: Dataset
    totals: RunTotals
    failures: dict[str, int]
    first_failures: list[str]
    platform_calls: dict[str, int]
    injected_faults: dict[str, int]
    timeline: Timeline | None = None
    scheduler_stats: dict[str, int] = attrs.Factory(dict)


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


def _free_port(host: str) -> int:
    """A port nobody listens on right now (for a scaler we start, when asked for port 0)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class WireSimulator:
    """A wire-mode session: ``await start()``, then ``await run(datasets)``, then ``close()``."""

    def __init__(self, options: WireOptions) -> None:
        self.options = options
        self.service = PlatformService(
            {}, options.latency, options.faults, options.seed, speed=options.speed
        )
        self.ledger = self.service.ledger
        self.stats = StatsServer(options.stats_listen, self.snapshot)
        self.platform_port = 0
        self.scaler_address = options.scaler
        self.scaler_exit: int | None = None
        #: Live slots when the linger ended (None when there was no linger).
        self.slots_after_linger: int | None = None
        self.scaler_log_path = ""
        #: Why the replay was cut short (the started scaler died), empty if it was not.
        self.aborted = ""
        self._server: grpc.aio.Server | None = None
        self._process: ScalerProcess | None = None
        #: The metrics port of our scaler when we started it (0: none; its compute is unknown).
        self._metrics_port = 0
        self._replayer: Replayer | None = None
        self._dataset: Dataset | None = None
        self._position = (0, 0)
        self._finished: list[dict[str, Any]] = []
        self._session_start = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> int:
        """Serve the Platform; return its port (useful with port 0)."""
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        rpc.add_PlatformServicer_to_server(self.service, server)
        address = self.options.platform_listen
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as err:
            port, detail = 0, f": {err}"
        else:
            detail = ""
        if port == 0:
            raise WireError(f"platform cannot listen on {address} (port in use?){detail}")
        await server.start()
        self._server = server
        self.platform_port = port
        return port

    async def close(self) -> None:
        """Close the stats port, stop a scaler we started, stop the platform. Idempotent."""
        await self.stats.close()
        await self._stop_scaler()
        server, self._server = self._server, None
        if server is not None:
            await server.stop(1.0)

    @property
    def platform_address(self) -> str:
        """Where a scaler should find the platform."""
        host, _ = split_address(self.options.platform_listen)
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"{'[' + host + ']' if ':' in host else host}:{self.platform_port}"

    # -- the session -------------------------------------------------------------------------
    async def run(
        self,
        datasets: Sequence[Dataset],
        *,
        timelines: bool = False,
        progress: Callable[[Dataset], Progress | None] | None = None,
        on_result: Callable[[WireRun], None] | None = None,
    ) -> list[WireRun]:
        """Replay ``datasets`` one after the other; ``on_result`` hears of each as it ends.

        With ``start_scaler`` the last result is announced after the scaler has stopped, so
        that its ``leaked_slots`` is known.
        """
        if self._server is None:
            await self.start()  # the platform listens before any scaler is started or dialled
        if self.options.start_scaler or self.options.scaler_cmd:
            await self._start_scaler()
        channel = grpc.aio.insecure_channel(
            self.scaler_address,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )
        runs: list[WireRun] = []
        try:
            await self._wait_for_scaler(channel)
            transport = GrpcTransport(
                rpc.ScalerStub(channel),
                assign_deadline_s=self.options.assign_deadline_s,
                idle_deadline_s=self.options.idle_deadline_s,
            )
            try:
                await self.stats.start()
            except OSError as err:
                raise WireError(
                    f"stats cannot listen on {self.options.stats_listen}: {err}"
                ) from None
            for index, dataset in enumerate(datasets, 1):
                self._position = (index, len(datasets))
                bar = progress(dataset) if progress else None
                run = await self._replay(dataset, transport, timelines, bar)
                runs.append(run)
                self._finished.append(build_record(dataset, run.totals, record_id=index))
                last = index == len(datasets)
                if on_result and not (last and self._process is not None):
                    on_result(run)
            await self.stats.close()
            if self._process is not None:
                await self._stop_scaler()
                if runs:
                    runs[-1].totals.leaked_slots = self.ledger.live_count
                    if on_result:
                        on_result(runs[-1])
            elif self.options.linger_s > 0:
                self.slots_after_linger = await self._linger(self.options.linger_s)
        finally:
            await self.stats.close()
            await channel.close()
            await self._stop_scaler()
        return runs

    async def _replay(
        self, dataset: Dataset, transport: GrpcTransport, timelines: bool, bar: Progress | None
    ) -> WireRun:
        self.service.metas.update(dataset.metas)
        calls = dict(self.service.calls)
        faults = dict(self.service.faults.injected)
        replayer = Replayer(
            dataset,
            transport,
            self.ledger,
            speed=self.options.speed,
            epoch_timestamps=True,
            timeline=Timeline.for_dataset(dataset) if timelines else None,
        )
        self._dataset, self._replayer = dataset, replayer
        before = await scrape(self._metrics_port) if self._metrics_port else None
        running = asyncio.ensure_future(replayer.run())
        ticker = asyncio.ensure_future(self._tick(replayer, bar)) if bar else None
        died = asyncio.ensure_future(self._process.wait()) if self._process else None
        try:
            if died is not None:
                await asyncio.wait({running, died}, return_when=asyncio.FIRST_COMPLETED)
                if not running.done():
                    self.aborted = f"scaler exited with status {died.result()}"
                    replayer.abort(self.aborted)
            totals = await running
            after = await scrape(self._metrics_port) if before is not None else None
            if before is not None and after is not None:
                totals.compute = compute_figures(before, after)
        finally:
            for task in (running, ticker, died):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        return WireRun(
            dataset=dataset,
            totals=totals,
            failures=dict(replayer.failures),
            first_failures=list(replayer.first_failures),
            platform_calls=_delta(self.service.calls, calls),
            injected_faults=_delta(self.service.faults.injected, faults),
            timeline=replayer.timeline,
        )

    async def _linger(self, seconds: float) -> int:
        """Serve the platform until no slot is alive or ``seconds`` pass; the slots left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.ledger.live_count and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return self.ledger.live_count

    @staticmethod
    async def _tick(replayer: Replayer, bar: Progress) -> None:
        total = len(replayer.dataset.requests)
        while True:
            await asyncio.sleep(PROGRESS_TICK_S)
            bar(replayer.done, total, replayer.elapsed_trace_s())

    async def _wait_for_scaler(self, channel: grpc.aio.Channel) -> None:
        """Until the scaler's channel is READY, at most ``connect_timeout_s``."""
        ready = asyncio.ensure_future(channel.channel_ready())
        waits: set[asyncio.Future[Any]] = {ready}
        died = asyncio.ensure_future(self._process.wait()) if self._process else None
        if died is not None:
            waits.add(died)
        timeout = self.options.connect_timeout_s
        done, pending = await asyncio.wait(
            waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for future in pending:
            future.cancel()
        if ready in done:
            return
        where = f"scaler at {self.scaler_address}"
        if died is not None and died in done:
            raise WireError(
                f"{where} exited with status {died.result()} before accepting connections"
                f"{self._log_hint()}"
            )
        raise WireError(
            f"{where} did not accept a connection within {timeout:g} s{self._log_hint()}"
        )

    # -- a scaler we start ---------------------------------------------------------------------
    async def _start_scaler(self) -> None:
        """Ours (``start_scaler``) or ``scaler_cmd``, at ``scaler`` (port 0: a free one)."""
        host, port = split_address(self.options.scaler)
        if port == 0:
            port = _free_port(host)
        host_text = f"[{host}]" if ":" in host else host
        self.scaler_address = f"{host_text}:{port}"
        o = self.options
        if o.scaler_cmd:
            argv = command_argv(o.scaler_cmd, self.scaler_address, self.platform_address)
            process = ScalerProcess(argv, log_path=o.scaler_log, keep_log=True)
        else:
            argv = our_scaler_argv(
                self.scaler_address, self.platform_address, o.policy, o.transition_log
            )
            self._metrics_port = _free_port("127.0.0.1")  # its compute, read around each dataset
            argv += ["--metrics-port", str(self._metrics_port)]
            env = child_env([str(ROOT / "src"), str(ROOT)])
            process = ScalerProcess(argv, env=env, cwd=ROOT, log_path=o.scaler_log, keep_log=False)
        try:
            await process.start()
        except OSError as err:
            raise WireError(str(err)) from None
        self._process = process
        self.scaler_log_path = process.log_path

    async def _stop_scaler(self) -> None:
        """SIGTERM, a bounded wait for its graceful shutdown, then SIGKILL."""
        process, self._process = self._process, None
        if process is None:
            return
        self.scaler_exit = await process.stop(self.options.stop_timeout_s)
        self.scaler_log_path = process.log_path

    def _log_hint(self) -> str:
        return self._process.hint() if self._process is not None else ""

    # -- statistics --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The live counters served on the stats port."""
        index, count = self._position
        stats: dict[str, Any] = {
            "datasetIndex": index,
            "datasetCount": count,
            "speed": self.options.speed,
            "wallSecs": round(time.monotonic() - self._session_start, 3),
            "liveSlots": self.ledger.live_count,
            "platformCalls": dict(self.service.calls),
        }
        replayer, dataset = self._replayer, self._dataset
        if replayer is not None and dataset is not None:
            t = replayer.totals
            stats.update(
                dataset=dataset.name,
                requestsDone=replayer.done,
                requestsTotal=len(dataset.requests),
                failedRequests=t.failed_requests,
                inFlight=replayer.in_flight,
                peakInFlight=replayer.peak_in_flight,
                elapsedTraceSecs=round(replayer.elapsed_trace_s(), 3),
                coldStarts=t.cold_starts,
                warmHits=t.warm_hits,
            )
        stats["finished"] = self._finished
        return stats


async def run_wire(
    datasets: Sequence[Dataset],
    options: WireOptions,
    *,
    timelines: bool = False,
    progress: Callable[[Dataset], Progress | None] | None = None,
    on_result: Callable[[WireRun], None] | None = None,
) -> tuple[list[WireRun], WireSimulator]:
    """A whole session; SIGTERM ends it cleanly (stats closed, our scaler stopped)."""
    simulator = WireSimulator(options)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        runs = await simulator.run(
            datasets, timelines=timelines, progress=progress, on_result=on_result
        )
    finally:
        await simulator.close()
        if task is not None:
            loop.remove_signal_handler(signal.SIGTERM)
    return runs, simulator

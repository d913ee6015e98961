"""The processes under test: a zero-latency Platform and the real scaler, each on its own.

The scaler runs as ``./scaler serve`` in a child process, as in production, so the load
generator does not share its interpreter (or its GIL). The Platform is the simulator's own
servicer with ``create_ms=0`` in a third process; after warm-up it is idle (warm hits never
reach it). Both bind 127.0.0.1 only, on ephemeral ports, and both stop by themselves: the
platform after ``lifetime_s``, the scaler when :meth:`ScalerProcess.stop` (or the ``with``
block's exit) sends SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from bench import ROOT

#: How long a helper process may live at most, whatever happens to its parent.
DEFAULT_LIFETIME_S = 3600.0


def bench_metas(keys: list[str], init_ms: int = 1, memory_mb: int = 128) -> dict[str, Any]:
    """FunctionMeta objects for the benchmark's functions (small init so cold starts are quick)."""
    from simulator.dataset import FunctionMeta

    return {
        key: FunctionMeta(
            key=key, runtime="python3", memory_mb=memory_mb, timeout_s=60, init_duration_ms=init_ms
        )
        for key in keys
    }


def function_keys(n: int, prefix: str = "fn") -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(n)]


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago (the scaler binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- platform -----------------------------------------------------------------------------------
def _platform_main(
    keys: list[str],
    port_queue: Any,
    stop: Any,
    lifetime_s: float,
    create_ms: float = 0.0,
    init_ms: int = 1,
) -> None:
    """Child process: serve PlatformService on 127.0.0.1:0 until ``stop`` or the lifetime ends."""
    from scaler.wire import rpc
    from simulator.platform import LatencyModel, PlatformService

    async def main() -> None:
        service = PlatformService(bench_metas(keys, init_ms), LatencyModel(create_ms=create_ms))
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        rpc.add_PlatformServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        port_queue.put(port)
        await asyncio.to_thread(stop.wait, lifetime_s)
        port_queue.put(dict(service.calls))
        await server.stop(0.5)

    asyncio.run(main())


class PlatformProcess:
    """A Platform server in a spawned child; ``address`` is where it listens. CreateSlot takes
    ``create_ms`` and Init ``init_ms`` (zero-cost by default: the benchmark measures the scaler)."""

    def __init__(
        self,
        keys: list[str],
        lifetime_s: float = DEFAULT_LIFETIME_S,
        *,
        create_ms: float = 0.0,
        init_ms: int = 1,
    ) -> None:
        ctx = mp.get_context("spawn")
        self._queue = ctx.Queue()
        self._stop = ctx.Event()
        self.process = ctx.Process(
            target=_platform_main,
            args=(keys, self._queue, self._stop, lifetime_s, create_ms, init_ms),
            name="bench-platform",
            daemon=True,
        )
        self.address = ""
        self.calls: dict[str, int] = {}

    def __enter__(self) -> PlatformProcess:
        self.process.start()
        port = self._queue.get(timeout=60)
        self.address = f"127.0.0.1:{port}"
        return self

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self.calls = self._queue.get(timeout=10)
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# -- scaler -------------------------------------------------------------------------------------
class ScalerProcess:
    """``./scaler serve`` on an ephemeral 127.0.0.1 port, optionally under cProfile.

    ``command`` replaces ``./scaler`` (the ``serve ...`` arguments follow it), to compare a
    wrapper or another build of the CLI under the same load.
    """

    def __init__(
        self,
        platform_address: str,
        log_path: Path,
        profile_path: Path | None = None,
        extra_args: list[str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        serve = [
            "serve",
            "--listen",
            self.address,
            "--platform-address",
            platform_address,
            "--log-level",
            "WARNING",
            "--shutdown-grace",
            "2",
            "--destroy-wait",
            "10",
            *(extra_args or []),
        ]
        if command:  # another launcher of the same CLI (a wrapper, another build)
            self.argv = [*command, *serve]
        elif profile_path is None:
            self.argv = [str(ROOT / "scaler"), *serve]
        else:
            py = ROOT / ".venv" / "bin" / "python"
            python = str(py) if py.exists() else sys.executable
            self.argv = [python, "-m", "cProfile", "-o", str(profile_path), "-m", "scaler", *serve]
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_status: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    def __enter__(self) -> ScalerProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
        log.close()
        self._wait_ready(timeout_s=30.0)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.address) as channel:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"scaler exited with {self.process.returncode} before serving; "
                        f"see {self.log_path}"
                    )
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    return
                except grpc.FutureTimeoutError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"scaler not serving after {timeout_s} s; see {self.log_path}"
                        ) from None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (the scaler destroys its slots and exits), SIGKILL after ``timeout_s``."""
        if self.process is None or self.exit_status is not None:
            return self.exit_status
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_status = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.exit_status = self.process.wait(5)
        return self.exit_status

    def __exit__(self, *exc: object) -> None:
        self.stop()

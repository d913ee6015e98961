"""Ray for sharded replays and sweeps: a local Ray started for the run, or a cluster.

With no address, :func:`ray_session` starts a private local Ray (``address="local"``: never
one that another user of the machine started) with no dashboard, sized to this machine's
cores, and shuts it down at the end; nothing is needed beyond ``make build``. With an address
(``--ray-address HOST:PORT`` or ``ray://HOST:10001``) it joins that cluster and ships the
``scaler`` and ``simulator`` packages to it (``runtime_env`` ``py_modules``); the cluster's
Python must have ``requirements.txt`` installed. When Ray is already initialised in this
process (a test's session, a caller's own ``ray.init``), it is used as it is and left running.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (ROOT / "src" / "scaler", ROOT / "simulator", ROOT / "bench")
"""What a worker imports: the scaler (fast mode runs it), the simulator, the benchmarks."""

OBJECT_STORE_BYTES = 512 * 1024 * 1024
"""A local Ray's object store: tasks take a source spec and return totals and latencies (a few
MB per million requests), so Ray's default of 30 % of the machine's memory only takes RAM away
from the workers."""


def _local_path() -> str:
    """PYTHONPATH for local workers: they inherit the driver's environment, not its sys.path."""
    parts = [str(ROOT / "src"), str(ROOT)]
    parts += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(parts))


def start(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Initialise Ray (see the module docstring); True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"log_to_driver": False, "ignore_reinit_error": True}
    if address:
        runtime_env = {"py_modules": [str(p) for p in PACKAGES]}
        ray.init(address=address, runtime_env=runtime_env, **common)
    else:
        os.environ["PYTHONPATH"] = _local_path()
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            **common,
        )
    return True


def cpus() -> int:
    """CPUs of the Ray cluster this process is attached to."""
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of a ``with`` block; shut down after it if this block started it."""
    started = start(address, num_cpus)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()

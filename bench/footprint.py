"""Memory of many idle instances, and the CPU cost of one instance FSM, in-process.

RSS: a real :class:`Scheduler` over the simulator's PlatformService through the in-process
stub (zero create/init latency), on an ordinary asyncio loop. Each function gets ``per``
concurrent Assigns, so it cold-starts ``per`` instances; every request then Idles and all
instances stay idle (the reference keep-alive is 5 minutes, and no expiry pass runs). Run it
in a fresh process (``python -m bench.footprint rss``) so ``ru_maxrss`` is this fill's peak.
The platform's ledger lives in the same process; ``--trace`` attributes allocations to
packages with tracemalloc (slower, separate run) to split the scaler's share from it.

FSM: ``Instance(...)`` creation with a ManualClock and an empty Journal, with the shared
Machine holding few models and then 10,000; and an assign/release pair of events.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time
import tracemalloc
from typing import Any

import bench  # noqa: F401  (src/ on sys.path when run as a script)
from bench.stats import proc_status_kb


def _rss_kb() -> int:
    return proc_status_kb("self", "VmRSS") or 0


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


async def _fill(instances: int, functions: int) -> dict[str, Any]:
    from bench.procs import bench_metas, function_keys
    from scaler.answers import RunResult
    from scaler.clock import LoopClock
    from scaler.platform import PlatformClient
    from scaler.policy import make_policy
    from scaler.scheduler import Scheduler
    from scaler.states import IDLE, FunctionSpec, Journal
    from simulator.platform import InProcessPlatformStub, LatencyModel, PlatformService

    keys = function_keys(functions)
    per = max(1, instances // functions)
    service = PlatformService(bench_metas(keys, init_ms=0), LatencyModel(create_ms=0.0))
    scheduler = Scheduler(
        PlatformClient(InProcessPlatformStub(service)),
        make_policy("reference"),
        LoopClock(asyncio.get_running_loop()),
        Journal(),
    )
    specs = [FunctionSpec(key=k, memory_mb=128, runtime="python3", timeout_s=60) for k in keys]
    gc.collect()
    before_kb, before_max_kb = _rss_kb(), _maxrss_kb()
    started = time.perf_counter()
    done = RunResult(status_code=200, duration_ms=1)
    for f, spec in enumerate(specs):
        assigned = await asyncio.gather(*(scheduler.assign(f"r{f}-{j}", spec) for j in range(per)))
        for a in assigned:
            await scheduler.idle(a.request_id, a.key, a.instance_id, done)
    fill_s = time.perf_counter() - started
    gc.collect()
    after_kb = _rss_kb()
    t0 = time.perf_counter()
    gc.collect()  # what a full (generation 2) pass costs the event loop with this many objects
    full_gc_ms = (time.perf_counter() - t0) * 1e3
    counts = scheduler.counts()
    created = len(scheduler.instances)
    if counts.get(IDLE, 0) != created:
        raise RuntimeError(f"expected every instance idle, got {counts}")
    delta = (after_kb - before_kb) * 1024
    return {
        "instances": created,
        "functions": functions,
        "idle": counts.get(IDLE, 0),
        "fill_s": round(fill_s, 2),
        "rss_before_mb": round(before_kb / 1024, 1),
        "rss_after_mb": round(after_kb / 1024, 1),
        "delta_mb": round(delta / 2**20, 1),
        "peak_rss_mb": round(max(_maxrss_kb(), before_max_kb) / 1024, 1),
        "bytes_per_instance": round(delta / created) if created else None,
        "platform_slots": service.ledger.live_count,
        "full_gc_ms": round(full_gc_ms, 1),
        "gc_tracked_objects": len(gc.get_objects()),
    }


def measure_rss(instances: int = 10_000, functions: int = 1_000) -> dict[str, Any]:
    """Fill a scheduler with idle instances in this process; peak and delta RSS."""
    return asyncio.run(_fill(instances, functions))


def _package(filename: str) -> str:
    for marker, name in (
        (os.sep + "scaler" + os.sep, "scaler"),
        (os.sep + "simulator" + os.sep, "simulator (ledger, platform)"),
        (os.sep + "transitions" + os.sep, "transitions"),
        (os.sep + "asyncio" + os.sep, "asyncio"),
        (os.sep + "attr" + os.sep, "attrs"),
    ):
        if marker in filename:
            return name
    return "other"


def trace_allocations(instances: int = 10_000, functions: int = 1_000) -> dict[str, Any]:
    """Bytes still allocated after the fill, by the package that allocated them."""
    tracemalloc.start(1)
    result = asyncio.run(_fill(instances, functions))
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    by_package: dict[str, int] = {}
    for stat in snapshot.statistics("filename"):
        name = _package(stat.traceback[0].filename)
        by_package[name] = by_package.get(name, 0) + stat.size
    n = result["instances"] or 1
    return {
        "instances": result["instances"],
        "bytes_per_instance_by_package": {
            k: round(v / n) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])
        },
        "note": "live allocations after the fill, by allocating file (tracemalloc depth 1)",
    }


# -- FSM cost -----------------------------------------------------------------------------------
def fsm_cost(batch: int = 2_000, repeat: int = 5, live: int = 10_000) -> dict[str, Any]:
    """µs per ``Instance(...)`` (few and ``live`` models on the Machine) and per assign+release."""
    from scaler.clock import ManualClock
    from scaler.states import FunctionSpec, Instance, Journal
    from scaler.states.instance import MACHINE

    clock, journal = ManualClock(), Journal()
    spec = FunctionSpec(key="fn-fsm", memory_mb=128)
    serial = iter(range(10**9))

    def create_us() -> float:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            made = [Instance(f"fsm-{next(serial)}", spec, clock, journal) for _ in range(batch)]
            best = min(best, (time.perf_counter() - t0) / batch * 1e6)
            for inst in made:  # new -> creating -> deleted: each instance's whole short life
                inst.fire("create", "bench")
                inst.fire("slot_failed", "bench cleanup")
        return best

    baseline_models = len(MACHINE.models)
    empty_us = create_us()
    resident = [Instance(f"fsm-live-{i}", spec, clock, journal) for i in range(live)]
    loaded_us = create_us()
    for inst in resident:
        inst.fire("create", "bench")
        inst.fire("slot_failed", "bench cleanup")
    del resident

    inst = Instance("fsm-pair", spec, clock, journal)
    inst.fire("create", "bench")
    inst.fire("slot_created", "bench", slot_id="slot-fsm")
    inst.fire("init_succeeded", "bench")
    pairs = batch * 5
    best_pair = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(pairs):
            inst.fire("assign", "warm hit", request=f"r{i}")
            inst.fire("release", "finished with status 200", request=f"r{i}")
        best_pair = min(best_pair, (time.perf_counter() - t0) / pairs * 1e6)
    inst.fire("expire", "bench cleanup")
    inst.fire("destroyed", "bench cleanup")
    return {
        "create_us": round(empty_us, 2),
        "create_us_loaded": round(loaded_us, 2),
        "loaded_models": live,
        "assign_release_pair_us": round(best_pair, 2),
        "machine_models_before": baseline_models,
        "method": f"best of {repeat} batches of {batch} (pairs: {pairs}); ManualClock, "
        "empty Journal, no listener",
    }


def scheduler_pair_cost(pairs: int = 20_000, repeat: int = 3) -> dict[str, Any]:
    """µs per warm-hit Assign+Idle through the servicer in-process (no gRPC): the scaler's
    own share of a pair, to set against the gRPC path's CPU per pair."""
    from bench.procs import bench_metas
    from scaler.clock import LoopClock
    from scaler.platform import PlatformClient
    from scaler.policy import make_policy
    from scaler.scheduler import Scheduler
    from scaler.server import ScalerServicer
    from scaler.states import Journal
    from scaler.wire import pb
    from simulator.platform import InProcessPlatformStub, LatencyModel, PlatformService

    async def run() -> float:
        service = PlatformService(bench_metas(["fn-pair"], init_ms=0), LatencyModel(0.0))
        scheduler = Scheduler(
            PlatformClient(InProcessPlatformStub(service)),
            make_policy("reference"),
            LoopClock(asyncio.get_running_loop()),
            Journal(),
        )
        servicer = ScalerServicer(scheduler)
        meta = pb.Meta(key="fn-pair", runtime="python3", timeout_in_secs=60, memory_in_mb=128)
        result = pb.Result(status_code=200, duration_in_ms=1)
        serial = iter(range(10**9))

        async def one() -> None:
            reply = await servicer.Assign(
                pb.AssignRequest(request_id=f"p{next(serial)}", timestamp=1, meta_data=meta)
            )
            idle = await servicer.Idle(pb.IdleRequest(assigment=reply.assigment, result=result))
            assert reply.status == pb.Ok and idle.status == pb.Ok

        await one()  # the cold start
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(pairs):
                await one()
            best = min(best, (time.perf_counter() - t0) / pairs * 1e6)
        await scheduler.shutdown(grace_s=1.0, destroy_wait_s=5.0)
        return best

    return {"servicer_pair_us": round(asyncio.run(run()), 2), "pairs": pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["rss", "trace", "fsm"])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--functions", type=int, default=1_000)
    parser.add_argument("--fsm-batch", type=int, default=2_000)
    parser.add_argument("--fsm-live", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.what == "rss":
        out = measure_rss(args.instances, args.functions)
    elif args.what == "trace":
        out = trace_allocations(args.instances, args.functions)
    else:
        out = {
            **fsm_cost(batch=args.fsm_batch, live=args.fsm_live),
            **scheduler_pair_cost(pairs=args.fsm_batch * 10),
        }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Open-loop Assign+Idle load over loopback gRPC, from one or more generator processes.

Each pair is its own task, launched at its scheduled time whatever happened to earlier pairs
(open loop: a slow scaler cannot slow the offered rate down, it only sees the queue grow).
A pair is Assign for function ``keys[n % K]``, then Idle on the instance it got. Pairs of one
function may overlap, so the scaler cold-starts extra instances during the unmeasured warm-up;
in the measured window nearly all pairs are warm hits (``new_instances`` counts the others).

Latencies are measured send→answer per RPC; ``lag`` is how late the generator sent a pair
compared with its schedule (a generator short of CPU shows up here, not as scaler latency).
Everything is bounded: a fixed number of pairs, an RPC deadline, a cap on pairs in flight
(beyond it pairs are shed and counted as errors) and a bounded drain.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import threading
import time
from collections import Counter
from typing import Any

import attrs
import grpc

from bench.stats import CpuWindow, self_cpu, summary


@attrs.frozen
class LoadSpec:
    """What one generator process offers."""

    target: str
    rate: float  # pairs per second from this generator
    warmup_s: float
    duration_s: float
    keys: tuple[str, ...]
    prefix: str  # request-id prefix, unique per step and generator
    rpc_timeout_s: float = 5.0
    max_inflight: int = 4000
    memory_mb: int = 128


class _Recorder:
    """Per-generator results of the measured window (plain lists: cheap to pickle and merge)."""

    def __init__(self) -> None:
        self.assign_ms: list[float] = []
        self.idle_ms: list[float] = []
        self.pair_ms: list[float] = []
        self.lag_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.warmup_errors: Counter[str] = Counter()
        self.first_errors: list[str] = []
        self.new_instances = 0
        self.last_done = 0.0

    def error(self, measured: bool, kind: str, message: str) -> None:
        (self.errors if measured else self.warmup_errors)[kind] += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(f"{kind}: {message}")


async def _generate(spec: LoadSpec, barrier: Any) -> dict[str, Any]:
    from scaler.wire import pb, rpc

    loop = asyncio.get_running_loop()
    channel = grpc.aio.insecure_channel(spec.target)
    await asyncio.wait_for(channel.channel_ready(), 30.0)
    stub = rpc.ScalerStub(channel)
    assign_rpc, idle_rpc = stub.Assign, stub.Idle
    metas = [
        pb.Meta(key=k, runtime="python3", timeout_in_secs=60, memory_in_mb=spec.memory_mb)
        for k in spec.keys
    ]
    ok_status, timeout = pb.Ok, spec.rpc_timeout_s
    result_ok = pb.Result(status_code=200, duration_in_ms=0)
    rec = _Recorder()
    seen: set[str] = set()
    window = [float("inf"), float("inf")]
    perf = time.perf_counter

    async def pair(n: int, intended: float) -> None:
        measured = window[0] <= intended < window[1]
        request = pb.AssignRequest(
            request_id=f"{spec.prefix}-{n}",
            timestamp=int(time.time() * 1000),
            meta_data=metas[n % len(metas)],
        )
        t0 = perf()
        try:
            reply = await assign_rpc(request, timeout=timeout)
        except grpc.RpcError as err:
            rec.error(measured, f"Assign gRPC {err.code().name}", str(err.details()))
            return
        t1 = perf()
        if reply.status != ok_status:
            rec.error(measured, f"Assign {pb.Status.Name(reply.status)}", reply.error_message)
            return
        instance = reply.assigment.instance_id
        new = instance not in seen
        if new:
            seen.add(instance)
        try:
            ireply = await idle_rpc(
                pb.IdleRequest(assigment=reply.assigment, result=result_ok), timeout=timeout
            )
        except grpc.RpcError as err:
            rec.error(measured, f"Idle gRPC {err.code().name}", str(err.details()))
            return
        t2 = perf()
        if ireply.status != ok_status:
            rec.error(measured, f"Idle {pb.Status.Name(ireply.status)}", ireply.error_message)
            return
        if measured:
            rec.assign_ms.append((t1 - t0) * 1e3)
            rec.idle_ms.append((t2 - t1) * 1e3)
            rec.pair_ms.append((t2 - t0) * 1e3)
            rec.lag_ms.append((t0 - intended) * 1e3)
            rec.new_instances += new
            rec.last_done = max(rec.last_done, t2)

    # Prime: one pair per function, one at a time, so every function has a warm instance.
    for i in range(len(metas)):
        await pair(-1 - i, float("-inf"))
    if barrier is not None:
        await asyncio.to_thread(barrier.wait, 120.0)

    cpu0 = self_cpu()
    start = perf()
    window[0] = start + spec.warmup_s
    window[1] = window[0] + spec.duration_s
    total = round(spec.rate * (spec.warmup_s + spec.duration_s))
    inflight: set[asyncio.Task[None]] = set()
    shed = 0
    n = 0
    while n < total:
        due = min(total, int((perf() - start) * spec.rate) + 1)
        while n < due:
            intended = start + n / spec.rate
            if len(inflight) >= spec.max_inflight:
                shed += 1
                rec.error(window[0] <= intended < window[1], "shed", "too many pairs in flight")
            else:
                task = loop.create_task(pair(n, intended))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            n += 1
        await asyncio.sleep(max(0.0, start + n / spec.rate - perf()))
    unfinished = 0
    if inflight:
        _, pending = await asyncio.wait(set(inflight), timeout=spec.rpc_timeout_s + 2.0)
        for task in pending:
            task.cancel()
        unfinished = len(pending)
        if unfinished:
            rec.errors["unfinished"] += unfinished
    cpu = self_cpu() - cpu0
    await channel.close()
    return {
        "assign_ms": rec.assign_ms,
        "idle_ms": rec.idle_ms,
        "pair_ms": rec.pair_ms,
        "lag_ms": rec.lag_ms,
        "errors": dict(rec.errors),
        "warmup_errors": dict(rec.warmup_errors),
        "first_errors": rec.first_errors,
        "new_instances": rec.new_instances,
        "sent": total - shed,
        "span_s": max(rec.last_done, window[1]) - window[0],
        "cpu_s": cpu,
    }


def _worker(spec: LoadSpec, barrier: Any, results: Any, index: int) -> None:
    """Generator process entry point: run the load and send the raw results back."""
    try:
        out = asyncio.run(_generate(spec, barrier))
    except BaseException as err:  # report, never hang the parent
        out = {"fatal": f"{type(err).__name__}: {err}"}
        if barrier is not None:
            barrier.abort()
    results.put((index, out))


def run_step(
    target: str,
    rate: float,
    duration_s: float,
    warmup_s: float,
    keys: list[str],
    generators: int,
    step_id: str,
    pids: dict[str, int],
    rpc_timeout_s: float = 5.0,
    max_inflight: int = 4000,
) -> dict[str, Any]:
    """Offer ``rate`` pairs/s for ``warmup_s + duration_s`` from ``generators`` processes.

    Functions are split between generators (no two share one), so each can tell a warm hit
    from a new instance. Returns merged percentiles, the achieved rate, errors and CPU shares.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(generators + 1)
    results = ctx.Queue()
    procs = []
    for i in range(generators):
        spec = LoadSpec(
            target=target,
            rate=rate / generators,
            warmup_s=warmup_s,
            duration_s=duration_s,
            keys=tuple(keys[i::generators]),
            prefix=f"{step_id}g{i}",
            rpc_timeout_s=rpc_timeout_s,
            max_inflight=max_inflight,
        )
        proc = ctx.Process(
            target=_worker, args=(spec, barrier, results, i), name=f"bench-gen-{i}", daemon=True
        )
        proc.start()
        procs.append(proc)
    cpu = CpuWindow(pids)
    cpu.exclude.update(proc.pid for proc in procs if proc.pid)
    try:
        barrier.wait(180.0)
        cpu.start()
    except threading.BrokenBarrierError:
        pass
    raw: list[dict[str, Any]] = []
    wait_s = warmup_s + duration_s + rpc_timeout_s + 120.0
    for _ in procs:
        raw.append(results.get(timeout=wait_s)[1])
    cpu_share = cpu.stop({"generators": sum(r.get("cpu_s", 0.0) for r in raw)})
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    fatal = [r["fatal"] for r in raw if "fatal" in r]
    if fatal:
        raise RuntimeError(f"load generator failed: {fatal}")
    return _merge(raw, rate, duration_s, warmup_s, generators, cpu_share)


def _merge(
    raw: list[dict[str, Any]],
    rate: float,
    duration_s: float,
    warmup_s: float,
    generators: int,
    cpu_share: dict[str, float],
) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    warmup_errors: Counter[str] = Counter()
    merged: dict[str, list[float]] = {"assign_ms": [], "idle_ms": [], "pair_ms": [], "lag_ms": []}
    for r in raw:
        errors.update(r["errors"])
        warmup_errors.update(r["warmup_errors"])
        for name, values in merged.items():
            values.extend(r[name])
    ok = len(merged["pair_ms"])
    span = max(r["span_s"] for r in raw)
    return {
        "offered": rate,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "generators": generators,
        "pairs_ok": ok,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "warmup_errors": sum(warmup_errors.values()),
        "first_errors": [e for r in raw for e in r["first_errors"]][:5],
        "achieved": round(ok / span, 1) if span > 0 else 0.0,
        "new_instances": sum(r["new_instances"] for r in raw),
        **{name: summary(values) for name, values in merged.items()},
        "cpu": cpu_share,
    }


async def _prefill(target: str, keys: list[str], per: int, rpc_timeout_s: float) -> dict[str, Any]:
    from scaler.wire import pb, rpc

    started = time.perf_counter()
    errors: Counter[str] = Counter()
    seen: set[str] = set()
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30.0)
        stub = rpc.ScalerStub(channel)
        result = pb.Result(status_code=200, duration_in_ms=1)
        for k, key in enumerate(keys):
            meta = pb.Meta(key=key, runtime="python3", timeout_in_secs=60, memory_in_mb=128)
            replies = await asyncio.gather(
                *(
                    stub.Assign(
                        pb.AssignRequest(request_id=f"fill-{k}-{j}", timestamp=1, meta_data=meta),
                        timeout=rpc_timeout_s,
                    )
                    for j in range(per)
                ),
                return_exceptions=True,
            )
            for reply in replies:
                if isinstance(reply, BaseException) or reply.status != pb.Ok:
                    errors["Assign"] += 1
                    continue
                seen.add(reply.assigment.instance_id)
                idle = await stub.Idle(
                    pb.IdleRequest(assigment=reply.assigment, result=result), timeout=rpc_timeout_s
                )
                if idle.status != pb.Ok:
                    errors["Idle"] += 1
    return {
        "instances": len(seen),
        "functions": len(keys),
        "seconds": round(time.perf_counter() - started, 2),
        "errors": dict(errors),
    }


def prefill(target: str, keys: list[str], per: int, rpc_timeout_s: float = 30.0) -> dict[str, Any]:
    """Leave ``per`` idle instances of each function in the scaler: ``per`` concurrent Assigns
    per function (each cold-starts one), then an Idle for each. Runs in the calling process."""
    return asyncio.run(_prefill(target, keys, per, rpc_timeout_s))

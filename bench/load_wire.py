"""`make bench-load`: wire mode over loopback at 2,000 requests/s for 60 s (short executions).

Starts `./scaler serve` as its own process, replays a generated constant-rate workload against
it with `./scaler simulate --mode wire` (a second process), samples the scaler's CPU and RSS
from /proc once a second, then stops the scaler with SIGTERM and reports: failed requests,
Assign and Idle latency p50/p99, scaler CPU (cores) and peak RSS, shutdown status and time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from simulator.dataset import Dataset, FunctionMeta, Request, write_dataset

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-out"
TICKS = os.sysconf("SC_CLK_TCK")


def constant_rate_workload(rate: float, seconds: float, functions: int, seed: int) -> Dataset:
    """``rate`` requests/s spread over ``functions`` keys, 5-30 ms executions."""
    rng = random.Random(seed)
    metas = {
        f"load-{i:03d}": FunctionMeta(
            f"load-{i:03d}", "python", rng.choice([128, 256, 512]), 60, rng.randint(20, 200)
        )
        for i in range(functions)
    }
    keys = sorted(metas)
    start = 1_700_000_000_000
    total = int(rate * seconds)
    requests = [
        Request(start + int(i * 1000 / rate), rng.choice(keys), rng.randint(5, 30), 200)
        for i in range(total)
    ]
    return Dataset(f"load-{int(rate)}rps-{int(seconds)}s", "", "", metas, requests)


def wait_for_port(port: int, *, opened: bool, deadline: float) -> None:
    """Poll once every 0.2 s until 127.0.0.1:port accepts (or refuses) connections."""
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if (sock.connect_ex(("127.0.0.1", port)) == 0) == opened:
                return
        time.sleep(0.2)
    raise TimeoutError(f"port {port} never {'opened' if opened else 'closed'}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcSampler(threading.Thread):
    """Samples a process's CPU seconds and RSS once a second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.peak_rss_mb = 0.0
        self.cpu_start = self.cpu_s()
        self.wall_start = time.monotonic()

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                self.peak_rss_mb = max(self.peak_rss_mb, self.rss_mb())
                self.cpu_end, self.wall_end = self.cpu_s(), time.monotonic()
            except (FileNotFoundError, ProcessLookupError):
                return

    def cores(self) -> float:
        return (self.cpu_end - self.cpu_start) / max(1e-9, self.wall_end - self.wall_start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--functions", type=int, default=100)
    parser.add_argument("--policy", default=None, help="default: the scaler's default policy")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    dataset = constant_rate_workload(args.rate, args.seconds, args.functions, args.seed)
    folder = OUT / "load-dataset"
    write_dataset(dataset, folder)
    scaler_port, platform_port, stats_port = free_port(), free_port(), free_port()
    serve = [str(ROOT / "scaler"), "serve", "--listen", f"127.0.0.1:{scaler_port}"]
    serve += ["--platform-address", f"127.0.0.1:{platform_port}", "--log-level", "WARNING"]
    if args.policy:
        serve += ["--policy", args.policy]
    scaler_log = open(OUT / "load-scaler.log", "wb")  # noqa: SIM115 (the child writes it)
    scaler = subprocess.Popen(serve, stderr=scaler_log, stdout=scaler_log)
    sampler = ProcSampler(scaler.pid)
    sampler.start()
    simulate = [str(ROOT / "scaler"), "simulate", str(folder), "--mode", "wire", "--json"]
    simulate += ["--scaler", f"127.0.0.1:{scaler_port}", "--linger", "5"]
    simulate += ["--platform-listen", f"127.0.0.1:{platform_port}"]
    simulate += ["--stats-listen", f"127.0.0.1:{stats_port}"]
    print(f"replaying {len(dataset.requests)} requests at {args.rate:g}/s ...", file=sys.stderr)
    started = time.monotonic()
    replay = subprocess.Popen(simulate, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # As the contract's run.sh does: stop the scaler once the stats port closes (the platform
    # lingers a few seconds so the scaler can destroy its slots).
    wait_for_port(stats_port, opened=True, deadline=time.monotonic() + 60)
    wait_for_port(stats_port, opened=False, deadline=time.monotonic() + args.seconds * 10)
    wall = time.monotonic() - started
    sampler.stop.set()
    sampler.join()
    stop_started = time.monotonic()
    scaler.send_signal(signal.SIGTERM)
    code = scaler.wait(30)
    stop_s = time.monotonic() - stop_started
    stdout, stderr = replay.communicate(timeout=60)
    result = subprocess.CompletedProcess(simulate, replay.returncode, stdout, stderr)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)
        return 1
    record = json.loads(lines[-1])
    summary = {
        "offered_rps": args.rate,
        "seconds": args.seconds,
        "requests": record["totalRequestsCount"],
        "failed": record["failedRequestsCount"],
        "assign_p50_ms": record["assignLatencyP50Ms"],
        "assign_p99_ms": record["assignLatencyP99Ms"],
        "idle_p50_ms": record["idleLatencyP50Ms"],
        "idle_p99_ms": record["idleLatencyP99Ms"],
        "cold_starts": record["coldStarts"],
        "scaler_cpu_cores": round(sampler.cores(), 3),
        "scaler_peak_rss_mb": round(sampler.peak_rss_mb, 1),
        "replay_wall_s": round(wall, 1),
        "scaler_exit_status": code,
        "scaler_stop_s": round(stop_s, 2),
        "load_average": os.getloadavg(),
    }
    (OUT / "load.json").write_text(json.dumps({"summary": summary, "record": record}, indent=2))
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    return 0 if summary["failed"] == 0 and code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Built-in synthetic workload: a realistic, seeded mix of serverless functions.

The challenge's own datasets are few and the real traces cannot ship with the project, so the
simulator needs a workload it can always build, of a modest size (tens of thousands of requests
for the defaults: a fast-mode replay takes seconds) and identical for the same seed on every
machine. Only the standard library's ``random`` is used; every function draws from its own
``random.Random`` seeded by ``(seed, function index)``, so a change to one archetype does not
reshuffle the others.

Archetypes (see :data:`ARCHETYPES`; function ``i`` takes the archetype at ``i`` in a fixed
20-slot rotation, with at most two high-rate functions):

``timer``
    Cron-like timer triggers: an exact period (10 s, 30 s, 60 s or 5 min) from a random phase,
    each firing shifted by a few ms of jitter. Short, consistent executions, small memory. The
    easiest case to keep warm or to pre-warm just in time.
``steady``
    Interactive API traffic: a Poisson process whose rate follows a compressed "diurnal"
    sinusoid (period 15 min to 1 h, amplitude 30-80 %), 0.05-1 requests/s on average.
    Lognormal executions (tens to hundreds of ms) with a Pareto tail.
``bursty``
    Queue/batch fan-out: quiet for minutes (exponential gaps, 2-10 min mean), then a burst of
    tens to hundreds of requests within a few seconds, which forces many concurrent instances.
    Longer executions (0.2-5 s median), larger memory.
``sporadic``
    Rarely called jobs: Poisson at 1-6 calls per hour, long executions (0.5-60 s median),
    mixed memory. Nearly always a cold start; keeping them warm is waste.
``high-rate``
    One or two hot functions at several to tens of requests/s with a mild rate modulation and
    short, heavy-tailed executions: real concurrency, and most of the requests.

Per function: memory from the tiers 128-4096 MB with archetype-specific weights; runtime among
python/nodejs/go/java/custom; init duration lognormal around a runtime-specific median (go
~40 ms ... java/custom ~1.5-2 s) growing mildly with memory, so its tail reaches several
seconds; timeout a few minutes above the longest plausible execution (executions are capped at
it). About 0.1-0.5 % of requests end with status 500 or 502 (each function has its own rate);
a failed request's duration is a random fraction of a normal one (it crashed part-way).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import attrs

from simulator.dataset import Dataset, FunctionMeta, Request

MEMORY_TIERS_MB: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096)


@attrs.frozen
class Archetype:
    """One family of functions; ``memory_weights`` pairs with :data:`MEMORY_TIERS_MB`."""

    name: str
    summary: str
    memory_weights: tuple[int, ...]


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype(
        "timer",
        "exact period (10 s/30 s/60 s/5 min) from a random phase, a few ms of jitter; "
        "short consistent executions",
        (3, 4, 2, 1, 0, 0),
    ),
    Archetype(
        "steady",
        "Poisson arrivals, 0.05-1 req/s, rate modulated by a compressed diurnal sinusoid "
        "(15 min-1 h period); lognormal executions with a Pareto tail",
        (2, 4, 4, 2, 1, 0),
    ),
    Archetype(
        "bursty",
        "on/off: minutes of silence, then tens to hundreds of requests within seconds; "
        "high concurrency, 0.2-5 s executions",
        (0, 1, 3, 3, 2, 1),
    ),
    Archetype(
        "sporadic",
        "Poisson at 1-6 calls per hour; long executions (0.5-60 s); nearly always cold",
        (1, 2, 2, 2, 2, 1),
    ),
    Archetype(
        "high-rate",
        "several to tens of req/s with mild modulation; short heavy-tailed executions; "
        "real concurrency and most of the requests",
        (4, 4, 1, 0, 0, 0),
    ),
)

_BY_NAME = {a.name: a for a in ARCHETYPES}

# Function i takes _ROTATION[i % 20]; high-rate beyond the second becomes steady.
_ROTATION: tuple[str, ...] = (
    "high-rate", "timer", "steady", "bursty", "sporadic",
    "timer", "steady", "steady", "bursty", "sporadic",
    "timer", "steady", "bursty", "timer", "sporadic",
    "steady", "timer", "steady", "bursty", "high-rate",
)  # fmt: skip
_MAX_HIGH_RATE = 2

# Runtime: (weight, median init ms).
_RUNTIMES: dict[str, tuple[float, float]] = {
    "python": (0.35, 350.0),
    "nodejs": (0.30, 220.0),
    "go": (0.15, 40.0),
    "java": (0.10, 1500.0),
    "custom": (0.10, 2000.0),
}

_ERROR_RATE_RANGE = (0.001, 0.005)
_ERROR_CODES = (500, 500, 502)


def archetype_plan(functions: int) -> list[str]:
    """Archetype name of each function index: the rotation, capped at two high-rate."""
    plan: list[str] = []
    high = 0
    for i in range(functions):
        name = _ROTATION[i % len(_ROTATION)]
        if name == "high-rate":
            if high >= _MAX_HIGH_RATE:
                name = "steady"
            else:
                high += 1
        plan.append(name)
    return plan


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


@attrs.frozen
class _Durations:
    """Lognormal body (median, sigma) with a Pareto tail, capped at the timeout."""

    median_ms: float
    sigma: float
    tail_p: float
    tail_alpha: float
    cap_ms: int

    def sample(self, rng: random.Random) -> int:
        d = self.median_ms * math.exp(rng.gauss(0.0, self.sigma))
        if rng.random() < self.tail_p:
            d *= rng.paretovariate(self.tail_alpha)
        return max(1, min(self.cap_ms, round(d)))


def _poisson_modulated(
    rng: random.Random, horizon_s: float, rate: Callable[[float], float], rate_max: float
) -> list[float]:
    """Non-homogeneous Poisson arrivals by thinning (times in seconds)."""
    out: list[float] = []
    if rate_max <= 0:
        return out
    t = 0.0
    while True:
        t += rng.expovariate(rate_max)
        if t >= horizon_s:
            return out
        if rng.random() * rate_max < rate(t):
            out.append(t)


def _sinusoid(
    base: float, amplitude: float, period_s: float, phase: float
) -> Callable[[float], float]:
    def rate(t: float) -> float:
        return base * (1.0 + amplitude * math.sin(2.0 * math.pi * t / period_s + phase))

    return rate


def _timer_arrivals(rng: random.Random, horizon_ms: int) -> list[int]:
    period_ms = rng.choice((10_000, 30_000, 30_000, 60_000, 60_000, 300_000))
    jitter_ms = rng.choice((2, 5, 20))
    phase_ms = rng.randrange(period_ms)
    out = []
    for t in range(phase_ms, horizon_ms, period_ms):
        t += rng.randint(-jitter_ms, jitter_ms)
        if 0 <= t < horizon_ms:
            out.append(t)
    return out


def _steady_arrivals(rng: random.Random, horizon_s: float, factor: float = 1.0) -> list[float]:
    base = _log_uniform(rng, 0.05, 1.0) * factor
    amplitude = rng.uniform(0.3, 0.8)
    period = rng.choice((900.0, 1800.0, 3600.0))
    rate = _sinusoid(base, amplitude, period, rng.uniform(0, 2 * math.pi))
    return _poisson_modulated(rng, horizon_s, rate, base * (1 + amplitude))


def _bursty_arrivals(rng: random.Random, horizon_s: float, factor: float = 1.0) -> list[float]:
    mean_gap = rng.uniform(120.0, 600.0) / factor
    burst_median = _log_uniform(rng, 30.0, 150.0)
    out: list[float] = []
    # The first burst comes early enough to be seen in short windows too.
    t = rng.uniform(0.0, min(mean_gap, 0.5 * horizon_s))
    while t < horizon_s:
        size = max(2, round(burst_median * math.exp(rng.gauss(0.0, 0.5))))
        spread = rng.uniform(0.5, 10.0)
        out.extend(x for x in (t + rng.uniform(0.0, spread) for _ in range(size)) if x < horizon_s)
        t += spread + rng.expovariate(1.0 / mean_gap)
    return out


def _sporadic_arrivals(rng: random.Random, horizon_s: float, factor: float = 1.0) -> list[float]:
    per_hour = rng.uniform(1.0, 6.0) * factor
    rate = per_hour / 3600.0
    return _poisson_modulated(rng, horizon_s, lambda _t: rate, rate)


def _high_rate_arrivals(rng: random.Random, horizon_s: float, rank: int) -> list[float]:
    base = rng.uniform(10.0, 20.0) if rank == 0 else rng.uniform(4.0, 8.0)
    amplitude = rng.uniform(0.1, 0.3)
    rate = _sinusoid(base, amplitude, rng.choice((300.0, 600.0)), rng.uniform(0, 2 * math.pi))
    return _poisson_modulated(rng, horizon_s, rate, base * (1 + amplitude))


# Archetype -> (median ms range, sigma range, tail probability, timeout choices in s).
_Shape = tuple[tuple[float, float], tuple[float, float], float, tuple[int, ...]]
_DURATION_SHAPES: dict[str, _Shape] = {
    "timer": ((30.0, 3000.0), (0.15, 0.4), 0.005, (60, 300)),
    "steady": ((20.0, 800.0), (0.4, 0.9), 0.02, (60, 300, 600)),
    "bursty": ((200.0, 5000.0), (0.5, 1.0), 0.02, (300, 600, 900)),
    "sporadic": ((500.0, 60_000.0), (0.6, 1.0), 0.02, (900, 1800, 3600)),
    "high-rate": ((15.0, 120.0), (0.4, 0.7), 0.02, (30, 60)),
}


START_MS = 1_700_000_000_000
"""Epoch ms of a generated workload's time 0 (2023-11-14), unless asked otherwise."""

LONGEST_TIMEOUT_S = max(
    max(max(timeouts), math.ceil(hi * 20 / 1000))
    for (_lo, hi), _sigma, _tail, timeouts in _DURATION_SHAPES.values()
)
"""No generated execution lasts longer (each is capped at its function's timeout)."""


def _meta_and_durations(
    rng: random.Random, key: str, archetype: Archetype
) -> tuple[FunctionMeta, _Durations]:
    memory = rng.choices(MEMORY_TIERS_MB, weights=archetype.memory_weights)[0]
    names = list(_RUNTIMES)
    runtime = rng.choices(names, weights=[_RUNTIMES[n][0] for n in names])[0]
    init_median = _RUNTIMES[runtime][1] * (1.0 + 0.1 * math.log2(memory / 128))
    init_ms = max(10, min(10_000, round(init_median * math.exp(rng.gauss(0.0, 0.6)))))
    (lo, hi), (s_lo, s_hi), tail_p, timeouts = _DURATION_SHAPES[archetype.name]
    median = _log_uniform(rng, lo, hi)
    timeout_s = rng.choice(timeouts)
    # The timeout covers the plausible executions; anything longer is cut at it.
    timeout_s = max(timeout_s, math.ceil(median * 20 / 1000))
    durations = _Durations(
        median_ms=median,
        sigma=rng.uniform(s_lo, s_hi),
        tail_p=tail_p,
        tail_alpha=rng.uniform(1.2, 2.0),
        cap_ms=timeout_s * 1000,
    )
    meta = FunctionMeta(
        key=key, runtime=runtime, memory_mb=memory, timeout_s=timeout_s, init_duration_ms=init_ms
    )
    return meta, durations


POPULARITY_DECADES = 3.0
"""At a scale (:func:`generate_workload` with ``popularity=True``) every Poisson or bursty
function's rate is multiplied by a log-uniform factor over this many decades below 1: in
production most functions are called rarely and a few carry the load (invocation rates span
orders of magnitude, Shahrad et al., "Serverless in the Wild", 2020), which the 40-function
default mix, chosen to exercise every archetype, does not show."""


def generate_workload(
    seed: int = 7,
    duration_s: float = 1800,
    functions: int = 40,
    start_ms: int = START_MS,
    *,
    popularity: bool = False,
    keep: Callable[[str], bool] | None = None,
) -> Dataset:
    """A deterministic synthetic dataset: same arguments, same requests, on every machine.

    Keys are ``<archetype>-<index>`` (e.g. ``timer-01``) so a report reads at a glance.
    Functions whose archetype produced no request in the window (a sporadic one, say) stay in
    the metas, as in the challenge's own datasets. ``popularity`` scales the rate of each
    Poisson or bursty function by its own factor (:data:`POPULARITY_DECADES`: fewer bursts,
    not smaller ones), for large scales.
    ``keep(key)`` False skips a function without generating it (a shard generates only its
    own functions); the others come out exactly as in the whole workload.
    """
    if functions < 1:
        raise ValueError("functions must be >= 1")
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    horizon_ms = int(duration_s * 1000)
    metas: dict[str, FunctionMeta] = {}
    requests: list[Request] = []
    high_rank = -1
    for index, name in enumerate(archetype_plan(functions)):
        key = f"{name}-{index:02d}"
        if name == "high-rate":
            high_rank += 1
        if keep is not None and not keep(key):
            continue
        rng = random.Random(f"scaler-workload:{seed}:{index}")
        meta, durations = _meta_and_durations(rng, key, _BY_NAME[name])
        metas[key] = meta
        if name == "timer":
            offsets = _timer_arrivals(rng, horizon_ms)
        else:
            factor = _popularity(seed, index) if popularity else 1.0
            if name == "steady":
                times = _steady_arrivals(rng, duration_s, factor)
            elif name == "bursty":
                times = _bursty_arrivals(rng, duration_s, factor)
            elif name == "sporadic":
                times = _sporadic_arrivals(rng, duration_s, factor)
            else:
                times = _high_rate_arrivals(rng, duration_s, high_rank)
            offsets = [min(horizon_ms - 1, int(t * 1000)) for t in sorted(times)]
        error_rate = rng.uniform(*_ERROR_RATE_RANGE)
        for offset in offsets:
            duration = durations.sample(rng)
            status = 200
            if rng.random() < error_rate:
                status = rng.choice(_ERROR_CODES)
                duration = max(1, round(duration * rng.random()))
            requests.append(Request(start_ms + offset, key, duration, status))
    requests.sort(key=lambda r: (r.start_ms, r.key))
    name = f"builtin-seed{seed}"
    if (duration_s, functions) != (1800, 40):
        name += f"-{functions}f-{duration_s:g}s"
    if popularity:
        name += "-popular"
    return Dataset(
        name=name,
        meta_path=f"builtin:{name}/metas",
        request_path=f"builtin:{name}/requests",
        metas=metas,
        requests=requests,
    )


def _popularity(seed: int, index: int) -> float:
    """Function ``index``'s rate factor at a scale, from its own stream (so the archetype's
    draws are those of the default workload)."""
    rng = random.Random(f"scaler-popularity:{seed}:{index}")
    return 10.0 ** -rng.uniform(0.0, POPULARITY_DECADES)


def small_workload(seed: int = 1, duration_s: float = 120, functions: int = 5) -> Dataset:
    """A tiny workload for tests: one function of each archetype over two minutes."""
    return generate_workload(seed=seed, duration_s=duration_s, functions=functions)

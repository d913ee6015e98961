"""Fast mode's measured compute: how long the scaler's own code ran, and optionally its charge.

Latencies in fast mode are virtual, so a scaler that thinks for 40 ms per call pays nothing
there, while over the wire (and in production) the caller waits for it. This module times
every piece of the scaler's code that runs in a fast replay:

- a servicer call (Assign, Idle) from the replayer: each step of its coroutine runs inside
  :attr:`ComputeMeter.context` (:meth:`ComputeMeter.scaler_call`) and is timed;
- every callback the loop runs on the scaler's behalf (its tasks' steps, its timers): they
  are created in that context, so they carry the :data:`IN_SCALER` mark, and
  :class:`~simulator.virtual_loop.VirtualTimeLoop` times each marked callback;
- the platform the scaler calls is the simulator's, not the scaler's: each step of a platform
  coroutine runs outside the mark (:meth:`ComputeMeter.platform_call`) and its time is taken
  out of the callback that ran it;
- each policy decision: the scheduler's ``GuardedPolicy`` meter (``ComputeMeter.decision``).

The clock: reported figures use ``time.perf_counter`` (monotonic, about 0.15 µs a read here);
on a shared machine it inflates them by the time the process waited for a core, which the
record's wall and CPU time beside them make visible. What is *charged* uses
``time.thread_time`` (this thread's CPU time, blind to other processes): a charge must not
depend on who else uses the machine. It costs a system call (1.6 µs a read on this VM, several
seconds over the millions of callbacks of a long replay), which only a charged run pays.

With ``charge`` the virtual clock advances by each measured step right after it ran, so the
caller sees the scaler's compute as part of its latency (the wire would make it wait the
same) and the simulated world waits for a busy scaler (one thread, as ours over the wire).
Without it (the default) the replay stays deterministic: the figures are reported, not paid.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Awaitable, Coroutine, Generator
from contextvars import ContextVar, copy_context
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from simulator.virtual_loop import VirtualTimeLoop

T = TypeVar("T")

#: Set (True) in the context of everything the scaler runs in a fast replay.
IN_SCALER: ContextVar[bool] = ContextVar("in_scaler", default=False)

_frexp = math.frexp


class LogHistogram:
    """Count, sum, max and percentiles (within 1.6 %) of durations, in O(1) memory.

    Millions of decisions in a long replay: a list of floats would cost more memory than the
    replay itself. A bucket is a binary exponent and 64 steps of the mantissa (``frexp``, no
    logarithm per sample), at most 1.6 % wide, finer than anything these figures are used for.
    """

    _STEPS = 128  # mantissa in [0.5, 1): 64 buckets per octave

    def __init__(self) -> None:
        self.counts: dict[tuple[int, int], int] = {}
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        #: (start, end) perf-counter times of the collector's passes since the last sample
        #: (:class:`CollectorWatch` appends them); each sample takes out what overlapped it.
        self.collections: list[tuple[float, float]] = []
        #: The longest sample net of the collector's passes inside it; how many samples held
        #: a pass, and the most collector time inside one sample.
        self.max_ex_gc = 0.0
        self.gc_hits = 0
        self.gc_max = 0.0

    def add(self, seconds: float) -> None:
        self.observe("", seconds)

    def observe(self, name: str, seconds: float) -> None:
        """Add ``seconds``; ``GuardedPolicy``'s meter signature (the decision's name unused)."""
        if self.collections:  # the cyclic collector ran since the last sample: inside it?
            self._net_of_collections(seconds)
        elif seconds > self.max_ex_gc:
            self.max_ex_gc = seconds
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds
        mantissa, exponent = _frexp(seconds)
        bucket = (exponent, int(mantissa * 128))
        counts = self.counts
        counts[bucket] = counts.get(bucket, 0) + 1

    def _net_of_collections(self, seconds: float) -> None:
        """Account the collector's passes that overlapped the sample that just ended."""
        ended = time.perf_counter()
        started = ended - seconds
        inside = 0.0
        for gc_start, gc_end in self.collections:
            inside += max(0.0, min(gc_end, ended) - max(gc_start, started))
        self.collections.clear()
        if inside > 0.0:
            self.gc_hits += 1
            self.gc_max = max(self.gc_max, inside)
        self.max_ex_gc = max(self.max_ex_gc, seconds - inside)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100), as the upper edge of its bucket; None if empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * q / 100.0))
        seen = 0
        for exponent, step in sorted(self.counts):
            seen += self.counts[exponent, step]
            if seen >= rank:
                return min(self.max, math.ldexp((step + 1) / self._STEPS, exponent))
        return self.max


class CollectorWatch:
    """Times the cyclic collector's passes (``gc.callbacks``) for a :class:`LogHistogram`.

    A pass runs inside whichever code allocated last, and in fast mode it walks the
    simulator's young objects as well as the scaler's, so a decision's measured time can be
    mostly a collection. The record reports decisions both with and net of the collector, and
    the collector's own figures beside them.
    """

    _KEPT = 1024  # passes remembered between two samples (a sample is microseconds long)

    def __init__(self, histogram: LogHistogram) -> None:
        self.histogram = histogram
        self.passes = 0
        self.total_s = 0.0
        self.longest_s = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        spent = now - self._started
        self.passes += 1
        self.total_s += spent
        self.longest_s = max(self.longest_s, spent)
        collections = self.histogram.collections
        if len(collections) >= self._KEPT:
            del collections[: self._KEPT // 2]
        collections.append((self._started, now))

    def __enter__(self) -> CollectorWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class ComputeMeter:
    """Times the scaler's code in a fast replay (module docstring); charges it with ``charge``."""

    def __init__(self, loop: VirtualTimeLoop, *, charge: bool = False) -> None:
        self.loop = loop
        self.charge = charge
        #: What times the scaler's code (module docstring: CPU time when it is charged).
        self.clock = time.thread_time if charge else time.perf_counter
        self.context = copy_context()
        self.context.run(IN_SCALER.set, True)
        #: Every timed piece of scaler code (a callback, a servicer step): count, total and
        #: longest, in seconds.
        self.calls = 0
        self.total_s = 0.0
        self.longest_s = 0.0
        #: Every policy decision (nested inside the calls: not added to the total again).
        self.decisions = LogHistogram()
        #: ``GuardedPolicy``'s meter: one policy call took ``seconds`` (the histogram's own
        #: method, one Python call less per decision: there are millions).
        self.decision = self.decisions.observe
        #: The cyclic collector's passes while :attr:`collector` is entered (``with``).
        self.collector = CollectorWatch(self.decisions)
        #: Time of platform code run inside a scaler callback (taken out of that callback).
        self.excluded = 0.0

    # -- the loop's side -----------------------------------------------------------------------
    def callback(self, seconds: float) -> None:
        """A marked callback ran for ``seconds`` (platform time already taken out)."""
        self.calls += 1
        self.total_s += seconds
        if seconds > self.longest_s:
            self.longest_s = seconds
        if self.charge:
            self.loop.advance(seconds)

    # -- calls across the boundary -------------------------------------------------------------
    def scaler_call(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Await ``coro`` (a call into the scaler) with each step in the scaler's context,
        timed."""
        return _Steps(coro, self, inside=True)

    def platform_call(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Await ``coro`` (the simulated platform) with each step outside the scaler's
        context, its time excluded from the scaler's."""
        return _Steps(coro, self, inside=False)

    # -- the record ----------------------------------------------------------------------------
    def figures(self, cpu_s: float, wall_s: float) -> dict[str, Any]:
        """What the record reports (ms for decisions and the longest call, s for the totals)
        for a replay that used ``cpu_s`` of this process' CPU in ``wall_s``.

        ``scalerCpuInSecs`` is CPU time: measured when charged (the thread's CPU clock);
        otherwise the perf-counter total (``scalerWallInSecs``, which on a shared machine
        includes the time the process waited for a core) scaled by the replay's CPU / wall,
        an estimate that takes the waits as spread evenly over the replay.
        """

        def ms(value: float | None) -> float | None:
            return None if value is None else value * 1000.0

        share = min(1.0, cpu_s / wall_s) if wall_s > 0 else 1.0
        return {
            "scalerCpuInSecs": self.total_s if self.charge else self.total_s * share,
            "scalerWallInSecs": self.total_s,
            "scalerCalls": self.calls,
            "scalerCallMaxMs": ms(self.longest_s if self.calls else None),
            "decisions": self.decisions.count,
            "decisionTimeP50Ms": ms(self.decisions.percentile(50.0)),
            "decisionTimeP99Ms": ms(self.decisions.percentile(99.0)),
            "decisionTimeMaxMs": ms(self.decisions.max if self.decisions.count else None),
            "decisionTimeMaxExGcMs": ms(self.decisions.max_ex_gc if self.decisions.count else None),
            "decisionsWithGc": self.decisions.gc_hits,
            "gcInDecisionMaxMs": ms(self.decisions.gc_max),
            "gcPasses": self.collector.passes,
            "gcInSecs": self.collector.total_s,
            "gcPassMaxMs": ms(self.collector.longest_s),
            "computeCharged": self.charge,
        }


class _Steps:
    """Drives a coroutine one step at a time on either side of the scaler's boundary."""

    __slots__ = ("_coro", "_inside", "_meter")

    def __init__(self, coro: Coroutine[Any, Any, Any], meter: ComputeMeter, inside: bool) -> None:
        self._coro = coro
        self._meter = meter
        self._inside = inside

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, meter, inside = self._coro, self._meter, self._inside
        clock = meter.clock
        run = meter.context.run if inside else _outside
        send, throw = coro.send, coro.throw
        value: Any = None
        error: BaseException | None = None
        while True:
            excluded = meter.excluded
            started = clock()
            try:
                yielded = run(send, value) if error is None else run(throw, error)
            except StopIteration as stop:
                self._account(clock() - started, excluded)
                return stop.value
            except BaseException:
                self._account(clock() - started, excluded)
                raise
            self._account(clock() - started, excluded)
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # a cancellation thrown into the awaiting task
                value, error = None, exc

    def _account(self, elapsed: float, excluded: float) -> None:
        meter = self._meter
        if self._inside:
            meter.callback(elapsed - (meter.excluded - excluded))
        else:
            meter.excluded = excluded + elapsed


def _outside(function: Any, argument: Any) -> Any:
    """Run one platform step with the scaler's mark cleared (and restored after it): timers
    and tasks the platform creates must not be timed as the scaler's."""
    token = IN_SCALER.set(False)
    try:
        return function(argument)
    finally:
        IN_SCALER.reset(token)

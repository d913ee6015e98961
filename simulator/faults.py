"""Seeded platform fault injection: ``create_error=0.05,init_error=0.05,throttle=0.1,...``.

Rates are per call. ``spike=P:D`` makes a fraction P of calls take D longer (``2s``, ``500ms``).
The same spec and seed give the same faults, call for call, so a failing run can be replayed.
"""

from __future__ import annotations

import random
import re

import attrs

_KEYS = ("create_error", "init_error", "destroy_error", "throttle", "spike")

#: The reliability matrix (docs/reliability.md): each fault alone at the issue's rates, then
#: all of them together. ``make bench-faults`` reports it; tests/test_fault_matrix.py asserts it.
FAULT_MATRIX: dict[str, str] = {
    "create 5%": "create_error=0.05",
    "init 5%": "init_error=0.05",
    "throttle 10%": "throttle=0.1",
    "destroy 5%": "destroy_error=0.05",
    "spike 1%:2s": "spike=0.01:2s",
    "all": "create_error=0.05,init_error=0.05,destroy_error=0.05,throttle=0.1,spike=0.01:2s",
}


class FaultSpecError(ValueError):
    """The ``--faults`` text cannot be read."""


def _duration_s(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*", text)
    if not match:
        raise FaultSpecError(f"bad duration {text!r} (expected e.g. 2s or 500ms)")
    value = float(match.group(1))
    return value / 1000.0 if match.group(2) == "ms" else value


def _rate(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{name}: {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"{name}: rate {value} is outside [0, 1]")
    return value


@attrs.frozen
class FaultSpec:
    create_error: float = 0.0
    init_error: float = 0.0
    destroy_error: float = 0.0
    throttle: float = 0.0
    spike: float = 0.0
    spike_s: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        """Read ``key=value,...``; an empty text means no faults."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in _KEYS:
                raise FaultSpecError(f"unknown fault {part!r} (known: {', '.join(_KEYS)})")
            if name == "spike":
                rate, colon, length = value.partition(":")
                if not colon:
                    raise FaultSpecError("spike needs RATE:DURATION, e.g. spike=0.01:2s")
                values["spike"] = _rate(name, rate)
                values["spike_s"] = _duration_s(length)
            else:
                values[name] = _rate(name, value)
        return cls(**values)

    @property
    def any(self) -> bool:
        return any(
            (self.create_error, self.init_error, self.destroy_error, self.throttle, self.spike)
        )

    def __str__(self) -> str:
        parts = [f"{k}={getattr(self, k):g}" for k in _KEYS[:-1] if getattr(self, k)]
        if self.spike:
            parts.append(f"spike={self.spike:g}:{self.spike_s:g}s")
        return ",".join(parts) or "none"


class FaultInjector:
    """Draws the faults of each platform call from one seeded generator."""

    def __init__(self, spec: FaultSpec, seed: int = 0) -> None:
        self.spec = spec
        self._rng = random.Random(seed)
        self.injected: dict[str, int] = dict.fromkeys(_KEYS, 0)

    def _hit(self, name: str, rate: float) -> bool:
        if rate and self._rng.random() < rate:
            self.injected[name] += 1
            return True
        return False

    def throttled(self) -> bool:
        return self._hit("throttle", self.spec.throttle)

    def fails(self, op: str) -> bool:
        """Whether this call of ``op`` (create, init, destroy) fails."""
        return self._hit(f"{op}_error", getattr(self.spec, f"{op}_error"))

    def extra_latency_s(self) -> float:
        return self.spec.spike_s if self._hit("spike", self.spec.spike) else 0.0

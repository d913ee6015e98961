"""Where the scaler's CPU goes: bucket py-spy samples (raw/folded format) by component.

Each sample's stack is walked from the innermost frame outwards; the first frame that belongs
to a known component owns the sample (self time, so the scheduler's own code is not charged
for the ``transitions`` calls it makes, and vice versa). Native frames (``py-spy --native``)
inside gRPC's Cython core count as gRPC; waits in ``epoll_wait`` are idle and left out.

Usage: ``python -m bench.profile_report FILE.folded [...]``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

#: (component, substrings of a frame that mark it), innermost match wins; order breaks ties.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("transitions (FSM library)", ("transitions/",)),
    ("logging (loguru)", ("loguru/",)),
    ("scaler: states (FSM hooks)", ("scaler/states/",)),
    ("scaler: server/scheduler/pool/policy", ("scaler/",)),
    ("protobuf", ("protobuf", "_pb2", "upb")),
    ("grpc", ("grpc",)),
    ("asyncio loop", ("asyncio", "selectors", "_asynciomodule")),
)
IDLE_LEAVES = ("epoll_wait", "epoll_pwait", "select (selectors", "poll (selectors", "futex")
#: Outer frames that say nothing (the process' entry point, the loop's run_forever).
_ENTRY = ("scaler/__main__.py", "scaler/cli.py", "scaler/app.py")


#: Innermost Python frames under which only C/Cython code runs: without ``--native`` this
#: is where gRPC's Cython core (and asyncio's C task steps) is seen.
_OPAQUE = (
    ("Handle._run (asyncio/events.py", "grpc + asyncio C callbacks (Cython, opaque)"),
    ("Thread.run (threading.py", "grpc poller thread (Cython, opaque)"),
)


def component(frames: list[str]) -> str:
    """The component owning a sample whose frames run outermost first."""
    for mark, name in _OPAQUE:
        if mark in frames[-1]:
            return name
    for frame in reversed(frames):
        if any(entry in frame for entry in _ENTRY):
            break
        for name, marks in COMPONENTS:
            if any(mark in frame for mark in marks):
                return name
    return "other (interpreter, libc, kernel calls)"


def summarize(paths: list[Path]) -> dict[str, object]:
    """Busy samples per component (counts and shares) over one or more folded files."""
    busy: Counter[str] = Counter()
    idle = 0
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = stack.split(";")
            if any(leaf in frames[-1] for leaf in IDLE_LEAVES):
                idle += int(count)
                continue
            busy[component(frames)] += int(count)
    total = sum(busy.values())
    return {
        "busy_samples": total,
        "idle_samples": idle,
        "share": {k: round(v / total, 3) for k, v in busy.most_common()} if total else {},
    }


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        print(__doc__)
        return 2
    result = summarize(paths)
    print(f"busy samples {result['busy_samples']}, idle {result['idle_samples']}")
    for name, share in result["share"].items():  # type: ignore[union-attr]
        print(f"  {share:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

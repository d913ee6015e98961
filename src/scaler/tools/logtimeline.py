"""``scaler log --timeline``: the life story of each selected instance.

Streams: a story is kept only while its instance is alive and printed when the instance reaches
``deleted`` (so stories come out in deletion order), the rest at the end of the log. Each story
keeps at most ``max_lines`` lines (the first and last halves; the middle is counted, not kept),
so memory is bounded by the number of live instances, not by the length of the log.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable

from scaler.tools.logread import Filters, Record, format_duration, format_time

_INIT_MS = re.compile(r"init took (\d+(?:\.\d+)?) ?ms")


class _Story:
    """One instance's story so far, and what is needed to tell the next line."""

    __slots__ = (
        "assign",
        "busy_s",
        "elided",
        "function",
        "head",
        "idle_since",
        "instance",
        "last_time",
        "max_head",
        "selected",
        "served",
        "slot",
        "start",
        "state",
        "tail",
    )

    def __init__(self, rec: Record, max_lines: int, selected: bool) -> None:
        self.instance: str = rec["instance"]
        self.function: str = rec["function"]
        self.slot: str | None = rec["slot"]
        self.start: float = rec["time"]
        self.last_time: float = rec["time"]
        self.state: str = rec["from"]
        self.selected = selected
        self.served = 0
        self.busy_s = 0.0
        self.idle_since: float | None = None
        self.assign: tuple[str, float, str, float | None] | None = None
        self.head: list[tuple[float, str]] = []
        self.max_head = max_lines - max_lines // 2 if max_lines else 0
        self.tail: deque[tuple[float, str]] = deque(maxlen=max_lines // 2 if max_lines else None)
        self.elided = 0

    def add(self, t: float, text: str) -> None:
        if not self.max_head or len(self.head) < self.max_head:
            self.head.append((t, text))
            return
        if self.tail.maxlen == 0:
            self.elided += 1
            return
        if len(self.tail) == self.tail.maxlen:
            self.elided += 1
        self.tail.append((t, text))

    def lines(self) -> list[str]:
        header = f"{self.instance}  function {self.function}  slot {self.slot or '-'}"
        out = [header]
        out += [self._line(t, text) for t, text in self.head]
        if self.elided:
            out.append(f"  ... {self.elided} lines not shown (--max-lines 0 shows all) ...")
        out += [self._line(t, text) for t, text in self.tail]
        return out

    def _line(self, t: float, text: str) -> str:
        return f"  {format_time(t)}  {'+' + format_duration(t - self.start):>8}  {text}"


class Timeline:
    """Builds stories from records and hands finished ones to ``emit`` as lists of lines."""

    def __init__(
        self, filters: Filters, emit: Callable[[list[str]], None], max_lines: int = 200
    ) -> None:
        self.filters = filters
        self.emit = emit
        self.max_lines = max_lines
        self.stories: dict[str, _Story] = {}
        self.told = 0

    def feed(self, rec: Record) -> None:
        """Add one record (of an instance already selected by ``--instance``/``--function``)."""
        instance = rec["instance"]
        story = self.stories.get(instance)
        if story is None:
            selected = not self.filters.requests
            story = self.stories[instance] = _Story(rec, self.max_lines, selected)
        if not story.selected and rec["request"] in self.filters.requests:
            story.selected = True
        t = rec["time"]
        story.last_time = t
        story.state = rec["to"]
        if rec["slot"] is not None:
            story.slot = rec["slot"]
        if story.assign is not None and rec["event"] in ("release", "retire"):
            request, since, why, gap = story.assign
            story.assign = None
            story.served += 1
            story.busy_s += t - since
            if self.filters.in_window(since):
                after = f" after {format_duration(gap)} idle" if gap and gap >= 0.0005 else ""
                story.add(
                    since,
                    f"served {request} for {format_duration(t - since)}{after} "
                    f"({why}; {rec['reason']})",
                )
        text = self._text(story, rec)
        if text and self.filters.in_window(t):
            story.add(t, text)
        if rec["to"] == "deleted":
            self._tell(self.stories.pop(instance))

    def finish(self) -> None:
        """Tell the stories of instances still alive when the log ends."""
        for story in self.stories.values():
            if story.assign is not None:
                request, since, why, _gap = story.assign
                story.add(since, f"serving {request} since then ({why}); still busy")
            story.add(story.last_time, f"still alive at the end of the log ({story.state})")
            self._tell(story)
        self.stories.clear()

    def _tell(self, story: _Story) -> None:
        if story.selected and (story.head or story.elided):
            self.told += 1
            self.emit(story.lines())

    @staticmethod
    def _text(story: _Story, rec: Record) -> str | None:
        """The story line a record adds directly (None for assign: told with its release)."""
        event = rec["event"]
        t = rec["time"]
        reason = rec["reason"]
        if event == "slot_created":
            return f"slot {rec['slot']} created ({reason})"
        if event == "slot_failed":
            return f"slot creation failed ({reason})"
        if event == "init_succeeded":
            story.idle_since = t
            found = _INIT_MS.search(reason)
            took = f"init took {found[1]} ms" if found else reason
            return f"initialised ({took})"
        if event == "init_failed":
            return f"init failed ({reason})"
        if event == "assign":
            gap = t - story.idle_since if story.idle_since is not None else None
            story.assign = (rec["request"] or "?", t, reason, gap)
            story.idle_since = None
            return None
        if event == "release":
            story.idle_since = t
            return None
        if event == "retire":
            return f"retired after serving {rec['request']} ({reason})"
        if event == "expire":
            idle = (
                f" after {format_duration(t - story.idle_since)} idle"
                if story.idle_since is not None
                else ""
            )
            story.idle_since = None
            return f"expired{idle} ({reason})"
        if event == "destroy_failed":
            return f"DestroySlot failed, will retry ({reason})"
        if event == "destroyed":
            life = t - story.start
            share = f", {story.busy_s / life:.0%} of its life" if life > 0 else ""
            return (
                f"deleted ({reason}); lived {format_duration(life)}, served "
                f"{story.served} request(s), busy "
                f"{format_duration(story.busy_s)}{share}"
            )
        return f"{event} {rec['from']}->{rec['to']} ({reason})"

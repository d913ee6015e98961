"""``scaler log``: read transition logs to follow, summarise or check what the scaler did.

Every mode streams: one line is parsed at a time, and only live instances (plus per-function
aggregates for ``--summary``) are remembered, so a log of any size is read in constant memory.
The modes live beside this file: ``logcheck``, ``logtimeline``, ``logsummary``; reading and
formatting in ``logread``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from scaler.tools.logcheck import Checker
from scaler.tools.logread import Filters, LogReader, Where, format_record, parse_time
from scaler.tools.logsummary import LEGEND, Summary
from scaler.tools.logtimeline import Timeline

DESCRIPTION = """\
Read transition logs (JSON lines written by --transition-log, plain or gzip, several files in
order as one log). Without a mode, print the matching records one per line.

modes:
  --timeline   the life story of each selected instance, told when it is deleted
  --summary    per function: cold starts, warm hits, reuse, lifetimes, idle gaps, unused
  --check      verify the log against the FSM; exit 1 naming the first violating record

exit status: 0 ok, 1 a violation (--check) or a live instance with --require-clean,
2 bad arguments or an unreadable file.
"""

MAX_WARNINGS = 5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="transition logs ('-' for stdin)")
    p.add_argument("--instance", action="append", default=[], metavar="ID", help="repeatable")
    p.add_argument("--request", action="append", default=[], metavar="ID", help="repeatable")
    p.add_argument("--function", action="append", default=[], metavar="KEY", help="repeatable")
    p.add_argument("--since", metavar="T", help="epoch seconds or ISO time (UTC by default)")
    p.add_argument("--until", metavar="T", help="epoch seconds or ISO time (UTC by default)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--timeline", action="store_true", help="life story of each instance")
    mode.add_argument("--summary", action="store_true", help="per-function statistics")
    mode.add_argument("--check", action="store_true", help="verify invariants; exit 1 if broken")
    p.add_argument(
        "--require-clean",
        action="store_true",
        help="--check: also fail when an instance is still alive at the end of the log",
    )
    p.add_argument(
        "--max-lines",
        type=int,
        default=200,
        metavar="N",
        help="--timeline: lines kept per instance, first and last halves (0: all; default 200)",
    )
    p.add_argument(
        "-n", "--line-numbers", action="store_true", help="prefix records with file:line"
    )


def _filters(args: argparse.Namespace) -> Filters:
    return Filters(
        instances=frozenset(args.instance),
        requests=frozenset(args.request),
        functions=frozenset(args.function),
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
    )


def run(args: argparse.Namespace) -> int:
    try:
        filters = _filters(args)
        if args.check and (args.request or args.since or args.until):
            raise ValueError(
                "--check follows whole instance lives: use --instance/--function, "
                "not --request/--since/--until"
            )
        if args.summary and args.request:
            raise ValueError("--summary is per function: --request does not apply")
        if args.require_clean and not args.check:
            raise ValueError("--require-clean goes with --check")
        for path in args.paths:
            if path != "-" and not os.path.isfile(path):
                raise ValueError(f"{path}: no such file")
    except ValueError as err:
        print(f"log: {err}", file=sys.stderr)
        return 2
    try:
        if args.check:
            return _check(args.paths, filters, args.require_clean)
        if args.timeline:
            return _timeline(args.paths, filters, args.max_lines)
        if args.summary:
            return _summary(args.paths, filters)
        return _records(args.paths, filters, args.line_numbers)
    except BrokenPipeError:  # `scaler log ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        print(f"log: {err}", file=sys.stderr)
        return 2


class _Warnings:
    """Reports malformed lines on stderr (the first few) and counts them."""

    def __init__(self, reader_paths: Sequence[str]) -> None:
        self.paths = reader_paths
        self.count = 0

    def __call__(self, where: Where, raw: bytes, why: str) -> None:
        self.count += 1
        if self.count <= MAX_WARNINGS:
            print(f"log: {self.paths[where[0]]}:{where[1]}: skipped: {why}", file=sys.stderr)

    def done(self) -> None:
        if self.count > MAX_WARNINGS:
            print(f"log: {self.count} malformed lines skipped in all", file=sys.stderr)


def _records(paths: Sequence[str], filters: Filters, numbered: bool) -> int:
    warnings = _Warnings(paths)
    reader = LogReader(paths, warnings, filters.prefilter(requests=True))
    write = sys.stdout.write
    match = filters.record_match
    for where, _raw, rec in reader:
        if match(rec):
            prefix = f"{reader.where(where)}: " if numbered else ""
            write(prefix + format_record(rec) + "\n")
    warnings.done()
    return 0


def _timeline(paths: Sequence[str], filters: Filters, max_lines: int) -> int:
    warnings = _Warnings(paths)
    reader = LogReader(paths, warnings, filters.prefilter(requests=False))
    write = sys.stdout.write

    def emit(lines: list[str]) -> None:
        write("\n".join(lines) + "\n\n")

    timeline = Timeline(filters, emit, max(0, max_lines))
    selected = filters.instance_match
    for _where, _raw, rec in reader:
        if selected(rec):
            timeline.feed(rec)
    timeline.finish()
    warnings.done()
    if not timeline.told:
        print("log: no instance matched", file=sys.stderr)
    return 0


def _summary(paths: Sequence[str], filters: Filters) -> int:
    warnings = _Warnings(paths)
    reader = LogReader(paths, warnings, filters.prefilter(requests=False))
    summary = Summary(filters)
    selected = filters.instance_match
    for _where, _raw, rec in reader:
        if selected(rec):
            summary.feed(rec)
    summary.finish()
    warnings.done()
    if not summary.functions:
        print("log: no records matched", file=sys.stderr)
        return 0
    print("\n".join(summary.table()))
    print()
    print(LEGEND)
    return 0


class _Stop(Exception):
    """The first violation: where, what, and the offending line."""

    def __init__(self, where: Where, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.where = where
        self.message = message
        self.raw = raw


def _check(paths: Sequence[str], filters: Filters, require_clean: bool) -> int:
    def bad_line(where: Where, raw: bytes, why: str) -> None:
        raise _Stop(where, f"not a transition record: {why}", raw)

    reader = LogReader(paths, bad_line, filters.prefilter(requests=False))
    checker = Checker(reader.where)
    selected = filters.instance_match
    feed = checker.feed
    try:
        for where, raw, rec in reader:
            if selected(rec):
                message = feed(where, rec)
                if message is not None:
                    raise _Stop(where, message, raw)
    except _Stop as stop:
        print(f"{reader.where(stop.where)}: {stop.message}")
        print(f"  {stop.raw.decode('utf-8', errors='replace').rstrip()}")
        return 1
    live = checker.live()
    if live:
        by_state: dict[str, int] = {}
        for item in live:
            by_state[item.state] = by_state.get(item.state, 0) + 1
        states = ", ".join(f"{state} {count}" for state, count in sorted(by_state.items()))
        shown = ", ".join(f"{item.instance} ({item.state}, slot {item.slot})" for item in live[:5])
        more = f" and {len(live) - 5} more" if len(live) > 5 else ""
        if require_clean:
            first = live[0]
            print(
                f"{reader.where(first.where)}: instance {first.instance} still holds slot "
                f"{first.slot} at the end of the log ({first.state} since this record); "
                f"{len(live)} live in all ({states})"
            )
            return 1
        print(
            f"note: {len(live)} instance(s) still alive at the end of the log ({states}): "
            f"{shown}{more}",
            file=sys.stderr,
        )
    print(f"ok: {checker.records} records, {checker.instances} instances")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scaler log",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""Command line: ``scaler [serve|simulate|diagram|log|import-trace] ...``.

With no sub-command ``scaler`` serves, so the challenge's ``run.sh`` (which runs ``./scaler``
bare) works unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from scaler import config

Command = Callable[[argparse.Namespace], int]


def _serve(args: argparse.Namespace) -> int:
    from scaler.app import configure_logging, serve

    settings = config.from_args(args)
    configure_logging(settings.log_level)
    try:
        return asyncio.run(serve(settings))
    except ValueError as err:  # unknown policy and other bad settings
        print(f"scaler: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaler", description="Serverless instance scaler and its simulator."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the Scaler gRPC service (the default)")
    config.add_arguments(serve)
    serve.set_defaults(run=_serve)
    for register in _optional_commands():
        register(sub)
    return parser


def _optional_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Sub-commands that live in other packages (simulator, tools), added when present."""
    found = []
    for module_name in ("simulator.cli", "scaler.tools"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue
            raise
        found.append(module.register)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""Operator tools mounted on the ``scaler`` command: ``diagram`` and ``log``.

``scaler.cli`` calls :func:`register` (see ``_optional_commands``). The tools read the FSM
definition and transition logs; they never touch a running scaler.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``diagram`` and ``log`` to the ``scaler`` command."""
    from scaler.tools import diagram, logtool

    drawing = subparsers.add_parser(
        "diagram",
        help="draw the instance lifecycle from the FSM (mermaid, dot, svg, png)",
        description="Render the instance lifecycle straight from the FSM definition, or "
        "regenerate / check the generated sections of docs/lifecycle.md.",
    )
    diagram.add_arguments(drawing)
    drawing.set_defaults(run=diagram.run)

    log = subparsers.add_parser(
        "log",
        help="filter, tell, summarise or check transition logs (JSON lines, plain or .gz)",
        description=logtool.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    logtool.add_arguments(log)
    log.set_defaults(run=logtool.run)

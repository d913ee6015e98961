"""``scaler diagram``: draw the instance lifecycle from the FSM itself, and keep the docs in step.

The edges come from the built :data:`~scaler.states.instance.MACHINE` (its states, initial state
and every event's transitions); guards and actions come from the table it was built from
(:data:`~scaler.states.lifecycle.EDGES`). Nothing here is a hand-written copy, so a changed
table changes the diagram, and ``tests/test_diagram.py`` fails until ``docs/lifecycle.md`` is
regenerated.

Mermaid and DOT are written as text by this module. ``transitions``' own mermaid engine
(``GraphMachine(graph_engine="mermaid")``) needs a model and paints that model's current state
as active, and its title block is not the ``title:`` key mermaid reads, so it does not fit a
static diagram; its graphviz engine needs the ``graphviz`` package anyway. SVG and PNG need
Graphviz: the ``graphviz`` or ``pygraphviz`` Python package, or the ``dot`` program.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
from transitions import Machine

from scaler.states.instance import MACHINE
from scaler.states.lifecycle import EDGES, FINAL_STATES, SLOT_HELD_STATES, Edge

FORMATS = ("mermaid", "dot", "svg", "png")
SUFFIX_FORMATS = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot"}
SUFFIX_FORMATS.update({".svg": "svg", ".png": "png"})
TITLE = "Instance lifecycle"
DOCS_PATH = Path(__file__).resolve().parents[3] / "docs" / "lifecycle.md"

EXIT_NO_GRAPHVIZ = 2


class GraphvizMissing(RuntimeError):
    """SVG or PNG was asked for and no Graphviz renderer is installed."""


@attrs.frozen
class Lifecycle:
    """The FSM as drawn: states in order, the initial and final ones, and its edges."""

    states: tuple[str, ...]
    initial: str
    final: frozenset[str]
    slot_held: frozenset[str]
    edges: tuple[Edge, ...]

    @classmethod
    def from_machine(
        cls,
        machine: Machine = MACHINE,
        table: Iterable[Edge] = EDGES,
        final: frozenset[str] = FINAL_STATES,
        slot_held: frozenset[str] = SLOT_HELD_STATES,
    ) -> Lifecycle:
        """Read the edges off ``machine``; take each edge's guard and action from ``table``."""
        notes = {(e.source, e.event): e for e in table}
        edges = []
        for name, event in machine.events.items():
            for source, transitions in event.transitions.items():
                for transition in transitions:
                    note = notes.get((source, name))
                    edges.append(
                        Edge(
                            name,
                            source,
                            transition.dest,
                            note.guard if note else "",
                            note.action if note else "",
                            note.condition if note else "",
                        )
                    )
        return cls(
            states=tuple(machine.states),
            initial=machine.initial,
            final=final,
            slot_held=slot_held,
            edges=tuple(edges),
        )


# --------------------------------------------------------------------------------------------
# Text formats


def mermaid(life: Lifecycle, title: str = TITLE) -> str:
    """A mermaid ``stateDiagram-v2`` (GitHub renders it in a ```mermaid block)."""
    lines = ["---", f"title: {title}", "---", "stateDiagram-v2", "    direction LR"]
    lines.append(f"    [*] --> {life.initial}")
    lines += [f"    {e.source} --> {e.dest}: {e.event}" for e in life.edges]
    lines += [f"    {state} --> [*]" for state in life.states if state in life.final]
    return "\n".join(lines) + "\n"


def dot(life: Lifecycle, title: str = TITLE) -> str:
    """Graphviz DOT text (writing it needs no Graphviz; rendering it does)."""
    lines = [
        "digraph lifecycle {",
        f'    label="{title}"; labelloc=t; rankdir=LR;',
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    __start [shape=point, label=""];',
    ]
    for state in life.states:
        extra = ", peripheries=2" if state in life.final else ""
        lines.append(f'    "{state}" [label="{state}"{extra}];')
    lines.append(f'    __start -> "{life.initial}";')
    lines += [f'    "{e.source}" -> "{e.dest}" [label="{e.event}"];' for e in life.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(life: Lifecycle, fmt: str) -> bytes:
    """The diagram in ``fmt``; SVG/PNG go through Graphviz or raise :class:`GraphvizMissing`."""
    if fmt == "mermaid":
        return mermaid(life).encode()
    if fmt == "dot":
        return dot(life).encode()
    if fmt in ("svg", "png"):
        return _graphviz(dot(life), fmt)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _graphviz(source: str, fmt: str) -> bytes:
    """Render DOT with the first Graphviz found: python graphviz, pygraphviz, then ``dot``."""
    try:
        import graphviz  # type: ignore[import-not-found]

        try:
            return graphviz.Source(source).pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            pass  # the package without the binary: try the others
    except ImportError:
        pass
    try:
        import pygraphviz  # type: ignore[import-not-found]

        return pygraphviz.AGraph(string=source).draw(format=fmt, prog="dot")
    except ImportError:
        pass
    binary = shutil.which("dot")
    if binary is None:
        raise GraphvizMissing(
            f"--format {fmt} needs Graphviz, and none was found (no `dot` program on PATH, no "
            "graphviz or pygraphviz Python package). Install Graphviz (e.g. apt-get install "
            "graphviz), or use --format mermaid (no binary needed) or --format dot."
        )
    done = subprocess.run([binary, f"-T{fmt}"], input=source.encode(), capture_output=True)
    if done.returncode != 0:
        raise GraphvizMissing(f"`dot -T{fmt}` failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


# --------------------------------------------------------------------------------------------
# docs/lifecycle.md

_SECTION = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def doc_sections(life: Lifecycle) -> dict[str, str]:
    """The generated parts of ``docs/lifecycle.md``, by section name."""
    events = [
        "| event | from | to | guard (when it fires) | what the scheduler does |",
        "|---|---|---|---|---|",
    ]
    events += [
        f"| `{e.event}` | {e.source} | {e.dest} | {_cell(e.guard)} | {_cell(e.action)} |"
        for e in life.edges
    ]
    states = ["| state | slot held on the platform | kind | left by |", "|---|---|---|---|"]
    for state in life.states:
        kind = "initial" if state == life.initial else "final" if state in life.final else ""
        out = ", ".join(f"`{e.event}`" for e in life.edges if e.source == state) or "—"
        held = "yes" if state in life.slot_held else "no"
        states.append(f"| {state} | {held} | {kind} | {out} |")
    return {
        "diagram": f"```mermaid\n{mermaid(life)}```\n",
        "states": "\n".join(states) + "\n",
        "events": "\n".join(events) + "\n",
    }


def read_sections(text: str) -> dict[str, str]:
    """The generated sections found in a document, by name."""
    return {m["name"]: m["body"] for m in _SECTION.finditer(text)}


def update_docs(text: str, life: Lifecycle) -> str:
    """``text`` with every generated section replaced by its current content."""
    sections = doc_sections(life)
    missing = sorted(set(sections) - set(read_sections(text)))
    if missing:
        raise ValueError(f"no generated section(s) {', '.join(missing)} in the document")
    return _SECTION.sub(lambda m: m[1] + sections.get(m["name"], m["body"]) + m[4], text)


def stale_sections(text: str, life: Lifecycle) -> list[str]:
    """Names of generated sections that are missing or differ from the FSM."""
    found = read_sections(text)
    return [name for name, body in doc_sections(life).items() if found.get(name) != body]


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="mermaid (default; no binary needed), dot, or svg/png (need Graphviz); "
        "inferred from --out's suffix when omitted",
    )
    p.add_argument("--out", metavar="PATH", help="write here instead of stdout")
    p.add_argument(
        "--docs",
        "--write-docs",
        dest="write_docs",
        action="store_true",
        help="regenerate the generated sections of docs/lifecycle.md",
    )
    p.add_argument(
        "--check-docs",
        action="store_true",
        help="exit 1 when docs/lifecycle.md no longer matches the FSM",
    )
    p.add_argument("--docs-path", type=Path, default=DOCS_PATH, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    life = Lifecycle.from_machine()
    if args.write_docs or args.check_docs:
        return _docs(life, args.docs_path, write=args.write_docs)
    fmt = args.format
    if fmt is None:
        suffix = Path(args.out).suffix.lower() if args.out else ""
        fmt = SUFFIX_FORMATS.get(suffix, "mermaid")
    try:
        data = render(life, fmt)
    except GraphvizMissing as err:
        print(f"diagram: {err}", file=sys.stderr)
        return EXIT_NO_GRAPHVIZ
    if args.out:
        Path(args.out).write_bytes(data)
        print(f"diagram: wrote {fmt} to {args.out}", file=sys.stderr)
    elif fmt == "png":
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data.decode())
    return 0


def _docs(life: Lifecycle, path: Path, *, write: bool) -> int:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        print(f"diagram: {path} does not exist", file=sys.stderr)
        return 2
    if not write:
        stale = stale_sections(text, life)
        if stale:
            print(
                f"diagram: {path} is out of date (sections: {', '.join(stale)}); "
                "run `./scaler diagram --docs`",
                file=sys.stderr,
            )
            return 1
        print(f"diagram: {path} matches the FSM")
        return 0
    try:
        new = update_docs(text, life)
    except ValueError as err:
        print(f"diagram: {path}: {err}", file=sys.stderr)
        return 2
    if new != text:
        path.write_text(new, encoding="utf-8")
    print(f"diagram: {path} {'updated' if new != text else 'already up to date'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scaler.tools.diagram", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

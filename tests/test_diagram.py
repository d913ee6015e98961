"""``scaler diagram``: the lifecycle drawn from the FSM, and docs/lifecycle.md kept in step."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from transitions import Machine

from scaler.cli import main as scaler_main
from scaler.states.lifecycle import EDGES, INITIAL_STATE, STATES, Edge
from scaler.tools import diagram
from scaler.tools.diagram import Lifecycle

DOCS = Path(__file__).resolve().parents[1] / "docs" / "lifecycle.md"


def machine_with(edges: tuple[Edge, ...]) -> Machine:
    """A machine built the way ``scaler.states.instance`` builds MACHINE, from ``edges``."""
    return Machine(
        model=None,
        states=list(STATES),
        transitions=[{"trigger": e.event, "source": e.source, "dest": e.dest} for e in edges],
        initial=INITIAL_STATE,
        auto_transitions=False,
    )


EXTRA = Edge("crash", "busy", "deleted", "the platform lost the slot", "answers InternalError")


def test_the_drawn_edges_are_the_machine_s_edges_with_the_table_s_notes() -> None:
    life = Lifecycle.from_machine()
    assert sorted(life.edges, key=repr) == sorted(EDGES, key=repr)
    assert life.states == STATES and life.initial == INITIAL_STATE


def test_mermaid_has_every_edge_the_start_and_the_end() -> None:
    text = diagram.mermaid(Lifecycle.from_machine())
    lines = text.splitlines()
    assert "stateDiagram-v2" in lines and "title: Instance lifecycle" in lines
    assert f"    [*] --> {INITIAL_STATE}" in lines and "    deleted --> [*]" in lines
    for edge in EDGES:
        assert f"    {edge.source} --> {edge.dest}: {edge.event}" in lines
    assert len([line for line in lines if ": " in line and "-->" in line]) == len(EDGES)


def test_the_diagram_follows_the_machine_not_a_copy() -> None:
    changed = Lifecycle.from_machine(machine_with((*EDGES, EXTRA)), (*EDGES, EXTRA))
    assert "    busy --> deleted: crash" in diagram.mermaid(changed)
    assert '"busy" -> "deleted" [label="crash"];' in diagram.dot(changed)


def test_dot_text_needs_no_graphviz() -> None:
    text = diagram.dot(Lifecycle.from_machine())
    assert text.startswith("digraph lifecycle {") and text.rstrip().endswith("}")
    assert '"deleted" [label="deleted", peripheries=2];' in text


def test_docs_match_the_fsm() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert diagram.stale_sections(text, Lifecycle.from_machine()) == [], (
        "docs/lifecycle.md is out of date: run `./scaler diagram --docs`"
    )
    assert "```mermaid\n" in text
    for edge in EDGES:
        assert f"| `{edge.event}` | {edge.source} | {edge.dest} |" in text


def test_docs_check_fails_when_the_fsm_changes_and_regenerating_fixes_it() -> None:
    text = DOCS.read_text(encoding="utf-8")
    changed = Lifecycle.from_machine(machine_with((*EDGES, EXTRA)), (*EDGES, EXTRA))
    assert diagram.stale_sections(text, changed) == ["diagram", "states", "events"]
    updated = diagram.update_docs(text, changed)
    assert diagram.stale_sections(updated, changed) == []
    assert "| `crash` | busy | deleted | the platform lost the slot |" in updated
    assert updated.split("<!-- BEGIN")[0] == text.split("<!-- BEGIN")[0]  # prose kept


def test_docs_commands_on_a_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "lifecycle.md"
    copy.write_text(DOCS.read_text(encoding="utf-8").replace("| `assign` |", "| `assing` |"))
    assert scaler_main(["diagram", "--check-docs", "--docs-path", str(copy)]) == 1
    assert "out of date (sections: events)" in capsys.readouterr().err
    assert scaler_main(["diagram", "--docs", "--docs-path", str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == DOCS.read_text(encoding="utf-8")
    assert diagram.main(["--check-docs", "--docs-path", str(copy)]) == 0


def test_default_is_mermaid_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert scaler_main(["diagram"]) == 0
    assert capsys.readouterr().out == diagram.mermaid(Lifecycle.from_machine())


def test_format_follows_the_out_suffix(tmp_path: Path) -> None:
    out = tmp_path / "lifecycle.dot"
    assert scaler_main(["diagram", "--out", str(out)]) == 0
    assert out.read_text() == diagram.dot(Lifecycle.from_machine())


@pytest.fixture
def no_graphviz(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No graphviz/pygraphviz package and an empty PATH; returns that PATH directory."""
    monkeypatch.setitem(sys.modules, "graphviz", None)
    monkeypatch.setitem(sys.modules, "pygraphviz", None)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_svg_without_graphviz_says_so_and_exits_2(
    no_graphviz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scaler_main(["diagram", "--format", "svg"]) == diagram.EXIT_NO_GRAPHVIZ == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "needs Graphviz" in captured.err and "--format mermaid" in captured.err


@pytest.mark.skipif(os.name != "posix", reason="the fake `dot` is a script run through its #! line")
def test_svg_goes_through_the_dot_program(no_graphviz: Path, tmp_path: Path) -> None:
    fake = no_graphviz / "dot"
    fake.write_text(
        f'#!{sys.executable}\nimport sys\nsrc = sys.stdin.read()\nprint("<svg>" + sys.argv[1] '
        '+ " " + str(src.count("->")) + "</svg>")\n'
    )
    fake.chmod(0o755)
    out = tmp_path / "lifecycle.svg"
    assert scaler_main(["diagram", "--out", str(out)]) == 0
    assert out.read_text().strip() == f"<svg>-Tsvg {len(EDGES) + 1}</svg>"

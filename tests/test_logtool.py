"""``scaler log``: checking, filtering, timelines and summaries of transition logs.

A real log comes from the fast simulator (the real scheduler and FSM in virtual time); the
checker must pass it and catch one injected illegal record by file:line. Timeline and summary
contents are asserted on a small hand-written log whose numbers are known. The streaming test
compares tracemalloc peaks of a small and a ten times larger synthetic log.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from scaler.cli import main as scaler_main
from scaler.states import Journal
from scaler.tools import logtool
from scaler.tools.logsummary import Histogram
from simulator.fast import run_fast
from simulator.workload import small_workload

T0 = 1_700_000_000.0


def rec(
    t: float,
    instance: str,
    event: str,
    source: str,
    dest: str,
    *,
    request: str | None = None,
    slot: str | None = None,
    function: str = "fn-a",
    reason: str = "",
) -> dict[str, Any]:
    return {
        "time": T0 + t,
        "instance": instance,
        "slot": slot if slot is not None else f"s-{instance}",
        "function": function,
        "request": request,
        "event": event,
        "from": source,
        "to": dest,
        "reason": reason,
    }


def write_log(path: Path, records: list[dict[str, Any]]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as out:
        for r in records:
            out.write(json.dumps(r, separators=(",", ":")) + "\n")
    return path


def run_log(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    code = logtool.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# A real log from the scheduler


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("real") / "transitions.jsonl"
    journal = Journal()
    journal.write_json_lines(path)
    try:
        run_fast(small_workload(), journal=journal)
    finally:
        journal.close()
    return path


def real_lines(real_log: Path) -> list[str]:
    return real_log.read_text().splitlines(keepends=True)


def test_check_passes_on_a_real_log(real_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = real_lines(real_log)
    instances = {json.loads(line)["instance"] for line in lines}
    assert len(lines) > 1000
    code, out, _ = run_log(capsys, real_log, "--check", "--require-clean")
    assert code == 0
    assert out == f"ok: {len(lines)} records, {len(instances)} instances\n"


def test_log_is_a_scaler_sub_command(real_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert scaler_main(["log", str(real_log), "--check"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def _inject(tmp_path: Path, lines: list[str], at: int, record: dict[str, Any]) -> Path:
    """The log with ``record`` inserted so that it becomes line ``at`` (1-based)."""
    path = tmp_path / "injected.jsonl"
    bad = json.dumps(record, separators=(",", ":")) + "\n"
    path.write_text("".join(lines[: at - 1]) + bad + "".join(lines[at - 1 :]))
    return path


def test_check_names_an_assign_of_a_deleted_instance(
    real_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = real_lines(real_log)
    first = json.loads(lines[0])
    deleted_at = next(
        n
        for n, line in enumerate(lines, 1)
        if json.loads(line)["instance"] == first["instance"] and '"to":"deleted"' in line
    )
    last_time = json.loads(lines[-1])["time"]
    illegal = dict(first, time=last_time, event="assign", request="req-late")
    illegal.update({"from": "idle", "to": "busy"})
    path = _inject(tmp_path, lines, len(lines) + 1, illegal)
    code, out, _ = run_log(capsys, path, "--check")
    assert code == 1
    head, shown = out.splitlines()[:2]
    assert head.startswith(f"{path}:{len(lines) + 1}: assignment of a deleted instance")
    assert f"was deleted at {path}:{deleted_at}" in head
    assert json.loads(shown) == illegal


def test_check_names_a_second_assign_while_busy(
    real_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = real_lines(real_log)
    at, assign = next(
        (n, json.loads(line)) for n, line in enumerate(lines, 1) if '"event":"assign"' in line
    )
    second = dict(assign, request="req-intruder")
    path = _inject(tmp_path, lines, at + 1, second)
    code, out, _ = run_log(capsys, path, "--check")
    assert code == 1
    assert out.startswith(
        f"{path}:{at + 1}: instance {assign['instance']} serving two requests at once: "
        f"assign of req-intruder while it serves {assign['request']} (assigned at {path}:{at})"
    )


def test_check_passes_the_log_without_the_injection(
    real_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The injection helper itself must not break the log: inserting nothing is clean."""
    path = tmp_path / "copy.jsonl"
    path.write_text("".join(real_lines(real_log)))
    assert run_log(capsys, path, "--check")[0] == 0


@pytest.mark.parametrize(
    ("records", "line", "message"),
    [
        pytest.param(
            [
                rec(0, "i1", "slot_created", "creating", "initing"),
                rec(1, "i1", "assign", "initing", "busy", request="r"),
            ],
            2,
            "assignment of an uninitialised instance (i1 is 'initing')",
            id="assign-uninitialised",
        ),
        pytest.param(
            [rec(0, "i1", "init_succeeded", "initing", "idle")],
            1,
            "first record of instance i1 must start from 'new' (or 'creating' in older logs), "
            "not 'initing'",
            id="starts-mid-life",
        ),
        pytest.param(
            [rec(0, "i1", "slot_created", "creating", "idle")],
            1,
            "event 'slot_created' leads from 'creating' to 'initing', not 'idle'",
            id="wrong-destination",
        ),
        pytest.param(
            [
                rec(0, "i1", "slot_created", "creating", "initing"),
                rec(1, "i1", "init_succeeded", "initing", "idle"),
                rec(2, "i1", "assign", "idle", "busy", request="r1"),
                rec(3, "i1", "release", "busy", "idle", request="r2"),
            ],
            4,
            "release of i1 for request r2, but it serves r1",
            id="release-other-request",
        ),
        pytest.param(
            [
                rec(0, "i1", "slot_created", "creating", "initing"),
                rec(1, "i1", "init_succeeded", "initing", "idle"),
                rec(0.5, "i1", "expire", "idle", "deleting"),
            ],
            3,
            "time goes backwards for i1",
            id="time-backwards",
        ),
        pytest.param(
            [
                rec(0, "i1", "slot_created", "creating", "initing"),
                rec(1, "i1", "init_succeeded", "initing", "idle"),
                rec(2, "i1", "expire", "idle", "deleting"),
                rec(3, "i1", "release", "deleting", "idle", request="r"),
            ],
            4,
            "the FSM has no event 'release' from state 'deleting'",
            id="edge-not-in-fsm",
        ),
        pytest.param(
            [
                rec(0, "i1", "slot_created", "creating", "initing"),
                rec(1, "i2", "slot_created", "creating", "initing"),
                rec(2, "i1", "init_succeeded", "initing", "idle"),
                rec(2, "i2", "init_succeeded", "initing", "idle"),
                rec(3, "i1", "assign", "idle", "busy", request="r"),
                rec(4, "i2", "assign", "idle", "busy", request="r"),
            ],
            6,
            "request r assigned to i2 while i1 still serves it",
            id="one-request-two-instances",
        ),
    ],
)
def test_check_names_the_violated_invariant(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    records: list[dict[str, Any]],
    line: int,
    message: str,
) -> None:
    path = write_log(tmp_path / "bad.jsonl", records)
    code, out, _ = run_log(capsys, path, "--check")
    assert code == 1
    assert out.startswith(f"{path}:{line}: {message}")


def test_check_names_a_line_that_is_not_a_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_log(tmp_path / "bad.jsonl", [rec(0, "i1", "slot_created", "creating", "initing")])
    with path.open("a") as out:
        out.write('{"time": 1, "instance": "i1"}\n')
    code, out, _ = run_log(capsys, path, "--check")
    assert code == 1
    assert out.startswith(
        f"{path}:2: not a transition record: "
        "missing field(s): slot, function, request, event, from, to, reason"
    )


def test_live_instances_are_a_note_unless_clean_is_required(
    real_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = real_lines(real_log)
    cut = len(lines) // 2
    path = tmp_path / "half.jsonl"
    path.write_text("".join(lines[:cut]))
    code, out, err = run_log(capsys, path, "--check")
    assert code == 0
    assert out.startswith(f"ok: {cut} records")
    assert "still alive at the end of the log" in err
    code, out, _ = run_log(capsys, path, "--check", "--require-clean")
    assert code == 1
    assert "still holds slot" in out and "at the end of the log" in out


def test_gzip_and_several_files_read_as_one_log(
    real_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = real_lines(real_log)
    cut = len(lines) // 3
    first = tmp_path / "part1.jsonl.gz"
    with gzip.open(first, "wt") as out:
        out.write("".join(lines[:cut]))
    second = tmp_path / "part2.jsonl"
    second.write_text("".join(lines[cut:]))
    _, expected, _ = run_log(capsys, real_log, "--check")
    code, out, _ = run_log(capsys, first, second, "--check", "--require-clean")
    assert code == 0
    assert out == expected
    # the second part alone starts mid-life: the check must say so, in that file
    code, out, _ = run_log(capsys, second, "--check")
    assert code == 1
    assert out.startswith(f"{second}:")


def test_gzip_is_recognised_by_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_log(tmp_path / "t.jsonl.gz", TINY)
    renamed = path.rename(tmp_path / "t.log")
    code, out, _ = run_log(capsys, renamed, "--instance", "i1")
    assert code == 0
    assert len(out.splitlines()) == 8


# --------------------------------------------------------------------------------------------
# A tiny hand-written log whose story is known

TINY = [
    rec(0.0, "i1", "slot_created", "creating", "initing", reason="for request r1"),
    rec(0.5, "i1", "init_succeeded", "initing", "idle", reason="init took 480 ms"),
    rec(0.5, "i1", "assign", "idle", "busy", request="r1", reason="handed to a waiting request"),
    rec(1.0, "i1", "release", "busy", "idle", request="r1", reason="finished with status 200"),
    rec(2.0, "i2", "slot_created", "creating", "initing", reason="pre-warm"),
    rec(2.2, "i2", "init_succeeded", "initing", "idle", reason="init took 200 ms"),
    rec(3.0, "i3", "slot_failed", "creating", "deleted", slot=None, reason="Throttle"),
    rec(5.0, "i1", "assign", "idle", "busy", request="r2", reason="warm hit"),
    rec(5.25, "i1", "release", "busy", "idle", request="r2", reason="finished with status 200"),
    rec(
        10.0, "i4", "slot_created", "creating", "initing", function="fn-b", reason="for request r3"
    ),
    rec(
        10.3, "i4", "init_succeeded", "initing", "idle", function="fn-b", reason="init took 300 ms"
    ),
    rec(10.3, "i4", "assign", "idle", "busy", function="fn-b", request="r3", reason="warm hit"),
    rec(11.0, "i4", "release", "busy", "idle", function="fn-b", request="r3", reason="ok"),
    rec(60.0, "i2", "expire", "idle", "deleting", reason="keep-alive expired"),
    rec(60.1, "i2", "destroyed", "deleting", "deleted", reason="slot destroyed"),
    rec(65.25, "i1", "expire", "idle", "deleting", reason="keep-alive expired"),
    rec(65.35, "i1", "destroyed", "deleting", "deleted", reason="slot destroyed"),
]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_log(tmp_path / "tiny.jsonl", TINY)


def test_tiny_log_is_clean_but_has_a_live_instance(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_log(capsys, tiny, "--check")
    assert (code, out) == (0, "ok: 17 records, 4 instances\n")
    assert "1 instance(s) still alive" in err and "i4 (idle, slot s-i4)" in err


def test_default_output_is_one_readable_line_per_record(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_log(capsys, tiny, "--request", "r2")
    assert code == 0
    assert out.splitlines() == [
        '2023-11-14 22:13:25.000  i1  assign idle->busy  fn=fn-a  req=r2  slot=s-i1  "warm hit"',
        "2023-11-14 22:13:25.250  i1  release busy->idle  fn=fn-a  req=r2  slot=s-i1  "
        '"finished with status 200"',
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--instance", "i2"], [4, 5, 13, 14]),
        (["--instance", "i2", "--instance", "i3"], [4, 5, 6, 13, 14]),
        (["--function", "fn-b"], [9, 10, 11, 12]),
        (["--request", "r1"], [2, 3]),
        (["--since", str(T0 + 60), "--until", str(T0 + 65.25)], [13, 14, 15]),
        (["--since", "2023-11-14 22:14:20", "--function", "fn-a"], [13, 14, 15, 16]),
        (["--function", "fn-a", "--request", "r3"], []),
    ],
)
def test_filters_select_records(
    tiny: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: list[int]
) -> None:
    code, out, _ = run_log(capsys, tiny, "--line-numbers", *argv)
    assert code == 0
    assert [int(line.split(":")[1]) - 1 for line in out.splitlines()] == expected


def test_timeline_tells_each_life(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_log(capsys, tiny, "--timeline", "--function", "fn-a")
    assert code == 0
    stories = out.strip().split("\n\n")
    # told in the order the instances were deleted: i3 (failed), i2, i1
    assert [s.split()[0] for s in stories] == ["i3", "i2", "i1"]
    i1 = [line.split(maxsplit=3)[3] for line in stories[2].splitlines()[1:]]
    assert stories[2].splitlines()[0] == "i1  function fn-a  slot s-i1"
    assert i1 == [
        "slot s-i1 created (for request r1)",
        "initialised (init took 480 ms)",
        "served r1 for 500ms (handed to a waiting request; finished with status 200)",
        "served r2 for 250ms after 4.00s idle (warm hit; finished with status 200)",
        "expired after 1m00s idle (keep-alive expired)",
        "deleted (slot destroyed); lived 1m05s, served 2 request(s), busy 750ms, 1% of its life",
    ]
    assert "slot creation failed (Throttle)" in stories[0]
    assert "served r" not in stories[1] and "expired after 57.8s idle" in stories[1]
    assert "served 0 request(s)" in stories[1]


def test_timeline_of_a_request_and_of_a_live_instance(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_log(capsys, tiny, "--timeline", "--request", "r3")
    lines = out.strip().splitlines()
    assert lines[0] == "i4  function fn-b  slot s-i4"
    assert lines[-1].endswith("still alive at the end of the log (idle)")
    assert "+300ms  served r3 for 700ms (warm hit; ok)" in out


def test_timeline_keeps_first_and_last_lines(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_log(capsys, tiny, "--timeline", "--instance", "i1", "--max-lines", "4")
    lines = out.strip().splitlines()
    assert len(lines) == 1 + 2 + 1 + 2
    assert "initialised" in lines[2] and "2 lines not shown" in lines[3]
    assert "expired" in lines[4] and "deleted" in lines[5]


def test_summary_per_function(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_log(capsys, tiny, "--summary")
    assert code == 0
    table = [line.split("  ") for line in out.splitlines()[:4]]
    rows = {cells[0].strip(): [c.strip() for c in cells[1:] if c.strip()] for cells in table}
    # instances, failed, cold, warm, reuse, unused, alive, lifetime, idle gap
    assert rows["fn-a"][:7] == ["3", "1", "1", "1", "50.0%", "1", "0"]
    assert rows["fn-b"][:7] == ["1", "0", "1", "0", "0.0%", "0", "1"]  # i4 served, alive
    assert rows["fn-a"][7] == "1m03s/1m05s/1m05s"  # i2 58.1 s (bucket edge 63 s), i1 65.35 s
    assert rows["fn-a"][8] == "4.00s/4.00s/4.00s"  # the one gap between r1 and r2
    assert rows["total (2 functions)"][:4] == ["4", "1", "2", "1"]


def test_summary_gives_a_failed_creation_no_lifetime(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_log(capsys, tiny, "--summary", "--instance", "i3")
    assert out.splitlines()[1].split() == ["fn-a", "1", "1", "0", "0", "-", "0", "0", "-", "-"]


def test_summary_counts_instances_deleted_unused(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_log(capsys, tiny, "--summary", "--function", "fn-a")
    header, row = out.splitlines()[:2]
    assert header.split()[:8] == [
        "function",
        "instances",
        "failed",
        "cold",
        "warm",
        "reuse",
        "unused",
        "alive",
    ]
    assert row.split()[6] == "1"  # i2: pre-warmed, initialised, never busy


def test_histogram_quantiles_are_bucket_edges_within_twelve_percent() -> None:
    histogram = Histogram()
    for ms in range(1, 1001):
        histogram.add(ms / 1000)
    assert histogram.n == 1000 and histogram.max == 1.0
    for q, exact in ((0.5, 0.5), (0.9, 0.9)):
        assert exact <= histogram.quantile(q) <= exact * 1.122
    assert len(histogram.counts) == Histogram.BUCKETS
    histogram.add(1e9)
    assert len(histogram.counts) == Histogram.BUCKETS and histogram.max == 1e9


def test_bad_arguments_exit_2(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_log(capsys, tiny, "--check", "--request", "r1")[0] == 2
    assert run_log(capsys, tiny, "--since", "yesterday")[0] == 2
    assert run_log(capsys, tiny.with_name("missing.jsonl"))[0] == 2


def test_malformed_lines_are_skipped_with_a_warning_outside_check(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tiny.open("a") as out:
        out.write("not json\n")
        out.write('{"time": 1, "instance": "i9"')  # the writer was killed mid-line
    code, out, err = run_log(capsys, tiny)
    assert code == 0
    assert len(out.splitlines()) == 17
    assert f"{tiny}:18: skipped: not JSON" in err
    assert f"{tiny}:19: incomplete last line" in err


# --------------------------------------------------------------------------------------------
# Streaming: memory must not grow with the length of the log


def synthetic_log(path: Path, records: int, live: int = 100, requests_per_life: int = 3) -> Path:
    """``records`` valid records of ``live`` interleaved instances, each living a short life."""
    template = (
        '{{"time":{t:.3f},"instance":"{i}","slot":"s-{i}","function":"fn-{f}",'
        '"request":{r},"event":"{e}","from":"{a}","to":"{b}","reason":"synthetic"}}\n'
    )
    steps = [("slot_created", "creating", "initing"), ("init_succeeded", "initing", "idle")]
    steps += [("assign", "idle", "busy"), ("release", "busy", "idle")] * requests_per_life
    steps += [("expire", "idle", "deleting"), ("destroyed", "deleting", "deleted")]
    cursors = [[n, 0] for n in range(live)]
    next_id = live
    with path.open("w") as out:
        for step in range(records):
            cursor = cursors[step % live]
            n, k = cursor
            event, source, dest = steps[k]
            request = f'"r-{n}-{k // 2}"' if event in ("assign", "release") else "null"
            out.write(
                template.format(
                    t=T0 + step / 1000, i=f"i{n}", f=n % 7, r=request, e=event, a=source, b=dest
                )
            )
            cursor[1] += 1
            if cursor[1] == len(steps):
                cursor[:] = [next_id, 0]
                next_id += 1
    return path


def _peak_bytes(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str]:
    tracemalloc.start()
    try:
        code, out, _ = run_log(capsys, *argv)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0, out
    return peak, out


def test_check_memory_does_not_grow_with_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = synthetic_log(tmp_path / "small.jsonl", 20_000)
    large = synthetic_log(tmp_path / "large.jsonl", 200_000)
    run_log(capsys, small, "--check")  # warm caches (imports, the json scanner)
    small_peak, _ = _peak_bytes(capsys, small, "--check")
    large_peak, out = _peak_bytes(capsys, large, "--check")
    assert out == "ok: 200000 records, 20000 instances\n"
    assert large_peak < 2 * small_peak, (small_peak, large_peak)
    assert large_peak < 16 * 2**20


def test_a_truncated_gzip_log_is_read_up_to_the_cut_with_a_warning(
    real_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = gzip.compress(real_log.read_bytes())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    code, out, err = run_log(capsys, cut, "--check")
    assert code == 0 and out.startswith("ok: ")
    assert 0 < int(out.split()[1]) < len(real_lines(real_log))
    assert f"{cut}: compressed stream ends early" in err


def test_concatenated_gzip_members_are_one_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "".join(json.dumps(r) + "\n" for r in TINY)
    path = tmp_path / "joined.jsonl.gz"
    path.write_bytes(gzip.compress(text[:500].encode()) + gzip.compress(text[500:].encode()))
    code, out, err = run_log(capsys, path, "--check")
    assert (code, out) == (0, "ok: 17 records, 4 instances\n")
    assert "compressed" not in err

"""Wire mode against bad scalers: one that never answers Assign, one that never answers Idle,
one that dies mid-run, one that exits before it listens. Every run ends, with a record whose
failed requests carry the reason. Also the ids the scaler sees (36 characters, as the
challenge's) and the ``--scaler-cmd`` placeholders."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from scaler.wire import pb, rpc
from simulator.dataset import Dataset
from simulator.ids import ID_LENGTH, UuidIds
from simulator.scaler_process import command_argv
from simulator.score import build_record
from simulator.wire import WireOptions, WireRun, WireSimulator
from tests.test_wire_mode import scaler_cli, tiny_dataset
from tests.tiny_scaler import TinyScaler

ROOT = Path(__file__).resolve().parents[1]
#: The tiny scaler as a ``--scaler-cmd`` (placeholders filled in by the simulator).
TINY = (
    f"{sys.executable} {ROOT / 'tests' / 'tiny_scaler.py'}"
    + " --listen {listen} --platform {platform}"
)


class NeverAssign(rpc.ScalerServicer):
    """Accepts every Assign and never answers it (until the server stops)."""

    def __init__(self) -> None:
        self.never = asyncio.Event()

    async def Assign(self, request: Any, context: Any) -> Any:
        await self.never.wait()  # cancelled when the server stops
        return pb.AssignReply(status=pb.Ok)


class NeverIdle(TinyScaler):
    """A working Assign, an Idle that never answers; remembers every request id it saw."""

    def __init__(self, platform: Any) -> None:
        super().__init__(platform)
        self.request_ids: list[str] = []
        self.never = asyncio.Event()

    async def Assign(self, request: Any, context: Any) -> Any:
        self.request_ids.append(request.request_id)
        return await super().Assign(request, context)

    async def Idle(self, request: Any, context: Any) -> Any:
        await self.never.wait()
        return pb.IdleReply(status=pb.Ok)


async def session(dataset: Dataset, make_servicer: Any, **deadlines: float) -> tuple[WireRun, Any]:
    """One wire session (speed 10) against ``make_servicer(platform_stub)`` on 127.0.0.1."""
    options = WireOptions(
        platform_listen="127.0.0.1:0",
        stats_listen="127.0.0.1:0",
        speed=10.0,
        connect_timeout_s=10.0,
        **deadlines,
    )
    simulator = WireSimulator(options)
    await simulator.start()
    channel = grpc.aio.insecure_channel(simulator.platform_address)
    servicer = make_servicer(rpc.PlatformStub(channel))
    server = grpc.aio.server()
    rpc.add_ScalerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    simulator.scaler_address = f"127.0.0.1:{port}"
    try:
        runs = await asyncio.wait_for(simulator.run([dataset]), 60.0)
    finally:
        await server.stop(0)
        await channel.close()
        await simulator.close()
    return runs[0], servicer


async def test_a_scaler_that_never_answers_assign_fails_every_request(tmp_path: Path) -> None:
    from simulator.dataset import load_dataset

    dataset = load_dataset(tiny_dataset(tmp_path / "tiny"))
    run, _ = await session(dataset, lambda _: NeverAssign(), assign_deadline_s=0.5)
    record = build_record(dataset, run.totals, record_id=1)
    n = len(dataset.requests)
    assert run.failures == {"assign deadline exceeded": n}
    assert record["totalRequestsCount"] == n and record["failedRequestsCount"] == n
    assert record["score"] == 0.0
    assert "no answer within 0.5 s" in run.first_failures[0]


async def test_a_scaler_that_never_answers_idle_fails_every_request(tmp_path: Path) -> None:
    from simulator.dataset import load_dataset

    dataset = load_dataset(tiny_dataset(tmp_path / "tiny"))
    run, servicer = await session(dataset, NeverIdle, idle_deadline_s=0.3)
    n = len(dataset.requests)
    assert run.failures == {"idle deadline exceeded": n}
    assert run.totals.cold_starts == n  # every Assign itself was served
    # The ids the scaler saw: 36 characters, UUID-shaped, all different.
    ids = servicer.request_ids
    assert len(ids) == n == len(set(ids))
    assert all(len(i) == ID_LENGTH and str(uuid.UUID(i)) == i for i in ids)


def test_ids_are_uuid_shaped_and_deterministic() -> None:
    ids, again = UuidIds(7), UuidIds(7)
    first = [next(ids) for _ in range(100)]
    assert first == [next(again) for _ in range(100)]
    assert len(set(first)) == len(first)
    assert all(len(i) == ID_LENGTH and str(uuid.UUID(i)) == i for i in first)
    assert next(UuidIds("requests")) != next(UuidIds("slots"))


def test_slot_ids_are_36_characters() -> None:
    from simulator.platform import SlotLedger

    ledger = SlotLedger()
    slots = [ledger.create(128, 0.0).id for _ in range(3)]
    assert all(len(s) == ID_LENGTH for s in slots) and len(set(slots)) == 3


def test_scaler_cmd_placeholders() -> None:
    argv = command_argv("go run . -l {listen} -p {port} --platform={platform} '{x}'", "h:9", "p:5")
    assert argv == ["go", "run", ".", "-l", "h:9", "-p", "9", "--platform=p:5", "{x}"]
    with pytest.raises(ValueError):
        command_argv("", "h:9", "p:5")


def test_simulate_against_a_scaler_that_dies_still_prints_a_record(tmp_path: Path) -> None:
    """The tiny scaler, started by --scaler-cmd after the platform listens (it dials the
    platform as it starts), dies on its 10th Assign: the rest fail with the reason."""
    folder = tiny_dataset(tmp_path / "tiny")
    log = tmp_path / "scaler.log"
    result = scaler_cli(
        "simulate", str(folder), "--mode", "wire", "--json", "--speed", "10",
        "--scaler", "127.0.0.1:0", "--platform-listen", "127.0.0.1:0",
        "--stats-listen", "127.0.0.1:0", "--scaler-log", str(log),
        "--scaler-cmd", f"{TINY} --die-after 10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["totalRequestsCount"] == 60
    assert 50 <= record["failedRequestsCount"] < 60  # the first nine were served
    assert record["score"] == 0.0
    assert "cut short: scaler exited with status 4" in result.stderr
    assert "scaler exited with status 4" in result.stderr.split("failures:", 1)[1]
    assert "dying on Assign 10" in log.read_text()


def test_simulate_names_a_scaler_cmd_that_exits_before_listening(tmp_path: Path) -> None:
    folder = tiny_dataset(tmp_path / "tiny")
    command = f"{sys.executable} -c \"print('no config file'); raise SystemExit(3)\""
    result = scaler_cli(
        "simulate", str(folder), "--mode", "wire",
        "--scaler", "127.0.0.1:0", "--platform-listen", "127.0.0.1:0",
        "--stats-listen", "127.0.0.1:0", "--scaler-cmd", command,
    )  # fmt: skip
    assert result.returncode == 1
    assert "exited with status 3 before accepting connections" in result.stderr
    assert "command: " in result.stderr and "no config file" in result.stderr


def test_a_scaler_behind_a_wrapper_gets_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    """``sh -c '...; echo'`` forks the scaler rather than exec-ing it: the signals go to the
    whole process group, and the session waits for the scaler's own graceful stop."""
    folder = tiny_dataset(tmp_path / "tiny")
    log = tmp_path / "scaler.log"
    wrapped = f"sh -c '{TINY}; echo wrapper done'"
    result = scaler_cli(
        "simulate", str(folder), "--mode", "wire", "--json", "--speed", "10",
        "--scaler", "127.0.0.1:0", "--platform-listen", "127.0.0.1:0",
        "--stats-listen", "127.0.0.1:0", "--scaler-log", str(log), "--scaler-cmd", wrapped,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["failedRequestsCount"] == 0 and record["leakedSlots"] == 0
    assert "tiny scaler: stopped after 60 assigns" in log.read_text()


async def test_a_scaler_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    from simulator.scaler_process import ScalerProcess

    ready = asyncio.Event()

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ready.set()  # the child ignores SIGTERM by now
        writer.close()

    server = await asyncio.start_server(hello, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    code = (
        "import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"socket.create_connection(('127.0.0.1', {port})); time.sleep(60)"
    )
    process = ScalerProcess([sys.executable, "-c", code], keep_log=False)
    await process.start()
    try:
        await asyncio.wait_for(ready.wait(), 30.0)
    finally:
        status = await process.stop(grace_s=0.5)
        server.close()
    assert status == -9
    assert process.log_path  # kept: it did not exit cleanly
    Path(process.log_path).unlink()

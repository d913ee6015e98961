"""The wire contract: hand-computed bytes for every message, service names, fresh stubs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from scaler.wire import pb

ROOT = Path(__file__).resolve().parents[1]


def tag(field: int, wire_type: int) -> bytes:
    return bytes([(field << 3) | wire_type])


def s(field: int, text: bytes) -> bytes:
    """A length-delimited field (strings and sub-messages; all shorter than 128 bytes here)."""
    return tag(field, 2) + bytes([len(text)]) + text


def v(field: int, value: int) -> bytes:
    """A varint field for values below 128."""
    return tag(field, 0) + bytes([value])


def test_assign_request_bytes() -> None:
    message = pb.AssignRequest(
        request_id="r",
        timestamp=7,
        meta_data=pb.Meta(key="k", runtime="go", timeout_in_secs=9, memory_in_mb=64),
    )
    meta = s(1, b"k") + s(3, b"go") + v(4, 9) + v(5, 64)
    assert message.SerializeToString() == s(1, b"r") + v(2, 7) + s(3, meta)


def test_assign_reply_keeps_the_misspelled_field() -> None:
    message = pb.AssignReply(
        status=pb.InvalidAssigment,
        assigment=pb.Assignment(request_id="r", meta_key="k", instance_id="i"),
        error_message="e",
    )
    assignment = s(1, b"r") + s(2, b"k") + s(3, b"i")
    assert message.SerializeToString() == v(1, 5) + s(2, assignment) + s(3, b"e")


def test_idle_messages_bytes() -> None:
    result = pb.Result(status_code=5, duration_in_ms=3, need_destroy=True, reason="x")
    request = pb.IdleRequest(assigment=pb.Assignment(instance_id="i"), result=result)
    result_bytes = v(1, 5) + v(2, 3) + v(3, 1) + s(4, b"x")
    assert request.SerializeToString() == s(1, s(3, b"i")) + s(2, result_bytes)
    reply = pb.IdleReply(status=pb.NotFound, error_message="m")
    assert reply.SerializeToString() == v(1, 3) + s(3, b"m")


def test_platform_messages_bytes() -> None:
    resource = v(1, 100)
    create = pb.CreateSlotRequest(
        request_id="q", resource_config=pb.ResourceConfig(memory_in_megabytes=100)
    )
    assert create.SerializeToString() == s(1, b"q") + s(2, resource)
    slot = pb.Slot(
        id="s",
        resource_config=pb.ResourceConfig(memory_in_megabytes=100),
        create_time=4,
        create_duration_in_ms=6,
    )
    slot_bytes = s(1, b"s") + s(2, resource) + v(3, 4) + v(4, 6)
    assert slot.SerializeToString() == slot_bytes
    reply = pb.CreateSlotReply(status=pb.Throttle, slot=slot, error_message="t")
    assert reply.SerializeToString() == v(1, 1) + s(2, slot_bytes) + s(3, b"t")
    destroy = pb.DestroySlotRequest(request_id="q", id="s", reason="r")
    assert destroy.SerializeToString() == s(1, b"q") + s(2, b"s") + s(3, b"r")
    assert pb.DestroySlotReply(status=2, error_message="e").SerializeToString() == v(1, 2) + s(
        2, b"e"
    )
    init = pb.InitRequest(request_id="q", slot_id="s", instance_id="i", meta_data=pb.Meta(key="k"))
    assert init.SerializeToString() == s(1, b"q") + s(2, b"s") + s(3, b"i") + s(4, s(1, b"k"))
    init_reply = pb.InitReply(status=4, create_time=1, init_duration_in_ms=2, error_message="e")
    assert init_reply.SerializeToString() == v(1, 4) + v(2, 1) + v(3, 2) + s(4, b"e")


def test_status_enum_numbers() -> None:
    assert [pb.Status.Name(n) for n in range(6)] == [
        "Ok",
        "Throttle",
        "InternalError",
        "NotFound",
        "InvalidArgument",
        "InvalidAssigment",
    ]


def test_meta_has_no_field_two_and_optional_fields_have_presence() -> None:
    numbers = {f.name: f.number for f in pb.Meta.DESCRIPTOR.fields}
    assert numbers == {"key": 1, "runtime": 3, "timeout_in_secs": 4, "memory_in_mb": 5}
    result = pb.Result()
    assert not result.HasField("need_destroy")
    result.need_destroy = False
    assert result.HasField("need_destroy")


def test_service_method_paths() -> None:
    services = {
        s.full_name: [m.name for m in s.methods] for s in pb.DESCRIPTOR.services_by_name.values()
    }
    assert services == {
        "serverless.simulator.Scaler": ["Assign", "Idle"],
        "serverless.simulator.Platform": ["CreateSlot", "DestroySlot", "Init"],
    }
    assert pb.DESCRIPTOR.package == "serverless.simulator"


def test_committed_stubs_match_the_proto(tmp_path) -> None:
    """`make proto` output must equal what is committed: a stale stub fails here."""
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "tools" / "gen_proto.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_proto"] = module
    spec.loader.exec_module(module)
    fresh = module.generate(tmp_path)
    for path in fresh:
        committed = ROOT / "src" / "scaler" / "wire" / path.name
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run make proto"

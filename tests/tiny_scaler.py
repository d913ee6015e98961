"""A tiny stand-alone scaler, the simplest that follows the wire contract: one instance per
request (CreateSlot + Init on Assign), destroyed on Idle. It shares no code with ours but the
generated stubs, so comparing it with ours tests ``bench.compare`` and ``--scaler-cmd`` as a
user's own scaler would use them.

    python tests/tiny_scaler.py --listen 127.0.0.1:9001 --platform 127.0.0.1:50051

Like the challenge's Go scalers it dials the platform as it starts, and gives up at once
(exit 3) if nothing listens there: every test that uses it also checks that the simulator's
platform listens before the scaler starts. SIGTERM destroys what is left and exits 0.
``--die-after N`` exits with status 4 on the N-th Assign (a scaler that crashes, for the
tests); ``--lifetime`` bounds how long it may live whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import grpc

from scaler.wire import pb, rpc

#: Bound on each platform call, seconds: the longest Init of the challenge's datasets is 120 s.
PLATFORM_DEADLINE_S = 150.0


class TinyScaler(rpc.ScalerServicer):
    """A new slot and instance for every Assign; the instance's slot destroyed on Idle."""

    def __init__(self, platform: Any, die_after: int = 0) -> None:
        self.platform = platform
        self.die_after = die_after
        self.assigns = 0
        self.slots: dict[str, str] = {}  # instance id -> slot id

    async def Assign(self, request: Any, context: Any) -> Any:
        self.assigns += 1
        if self.die_after and self.assigns >= self.die_after:
            print(f"tiny scaler: dying on Assign {self.assigns}, as asked", flush=True)
            os._exit(4)  # no cleanup: a crash
        meta = request.meta_data
        created = await self.platform.CreateSlot(
            pb.CreateSlotRequest(
                request_id=request.request_id,
                resource_config=pb.ResourceConfig(memory_in_megabytes=meta.memory_in_mb),
            ),
            timeout=PLATFORM_DEADLINE_S,
        )
        if created.status != pb.Ok:
            return pb.AssignReply(status=created.status, error_message=created.error_message)
        slot_id = created.slot.id
        instance_id = str(uuid.uuid4())
        init = await self.platform.Init(
            pb.InitRequest(
                request_id=request.request_id,
                slot_id=slot_id,
                instance_id=instance_id,
                meta_data=meta,
            ),
            timeout=PLATFORM_DEADLINE_S,
        )
        if init.status != pb.Ok:
            await self._destroy(slot_id, "init failed")
            return pb.AssignReply(status=init.status, error_message=init.error_message)
        self.slots[instance_id] = slot_id
        return pb.AssignReply(
            status=pb.Ok,
            assigment=pb.Assignment(
                request_id=request.request_id, meta_key=meta.key, instance_id=instance_id
            ),
        )

    async def Idle(self, request: Any, context: Any) -> Any:
        slot_id = self.slots.pop(request.assigment.instance_id, None)
        if slot_id is None:
            return pb.IdleReply(status=pb.NotFound, error_message="unknown instance")
        await self._destroy(slot_id, "idle")
        return pb.IdleReply(status=pb.Ok)

    async def _destroy(self, slot_id: str, reason: str) -> None:
        await self.platform.DestroySlot(
            pb.DestroySlotRequest(request_id=str(uuid.uuid4()), id=slot_id, reason=reason),
            timeout=PLATFORM_DEADLINE_S,
        )

    async def destroy_all(self) -> None:
        slots, self.slots = list(self.slots.values()), {}
        await asyncio.gather(*(self._destroy(s, "shutdown") for s in slots))


async def main(args: argparse.Namespace) -> int:
    host, _, port = args.platform.rpartition(":")
    try:  # one plain connect, no retry: the platform must already listen
        socket.create_connection((host.strip("[]"), int(port)), timeout=args.dial_timeout).close()
    except OSError as err:
        print(f"tiny scaler: no platform at {args.platform}: {err}", flush=True)
        return 3
    channel = grpc.aio.insecure_channel(args.platform)
    scaler = TinyScaler(rpc.PlatformStub(channel), args.die_after)
    server = grpc.aio.server()
    rpc.add_ScalerServicer_to_server(scaler, server)
    if not server.add_insecure_port(args.listen):
        print(f"tiny scaler: cannot listen on {args.listen}", flush=True)
        return 2
    await server.start()
    print(f"tiny scaler: serving on {args.listen}, platform {args.platform}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.lifetime)
    except TimeoutError:
        print("tiny scaler: lifetime over", flush=True)
    await server.stop(1.0)
    await scaler.destroy_all()
    await channel.close()
    print(f"tiny scaler: stopped after {scaler.assigns} assigns", flush=True)
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:9001")
    p.add_argument("--platform", default="127.0.0.1:50051")
    p.add_argument("--dial-timeout", type=float, default=5.0, help="wait for the platform, s")
    p.add_argument("--lifetime", type=float, default=3600.0, help="exit after this long, s")
    p.add_argument("--die-after", type=int, default=0, help="exit 4 on the N-th Assign")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))

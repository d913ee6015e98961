"""The floor under the scaler: a Scaler service that answers Assign and Idle at once.

Same proto, same grpc.aio server options as ``scaler serve``, no scheduler, no FSM. Loaded
exactly like the scaler (``python -m bench.rpc --baseline``), it shows how much of a pair's
latency and CPU is gRPC and asyncio themselves. It accepts the ``serve`` arguments the
benchmark passes and uses only ``--listen``; it stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import grpc

import bench  # noqa: F401  (src/ on sys.path)
from scaler.app import MAX_MESSAGE_BYTES
from scaler.wire import pb, rpc


class EchoScaler(rpc.ScalerServicer):
    """Every Assign gets the same instance; every Idle is Ok."""

    async def Assign(self, request: Any, context: Any = None) -> Any:
        return pb.AssignReply(
            status=pb.Ok,
            assigment=pb.Assignment(
                request_id=request.request_id,
                meta_key=request.meta_data.key,
                instance_id="echo-1",
            ),
        )

    async def Idle(self, request: Any, context: Any = None) -> Any:
        return pb.IdleReply(status=pb.Ok)


async def serve(listen: str) -> int:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    rpc.add_ScalerServicer_to_server(EchoScaler(), server)
    if server.add_insecure_port(listen) == 0:
        print(f"cannot listen on {listen}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    await stop.wait()
    await server.stop(0.5)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", default="serve")
    parser.add_argument("--listen", default="127.0.0.1:0")
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(serve(args.listen))


if __name__ == "__main__":
    raise SystemExit(main())

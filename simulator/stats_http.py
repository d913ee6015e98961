"""The simulator's live statistics as JSON over HTTP (the contract's ``:9000``).

Any GET (or HEAD) on any path answers the current counters. The port is open exactly while a
run lasts: the contract's ``run.sh`` stops the scaler when it stops accepting connections, so
:meth:`StatsServer.close` is part of ending a run. ``run.sh`` probes with a bare TCP connect
that sends nothing, which the handler tolerates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

#: Longest a client may take to send its request head.
READ_TIMEOUT_S = 5.0
#: Largest request head read; the rest is ignored.
MAX_HEAD_BYTES = 8192


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as ``(host, port)``; ValueError when malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bad address {address!r} (expected HOST:PORT)")
    return host.strip("[]") or "0.0.0.0", int(port)


class StatsServer:
    """A tiny HTTP/1.1 server answering ``snapshot()`` as JSON, one response per connection."""

    def __init__(self, address: str, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.host, self._port = split_address(address)
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        """Listen; return the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._handle, self.host, self._port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def close(self) -> None:
        """Stop accepting connections; from now on connects are refused."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), READ_TIMEOUT_S)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            head = b""  # a bare connect (run.sh's probe), a slow or a huge client
        try:
            if head:
                writer.write(self._response(head))
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _response(self, head: bytes) -> bytes:
        method = head.split(b" ", 1)[0].upper()
        if method not in (b"GET", b"HEAD"):
            body = b'{"error": "only GET is served"}\n'
            status = b"405 Method Not Allowed"
        else:
            body = (json.dumps(self._snapshot()) + "\n").encode()
            status = b"200 OK"
        lines = [
            b"HTTP/1.1 " + status,
            b"Content-Type: application/json",
            b"Content-Length: " + str(len(body)).encode(),
            b"Cache-Control: no-store",
            b"Connection: close",
        ]
        return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if method == b"HEAD" else body)

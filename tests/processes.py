"""Helpers for tests that run `./scaler` as a process."""

from __future__ import annotations

import asyncio


async def serving_port(process: asyncio.subprocess.Process, timeout_s: float = 30) -> int:
    """The port the scaler logged it serves on (bounded wait on its stderr)."""
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), timeout_s)
        if not line:
            raise AssertionError("scaler exited before serving")
        text = line.decode()
        if "serving on" in text:
            return int(text.split("(port ", 1)[1].split(",", 1)[0])

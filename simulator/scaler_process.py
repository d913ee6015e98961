"""The scaler as a child process of a wire session: ours (``--start-scaler``) or any command
(``--scaler-cmd``), started, watched and stopped by one code path.

The session starts it only once the platform listens (scalers written for the challenge dial
the platform as they start), keeps its stdout and stderr in a log file, and stops it with
SIGTERM, then SIGKILL after a grace period, so a hung scaler cannot hold the session. The
process leads its own process group and the signals go to the group, so a wrapper
(``go run .``, ``sh -c ...``) does not leave the real scaler running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from simulator.stats_http import split_address

#: Words of ``--scaler-cmd`` replaced before it runs (each in every word, as plain text).
PLACEHOLDERS = ("{listen}", "{port}", "{platform}")

#: How often stop() looks whether a wrapper's children have exited, seconds.
GROUP_POLL_S = 0.05

#: Log lines quoted in an error about the process.
TAIL_LINES = 5


def command_argv(template: str, listen: str, platform: str) -> list[str]:
    """``template`` split as a shell would, with ``{listen}`` (host:port), ``{port}`` and
    ``{platform}`` (the platform's host:port) filled in. Other braces are left alone."""
    words = shlex.split(template)
    if not words:
        raise ValueError("--scaler-cmd is empty")
    _, port = split_address(listen)
    values = {"{listen}": listen, "{port}": str(port), "{platform}": platform}
    out = []
    for word in words:
        for name, value in values.items():
            word = word.replace(name, value)
        out.append(word)
    return out


def our_scaler_argv(listen: str, platform: str, policy: str, transition_log: str = "") -> list[str]:
    """``scaler serve`` with this interpreter, for ``--start-scaler``."""
    argv = [sys.executable, "-m", "scaler", "serve", "--listen", listen]
    argv += ["--platform-address", platform, "--policy", policy]
    if transition_log:
        argv += ["--transition-log", transition_log]
    return argv


class ScalerProcess:
    """One scaler process: ``await start()``, ``await wait()`` to hear it exit, ``await stop()``.

    ``log_path`` empty: a temporary file, removed after a clean exit (status 0) unless
    ``keep_log``; it is kept whenever something went wrong, to explain it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        log_path: str = "",
        keep_log: bool = True,
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.keep_log = keep_log or bool(log_path)
        self.returncode: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    async def start(self) -> None:
        if self.log_path:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        else:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop)
                prefix="scaler-", suffix=".log", delete=False
            )
            self.log_path, self._log = handle.name, handle
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # its own group: stop() signals the wrapper's children too
            )
        except OSError as err:
            self._close_log()
            raise OSError(f"cannot start `{self.command}`: {err}") from None

    async def wait(self) -> int:
        """Until the process exits; its status."""
        assert self._process is not None, "not started"
        self.returncode = await self._process.wait()
        return self.returncode

    async def stop(self, grace_s: float) -> int | None:
        """SIGTERM, up to ``grace_s`` for it to exit, then SIGKILL; its status. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return self.returncode
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        try:
            _signal_group(process.pid, signal.SIGTERM)  # also reaches what a dead wrapper left
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
            if not await _group_gone(process.pid, deadline):
                _signal_group(process.pid, signal.SIGKILL)
            self.returncode = process.returncode
        finally:
            self._close_log()
            if not self.keep_log and self.returncode == 0:
                Path(self.log_path).unlink(missing_ok=True)
                self.log_path = ""
        return self.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last lines of its log (empty when there is none)."""
        if not self.log_path:
            return []
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return []
        return text.strip().splitlines()[-lines:]

    def hint(self) -> str:
        """`` (command ...; log: PATH; last lines: ...)`` for an error message."""
        tail = self.log_tail()
        last = "; last lines:\n    " + "\n    ".join(tail) if tail else ""
        where = f"; log: {self.log_path}" if self.log_path else ""
        return f" (command: {self.command}{where}{last})"


def _signal_group(pid: int, sig: int) -> None:
    """``sig`` to the process group ``pid`` leads (gone already: nothing to do)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _group_gone(pgid: int, deadline: float) -> bool:
    """Whether every process of the group has exited by ``deadline`` (loop time).

    The wrapper's children are not ours to wait for, so this polls (bounded); the group is
    usually gone at the first look.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(GROUP_POLL_S)


def child_env(extra_path: Sequence[str] = ()) -> dict[str, str]:
    """Our environment, with ``extra_path`` in front of ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*extra_path, env.get("PYTHONPATH")]))
    return env

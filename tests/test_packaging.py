"""Packaging: run.sh, Dockerfile and the Kubernetes Job for the challenge simulator.

Static checks read the files as text. The behavioural tests run a copy of run.sh in tmp_path
beside a fake `scaler` (a Python script listening on SCALER_PORT) and a fake simulator stats
server (an HTTP server on STATS_PORT in this process), both on 127.0.0.1 ephemeral ports; the
repository is never written to.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "run.sh"
DOCKERFILE = ROOT / "Dockerfile"
JOB_YAML = ROOT / "hack" / "serverless-simulation.yaml"

DEADLINE_S = 30.0

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


# --- static checks -------------------------------------------------------------------------------


def _code_lines(text: str) -> list[str]:
    """Lines without comments and blank lines (shell / Dockerfile / YAML style)."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("#!") else ""
        if line.strip():
            lines.append(line)
    return lines


def test_run_sh_is_executable_bash_script() -> None:
    assert RUN_SH.is_file()
    assert RUN_SH.stat().st_mode & stat.S_IXUSR, "run.sh must be executable"
    first = RUN_SH.read_text().splitlines()[0]
    assert first.startswith("#!") and "bash" in first


def test_run_sh_starts_scaler_then_waits_for_9001_then_9000() -> None:
    code = "\n".join(_code_lines(RUN_SH.read_text()))
    start = re.search(r"^\s*\./scaler\s*&", code, re.MULTILINE)
    assert start, "run.sh must start ./scaler in the background"
    assert re.search(r"SCALER_PORT\)?\s*9001\b|SCALER_PORT:-9001", code)
    assert re.search(r"STATS_PORT\)?\s*9000\b|STATS_PORT:-9000", code)
    assert "127.0.0.1" in code
    assert re.search(r"\bnc\b", code) and "-z" in code, "ports are probed with nc -z"
    assert "/dev/tcp/" in code, "bash /dev/tcp fallback when nc is absent"
    after = code[start.end() :]
    scaler_wait = after.find('wait_for_port "$SCALER_HOST" "$SCALER_PORT"')
    stats_wait = after.find('wait_for_port "$STATS_HOST" "$STATS_PORT"')
    assert 0 <= scaler_wait < stats_wait, "waits for the scaler port, then the stats port"


def test_run_sh_parses() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    subprocess.run([bash, "-n", str(RUN_SH)], check=True, timeout=DEADLINE_S)


def test_dockerfile() -> None:
    lines = _code_lines(DOCKERFILE.read_text())
    instructions = [line.split(None, 1)[0].upper() for line in lines if not line[0].isspace()]
    text = "\n".join(lines)
    froms = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    assert re.search(r"apt-get install[^\n]*(\\\n[^\n]*)*netcat", text)
    assert re.search(r"apt-get install[^\n]*(\\\n[^\n]*)*\bcurl\b", text)
    assert "rm -rf /var/lib/apt/lists/*" in text
    assert re.search(r"^WORKDIR /app$", text, re.MULTILINE)
    assert re.search(r"^EXPOSE 9001$", text, re.MULTILINE)
    copies = [line for line in lines if line.startswith("COPY ")]
    assert copies[0].split()[1] == "requirements.txt", "requirements are copied first"
    req = text.index("COPY requirements.txt")
    assert req < text.index("pip install") < text.index("COPY . .")
    assert instructions[-1] == "CMD"
    assert re.fullmatch(r'CMD \[\s*"\./run\.sh"\s*\]', lines[-1])


def test_dockerignore() -> None:
    entries = set(_code_lines((ROOT / ".dockerignore").read_text()))
    for name in (".venv", ".git", ".pytest_cache", "reports", "*.egg-info"):
        assert name in entries
    assert entries & {"__pycache__", "**/__pycache__"}


def _containers(text: str) -> dict[str, dict[str, str]]:
    """Tiny line scan of the Job: container name -> its scalar fields (no PyYAML)."""
    containers: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    base = item = -1  # indent of "containers:" and of its "- name:" items; -1 = outside
    for line in _code_lines(text):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped == "containers:":
            base, item = indent, -1
            continue
        if base < 0:
            continue
        if indent <= base and not (indent == base and stripped.startswith("- ")):
            base, current = -1, None  # left the containers list
            continue
        match = re.fullmatch(r"- name:\s*(\S+)", stripped)
        if match and item in (-1, indent):
            item = indent
            current = containers.setdefault(match.group(1), {})
            continue
        match = re.fullmatch(r"([A-Za-z]+):\s*(.+)", stripped)
        if current is not None and match and indent == item + 2:
            current.setdefault(match.group(1), match.group(2).strip().strip('"'))
    return containers


def test_job_yaml_two_containers() -> None:
    text = JOB_YAML.read_text()
    lines = _code_lines(text)
    assert "kind: Job" in lines
    assert any(line.strip() == "restartPolicy: Never" for line in lines)
    assert any(line.strip() == "backoffLimit: 0" for line in lines)
    containers = _containers(text)
    assert set(containers) == {"scaler", "serverless-simulator"}
    assert containers["scaler"]["image"] == "scaler:latest"
    assert containers["scaler"]["imagePullPolicy"] == "IfNotPresent"
    assert containers["scaler"]["command"] == '["./run.sh"]'
    assert containers["serverless-simulator"]["image"] == "simulator:v1.3.3"
    assert any(line.strip() == "mountPath: /tmp/data" for line in lines)


# --- behaviour of run.sh -------------------------------------------------------------------------

FAKE_SCALER = """\
#!{python}
# Fake scaler: listens on 127.0.0.1:$SCALER_PORT; on SIGTERM writes {marker} and exits 7.
import os, signal, socket, sys, time
mode = {mode!r}
if mode == "die":
    sys.exit(3)
def on_term(signum, frame):
    with open({marker!r}, "w") as f:
        f.write("SIGTERM")
    if mode == "normal":
        sys.exit(7)
signal.signal(signal.SIGTERM, on_term)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(os.environ["SCALER_PORT"])))
srv.listen(16)
with open({started!r}, "w") as f:
    f.write(str(os.getpid()))
while True:
    time.sleep(0.05)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(condition, what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Run:
    """A copy of run.sh with a fake scaler in tmp_path, run as a subprocess."""

    def __init__(self, tmp_path: Path, mode: str, env: dict[str, str]) -> None:
        self.dir = tmp_path
        self.marker = tmp_path / "scaler.signal"
        self.started = tmp_path / "scaler.started"
        self.log = tmp_path / "run.log"
        shutil.copy2(RUN_SH, tmp_path / "run.sh")
        scaler = tmp_path / "scaler"
        scaler.write_text(
            FAKE_SCALER.format(
                python=sys.executable,
                mode=mode,
                marker=str(self.marker),
                started=str(self.started),
            )
        )
        scaler.chmod(0o755)
        full_env = {k: v for k, v in os.environ.items() if k not in ("SCALER_PORT", "STATS_PORT")}
        full_env.update(env)
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            ["bash", str(tmp_path / "run.sh")],
            cwd=tmp_path,
            env=full_env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def finish(self) -> int:
        try:
            return self.proc.wait(timeout=DEADLINE_S)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            # run.sh has its own session; its background fake scaler shares its process group.
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=DEADLINE_S)
        self._log_file.close()


@pytest.fixture
def stats_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state = {"running": True}

    def stop() -> None:
        if state["running"]:
            state["running"] = False
            server.shutdown()
            server.server_close()

    server.stop = stop  # type: ignore[attr-defined]
    yield server
    stop()
    thread.join(timeout=DEADLINE_S)


def _nc_modes() -> list:
    nc = shutil.which("nc")
    return [
        pytest.param(nc or "nc", id="nc", marks=pytest.mark.skipif(nc is None, reason="no nc")),
        pytest.param("no-such-netcat", id="dev-tcp"),
    ]


@needs_bash
@pytest.mark.parametrize("nc_bin", _nc_modes())
def test_run_sh_stops_scaler_when_stats_port_closes(tmp_path, stats_server, nc_bin) -> None:
    env = {
        "SCALER_PORT": str(_free_port()),
        "STATS_PORT": str(stats_server.server_address[1]),
        "NC_BIN": nc_bin,
    }
    run = _Run(tmp_path, "normal", env)
    try:
        _wait_for(lambda: "simulator stats" in run.output(), "run.sh to see the stats port")
        assert run.proc.poll() is None
        assert not run.marker.exists()
        stats_server.stop()
        status = run.finish()
    finally:
        run.close()
    out = run.output()
    assert run.started.exists(), out
    probe = f"probing ports with {nc_bin} -z" if nc_bin != "no-such-netcat" else "/dev/tcp"
    assert probe in out, out
    assert run.marker.read_text() == "SIGTERM", out
    assert status == 7, out  # the fake scaler's own exit status
    assert out.index("scaler (127.0.0.1:") < out.index("simulator stats (127.0.0.1:"), out
    assert "SIGKILL" not in out


@needs_bash
def test_run_sh_escalates_to_sigkill(tmp_path, stats_server) -> None:
    env = {
        "SCALER_PORT": str(_free_port()),
        "STATS_PORT": str(stats_server.server_address[1]),
        "SCALER_STOP_TIMEOUT": "1",
    }
    run = _Run(tmp_path, "ignore-term", env)
    try:
        _wait_for(lambda: "simulator stats" in run.output(), "run.sh to see the stats port")
        stats_server.stop()
        status = run.finish()
    finally:
        run.close()
    out = run.output()
    assert run.marker.read_text() == "SIGTERM", out
    assert "SIGKILL" in out
    assert status == 128 + 9, out


@needs_bash
def test_run_sh_exits_when_scaler_dies_early(tmp_path) -> None:
    # Neither port ever opens: run.sh must not wait forever for a dead scaler.
    env = {"SCALER_PORT": str(_free_port()), "STATS_PORT": str(_free_port())}
    run = _Run(tmp_path, "die", env)
    try:
        status = run.finish()
    finally:
        run.close()
    assert status == 3, run.output()


@needs_bash
def test_run_sh_ignores_kubernetes_service_port_variables(tmp_path, stats_server) -> None:
    # Kubernetes sets SCALER_PORT=tcp://ip:port for a Service named "scaler"; run.sh must fall
    # back to 9001 rather than fail. Only the warning is checked: 9001 may be taken here.
    env = {
        "SCALER_PORT": "tcp://10.0.0.1:9001",
        "STATS_PORT": str(stats_server.server_address[1]),
    }
    run = _Run(tmp_path, "die", env)
    try:
        run.finish()
    finally:
        run.close()
    assert "ignoring SCALER_PORT='tcp://10.0.0.1:9001'" in run.output()


@needs_bash
def test_run_sh_forwards_sigterm_to_scaler(tmp_path, stats_server) -> None:
    # Pod deletion sends SIGTERM to run.sh (PID 1): the scaler must get it too.
    env = {
        "SCALER_PORT": str(_free_port()),
        "STATS_PORT": str(stats_server.server_address[1]),
    }
    run = _Run(tmp_path, "normal", env)
    try:
        _wait_for(lambda: "simulator stats" in run.output(), "run.sh to see the stats port")
        run.proc.send_signal(signal.SIGTERM)
        status = run.finish()
    finally:
        run.close()
    out = run.output()
    assert "termination signal" in out, out
    assert run.marker.read_text() == "SIGTERM", out
    assert status == 7, out

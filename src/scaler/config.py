"""Settings of ``scaler serve``: defaults from the contract, then ``SCALER_*`` env, then flags.

Each attrs field is one setting; its metadata carries the help text. The flag is the field name
with dashes (``--platform-address``), the environment variable is ``SCALER_`` plus the name in
capitals (``SCALER_PLATFORM_ADDRESS``). A flag beats the environment, which beats the default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

import attrs

from scaler.policy import DEFAULT_POLICY


def _setting(default: Any, help: str) -> Any:
    return attrs.field(default=default, metadata={"help": help})


@attrs.frozen
class Settings:
    listen: str = _setting("0.0.0.0:9001", "address the Scaler gRPC service listens on")
    platform_address: str = _setting("127.0.0.1:50051", "address of the Platform gRPC service")
    policy: str = _setting(DEFAULT_POLICY, "scaling policy (see docs/policies.md)")
    gc_interval: float = _setting(0.0, "seconds between expiry passes (0: the policy's own)")
    transition_log: str = _setting("", "write every FSM transition as JSON lines to this path")
    log_level: str = _setting("INFO", "loguru level of the human log on stderr")
    create_deadline: float = _setting(10.0, "deadline of one CreateSlot call, seconds")
    init_deadline: float = _setting(300.0, "deadline of one Init call, seconds")
    destroy_deadline: float = _setting(10.0, "deadline of one DestroySlot call, seconds")
    assign_timeout: float = _setting(600.0, "longest an Assign waits for an instance, seconds")
    cold_start_retries: int = _setting(
        2, "extra cold starts for a request whose cold start the platform refused"
    )
    shutdown_grace: float = _setting(2.0, "on SIGTERM, how long in-flight requests may finish")
    destroy_wait: float = _setting(2.5, "on SIGTERM, how long slot destruction may take")
    max_concurrent_rpcs: int = _setting(0, "bound on concurrent RPCs (0: unbounded)")
    metrics_port: int = _setting(0, "serve Prometheus metrics on this port (0: off)")
    instance_prefix: str = _setting(
        "inst", "instance ids are PREFIX-N; replicas sharing a platform need distinct prefixes"
    )


def _env_name(name: str) -> str:
    return "SCALER_" + name.upper()


def _convert(field: attrs.Attribute, raw: str) -> Any:
    kind = type(field.default)
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"{field.name}: cannot read {raw!r} as {kind.__name__}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults stay None so the environment can fill them."""
    for field in attrs.fields(Settings):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(field.default),
            default=None,
            help=f"{field.metadata['help']} "
            f"(env {_env_name(field.name)}, default {field.default!r})",
        )


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings: flag, else ``SCALER_*`` environment variable, else default."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in attrs.fields(Settings):
        flag = getattr(args, field.name, None)
        if flag is not None:
            values[field.name] = flag
        elif _env_name(field.name) in environ:
            values[field.name] = _convert(field, environ[_env_name(field.name)])
    return Settings(**values)

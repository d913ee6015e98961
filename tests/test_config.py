"""Settings: defaults from the contract, SCALER_* environment, flags win."""

from __future__ import annotations

import argparse

import pytest

from scaler import config
from scaler.cli import build_parser
from scaler.policy import DEFAULT_POLICY


def parse(argv: list[str], environ: dict[str, str]) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.from_args(parser.parse_args(argv), environ)


def test_defaults_follow_the_contract() -> None:
    settings = parse([], {})
    assert settings.listen == "0.0.0.0:9001"
    assert settings.platform_address == "127.0.0.1:50051"
    assert settings.policy == DEFAULT_POLICY == "adaptive"


def test_environment_then_flags() -> None:
    env = {"SCALER_PLATFORM_ADDRESS": "10.0.0.1:1", "SCALER_INIT_DEADLINE": "12.5"}
    settings = parse([], env)
    assert settings.platform_address == "10.0.0.1:1" and settings.init_deadline == 12.5
    settings = parse(["--platform-address", "127.0.0.1:7"], env)
    assert settings.platform_address == "127.0.0.1:7" and settings.init_deadline == 12.5


def test_bad_environment_value_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="init_deadline: cannot read 'soon' as float"):
        parse([], {"SCALER_INIT_DEADLINE": "soon"})


def test_bare_invocation_and_flags_mean_serve() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "--listen", "127.0.0.1:5"])
    assert args.command == "serve" and args.listen == "127.0.0.1:5"


def test_unknown_policy_is_refused(capsys) -> None:
    from scaler.cli import main

    assert main(["serve", "--policy", "nope", "--listen", "127.0.0.1:0"]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err


def test_a_replica_names_its_instances_with_its_own_prefix() -> None:
    # N replicas share one platform, which refuses an instance id already in use.
    assert parse([], {}).instance_prefix == "inst"
    assert parse([], {"SCALER_INSTANCE_PREFIX": "r2"}).instance_prefix == "r2"
    assert (
        parse(["--instance-prefix", "r3"], {"SCALER_INSTANCE_PREFIX": "r2"}).instance_prefix == "r3"
    )

"""The command line: help texts; one-line refusals of a bad or unpinned model, bad settings,
no Kafka."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main

COMMANDS = [
    "demo",
    "broker",
    "worker",
    "simulate",
    "replay",
    "tail",
    "monitor",
    "uplift",
    "import",
    "train",
    "evaluate",
    "bench",
    "bench-drift",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_setting_options_name_their_environment_variable() -> None:
    result = CliRunner().invoke(main, ["worker", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    assert "[env: KAFKA_BOOTSTRAP_SERVERS]" in text
    assert "[env: PROPENSITY_MODEL_PATH]" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"definitely not a model", "is not a TorchScript archive")],
)
def test_worker_refuses_a_bad_model_with_one_line(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    model = tmp_path / "model.pt"
    if content is not None:
        model.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--model", str(model)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "PROPENSITY_METRICS_PORT": "0"},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(model) in lines[0] and message in lines[0]


def test_worker_refuses_a_model_other_than_the_pinned_one(untrained_model: Path) -> None:
    pinned = "ab" * 32
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--model", str(untrained_model)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "PROPENSITY_METRICS_PORT": "0", "PROPENSITY_MODEL_SHA256": pinned},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(untrained_model) in lines[0] and f"not the pinned {pinned}" in lines[0]


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", ["worker", "tail"])
def test_unreachable_kafka_is_one_line(untrained_model: Path, command: str) -> None:
    # worker: kafka-python's topic admin; tail: an aiokafka consumer.
    bootstrap = f"127.0.0.1:{_unused_port()}"
    args = ["--model", str(untrained_model)] if command == "worker" else []
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", command, "--bootstrap-servers", bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "",
            "PROPENSITY_METRICS_PORT": "0",
            "PROPENSITY_BOOTSTRAP_TIMEOUT_SECONDS": "1",  # kafka-python retries for 30 s else
        },
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: cannot reach Kafka at {bootstrap} (")
    assert "KAFKA_BOOTSTRAP_SERVERS" in lines[0]


def test_a_refused_security_setting_is_one_line() -> None:
    env = {"PROPENSITY_SECURITY_PROTOCOL": "SASL_SSL", "PROPENSITY_SASL_USERNAME": "shop"}
    result = CliRunner().invoke(main, ["tail"], env=env)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: PROPENSITY_SECURITY_PROTOCOL=SASL_SSL needs PROPENSITY_SASL_USERNAME and"
        " PROPENSITY_SASL_PASSWORD"
    ]


def test_a_wrong_policy_file_stops_the_worker_naming_each_wrong_line(
    untrained_model: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[policy]\nsalt = "x"\ncontrol_share = 1.5\n\n[actions.a]\ntrigger = "sometimes"\n'
    )
    result = CliRunner().invoke(
        main,
        ["worker", "--model", str(untrained_model), "-b", "127.0.0.1:1"],
        env={"PROPENSITY_POLICY_PATH": str(policy)},
    )
    assert result.exit_code != 0
    assert f"{policy}:3: control_share = 1.5" in result.output
    assert f"{policy}:6: trigger = 'sometimes'" in result.output
    assert "Traceback" not in result.output

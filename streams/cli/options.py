"""Click options bound to Settings fields: help names the environment variable."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from streams.settings import Settings, env_help

F = Callable[..., Any]

_TYPES: dict[str, Any] = {
    "partitions": int,
    "window_size": int,
    "metrics_port": int,
    "batch_size": int,
    "batch_wait_ms": int,
    "torch_threads": int,
    "user_ttl_seconds": int,
    "max_event_bytes": int,
    "model_path": click.Path(path_type=Path),
    "data_dir": click.Path(path_type=Path),
}


def setting_option(name: str, *flags: str) -> Callable[[F], F]:
    """An option that overrides setting ``name``; unset means environment or default."""
    flag = flags or ("--" + name.replace("_", "-"),)
    return click.option(*flag, name, type=_TYPES.get(name, str), default=None, help=env_help(name))


def build_settings(**overrides: Any) -> Settings:
    """Settings from the environment with the given command-line overrides applied."""
    if isinstance(overrides.get("input_topics"), str):
        overrides["input_topics"] = tuple(
            t.strip() for t in overrides["input_topics"].split(",") if t.strip()
        )
    try:
        return Settings.from_env(**overrides)
    except ValueError as exc:  # a bad value or combination in the environment: one line
        raise click.ClickException(str(exc)) from None


def kafka_options(func: F) -> F:
    """Options every Kafka-facing command takes."""
    for option in reversed(
        (
            setting_option("bootstrap_servers", "--bootstrap-servers", "-b"),
            setting_option("input_topics"),
            setting_option("output_topic"),
            setting_option("dlq_topic"),
            setting_option("partitions"),
        )
    ):
        func = option(func)
    return func

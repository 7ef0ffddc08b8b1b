"""Click options bound to Settings fields: help names the environment variable."""

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from aiokafka.errors import KafkaConnectionError
from kafka.errors import KafkaTimeoutError

from schemas.exceptions import PropensityError
from streams.worker.settings import Settings, env_help, env_name

F = Callable[..., Any]

_TYPES: dict[str, type[int] | type[float] | click.Path] = {
    "partitions": int,
    "window_size": int,
    "metrics_port": int,
    "batch_size": int,
    "batch_wait_ms": int,
    "torch_threads": int,
    "user_ttl_seconds": int,
    "max_event_bytes": int,
    "quality_window_outcomes": int,
    "quality_window_cap": int,
    "quality_window_hours": float,
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


def unreachable(settings: Settings, reason: str = "") -> str:
    """The one line that says no bootstrap server answered, why if known, and what to do."""
    message = f"cannot reach Kafka at {settings.bootstrap}"
    if reason:
        message += f" ({reason})"
    message += (
        f": start it, or point {env_name('bootstrap_servers')} (--bootstrap-servers) at a"
        " running cluster"
    )
    if settings.security_protocol != "PLAINTEXT":
        message += (
            f"; check that its listener speaks {settings.security_protocol} and the"
            " PROPENSITY_SSL_* and PROPENSITY_SASL_* settings"
        )
    return message


class _FirstClientWarning(logging.Handler):
    """Keeps the first warning the Kafka client libraries logged: the reason a bootstrap failed
    (connection refused, certificate not trusted), which their exceptions do not carry. Later
    ones are retries of it and the libraries' own summaries."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        if not self.message:
            self.message = " ".join(record.getMessage().split())


@contextlib.contextmanager
def one_line_errors(settings: Settings) -> Iterator[None]:
    """Errors an operator can fix (Kafka unreachable, a refused model or TLS file) end the
    command with one line and exit status 1 instead of a traceback.

    While it runs, the client libraries' warnings go to the handler that keeps the first one,
    so a command without logging configured prints none of them on its way to that line;
    where logging is configured (the worker, once Faust starts) they propagate as before.
    """
    first = _FirstClientWarning()
    loggers = [logging.getLogger(name) for name in ("kafka", "aiokafka")]
    for logger in loggers:
        logger.addHandler(first)
    try:
        yield
    # kafka-python: no bootstrap server answered in time; aiokafka: none accepted a connection.
    except (KafkaTimeoutError, KafkaConnectionError):
        raise click.ClickException(unreachable(settings, first.message)) from None
    except PropensityError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        for logger in loggers:
            logger.removeHandler(first)


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

"""Subcommands that run things: broker, worker, replay, tail."""

import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaConsumer

from streams.cli.options import build_settings, kafka_options, one_line_errors, setting_option
from streams.harness.broker import EmbeddedBroker
from streams.harness.producer import OutgoingRecord, record_for_line, send_records
from streams.worker.admin import ensure_topics, service_topics
from streams.worker.kafka_security import aiokafka_options
from streams.worker.settings import Settings


@click.command()
@click.option("--port", type=int, default=0, help="Port to listen on (0: a free port).")
def broker(port: int) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory storage) until Ctrl-C."""
    with EmbeddedBroker(port=port) as embedded:
        click.echo(
            f"Tansu broker listening; export KAFKA_BOOTSTRAP_SERVERS={embedded.bootstrap_servers}"
        )
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    click.echo("broker stopped")


@click.command()
@kafka_options
@setting_option("model_path", "--model")
@setting_option("model_sha256", "--model-sha256")
@setting_option("window_size")
@setting_option("user_ttl_seconds")
@setting_option("batch_size")
@setting_option("batch_wait_ms")
@setting_option("torch_threads")
@setting_option("metrics_port")
@setting_option("max_event_bytes")
@setting_option("app_id")
@setting_option("log_level")
def worker(**overrides: Any) -> None:
    """Run the scoring worker: consume events, keep user sequences, publish propensities.

    Refuses to start, with a one-line error, when the model file is missing, corrupt, altered
    (its content digest does not match its metadata, or --model-sha256 when given), not this
    build's network, or built for another feature spec. Creates missing topics with
    --partitions partitions.
    """
    from streams.worker.service import run_worker  # imports faust; keep `--help` fast

    settings = build_settings(**overrides)
    with one_line_errors(settings):
        run_worker(settings)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@kafka_options
@click.option(
    "--rate", type=float, default=None, help="Events per second (default: as fast as possible)."
)
@click.option(
    "--create-topics/--no-create-topics", default=True, help="Create missing topics first."
)
def replay(file: Path, rate: float | None, create_topics: bool, **overrides: Any) -> None:
    """Send a JSON Lines file of events to the input topics, keyed by user_id.

    Lines are sent unchanged; lines that break the contract reach the worker, which writes
    them to the dead-letter topic with a reason.
    """
    settings = build_settings(**overrides)
    with one_line_errors(settings):
        if create_topics:
            ensure_topics(settings, service_topics(settings))

    def records() -> Iterator[OutgoingRecord]:
        with file.open("rb") as handle:
            for line in handle:
                line = line.strip()
                if line:
                    yield record_for_line(line, settings.input_topics)

    with one_line_errors(settings):
        stats = asyncio.run(send_records(settings, records(), rate=rate))
    click.echo(
        f"sent {stats.sent} records from {file} in {stats.seconds:.2f}s ({stats.rate:,.0f}/s)"
    )


def _format_message(key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]) -> str:
    if headers:
        meta = {k: v.decode("utf-8", "replace") for k, v in headers}
        return orjson.dumps(
            {
                "key": key.decode("utf-8", "replace") if key else None,
                "headers": meta,
                "value": value.decode("utf-8", "replace"),
            }
        ).decode()
    return value.decode("utf-8", "replace")


async def follow(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool,
    limit: int | None,
    idle_timeout: float | None,
) -> int:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        **aiokafka_options(settings),
    )
    seen = 0
    last = time.monotonic()
    try:
        await consumer.start()  # inside try: a failed start is stopped too
        while limit is None or seen < limit:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    click.echo(_format_message(message.key, message.value, message.headers))
                    seen += 1
                    last = time.monotonic()
            if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                break
    finally:
        await consumer.stop()
    return seen


@click.command()
@kafka_options
@click.option("--dlq", is_flag=True, help="Follow the dead-letter topic instead of propensities.")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset.")
@click.option("--max", "limit", type=int, default=None, help="Stop after this many messages.")
@click.option("--idle-timeout", type=float, default=None, help="Stop after this many idle seconds.")
def tail(
    dlq: bool, from_beginning: bool, limit: int | None, idle_timeout: float | None, **overrides: Any
) -> None:
    """Print messages of the propensity topic (or, with --dlq, dead letters with their headers)."""
    settings = build_settings(**overrides)
    topic = settings.dlq_topic if dlq else settings.output_topic
    try:
        with one_line_errors(settings):
            asyncio.run(
                follow(
                    settings,
                    topic,
                    from_beginning=from_beginning,
                    limit=limit,
                    idle_timeout=idle_timeout,
                )
            )
    except KeyboardInterrupt:
        sys.exit(130)

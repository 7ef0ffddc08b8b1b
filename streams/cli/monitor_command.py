"""`propensity monitor`: the model's live quality read from the outcomes topic, as a terminal
view refreshed every second, or (``--report DIR``) as Markdown tables and PNG plots once the
topic has been read to its end.

It reads every partition of the outcomes topic with a plain consumer (no group, nothing
committed) into the same pure windows the worker's gauges come from
(``model.monitoring.quality``), so both show the same figures for the same records.
"""

import asyncio
import importlib.util
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from model.monitoring.quality import (
    HOUR_MS,
    LiveQuality,
    QualityLimits,
    WindowFigures,
    figures_of,
)
from model.monitoring.quality_report import COLUMNS, format_figure, write_report
from schemas.exceptions import PropensityError
from streams.cli.options import build_settings, one_line_errors, setting_option
from streams.worker.kafka_security import aiokafka_options
from streams.worker.settings import Settings

_UNITS_MS: Final = {"s": 1000, "m": 60_000, "h": HOUR_MS, "d": 24 * HOUR_MS}
FETCH_RECORDS: Final = 5000
Tick = Callable[[], Awaitable[None]]


class MonitorError(PropensityError):
    """The outcomes topic cannot be read as asked (absent, a bad --since)."""


def parse_since(text: str, now_ms: int) -> int:
    """Epoch ms of ``--since``: a duration back from now (90m, 2h, 1d, 30s) or an ISO-8601
    date or time (naive = UTC)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match:
        return now_ms - round(float(match.group(1)) * _UNITS_MS[match.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MonitorError(
            f"--since {text!r} is neither a duration (90m, 2h, 1d) nor an ISO-8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


async def read_outcomes(
    settings: Settings,
    quality: LiveQuality,
    *,
    since_ms: int | None,
    until_caught_up: bool,
    on_tick: Tick | None = None,
    tick_seconds: float = 1.0,
) -> int:
    """Feed the outcomes topic into ``quality``: from ``since_ms`` (record time; None: the
    beginning), until the end offsets seen at the start are reached and a fetch comes back
    empty (``until_caught_up``), else until cancelled. Returns the records read."""
    topic = settings.outcomes_topic
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id="propensity-monitor",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **aiokafka_options(settings),
    )
    read = 0
    try:
        await consumer.start()
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise MonitorError(f"topic {topic!r} does not exist at {settings.bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await _seek(consumer, tps, since_ms)
        ends = await consumer.end_offsets(tps) if until_caught_up else {}
        next_tick = time.monotonic()  # the first view after the first fetch
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=FETCH_RECORDS)
            for messages in batch.values():
                for message in messages:
                    quality.add_value(message.value)
                read += len(messages)
            if on_tick is not None and time.monotonic() >= next_tick:
                await on_tick()
                next_tick = time.monotonic() + tick_seconds
            # Tansu under-reports end offsets: the end is where a fetch also finds nothing.
            if until_caught_up and not batch and await _reached(consumer, ends):
                return read
    finally:
        await consumer.stop()


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _seek(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], since_ms: int | None
) -> None:
    if since_ms is None:
        await consumer.seek_to_beginning(*tps)
        return
    found = await consumer.offsets_for_times(dict.fromkeys(tps, max(since_ms, 0)))
    for tp in tps:
        offset = found.get(tp)
        if offset is None:
            await consumer.seek_to_end(tp)  # every record is older
        else:
            consumer.seek(tp, offset.offset)


def figures_table(figures: list[WindowFigures], quality: LiveQuality, source: str) -> Group:
    """The terminal view: one row per model version, head and window."""
    table = Table(title=f"live model quality — {source}")
    for name, title in (("model", "model"), ("head", "head"), ("window", "window"), *COLUMNS):
        table.add_column(title, justify="left" if name in ("model", "head", "window") else "right")
    for f in figures:
        cells = [format_figure(name, getattr(f.figures, name)) for name, _ in COLUMNS]
        table.add_row(f.model_version, f.head, f.window, *cells)
    skipped = ", ".join(f"{n:,} {r}" for r, n in sorted(quality.skipped.items())) or "none"
    status = Text(
        f"{quality.accepted:,} outcomes counted; skipped: {skipped};"
        f" cap drops: {quality.cap_drops:,}   (Ctrl-C to stop)",
        style="dim",
    )
    return Group(table, status)


async def watch(
    settings: Settings, quality: LiveQuality, since_ms: int | None, source: str
) -> None:
    """The refreshing terminal view, until Ctrl-C."""
    console = Console()
    with Live(console=console, auto_refresh=False) as live:

        async def refresh() -> None:
            contents = quality.windows()
            figures = await asyncio.get_running_loop().run_in_executor(None, figures_of, contents)
            live.update(figures_table(figures, quality, source), refresh=True)

        await read_outcomes(
            settings, quality, since_ms=since_ms, until_caught_up=False, on_tick=refresh
        )


def require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException(
            "--report draws its plots with matplotlib, which is not installed:"
            " pip install 'propensity[train]'"
        )


@click.command()
@setting_option("bootstrap_servers", "--bootstrap-servers", "-b")
@setting_option("outcomes_topic")
@setting_option("quality_window_outcomes")
@setting_option("quality_window_hours")
@setting_option("quality_window_cap")
@click.option(
    "--since",
    default=None,
    help="Start at records written since then: a duration back from now (90m, 2h, 1d) or an"
    " ISO-8601 time (naive = UTC). Default: the beginning of the topic.",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Read the topic to its end, write DIR/README.md (tables) and PNG plots (live ROC-AUC"
    " over event time, reliability diagram), then exit. Needs matplotlib (the [train] extra).",
)
@click.option(
    "--history-minutes",
    type=float,
    default=60.0,
    help="Event time between two points of the live ROC-AUC plot.",
)
def monitor(
    since: str | None, report_dir: Path | None, history_minutes: float, **overrides: Any
) -> None:
    """Show the model's live quality from the outcomes topic, per model version, head and
    window (the last N outcomes; the last hours of event time), refreshed every second.

    ROC-AUC, PR-AUC, Brier score, log loss, ECE and mean predicted vs observed rate, computed
    as the offline evaluation computes them; duplicates (same event_id) and malformed records
    are skipped and counted.
    """
    settings = build_settings(**overrides)
    if report_dir is not None:
        require_matplotlib()
    quality = LiveQuality(
        QualityLimits(
            window_outcomes=settings.quality_window_outcomes,
            window_ms=round(settings.quality_window_hours * HOUR_MS),
            time_window_cap=settings.quality_window_cap,
            history_interval_ms=max(round(history_minutes * 60_000), 1),
        )
    )
    source = f"topic {settings.outcomes_topic} at {settings.bootstrap}"
    try:
        with one_line_errors(settings):
            since_ms = None if since is None else parse_since(since, int(time.time() * 1000))
            if report_dir is None:
                asyncio.run(watch(settings, quality, since_ms, source))
                return
            with Console(stderr=True).status(f"reading {settings.outcomes_topic}..."):
                read = asyncio.run(
                    read_outcomes(settings, quality, since_ms=since_ms, until_caught_up=True)
                )
            written = write_report(quality, report_dir, source)
    except KeyboardInterrupt:
        sys.exit(130)
    click.echo(
        f"read {read:,} records ({quality.accepted:,} outcomes counted); wrote"
        f" {', '.join(str(p) for p in written)}"
    )

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click
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
from streams.cli.topic_reader import Tick, read_records
from streams.worker.settings import Settings

_UNITS_MS: Final = {"s": 1000, "m": 60_000, "h": HOUR_MS, "d": 24 * HOUR_MS}


class MonitorError(PropensityError):
    """A bad --since."""


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
    """Feed the outcomes topic into ``quality`` (see ``read_records``)."""
    return await read_records(
        settings,
        settings.outcomes_topic,
        quality.add_value,
        since_ms=since_ms,
        until_caught_up=until_caught_up,
        on_tick=on_tick,
        tick_seconds=tick_seconds,
    )


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

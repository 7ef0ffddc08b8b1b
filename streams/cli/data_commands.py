"""Subcommands that make event data: import public shop logs, simulate shoppers."""

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from model.importers import FORMATS, ImportReport, UnreadableInput, import_events, input_paths
from model.simulate import SimulatedEvent, SimulationConfig, simulate, write_jsonl
from model.simulate.config import DEFAULT_START_MS
from model.simulate.drift import DRIFT_KINDS, Drift
from schemas.events import ShopEvent
from schemas.units import DAY_MS, HOUR_MS
from streams.cli.options import build_settings, kafka_options, one_line_errors
from streams.harness.producer import live_events, record_for_event, send_records
from streams.worker.admin import ensure_topics, service_topics


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(ms: int) -> str:
    hours, rest = divmod(ms // 1000, 3600)
    return f"{hours}h {rest // 60:02d}m {rest % 60:02d}s"


def import_summary(report: ImportReport, out: Path, shown_examples: int) -> list[Table]:
    """The one-screen summary of an import: totals, bad rows by reason, first examples."""
    totals = Table(title=f"Import ({report.fmt}) -> {out}", show_header=False)
    for name, value in (
        ("input", "\n".join(report.sources)),
        ("rows read", f"{report.rows_read:,}"),
        ("events written", f"{report.events:,}"),
        ("bad rows (skipped)", f"{report.bad_rows:,}"),
        ("users", f"{report.users:,}"),
        ("sessions", f"{report.sessions:,}"),
        ("first event", _when(report.first_ts)),
        ("last event", _when(report.last_ts)),
        ("time span", _duration(report.span_ms)),
        ("out-of-order events", f"{report.out_of_order:,}"),
        ("header / blank lines", f"{report.header_lines} / {report.blank_lines}"),
        ("event types", ", ".join(f"{k} {v:,}" for k, v in report.event_counts.most_common())),
        *(("note", note) for note in report.notes),
    ):
        totals.add_row(name, value)
    tables = [totals]
    if report.bad_rows:
        reasons = Table("reason", "rows", title="Bad rows by reason")
        for reason, count in report.bad_by_reason.most_common():
            reasons.add_row(reason, f"{count:,}")
        examples = Table("where", "reason", "detail", title="First bad rows")
        for ex in report.examples[:shown_examples]:
            examples.add_row(f"{ex.source}:{ex.line}", ex.reason, ex.detail)
        tables += [reasons, examples]
    return tables


@click.command("import")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), required=True, help="Layout of the input file."
)
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--buys",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YOOCHOOSE buys file; default: the clicks file's sibling with 'clicks' -> 'buys'.",
)
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@click.option("--examples", default=10, help="Bad-row examples to show in the summary.")
def import_command(
    fmt: str, source: Path, out: Path, buys: Path | None, no_progress: bool, examples: int
) -> None:
    """Convert a public shop log SOURCE into contract events, written as JSON Lines to OUT.

    Bad rows are counted, shown with their line numbers and skipped; the exit code is
    non-zero only when the input cannot be read. Inputs ending in .gz are decompressed.
    """
    if buys is not None and fmt != "yoochoose":
        raise click.UsageError("--buys only applies to --format yoochoose")
    console = Console(stderr=True)
    paths = input_paths(fmt, source, buys)
    total = sum(p.stat().st_size for p in paths if p.is_file())
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console, disable=no_progress) as bar:
        task = bar.add_task(f"importing {source.name}", total=total or None)
        try:
            report = import_events(
                fmt,
                source,
                out,
                buys=buys,
                progress=lambda n: bar.advance(task, n),
                max_examples=max(examples, 20),
            )
        except UnreadableInput as exc:
            raise click.ClickException(str(exc)) from exc
    for table in import_summary(report, out, examples):
        console.print(table)


def _with_progress(
    events: Iterable[SimulatedEvent], bar: Progress, config: SimulationConfig
) -> Iterator[SimulatedEvent]:
    """Advance a bar in simulated hours as the (time-ordered) events go by."""
    task = bar.add_task("simulating", total=(config.end_ms - config.start_ms) / HOUR_MS)
    for n, item in enumerate(events):
        if n % 4096 == 0:
            bar.update(task, completed=(item.event.ts - config.start_ms) / HOUR_MS)
        yield item
    bar.update(task, completed=(config.end_ms - config.start_ms) / HOUR_MS)


class _Tally:
    """Counts of a simulation run, taken as the events are written."""

    def __init__(self) -> None:
        self.types: Counter[str] = Counter()
        self.users: set[str] = set()
        self.oracle_sum = self.ceiling_sum = 0.0
        self.oracle_n = 0

    def watch(self, events: Iterable[SimulatedEvent]) -> Iterator[SimulatedEvent]:
        for item in events:
            self.types[item.event.event_type] += 1
            self.users.add(item.event.user_id)
            if item.oracle_purchase is not None:
                self.oracle_sum += item.oracle_purchase
                self.ceiling_sum += item.ceiling_purchase or 0.0
                self.oracle_n += 1
            yield item


def drift_option(kind: str | None, at: str | None, start_ms: int) -> Drift | None:
    """The --drift/--drift-at pair as a Drift (None without them); ``at`` is days after the
    start or an ISO-8601 time (naive = UTC)."""
    if (kind is None) != (at is None):
        raise click.UsageError("give --drift and --drift-at together")
    if kind is None or at is None:
        return None
    try:
        return Drift(kind, start_ms + round(float(at) * DAY_MS))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise click.BadParameter(
            f"{at!r} is neither days after --start nor ISO-8601", param_hint="--drift-at"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return Drift(kind, int(moment.timestamp() * 1000))


@click.command("simulate")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON Lines file to write (.gz compresses it).",
)
@click.option(
    "--kafka", "to_kafka", is_flag=True, help="Produce to the input topics instead of a file."
)
@click.option(
    "--rate",
    type=float,
    default=None,
    help="With --kafka: events per second (default: as fast as possible).",
)
@click.option(
    "--live-time/--simulated-time",
    default=False,
    help="With --kafka: stamp events with the wall clock when sent, or keep the simulated time.",
)
@kafka_options
@click.option("--users", default=2000, type=click.IntRange(min=1), help="Simulated shoppers.")
@click.option(
    "--days", default=7.0, type=click.FloatRange(min=0, min_open=True), help="Simulated days."
)
@click.option("--seed", default=7, help="Random seed: the same seed gives the same events.")
@click.option(
    "--horizon-hours",
    default=24.0,
    type=click.FloatRange(min=0.1),
    help="Horizon H of oracle_purchase and ceiling_purchase (P(purchase within H)).",
)
@click.option(
    "--start",
    default=_when(DEFAULT_START_MS)[:19].replace(" ", "T"),
    help="Simulated start time, ISO-8601 (naive = UTC).",
)
@click.option(
    "--no-oracle",
    is_flag=True,
    help="Do not compute oracle_purchase and ceiling_purchase (about 20x faster).",
)
@click.option(
    "--drift",
    "drift_kind",
    type=click.Choice(DRIFT_KINDS),
    default=None,
    help="Change the world at --drift-at: conversion (checkouts and buy-nows at 0.2x their"
    " rate), segment (bargain hunters, 20%% of --users, arrive), prices (every price 1.6x)."
    " Implies --no-oracle (the oracle solves the undrifted world).",
)
@click.option(
    "--drift-at",
    default=None,
    help="When the drift starts: days after --start (e.g. 3.5) or an ISO-8601 time.",
)
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
def simulate_command(
    out: Path,
    users: int,
    days: float,
    seed: int,
    horizon_hours: float,
    start: str,
    no_oracle: bool,
    no_progress: bool,
    to_kafka: bool,
    rate: float | None,
    live_time: bool,
    drift_kind: str | None,
    drift_at: str | None,
    **kafka: Any,
) -> None:
    """Simulate shoppers and write their events, in time order, as JSON Lines or to Kafka.

    Each line is a contract event plus, unless --no-oracle, two probabilities of a purchase
    within the horizon: "oracle_purchase", the true one (it knows the shopper's hidden
    state), and "ceiling_purchase", the exact Bayes probability from the shopper's visible
    events so far (the best any model of the events can do). With --kafka the events go to
    the input topics (keyed by user_id, routed by type), without either probability.
    """
    if (out is None) == (not to_kafka):
        raise click.UsageError("give exactly one of --out FILE or --kafka")
    try:
        moment = datetime.fromisoformat(start)
    except ValueError:
        raise click.BadParameter(f"{start!r} is not ISO-8601", param_hint="--start") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    start_ms = int(moment.timestamp() * 1000)
    drift = drift_option(drift_kind, drift_at, start_ms)
    config = SimulationConfig(
        n_users=users,
        days=days,
        start_ms=start_ms,
        seed=seed,
        horizon_ms=round(horizon_hours * HOUR_MS),
        with_oracle=not (no_oracle or to_kafka or drift),
    )
    if to_kafka:
        settings = build_settings(**kafka)
        with one_line_errors(settings):
            ensure_topics(settings, service_topics(settings))
        events: Iterable[ShopEvent] = (item.event for item in simulate(config, drift))
        if live_time:
            events = live_events(events)
        records = (record_for_event(e, settings.input_topics) for e in events)
        try:
            with one_line_errors(settings):
                stats = asyncio.run(send_records(settings, records, rate=rate))
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        click.echo(
            f"sent {stats.sent:,} events to {','.join(settings.input_topics)} "
            f"in {stats.seconds:.1f}s ({stats.rate:,.0f}/s)"
        )
        return
    assert out is not None
    console = Console(stderr=True)
    tally = _Tally()
    began = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console, disable=no_progress) as bar:
        events_out = _with_progress(simulate(config, drift), bar, config)
        written = write_jsonl(tally.watch(events_out), out)
    elapsed = time.perf_counter() - began
    table = Table(title=f"Simulation -> {out}", show_header=False)
    table.add_row("events", f"{written:,}")
    table.add_row("active users", f"{len(tally.users):,} of {users:,}")
    table.add_row("event types", ", ".join(f"{k} {v:,}" for k, v in tally.types.most_common()))
    table.add_row("from", _when(config.start_ms))
    table.add_row("to", _when(config.end_ms))
    if drift is not None:
        table.add_row("drift", f"{drift.kind} from {_when(drift.at_ms)}")
    if tally.oracle_n:
        mean = tally.oracle_sum / tally.oracle_n
        table.add_row(f"mean oracle_purchase ({horizon_hours:g} h)", f"{mean:.3f}")
        ceiling = tally.ceiling_sum / tally.oracle_n
        table.add_row(f"mean ceiling_purchase ({horizon_hours:g} h)", f"{ceiling:.3f}")
    table.add_row("time", f"{elapsed:.1f} s ({written / max(elapsed, 1e-9):,.0f} events/s)")
    console.print(table)

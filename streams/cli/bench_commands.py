"""`propensity bench`: the side-by-side throughput and latency benchmark; `propensity
bench-drift`: the drift alert's noise, false alarms and detection delay."""

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from streams.cli.options import build_settings, one_line_errors, setting_option
from streams.harness.broker import EmbeddedBroker
from streams.worker.settings import Settings

if TYPE_CHECKING:
    from streams.harness.drift_bench import BenchResult as DriftBenchResult


@contextmanager
def kafka(settings: Settings) -> Iterator[str]:
    """The configured Kafka's bootstrap servers, or an embedded broker's while the block runs."""
    if settings.bootstrap_servers:
        yield settings.bootstrap_servers
        return
    broker = EmbeddedBroker().start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return f"{value:,}{unit}"


def print_results(result: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"propensity bench ({result['mode']}) on {result['machine']['cpus']} CPUs: "
        f"{result['machine']['cpu']}"
    )
    for column in (
        "stage",
        "events",
        "events/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "peak RSS MiB",
        "state B/user",
        "pending B/pred",
    ):
        table.add_column(column, justify="right" if column != "stage" else "left")
    for stage in result["stages"]:
        rss = stage.get("peak_rss_bytes")
        table.add_row(
            stage["name"],
            _fmt(stage["events"]),
            _fmt(stage["events_per_second"]),
            _fmt(stage.get("latency_p50_ms")),
            _fmt(stage.get("latency_p95_ms")),
            _fmt(stage.get("latency_p99_ms")),
            _fmt(rss / 2**20 if rss else None),
            _fmt(stage.get("state_bytes_per_user")),
            _fmt(stage.get("pending_bytes_per_prediction")),
        )
    console.print(table)
    for key in ("ratio_full_to_ceiling", "ratio_full_to_naive"):
        if result.get(key) is not None:
            console.print(f"{key.replace('_', ' ')}: {result[key]:.2f}x")


@click.command()
@click.option(
    "--events", type=int, default=None, help="Events in the workload [300,000; --chaos 150,000]."
)
@click.option(
    "--users",
    type=int,
    default=None,
    help="Distinct users in the workload [20,000; --chaos 2,000].",
)
@click.option("--partitions", type=int, default=8, help="Partitions of the workload topic.")
@click.option(
    "--rate",
    type=float,
    default=None,
    help="Fixed offered rate (events/s): measure the full pipeline's latency under that load.",
)
@click.option(
    "--chaos",
    is_flag=True,
    help="Fault drill instead: SIGKILL the worker --kills times and add a second worker while"
    " --events stream in at --rate (default 5,000/s); print lost input and scores that differ"
    " from a clean run, with the changelog end checked and as the broker reports it.",
)
@click.option("--kills", type=int, default=6, show_default=True, help="SIGKILLs in --chaos.")
@click.option(
    "--restart",
    is_flag=True,
    help="Restart time instead: fill the table with one event for each of --users (default"
    " 20,000), SIGKILL the worker, time a new worker's start until it reports ready.",
)
@click.option(
    "--quality",
    is_flag=True,
    help="Live-quality timing instead: fill the windows with 10,000 and then 1,000,000"
    " synthetic outcomes and time the copy and the figures (no broker, no model).",
)
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the results as JSON here.",
)
@setting_option("model_path", "--model")
@setting_option("bootstrap_servers", "--bootstrap-servers", "-b")
@setting_option("batch_size")
@setting_option("batch_wait_ms")
def bench(
    events: int | None,
    users: int | None,
    partitions: int,
    rate: float | None,
    chaos: bool,
    kills: int,
    restart: bool,
    quality: bool,
    json_out: Path | None,
    **overrides: Any,
) -> None:
    """Benchmark, back to back on one workload: (a) plain aiokafka consume-and-decode, the
    ceiling; (b) a do-nothing Faust agent, the naive baseline; (c) the full pipeline.

    Prints events/s, end-to-end latency p50/p95/p99 (input produced -> propensity published,
    from the records' timestamps), peak RSS, state bytes per user, and the ratios. With --rate
    only (c) runs, fed at that rate, to measure latency under a given load. Uses the embedded
    broker unless KAFKA_BOOTSTRAP_SERVERS is set. Needs a model (--model).
    """
    from streams.harness.throughput import Workload, run_fixed_rate, run_throughput

    if quality:
        run_quality_timing(json_out)
        return
    settings = build_settings(**overrides)
    if not Path(settings.model_path).is_file():
        raise click.UsageError(f"model file {settings.model_path} does not exist (train one first)")
    if restart:
        run_restart_drill(settings, users or 20_000, partitions, json_out)
        return
    if chaos:
        run_drill(settings, events or 150_000, users or 2_000, partitions, rate, kills, json_out)
        return
    work = Workload(events=events or 300_000, users=users or 20_000, partitions=partitions)
    console = Console()
    with (
        kafka(settings) as bootstrap,
        console.status("benchmarking..."),
        one_line_errors(settings),
    ):
        if rate:
            result = run_fixed_rate(settings, bootstrap, work, rate)
        else:
            result = run_throughput(settings, bootstrap, work)
    print_results(result, console)
    text = json.dumps(result, indent=2)
    console.print_json(text)
    if json_out:
        json_out.write_text(text + "\n")


def run_drill(
    settings: Settings,
    events: int,
    users: int,
    partitions: int,
    rate: float | None,
    kills: int,
    json_out: Path | None,
) -> None:
    """`bench --chaos`: both legs of the fault drill, figures printed as they come."""
    from streams.harness.drills import ChaosPlan, run_chaos_bench

    plan = ChaosPlan(events=events, users=users, kills=kills, rate=rate or 5_000.0)
    console = Console()
    with (
        kafka(settings) as bootstrap,
        one_line_errors(settings),
        tempfile.TemporaryDirectory(prefix="propensity-chaos-") as tmp,
        console.status("fault drill..."),
    ):
        result = run_chaos_bench(settings, bootstrap, plan, partitions, Path(tmp))
    for leg, figures in result["legs"].items():
        console.print(f"[bold]{leg}[/bold]")
        for line in figures["lines"]:
            console.print(f"  {line}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


def run_restart_drill(
    settings: Settings, users: int, partitions: int, json_out: Path | None
) -> None:
    """`bench --restart`: start -> ready of a worker that takes over a full table."""
    from streams.harness.drills import drill_settings, run_restart

    console = Console()
    with (
        kafka(settings) as bootstrap,
        one_line_errors(settings),
        tempfile.TemporaryDirectory(prefix="propensity-restart-") as tmp,
        console.status("restart drill..."),
    ):
        drill = drill_settings(settings, bootstrap, partitions, Path(tmp))
        report = run_restart(drill, users, Path(tmp))
    for line in report.lines():
        console.print(line)
    if json_out:
        json_out.write_text(json.dumps(asdict(report), indent=2) + "\n")


QUALITY_WINDOW_SIZES = (10_000, 1_000_000)


def run_quality_timing(json_out: Path | None) -> None:
    """`bench --quality`: time per figures() of the live-quality windows at two sizes."""
    from model.monitoring.quality_timing import time_quality

    console = Console()
    table = Table(title="live quality: 2 heads x (count, event-time) windows of N outcomes each")
    for column in (
        "N",
        "add µs/outcome",
        "decode+add µs/record",
        "copy ms",
        "figures ms",
        "held MiB",
        "held B/outcome",
    ):
        table.add_column(column, justify="right")
    results = []
    with console.status("timing live quality..."):
        for size in QUALITY_WINDOW_SIZES:
            r = time_quality(size)
            results.append(r)
            table.add_row(
                f"{size:,}",
                f"{r['add_per_outcome_seconds'] * 1e6:.1f}",
                f"{r['decode_and_add_per_record_seconds'] * 1e6:.1f}",
                f"{r['windows_copy_seconds'] * 1e3:.1f}",
                f"{r['figures_seconds'] * 1e3:.0f}",
                f"{r['held_bytes'] / 2**20:.1f}",
                f"{r['held_bytes_per_outcome']:.0f}",
            )
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(results, indent=2) + "\n")


def _figure(value: float, digits: int = 3) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN: no full window


def print_drift_results(result: "DriftBenchResult", console: Console) -> None:
    """The three tables of `propensity bench-drift`."""
    plan = result.plan
    console.print(
        f"{plan.users:,} shoppers, {plan.burn_in_days:g} days of burn-in, then {plan.days:g}"
        f" days evaluated ({result.events_per_day:,.0f} events/day); alert = PSI of either head"
        " above the threshold at every minute for 15 minutes of event time"
    )
    noise = Table(title="PSI without drift (quantiles p50 / p95 / p99 / max over minutes)")
    for column in ("window (events)", "purchase", "cart_abandon", "event mix"):
        noise.add_column(column, justify="right")
    for window, by_name in result.psi_quantiles.items():
        noise.add_row(
            f"{window:,}",
            *(" / ".join(_figure(q) for q in by_name[n]) for n in ("purchase", "cart_abandon")),
            " / ".join(_figure(q) for q in by_name["event_mix"]),
        )
    console.print(noise)
    alarms = Table(title="False alarms per simulated day without drift (score PSI alert)")
    alarms.add_column("window (events)", justify="right")
    for threshold in plan.thresholds:
        alarms.add_column(f"PSI > {threshold:g}", justify="right")
    for window, by_threshold in result.false_alarms.items():
        alarms.add_row(f"{window:,}", *(f"{v:.2f}" for v in by_threshold.values()))
    console.print(alarms)
    delays = Table(title="Detection delay: events (event-time minutes) from the drift to the alert")
    delays.add_column("drift", justify="left")
    delays.add_column("window (events)", justify="right")
    for threshold in plan.thresholds:
        delays.add_column(f"PSI > {threshold:g}", justify="right")
    for kind, by_window in result.detections.items():
        for window, detections in by_window.items():
            cells = []
            for d in detections.values():
                cell = f"{d.events:,} ({d.minutes:,.0f} min)" if d.fired else "not fired"
                cells.append(cell + (" *" if d.already_firing else ""))
            delays.add_row(kind, f"{window:,}", *cells)
    console.print(delays)
    console.print("* a false alert was already firing when the drift began")
    cost = Table(title="Cost in the worker")
    for column in ("window (events)", "observe µs/event", "figures µs", "scoring events/s"):
        cost.add_column(column, justify="right")
    for window, timing in result.timing.items():
        cost.add_row(
            f"{window:,}",
            f"{timing.observe_us_per_event:.2f}",
            f"{timing.figures_us:.0f}",
            f"{timing.scoring_events_per_second:,.0f}",
        )
    console.print(cost)


@click.command("bench-drift")
@setting_option("model_path", "--model")
@click.option("--users", default=3000, show_default=True, help="Simulated shoppers.")
@click.option(
    "--burn-in-days",
    default=7.0,
    show_default=True,
    help="Days simulated and scored before measuring (every simulated shopper starts new).",
)
@click.option("--days", default=7.0, show_default=True, help="Days measured after the burn-in.")
@click.option(
    "--drift-after-days",
    default=2.0,
    show_default=True,
    help="Days into the measured days at which the drift runs change the world.",
)
@click.option("--seed", default=7, show_default=True, help="Simulation seed.")
@click.option(
    "--windows",
    default="500,1000,2000,5000,10000",
    show_default=True,
    help="Window sizes (events) to measure, comma-separated.",
)
@click.option(
    "--thresholds",
    default="0.05,0.1,0.15,0.2,0.25",
    show_default=True,
    help="PSI thresholds to measure, comma-separated.",
)
@click.option(
    "--kinds",
    default="conversion,segment,prices",
    show_default=True,
    help="Drift kinds to measure (see `propensity simulate --drift`), comma-separated.",
)
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the results as JSON here.",
)
def bench_drift(
    users: int,
    burn_in_days: float,
    days: float,
    drift_after_days: float,
    seed: int,
    windows: str,
    thresholds: str,
    kinds: str,
    json_out: Path | None,
    **overrides: Any,
) -> None:
    """Measure the worker's drift alert offline: PSI noise and false alarms per day on a
    simulated run without drift, and the delay to the alert after a drift, per window size
    and threshold. Events are scored by the worker's scorer and windowed by its DriftWindow.
    The model must record reference distributions (trained by this version's `train`)."""
    from model.serving.export import load_model
    from model.serving.reference import reference_from_metrics
    from streams.harness.drift_bench import BenchPlan, run_bench

    settings = build_settings(**overrides)
    with one_line_errors(settings):
        model = load_model(settings.model_path)
    reference = reference_from_metrics(model.meta.metrics)
    if reference is None:
        raise click.ClickException(
            f"model file {settings.model_path} records no reference distributions: retrain it"
            " with `propensity train`"
        )
    plan = BenchPlan(
        users=users,
        burn_in_days=burn_in_days,
        days=days,
        drift_after_days=drift_after_days,
        seed=seed,
        windows=tuple(int(w) for w in windows.split(",")),
        thresholds=tuple(float(t) for t in thresholds.split(",")),
        kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()),
    )
    console = Console()
    result = run_bench(model, reference, plan, progress=lambda line: console.print(line))
    print_drift_results(result, console)
    if json_out is not None:
        json_out.write_text(json.dumps(asdict(result), indent=2, default=str))

"""Subcommands `propensity train` and `propensity evaluate`."""

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from model.serving.export import ModelMeta
from model.training.data import DatasetError
from model.training.fitting import TrainConfig
from schemas.events import parse_timestamp
from schemas.exceptions import InvalidEvent

DEFAULT_FILE_HORIZON_MINUTES = 24 * 60.0


def _instant(value: str | None) -> int | None:
    """An ISO-8601 time (naive = UTC) or epoch milliseconds."""
    if value is None:
        return None
    try:
        return parse_timestamp(int(value) if value.isdigit() else value)
    except InvalidEvent as exc:
        raise click.BadParameter(exc.detail) from None


def _fmt(value: float | None) -> str:
    return (
        "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    )


def _summary(meta: ModelMeta, out: Path, seconds: float) -> None:
    m = meta.metrics
    table = Table(title=f"model {meta.model_version} → {out}", show_header=True)
    table.add_column("head")
    table.add_column("validation ROC-AUC")
    table.add_column("validation log loss")
    table.add_column("validation events (positives)")
    for head, v in m["validation"].items():
        table.add_row(
            head, _fmt(v["roc_auc"]), _fmt(v["log_loss"]), f"{v['events']} ({v['positives']})"
        )
    console = Console()
    console.print(table)
    windows = ", ".join(
        f"{k} {v['purchase_events']} ({v['purchase_positives']} pos)"
        for k, v in m["windows"].items()
    )
    console.print(
        f"horizon {meta.horizon_ms / 60_000:g} min; labelled events per window: {windows}\n"
        f"best epoch {m['best_epoch']} of {m['epochs_run']}; training loop {m['train_seconds']} s, "
        f"total {seconds:.1f} s\n"
        "content sha256 (PROPENSITY_MODEL_SHA256 or `worker --model-sha256` pins it):\n"
        f"{meta.content_sha256}"
    )


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL file of contract events (e.g. written by `propensity import`).",
)
@click.option(
    "--simulated", is_flag=True, help="Train on seeded simulated shoppers instead of --data."
)
@click.option(
    "--users",
    type=click.IntRange(min=10),
    default=None,
    help="Simulated users (default 6000, or 300 with --quick).",
)
@click.option(
    "--days",
    type=click.IntRange(min=2),
    default=None,
    help="Simulated days (default 14, or 7 with --quick).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("artifacts/model.pt"),
    help="Where to write the TorchScript artifact.",
)
@click.option(
    "--horizon-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Prediction horizon H in minutes (default 1440 for --data; the simulator's "
    "default for --simulated). The 3-hour REES46 sample needs a short one: see the README.",
)
@click.option("--seed", type=int, default=0, help="Seed for weights, batch order and simulation.")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Most training epochs (default 40, 10 with --quick).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Users per mini-batch (default 32, 64 with --simulated, 16 with --quick).",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many epochs without a better validation AUC.",
)
@click.option(
    "--val-fraction",
    type=float,
    default=0.2,
    help="Share of labelled events (latest first, after the test share) for validation.",
)
@click.option(
    "--test-fraction",
    type=float,
    default=0.2,
    help="Share of labelled events, the latest by event time, held out as the test window.",
)
@click.option(
    "--val-start",
    default=None,
    help="Validation window start (ISO-8601 or epoch ms); needs --test-start; overrides fractions.",
)
@click.option("--test-start", default=None, help="Test window start (ISO-8601 or epoch ms).")
@click.option("--quick", is_flag=True, help="A few small epochs on little data: for CI and demos.")
@click.option("--progress/--no-progress", default=True, help="Show the rich progress bar.")
def train(
    data: Path | None,
    simulated: bool,
    users: int | None,
    days: int | None,
    out: Path,
    horizon_minutes: float | None,
    seed: int,
    epochs: int | None,
    batch_size: int | None,
    patience: int | None,
    val_fraction: float,
    test_fraction: float,
    val_start: str | None,
    test_start: str | None,
    quick: bool,
    progress: bool,
) -> None:
    """Train the CNN+LSTM on a time split, calibrate it on validation and save one artifact."""
    from model.training.train import simulated_preset, train_file, train_simulated

    if (data is None) == (not simulated):
        raise click.UsageError("give exactly one of --data FILE or --simulated")
    config = simulated_preset(TrainConfig(seed=seed)) if simulated else TrainConfig(seed=seed)
    config = replace(
        config,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        val_start_ms=_instant(val_start),
        test_start_ms=_instant(test_start),
    )
    if quick:
        config = config.quick()
    overrides = {"epochs": epochs, "patience": patience, "batch_size": batch_size}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    horizon_ms = None if horizon_minutes is None else int(horizon_minutes * 60_000)
    started = time.perf_counter()
    try:
        if data is not None:
            horizon_ms = horizon_ms or int(DEFAULT_FILE_HORIZON_MINUTES * 60_000)
            meta = train_file(data, out, horizon_ms=horizon_ms, config=config, progress=progress)
        else:
            meta = train_simulated(
                out,
                progress=progress,
                users=users,
                days=days,
                seed=seed,
                horizon_ms=horizon_ms,
                config=config,
                quick=quick,
            )
    except (DatasetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    _summary(meta, out, time.perf_counter() - started)


@click.command()
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Artifact written by `propensity train`.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL file of contract events (an `oracle_purchase` key adds the oracle).",
)
@click.option(
    "--simulated",
    is_flag=True,
    help="Re-create the simulated data recorded in the artifact instead of --data.",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports/latest"),
    help="Folder for report.md, metrics.json and PNGs.",
)
@click.option(
    "--horizon-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Label horizon in minutes (default: the one the model was trained for).",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=1),
    default=200,
    help="Bootstrap replicates (resampling users) for the 95% confidence intervals.",
)
@click.option("--seed", type=int, default=0, help="Seed of the bootstrap and the baselines.")
def evaluate(
    model_path: Path,
    data: Path | None,
    simulated: bool,
    report_dir: Path,
    horizon_minutes: float | None,
    bootstrap: int,
    seed: int,
) -> None:
    """Compare the model with logistic regression, LightGBM and all-negative on the test window."""
    from model.evaluation.evaluate import evaluate as run_evaluation
    from model.evaluation.evaluate import evaluate_simulated

    if (data is None) == (not simulated):
        raise click.UsageError("give exactly one of --data FILE or --simulated")
    started = time.perf_counter()
    try:
        if data is not None:
            results = run_evaluation(
                model_path,
                data,
                report_dir,
                horizon_minutes=horizon_minutes,
                bootstrap=bootstrap,
                seed=seed,
            )
        else:
            results = evaluate_simulated(model_path, report_dir, bootstrap=bootstrap, seed=seed)
    except (DatasetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    _evaluation_summary(results, report_dir, time.perf_counter() - started)


def _evaluation_summary(results: dict[str, Any], report_dir: Path, seconds: float) -> None:
    console = Console()
    for head, entry in results["heads"].items():
        table = Table(
            title=f"{head}: test window, {entry['test_events']} events, "
            f"{entry['test_positives']} positive"
        )
        for column in ("model", "ROC-AUC [95% CI]", "PR-AUC", "log loss", "ECE"):
            table.add_column(column)
        for name, m in entry["models"].items():
            low, high = m["ci"]["roc_auc"]
            t = m["test"]
            table.add_row(
                name,
                f"{_fmt(t['roc_auc'])} [{_fmt(low)}, {_fmt(high)}]",
                _fmt(t["pr_auc"]),
                _fmt(t["log_loss"]),
                _fmt(t["ece"]),
            )
        console.print(table)
    console.print(f"report: {report_dir / 'report.md'} ({seconds:.1f} s)")

"""`propensity uplift`: per action, treatment vs control conversion and the uplift with its
95 % interval, read from the action-outcomes topic (to its end), as a table or Markdown."""

import asyncio
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from model.monitoring.uplift import UpliftFigures, UpliftTable
from streams.cli.monitor_command import parse_since
from streams.cli.options import build_settings, one_line_errors, setting_option
from streams.cli.topic_reader import read_records

COLUMNS = (
    "action",
    "treated users",
    "treated conversions",
    "treated rate",
    "control users",
    "control conversions",
    "control rate",
    "uplift",
    "95 % interval",
    "incremental purchases",
)
METHOD = (
    "Each user counts once per action, at their first decision of it (intention to treat at"
    " first eligibility). Conversion: a purchase within the policy's uplift horizon after the"
    " decision. Uplift: treatment rate minus control rate; interval: Newcombe's hybrid score"
    " interval (method 10) for a difference of proportions. Incremental purchases: uplift x"
    " treated users."
)


def _pct(value: float) -> str:
    return "-" if value != value else f"{100 * value:.2f} %"


def rows(figures: list[UpliftFigures]) -> list[tuple[str, ...]]:
    """The table's cells, one row per action."""
    out: list[tuple[str, ...]] = []
    for f in figures:
        t, c = f.treatment, f.control
        interval = "-" if f.ci_low != f.ci_low else f"[{_pct(f.ci_low)}, {_pct(f.ci_high)}]"
        incremental = "-" if f.uplift != f.uplift else f"{f.incremental_purchases:,.1f}"
        out.append(
            (
                f.action,
                f"{t.users:,}",
                f"{t.conversions:,}",
                _pct(t.rate),
                f"{c.users:,}",
                f"{c.conversions:,}",
                _pct(c.rate),
                _pct(f.uplift),
                interval,
                incremental,
            )
        )
    return out


def markdown(figures: list[UpliftFigures], source: str) -> str:
    lines = [
        "# Uplift of the marketing actions",
        "",
        f"From {source}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(row) + " |" for row in rows(figures)),
        "",
        METHOD,
        "",
    ]
    return "\n".join(lines)


@click.command("uplift")
@setting_option("bootstrap_servers", "--bootstrap-servers", "-b")
@setting_option("action_outcomes_topic", "--topic")
@click.option("--since", default=None, help="Only outcomes written since (90m, 2h, 1d, ISO).")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write DIR/README.md (the table and the method).",
)
def uplift(since: str | None, report_dir: Path | None, **overrides: Any) -> None:
    """Measured uplift per marketing action: reads the action-outcomes topic to its end.

    Treatment vs control users, conversions and conversion rates, the absolute uplift with
    its 95 % interval (Newcombe) and the incremental purchases.
    """
    settings = build_settings(**overrides)
    table = UpliftTable()

    with one_line_errors(settings):
        since_ms = None if since is None else parse_since(since, int(time.time() * 1000))
        read = asyncio.run(
            read_records(
                settings,
                settings.action_outcomes_topic,
                table.observe_value,
                since_ms=since_ms,
                until_caught_up=True,
            )
        )
    figures = table.figures()
    source = f"{read:,} records of {settings.action_outcomes_topic} at {settings.bootstrap}"
    view = Table(title=f"uplift — {source}")
    for column in COLUMNS:
        view.add_column(column, justify="left" if column == "action" else "right")
    for row in rows(figures):
        view.add_row(*row)
    console = Console()
    console.print(view)
    if table.skipped:
        console.print(f"skipped: {table.skipped}")
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "README.md").write_text(markdown(figures, source))
        console.print(f"report: {report_dir / 'README.md'}")

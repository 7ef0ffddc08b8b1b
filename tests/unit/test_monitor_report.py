"""`propensity monitor`: --since parsing, the terminal table, and the --report files written
from records fed without a broker."""

import math
from pathlib import Path

import pytest
from rich.console import Console

from model.monitoring.quality import HOUR_MS, LiveQuality, QualityLimits
from model.monitoring.quality_report import (
    AUC_PLOT,
    RELIABILITY_PLOT,
    format_figure,
    reliability_bins,
    write_report,
)
from streams.cli.monitor_command import MonitorError, figures_table, parse_since
from tests.unit.test_live_quality import random_records

NOW = 1_733_300_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW - 90 * 60_000),
        ("2h", NOW - 2 * HOUR_MS),
        ("1.5d", NOW - 36 * HOUR_MS),
        ("30s", NOW - 30_000),
        ("2024-12-04T08:00:00", 1_733_299_200_000),
        ("2024-12-04T09:00:00+01:00", 1_733_299_200_000),
    ],
)
def test_since_is_a_duration_back_or_an_iso_time(text: str, expected: int) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "-2h", "2 weeks"])
def test_a_bad_since_is_one_clear_error(text: str) -> None:
    with pytest.raises(MonitorError, match="neither a duration"):
        parse_since(text, NOW)


def filled(n: int = 2000) -> LiveQuality:
    quality = LiveQuality(QualityLimits(window_outcomes=500, history_interval_ms=HOUR_MS))
    for i, r in enumerate(random_records(n, seed=5)):
        r["event_ts"] = NOW + i * 10_000  # 10 s apart: about 5.5 hours
        quality.add(r)
    quality.add(random_records(1, seed=5)[0])  # a duplicate
    quality.add({"not": "an outcome"})
    return quality


def test_report_writes_tables_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    quality = filled()
    written = write_report(quality, tmp_path / "report", "topic t at here")
    readme = (tmp_path / "report" / "README.md").read_text()
    figures = {(f.head, f.window): f.figures for f in quality.figures()}
    count = figures[("purchase", "count")]
    row = next(line for line in readme.splitlines() if line.startswith("| purchase | count |"))
    assert f"| {count.outcomes:,} | {format_figure('roc_auc', count.roc_auc)} |" in row
    assert "2,000 outcomes counted; skipped: 1 duplicate, 1 missing_field" in readme
    assert f"]({AUC_PLOT})" in readme and f"]({RELIABILITY_PLOT})" in readme
    for name in (AUC_PLOT, RELIABILITY_PLOT):
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(written) == 3
    # Hourly points over 5.5 h of event time, plus the one at the end of the stream.
    assert len([s for s in quality.history if s.head == "purchase"]) == 6


def test_reliability_bins_match_the_ece_bins() -> None:
    import numpy as np

    scores = np.array([0.05, 0.07, 0.55, 0.95, 1.0])
    labels = np.array([0, 1, 1, 1, 0])
    bins = reliability_bins(scores, labels)
    assert [b.outcomes for b in bins] == [2, 1, 2]
    assert bins[0].predicted == pytest.approx(0.06) and bins[0].observed == 0.5
    assert bins[2].observed == 0.5  # 1.0 falls in the top bin, as in the ECE


def test_terminal_table_shows_every_window() -> None:
    quality = filled(300)
    console = Console(width=220, record=True)
    console.print(figures_table(quality.figures(), quality, "topic t"))
    text = console.export_text()
    assert text.count(" v1 ") >= 4  # 2 heads x 2 windows
    assert "300 outcomes counted" in text
    assert format_figure("roc_auc", math.nan) == "–"

"""The live-quality report: Markdown tables of the figures per model version, head and window,
and two PNG plots (live ROC-AUC over event time; reliability diagram of the count window).

The plots need matplotlib (the ``[train]`` extra); it is imported only when they are drawn,
so the tables and the terminal view work without it.
"""

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np

from model.evaluation.measures import ECE_BINS
from model.monitoring.quality import (
    COUNT_WINDOW,
    LiveQuality,
    WindowContents,
    WindowFigures,
    figures_of,
)

AUC_PLOT: Final = "live_auc.png"
RELIABILITY_PLOT: Final = "reliability.png"
COLUMNS: Final = (
    ("outcomes", "outcomes"),
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("brier", "Brier"),
    ("log_loss", "log loss"),
    ("ece", "ECE"),
    ("predicted_rate", "mean predicted"),
    ("observed_rate", "observed rate"),
)


class ReliabilityBin(NamedTuple):
    predicted: float  # mean score in the bin
    observed: float  # positive rate in the bin
    outcomes: int


def reliability_bins(scores: np.ndarray, labels: np.ndarray) -> list[ReliabilityBin]:
    """The non-empty equal-width bins the ECE is computed over."""
    which = np.minimum((np.clip(scores, 0, 1) * ECE_BINS).astype(int), ECE_BINS - 1)
    out = []
    for b in range(ECE_BINS):
        m = which == b
        if m.any():
            out.append(
                ReliabilityBin(float(scores[m].mean()), float(labels[m].mean()), int(m.sum()))
            )
    return out


def format_figure(name: str, value: float) -> str:
    if name == "outcomes":
        return f"{int(value):,}"
    return "–" if math.isnan(value) else f"{value:.4f}"


def markdown_tables(figures: list[WindowFigures]) -> str:
    """One table per model version: a row per head and window."""
    lines: list[str] = []
    for version in sorted({f.model_version for f in figures}):
        lines += [f"## Model `{version}`", ""]
        lines.append("| head | window | " + " | ".join(title for _, title in COLUMNS) + " |")
        lines.append("|---|---|" + "---:|" * len(COLUMNS))
        for f in (f for f in figures if f.model_version == version):
            cells = [format_figure(name, getattr(f.figures, name)) for name, _ in COLUMNS]
            lines.append(f"| {f.head} | {f.window} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def report_markdown(
    quality: LiveQuality, figures: list[WindowFigures], source: str, plots: bool
) -> str:
    """The report's README.md."""
    limits = quality.limits
    skipped = ", ".join(f"{n:,} {r}" for r, n in sorted(quality.skipped.items())) or "none"
    parts = [
        "# Live model quality",
        "",
        f"Read from {source}: {quality.accepted:,} outcomes counted; skipped: {skipped};"
        f" dropped by the event-time window's cap: {quality.cap_drops:,}.",
        "",
        f"Windows: `count` = the last {limits.window_outcomes:,} resolved outcomes of the head;"
        f" `24h` = outcomes within {limits.window_ms / 3_600_000:g} h of event time of the"
        " newest one seen for the model version. NaN (–) where a figure is undefined (one"
        " class only).",
        "",
        markdown_tables(figures),
    ]
    if plots:
        parts += [
            f"![Live ROC-AUC of the count window over event time]({AUC_PLOT})",
            "",
            f"![Reliability diagram of the count window]({RELIABILITY_PLOT})",
            "",
        ]
    parts.append(
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `propensity monitor --report`."
    )
    return "\n".join(parts) + "\n"


def write_report(quality: LiveQuality, out: Path, source: str, plots: bool = True) -> list[Path]:
    """Write README.md (and, with ``plots``, the PNGs) into ``out``; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    for version in quality.model_versions:
        quality.snapshot(version)  # the history ends where the stream ends
    contents = quality.windows()
    figures = figures_of(contents)
    written = [out / "README.md"]
    written[0].write_text(report_markdown(quality, figures, source, plots))
    if plots:
        written += write_plots(quality, contents, out)
    return written


def write_plots(quality: LiveQuality, contents: list[WindowContents], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for s in quality.history:
        series.setdefault((s.model_version, s.head), []).append((s.event_ts, s.figures.roc_auc))
    fig, ax = plt.subplots(figsize=(8, 4))
    for (version, head), points in sorted(series.items()):
        when = np.array([t for t, _ in points], "datetime64[ms]")
        ax.plot(when, [v for _, v in points], marker=".", label=f"{version} {head}")
    ax.set(xlabel="event time (UTC)", ylabel="ROC-AUC", title="Live ROC-AUC, count window")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / AUC_PLOT, dpi=110)
    plt.close(fig)

    count = [c for c in contents if c.window == COUNT_WINDOW]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), squeeze=False)
    for ax, head in zip(axes[0], ("purchase", "cart_abandon"), strict=True):
        for c in (c for c in count if c.head == head):
            bins = reliability_bins(c.arrays.scores, c.arrays.labels)
            if bins:
                ax.plot(
                    [b.predicted for b in bins],
                    [b.observed for b in bins],
                    marker="o",
                    ms=3,
                    label=f"{c.model_version} ({len(c.arrays.scores):,})",
                )
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted", ylabel="observed rate")
        ax.set_title(f"Reliability — {head}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / RELIABILITY_PLOT, dpi=110)
    plt.close(fig)
    return [out / AUC_PLOT, out / RELIABILITY_PLOT]

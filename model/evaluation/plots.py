"""Report figures (matplotlib, Agg): ROC, precision-recall, reliability and gains charts."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from model.evaluation.assessment import HeadScores


def _roc(ax: Axes, s: HeadScores) -> None:
    for name, p in s.test.items():
        fpr, tpr, _ = roc_curve(s.y_test, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC — {s.head}")


def _pr(ax: Axes, s: HeadScores) -> None:
    for name, p in s.test.items():
        precision, recall, _ = precision_recall_curve(s.y_test, p)
        ax.plot(recall, precision, label=name)
    ax.axhline(s.y_test.mean(), color="grey", lw=0.5, ls=":")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision–recall — {s.head}")


def _reliability(ax: Axes, s: HeadScores) -> None:
    for name, p in s.test.items():
        if np.ptp(p) == 0:
            continue  # a constant predictor is a single point: nothing to read from it
        observed, predicted = calibration_curve(s.y_test, np.clip(p, 0, 1), n_bins=10)
        ax.plot(predicted, observed, marker="o", ms=3, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
    ax.set(
        xlabel="mean predicted probability", ylabel="observed rate", title=f"Reliability — {s.head}"
    )


def _gains(ax: Axes, s: HeadScores) -> None:
    total = max(s.y_test.sum(), 1)
    for name, p in s.test.items():
        if np.ptp(p) == 0:
            continue  # a constant score targets at random: the diagonal
        order = np.argsort(-p, kind="stable")
        captured = np.concatenate([[0], np.cumsum(s.y_test[order]) / total])
        targeted = np.linspace(0, 1, len(captured))
        ax.plot(targeted, captured, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
    ax.set(
        xlabel="fraction of events targeted",
        ylabel="fraction of positives",
        title=f"Gains — {s.head}",
    )


PLOTS = {"roc": _roc, "precision_recall": _pr, "reliability": _reliability, "gains": _gains}


def write_plots(scores: HeadScores, folder: Path) -> dict[str, str]:
    """One PNG per chart for this head; returns chart name -> file name."""
    written: dict[str, str] = {}
    if len(scores.y_test) == 0 or scores.y_test.min() == scores.y_test.max():
        return written
    for chart, draw in PLOTS.items():
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        draw(ax, scores)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"{chart}_{scores.head}.png"
        fig.savefig(folder / name)
        plt.close(fig)
        written[chart] = name
    return written

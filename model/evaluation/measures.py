"""Evaluation figures for one model on one window: scikit-learn metrics, plus ECE and lift.

Every function takes optional per-event weights, so a by-user bootstrap is a reweighting
(a user drawn k times weighs k) instead of a copy of the data.
"""

import math
from typing import Final

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

LIFT_FRACTIONS: Final = (0.01, 0.05, 0.10)
ECE_BINS: Final = 10
NEVER: Final = math.inf  # threshold of a model that never predicts the positive class
METRIC_NAMES: Final = (
    "events",
    "positive_rate",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "precision",
    "recall",
    "f1",
    "flagged_rate",
    *(f"lift_top_{round(f * 100)}pct" for f in LIFT_FRACTIONS),
)


def expected_calibration_error(
    y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None, bins: int = ECE_BINS
) -> float:
    """Weighted mean |observed rate - mean prediction| over equal-width probability bins."""
    w = np.ones(len(y)) if w is None else w
    which = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    total = w.sum()
    gap = 0.0
    for b in range(bins):
        m = which == b
        weight = w[m].sum()
        if weight > 0:
            gap += (
                weight
                / total
                * abs(np.average(y[m], weights=w[m]) - np.average(p[m], weights=w[m]))
            )
    return float(gap)


def lift_at(y: np.ndarray, p: np.ndarray, fraction: float, w: np.ndarray | None = None) -> float:
    """Positive rate among the top ``fraction`` of events by score over the overall rate."""
    w = np.ones(len(y)) if w is None else w
    base = np.average(y, weights=w)
    if base == 0:
        return math.nan
    # Events tied with the cut-off score enter the top share pro rata, so a constant
    # score has lift 1 whatever the order of the events.
    budget = fraction * w.sum()
    order = np.argsort(-p, kind="stable")
    reached = int(np.searchsorted(np.cumsum(w[order]), budget))
    cutoff = p[order[min(reached, len(p) - 1)]]
    above, tied = p > cutoff, p == cutoff
    room = max(budget - w[above].sum(), 0.0)
    share = min(room / w[tied].sum(), 1.0)
    positives = (w * y)[above].sum() + share * (w * y)[tied].sum()
    return float(positives / (w[above].sum() + share * w[tied].sum()) / base)


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score threshold with the highest F1 (chosen on the validation window)."""
    if len(y) == 0 or y.min() == y.max():
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = np.where(
        precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0
    )
    return float(thresholds[int(np.argmax(f1[:-1]))])


def ranking_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> dict[str, float]:
    """ROC-AUC and PR-AUC alone (NaN unless both classes are present)."""
    if len(y) == 0 or y.min() == y.max():
        return {"roc_auc": math.nan, "pr_auc": math.nan}
    return {
        "roc_auc": float(roc_auc_score(y, p, sample_weight=w)),
        "pr_auc": float(average_precision_score(y, p, sample_weight=w)),
    }


def binary_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, w: np.ndarray | None = None
) -> dict[str, float]:
    """All headline figures of probabilities ``p`` against labels ``y``."""
    if len(y) == 0:
        return dict.fromkeys(METRIC_NAMES, math.nan)
    both = y.min() != y.max()
    nan = math.nan
    p = np.clip(np.asarray(p, np.float64), 0.0, 1.0)
    predicted = p >= threshold
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="binary", sample_weight=w, zero_division=0
    )
    out = {
        "events": float(len(y) if w is None else w.sum()),
        "positive_rate": float(np.average(y, weights=w)),
        "roc_auc": float(roc_auc_score(y, p, sample_weight=w)) if both else nan,
        "pr_auc": float(average_precision_score(y, p, sample_weight=w)) if both else nan,
        "log_loss": float(log_loss(y, p, sample_weight=w, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p, sample_weight=w)) if both else nan,
        "ece": expected_calibration_error(y, p, w),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "flagged_rate": float(np.average(predicted, weights=w)),
    }
    for fraction in LIFT_FRACTIONS:
        out[f"lift_top_{round(fraction * 100)}pct"] = lift_at(y, p, fraction, w) if both else nan
    return out

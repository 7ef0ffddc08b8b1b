"""Quality figures of one window of resolved outcomes, by the offline evaluation's measures.

The figures are those ``model.evaluation.measures.binary_metrics`` reports, computed by the
same scikit-learn calls with the same conventions (scores clipped to [0, 1]; ROC-AUC, PR-AUC
and Brier NaN unless both classes are present; ECE over the same ten bins), so a live figure
and the offline report's agree on the same outcomes. ``binary_metrics`` itself also computes
precision, recall and lifts, which live monitoring has no use for and would pay for every few
seconds; tests/unit/test_live_quality.py holds the two to the same numbers.
"""

import math
from dataclasses import dataclass, fields

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss

from model.evaluation.measures import expected_calibration_error, ranking_metrics


@dataclass(frozen=True)
class QualityFigures:
    """Figures of one window; NaN where undefined (no outcomes, or one class only)."""

    roc_auc: float
    pr_auc: float
    brier: float
    log_loss: float
    ece: float
    predicted_rate: float  # mean score: calibration-in-the-large against observed_rate
    observed_rate: float  # mean label
    outcomes: int

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def quality_figures(scores: np.ndarray, labels: np.ndarray) -> QualityFigures:
    """The figures of probabilities ``scores`` against 0/1 ``labels`` (same length)."""
    n = len(labels)
    if n == 0:
        nan = math.nan
        return QualityFigures(nan, nan, nan, nan, nan, nan, nan, 0)
    y = np.asarray(labels)
    p = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
    both = bool(y.min() != y.max())
    ranking = ranking_metrics(y, p)
    return QualityFigures(
        roc_auc=ranking["roc_auc"],
        pr_auc=ranking["pr_auc"],
        brier=float(brier_score_loss(y, p)) if both else math.nan,
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        ece=expected_calibration_error(y, p),
        predicted_rate=float(p.mean()),
        observed_rate=float(y.mean()),
        outcomes=n,
    )

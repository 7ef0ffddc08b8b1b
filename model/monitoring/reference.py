"""The model's own figures, as its artifact records them: what live quality is compared with.

``meta.metrics`` holds ``{"validation": {head: {roc_auc, brier, log_loss, ...}}}`` from
training and, once evaluated, ``"test"`` in the same shape. Whatever of the reference
metrics is there (and a finite number) is returned; what is not is skipped.
"""

import math
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from model.monitoring.outcomes import HEADS

REFERENCE_SPLITS: Final = ("validation", "test")
REFERENCE_METRICS: Final = ("roc_auc", "brier", "ece", "log_loss", "positive_rate")


class ReferenceFigure(NamedTuple):
    head: str
    split: str
    metric: str
    value: float


def reference_figures(metrics: Mapping[str, Any]) -> list[ReferenceFigure]:
    """The artifact's reference figures per head, split and metric."""
    out = []
    for split in REFERENCE_SPLITS:
        by_head = metrics.get(split)
        if not isinstance(by_head, Mapping):
            continue
        for head in HEADS:
            figures = by_head.get(head)
            if not isinstance(figures, Mapping):
                continue
            for metric in REFERENCE_METRICS:
                value = _finite(figures.get(metric))
                if value is not None:
                    out.append(ReferenceFigure(head, split, metric, value))
    return out


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)

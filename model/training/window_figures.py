"""What an artifact records about its held-out windows, beyond the validation figures that
calibration reports: the validation window's reference distributions (for live drift) and
the test window's headline figures per head (for live quality to compare against).

Scores here are the calibrated probabilities the served model gives (the network's logits
through its own Platt buffers), so the worker's live histogram and this reference measure
the same thing.
"""

from typing import Any, Final

import numpy as np

from model.evaluation.measures import binary_metrics
from model.network import PropensityNet
from model.serving.config import HEADS
from model.serving.reference import DriftReference, event_mix, score_histogram
from model.training.batches import make_batches
from model.training.calibration import apply_platt
from model.training.data import Dataset, window_masks
from model.training.fitting import predict_logits
from model.training.splits import TEST, VALIDATION, WINDOW_NAMES, TimeSplit
from schemas.events import EVENT_TYPES

TEST_FIGURES: Final = ("roc_auc", "brier", "ece", "log_loss", "positive_rate", "events")
_THRESHOLD: Final = 0.5  # binary_metrics wants one; none of TEST_FIGURES depends on it


def calibrated_scores(
    net: PropensityNet, dataset: Dataset, mask: np.ndarray, batch_size: int
) -> np.ndarray:
    """Calibrated probabilities (N, heads) of the events in ``mask`` (N, heads); NaN elsewhere."""
    logits = predict_logits(net, dataset, make_batches(dataset, mask, batch_size=batch_size))
    scale, bias = net.get_buffer("calibration_scale"), net.get_buffer("calibration_bias")
    return np.stack(
        [apply_platt(logits[:, h], float(scale[h]), float(bias[h])) for h in range(len(HEADS))], 1
    )


def drift_reference(
    net: PropensityNet, dataset: Dataset, split: TimeSplit, batch_size: int
) -> DriftReference | None:
    """Every event of the validation window, as the worker would score it: the purchase
    score of each, the cart-abandon score of those that leave a non-empty cart, and the
    share of each event type. Not purged of events whose horizon runs past the window, and
    not limited to labelled events: the live window holds every scored event.

    None when some head has no score in the window (no reference to measure drift against).
    """
    inside = split.window_of(dataset.flat("ts")) == VALIDATION
    has_cart = dataset.flat("cart_items") > 0
    mask = np.stack([inside, inside & has_cart], 1)
    if not mask.any(axis=0).all():
        return None
    scores = calibrated_scores(net, dataset, mask, batch_size)
    types = dataset.flat("event_types")[inside]
    return DriftReference(
        window=WINDOW_NAMES[VALIDATION],
        scores={head: score_histogram(scores[mask[:, h], h]) for h, head in enumerate(HEADS)},
        event_mix=event_mix([EVENT_TYPES[t] for t in types]),
        events=int(inside.sum()),
    )


def test_figures(
    net: PropensityNet, dataset: Dataset, split: TimeSplit, batch_size: int
) -> dict[str, dict[str, Any]]:
    """Per head, the test window's figures (TEST_FIGURES) of the calibrated model."""
    masks = np.stack(window_masks(dataset, split, TEST), 1)
    scores = calibrated_scores(net, dataset, masks, batch_size)
    labels = np.stack(
        [dataset.flat_labels("purchase_within_horizon"), dataset.flat_labels("cart_abandon")], 1
    )
    out: dict[str, dict[str, Any]] = {}
    for h, head in enumerate(HEADS):
        m = masks[:, h]
        figures = binary_metrics(labels[m, h].astype(np.int64), scores[m, h], _THRESHOLD)
        out[head] = {name: figures[name] for name in TEST_FIGURES}
        out[head]["events"] = int(m.sum())
    return out

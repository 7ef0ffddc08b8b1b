"""Score every model on the validation and test windows and assess it with by-user CIs.

The CNN+LSTM is the artifact itself (TorchScript ``forward`` over each user's whole
sequence, which is what the stream computes event by event). The baselines are trained
here, on the same train window with the same labels, LightGBM early-stopping on the same
validation window; thresholds for precision/recall/F1 are chosen on validation (max F1).
"""

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import sklearn
import torch

from model.evaluation.baseline_features import dataset_features
from model.evaluation.baselines import LIGHTGBM, LOGISTIC, fit_baselines, predict
from model.evaluation.bootstrap import interval, replicate_values, user_replicates
from model.evaluation.measures import NEVER, best_f1_threshold, binary_metrics, ranking_metrics
from model.serving.config import HEADS
from model.serving.export import LoadedModel
from model.training.batches import make_batches, scatter_outputs
from model.training.data import CEILING, ORACLE, Dataset, window_masks
from model.training.splits import TEST, TRAIN, VALIDATION, TimeSplit
from schemas.events import EVENT_TYPES

CNN_LSTM, ALL_NEGATIVE = "cnn_lstm", "all_negative"
REFERENCES = (ORACLE, CEILING)  # simulated data only; purchase head only
SESSION_BUCKETS: Final = ((1, 1, "1st"), (2, 3, "2-3"), (4, 10, "4-10"), (11, 10**9, "11+"))
BUCKET_ORDER: Final = {
    "event_type": EVENT_TYPES,
    "session_position": tuple(name for _, _, name in SESSION_BUCKETS),
}


@dataclass
class HeadScores:
    """Labels and every model's probabilities on the validation and test windows of one head."""

    head: str
    y_val: np.ndarray
    y_test: np.ndarray
    val: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    users_test: np.ndarray
    buckets_test: dict[str, np.ndarray]  # bucket family -> bucket name per test event


def predict_network(loaded: LoadedModel, dataset: Dataset, mask: np.ndarray) -> np.ndarray:
    """Calibrated probabilities (N, heads) of the artifact for the events in ``mask``."""
    batches = make_batches(dataset, mask, batch_size=256)
    with torch.inference_mode():
        outputs = [loaded.module(b.x) for b in batches]
    return scatter_outputs(dataset, batches, outputs)


def session_bucket(positions: np.ndarray) -> np.ndarray:
    out = np.empty(len(positions), dtype=object)
    for low, high, name in SESSION_BUCKETS:
        out[(positions >= low) & (positions <= high)] = name
    return out


def score_heads(
    loaded: LoadedModel, dataset: Dataset, split: TimeSplit, seed: int
) -> list[HeadScores]:
    """Fit the baselines per head and collect every model's scores on validation and test."""
    masks = {w: np.stack(window_masks(dataset, split, w), 1) for w in (TRAIN, VALIDATION, TEST)}
    network = predict_network(loaded, dataset, masks[VALIDATION] | masks[TEST])
    features = dataset_features(dataset)
    labels = np.stack(
        [dataset.flat_labels("purchase_within_horizon"), dataset.flat_labels("cart_abandon")], 1
    )
    users = dataset.user_index()
    families = {
        "event_type": np.array(EVENT_TYPES, dtype=object)[dataset.flat("event_types")],
        "session_position": session_bucket(dataset.flat("session_position")),
    }
    references = {name: dataset.flat_reference(name) for name in dataset.reference_names}
    heads = []
    for h, name in enumerate(HEADS):
        train, val, test = (masks[w][:, h] for w in (TRAIN, VALIDATION, TEST))
        baselines = fit_baselines(features, labels[:, h], train, val, seed)
        scores = {CNN_LSTM: network[:, h]}
        scores |= {n: np.full(len(labels), np.nan) for n in baselines}
        for n, model in baselines.items():
            either = val | test
            scores[n][either] = predict(model, features[either])
        scores[ALL_NEGATIVE] = np.full(len(labels), labels[train, h].mean() if train.any() else 0.0)
        if name == "purchase":
            scores |= references
        heads.append(
            HeadScores(
                head=name,
                y_val=labels[val, h],
                y_test=labels[test, h],
                val={n: s[val] for n, s in scores.items()},
                test={n: s[test] for n, s in scores.items()},
                users_test=users[test],
                buckets_test={f: b[test] for f, b in families.items()},
            )
        )
    return heads


def _assess(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    replicates: list[np.ndarray],
    *,
    full: bool = True,
) -> dict[str, Any]:
    """Point figures and by-user bootstrap intervals of one model on one set of events
    (intervals of every figure when ``full``, else of the two AUCs only, to save time)."""

    def on(w: np.ndarray | None) -> dict[str, float]:
        if w is None:
            return binary_metrics(y, p, threshold)
        keep = w > 0
        if full:
            return binary_metrics(y[keep], p[keep], threshold, w[keep])
        return ranking_metrics(y[keep], p[keep], w[keep])

    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        point = on(None)
        values = replicate_values(on, replicates)
    return {
        "test": point,
        "ci": {k: interval(v) for k, v in values.items()},
        "_replicates": values,
    }


def assess_head(scores: HeadScores, *, bootstrap: int, seed: int) -> dict[str, Any]:
    """Thresholds (validation), test figures with CIs, paired differences, per-bucket figures."""
    replicates = user_replicates(scores.users_test, bootstrap, seed)
    thresholds = {
        n: NEVER if n == ALL_NEGATIVE else best_f1_threshold(scores.y_val, p)
        for n, p in scores.val.items()
    }
    models = {}
    for n, p in scores.test.items():
        models[n] = _assess(scores.y_test, p, thresholds[n], replicates)
        models[n]["threshold"] = thresholds[n]
        models[n]["validation_roc_auc"] = binary_metrics(scores.y_val, scores.val[n], NEVER)[
            "roc_auc"
        ]
    pairs = [(CNN_LSTM, other) for other in (LOGISTIC, LIGHTGBM, *REFERENCES)]
    pairs.append((CEILING, ORACLE))  # what the events cannot show
    differences = {}
    for one, other in pairs:
        if one in models and other in models:
            diff = models[one]["_replicates"]["roc_auc"] - models[other]["_replicates"]["roc_auc"]
            point = models[one]["test"]["roc_auc"] - models[other]["test"]["roc_auc"]
            differences[f"{one} - {other}"] = {"roc_auc": point, "ci": interval(diff)}
    for m in models.values():
        del m["_replicates"]
    buckets: dict[str, dict[str, Any]] = {}
    for family, names in scores.buckets_test.items():
        buckets[family] = {}
        present = set(names.tolist())
        for bucket in [b for b in BUCKET_ORDER[family] if b in present]:
            inside = names == bucket
            sub = [w[inside] for w in replicates]
            y = scores.y_test[inside]
            entry: dict[str, Any] = {
                "events": int(inside.sum()),
                "positives": int(y.sum()),
                "models": {},
            }
            for n, p in scores.test.items():
                result = _assess(y, p[inside], thresholds[n], sub, full=False)
                del result["_replicates"]
                entry["models"][n] = result
            buckets[family][bucket] = entry
    return {
        "validation_events": len(scores.y_val),
        "test_events": len(scores.y_test),
        "test_positives": int(scores.y_test.sum()),
        "test_users": len(np.unique(scores.users_test)),
        "models": models,
        "differences": differences,
        "buckets": buckets,
    }

"""Platt scaling per head: a one-feature logistic regression on the network's raw logits."""

import numpy as np
from scipy.optimize import brentq
from sklearn.linear_model import LogisticRegression


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(scale, bias) with p = sigmoid(scale * logit + bias); identity when one class is absent."""
    labels = np.asarray(labels)
    if len(labels) == 0 or labels.min() == labels.max():
        return 1.0, 0.0
    # Unpenalised: one slope and one intercept need no shrinkage on thousands of events.
    model = LogisticRegression(C=np.inf).fit(np.asarray(logits).reshape(-1, 1), labels)
    scale, bias = float(model.coef_[0, 0]), float(model.intercept_[0])
    if scale > 0:
        return scale, bias
    # A non-positive slope would invert the network's ranking on the strength of a noisy
    # validation window; keep the ranking and fit the intercept alone (its MLE matches the
    # mean prediction to the observed rate).
    rate, z = float(labels.mean()), np.asarray(logits, dtype=np.float64)
    bias = brentq(lambda b: float(np.mean(1.0 / (1.0 + np.exp(-(z + b))))) - rate, -50.0, 50.0)
    return 1.0, float(bias)


def apply_platt(logits: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """Calibrated probabilities, as PropensityNet.calibrate computes them."""
    return 1.0 / (1.0 + np.exp(-(scale * np.asarray(logits, dtype=np.float64) + bias)))

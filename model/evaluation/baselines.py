"""Honest baselines on handcrafted features: logistic regression and LightGBM, per head.

Both are fitted on the train window's labelled events. LightGBM stops early on the
validation window, as the CNN+LSTM does; nothing looks at the test window.
"""

from dataclasses import dataclass
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

LOGISTIC, LIGHTGBM = "logistic_regression", "lightgbm"


class ProbabilityModel(Protocol):
    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class ConstantModel:
    """Predicts one probability everywhere (a head whose train window has one class)."""

    p: float

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.tile([1.0 - self.p, self.p], (len(x), 1))


def fit_logistic(x: np.ndarray, y: np.ndarray, seed: int) -> ProbabilityModel:
    """Standardised features -> L2 logistic regression."""
    if y.min() == y.max():
        return ConstantModel(float(y.mean()))
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    )
    fitted: ProbabilityModel = model.fit(x, y)
    return fitted


def fit_lightgbm(
    x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, seed: int
) -> ProbabilityModel:
    """Gradient-boosted trees; early stopping on validation AUC when it has both classes."""
    if y.min() == y.max():
        return ConstantModel(float(y.mean()))
    params: dict[str, Any] = {
        "n_estimators": 400,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "random_state": seed,
        "n_jobs": 2,
        "deterministic": True,
        "verbose": -1,
    }
    model = lgb.LGBMClassifier(**params)
    if len(y_val) and y_val.min() != y_val.max():
        model.fit(
            x,
            y,
            eval_X=(x_val,),
            eval_y=(y_val,),
            eval_metric="auc",
            callbacks=[lgb.early_stopping(30, verbose=False)],
        )
    else:
        model.fit(x, y)
    fitted: ProbabilityModel = model
    return fitted


def fit_baselines(
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    seed: int = 0,
) -> dict[str, ProbabilityModel]:
    """Both baselines for one head; ``train``/``val`` are boolean masks over the rows."""
    return {
        LOGISTIC: fit_logistic(x[train], y[train], seed),
        LIGHTGBM: fit_lightgbm(x[train], y[train], x[val], y[val], seed),
    }


def predict(model: ProbabilityModel, x: np.ndarray) -> np.ndarray:
    """P(label = 1) per row."""
    if len(x) == 0:
        return np.zeros(0)
    return np.asarray(model.predict_proba(x))[:, 1]


def validation_auc(model: ProbabilityModel, x: np.ndarray, y: np.ndarray) -> float:
    """ROC-AUC on a window, NaN when it has one class."""
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, predict(model, x)))

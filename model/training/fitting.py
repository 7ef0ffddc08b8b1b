"""The CNN+LSTM training loop: masked BCE on both heads, early stopping, Platt calibration."""

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from torch import nn

from model.evaluation.measures import expected_calibration_error
from model.network import PropensityNet
from model.serving.config import (
    DEFAULT_CONV_CHANNELS,
    DEFAULT_DROPOUT,
    DEFAULT_HIDDEN_SIZE,
    DEFAULT_KERNEL_SIZE,
    HEADS,
    QUICK_CONV_CHANNELS,
    QUICK_HIDDEN_SIZE,
    ModelConfig,
)
from model.serving.user_state import N_FEATURES
from model.training.batches import Batch, make_batches, scatter_outputs
from model.training.calibration import apply_platt, fit_platt
from model.training.data import Dataset, window_masks
from model.training.progress import EpochProgress
from model.training.splits import TRAIN, VALIDATION, TimeSplit


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and split settings; the network's shape goes into ModelConfig."""

    seed: int = 0
    epochs: int = 40
    patience: int = 8
    min_epochs: int = 5  # early AUC can start below 0.5 and dip before it climbs
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    conv_channels: int = DEFAULT_CONV_CHANNELS
    kernel_size: int = DEFAULT_KERNEL_SIZE
    hidden_size: int = DEFAULT_HIDDEN_SIZE
    dropout: float = DEFAULT_DROPOUT
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    val_start_ms: int | None = None
    test_start_ms: int | None = None
    threads: int = 2

    def quick(self) -> "TrainConfig":
        """Ten epochs of a small network: for CI and demos (seconds on small data)."""
        return replace(
            self,
            epochs=min(self.epochs, 10),
            patience=3,
            min_epochs=5,
            batch_size=16,
            hidden_size=QUICK_HIDDEN_SIZE,
            conv_channels=QUICK_CONV_CHANNELS,
        )

    def model_config(self, horizon_ms: int) -> ModelConfig:
        return ModelConfig(
            n_features=N_FEATURES,
            conv_channels=self.conv_channels,
            kernel_size=self.kernel_size,
            hidden_size=self.hidden_size,
            dropout=self.dropout,
            horizon_ms=horizon_ms,
        )


@dataclass
class FitResult:
    """The best network (by validation AUC) and how training went."""

    net: PropensityNet
    best_epoch: int
    best_val_auc: float
    history: list[dict[str, float]]
    seconds: float


def masked_bce(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean BCE over labelled events, per head, summed over heads."""
    total = logits.new_zeros(())
    for head in range(logits.size(-1)):
        m = batch.mask[..., head]
        if m.any():
            total = total + nn.functional.binary_cross_entropy_with_logits(
                logits[..., head][m], batch.y[..., head][m]
            )
    return total


def predict_logits(net: PropensityNet, dataset: Dataset, batches: list[Batch]) -> np.ndarray:
    """Raw logits (N, heads) for the events the batches cover (NaN elsewhere)."""
    net.eval()
    with torch.no_grad():
        outputs = [net.logits(b.x) for b in batches]
    return scatter_outputs(dataset, batches, outputs)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if len(y) and y.min() != y.max() else math.nan


def _train_epoch(
    net: PropensityNet,
    batches: list[Batch],
    optimiser: torch.optim.Optimizer,
    rng: np.random.Generator,
) -> float:
    net.train()
    losses, weights = [], []
    for i in rng.permutation(len(batches)):
        batch = batches[i]
        optimiser.zero_grad()
        loss = masked_bce(net.logits(batch.x), batch)
        torch.autograd.backward(loss)
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimiser.step()
        losses.append(loss.item())
        weights.append(int(batch.mask.sum()))
    return float(np.average(losses, weights=weights))


def fit(dataset: Dataset, split: TimeSplit, config: TrainConfig, *, progress: bool) -> FitResult:
    """Train with early stopping on the validation window's purchase AUC."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    started = time.perf_counter()
    train_mask = np.stack(window_masks(dataset, split, TRAIN), 1)
    val_mask = np.stack(window_masks(dataset, split, VALIDATION), 1)
    train_batches = make_batches(dataset, train_mask, batch_size=config.batch_size)
    val_batches = make_batches(dataset, val_mask, batch_size=4 * config.batch_size)
    y_val = dataset.flat_labels("purchase_within_horizon")[val_mask[:, 0]]
    net = PropensityNet(config.model_config(dataset.horizon_ms))
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    best = (-math.inf, 0, net.state_dict())
    history: list[dict[str, float]] = []
    with EpochProgress(config.epochs, enabled=progress) as bar:
        for epoch in range(1, config.epochs + 1):
            loss = _train_epoch(net, train_batches, optimiser, rng)
            logits = predict_logits(net, dataset, val_batches)[val_mask[:, 0], 0]
            auc = _auc(y_val, logits)
            history.append({"epoch": epoch, "train_loss": loss, "val_auc": auc})
            bar.update(epoch, loss, auc)
            score = -loss if math.isnan(auc) else auc
            if score > best[0]:
                best = (score, epoch, {k: v.clone() for k, v in net.state_dict().items()})
            elif epoch >= config.min_epochs and epoch - best[1] >= config.patience:
                break
    net.load_state_dict(best[2])
    net.eval()
    best_auc = history[best[1] - 1]["val_auc"]
    return FitResult(net, best[1], best_auc, history, time.perf_counter() - started)


def calibrate(
    net: PropensityNet, dataset: Dataset, split: TimeSplit, config: TrainConfig
) -> dict[str, Any]:
    """Fit Platt scaling per head on the validation window; set the network's buffers."""
    masks = np.stack(window_masks(dataset, split, VALIDATION), 1)
    batches = make_batches(dataset, masks, batch_size=4 * config.batch_size)
    logits = predict_logits(net, dataset, batches)
    labels = np.stack(
        [dataset.flat_labels("purchase_within_horizon"), dataset.flat_labels("cart_abandon")], 1
    )
    report: dict[str, Any] = {}
    for head, name in enumerate(HEADS):
        m = masks[:, head]
        scale, bias = fit_platt(logits[m, head], labels[m, head])
        net.get_buffer("calibration_scale")[head] = scale
        net.get_buffer("calibration_bias")[head] = bias
        report[name] = validation_metrics(
            labels[m, head], apply_platt(logits[m, head], scale, bias)
        )
        report[name].update(platt_scale=scale, platt_bias=bias)
    return report


def validation_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Headline figures of calibrated probabilities on one window."""
    both = len(y) > 0 and y.min() != y.max()
    return {
        "events": len(y),
        "positives": int(y.sum()),
        "roc_auc": _auc(y, p),
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else math.nan,
        "brier": float(brier_score_loss(y, p)) if both else math.nan,
        "ece": expected_calibration_error(y, p) if len(y) else math.nan,
        "positive_rate": float(y.mean()) if len(y) else math.nan,
    }

"""Train, calibrate and export the propensity model, from a data file or the simulator."""

import hashlib
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from model.serving.export import ModelMeta, save_model
from model.serving.reference import REFERENCE_KEY
from model.training.data import (
    Dataset,
    DatasetError,
    build_dataset,
    choose_split,
    file_fingerprint,
    load_events,
    window_masks,
)
from model.training.fitting import TrainConfig, calibrate, fit
from model.training.splits import WINDOW_NAMES, TimeSplit
from model.training.window_figures import drift_reference, test_figures

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "train_dataset", "train_file", "train_simulated"]

SIMULATED_USERS, SIMULATED_DAYS = 6_000, 14  # 2,000 left the model 0.05 below the ceiling
QUICK_USERS, QUICK_DAYS = 300, 7


def window_counts(dataset: Dataset, split: TimeSplit) -> dict[str, dict[str, int]]:
    """Labelled events and positives per window and head."""
    y = dataset.flat_labels("purchase_within_horizon")
    out = {}
    for w, name in enumerate(WINDOW_NAMES):
        purchase, abandon = window_masks(dataset, split, w)
        out[name] = {
            "purchase_events": int(purchase.sum()),
            "purchase_positives": int(y[purchase].sum()),
            "cart_abandon_events": int(abandon.sum()),
        }
    return out


def check_windows(windows: dict[str, dict[str, int]], horizon_ms: int) -> None:
    """Refuse a split whose train window has nothing to learn from; warn when validation
    cannot steer early stopping and calibration (no purchase in it, or no non-purchase)."""
    minutes = f"{horizon_ms / 60_000:g}-minute"

    def one_class(window: dict[str, int]) -> bool:
        return window["purchase_positives"] in (0, window["purchase_events"])

    train = windows["train"]
    if one_class(train):
        raise DatasetError(
            f"the train window has {train['purchase_events']} labelled events, "
            f"{train['purchase_positives']} with a purchase, once events whose {minutes} "
            "horizon reaches into the validation window are left out: use more data, a "
            "shorter --horizon-minutes or other split fractions"
        )
    val = windows["validation"]
    if one_class(val):
        log.warning(
            "the validation window has %d labelled events, %d with a purchase: early stopping "
            "falls back to the training loss and the probabilities stay uncalibrated; give "
            "validation a larger share (--val-fraction) or use a shorter --horizon-minutes",
            val["purchase_events"],
            val["purchase_positives"],
        )


def train_dataset(
    dataset: Dataset,
    out: Path,
    *,
    config: TrainConfig,
    data_fingerprint: str,
    source: dict[str, Any],
    progress: bool = True,
) -> ModelMeta:
    """Split, train, calibrate and save one artifact; its metadata records how."""
    torch.set_num_threads(config.threads)
    split = choose_split(
        dataset,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        val_start_ms=config.val_start_ms,
        test_start_ms=config.test_start_ms,
    )
    windows = window_counts(dataset, split)
    check_windows(windows, dataset.horizon_ms)
    result = fit(dataset, split, config, progress=progress)
    validation = calibrate(result.net, dataset, split, config)
    batch_size = 4 * config.batch_size
    metrics = {
        "validation": validation,
        "validation_auc": validation["purchase"]["roc_auc"],
        "test": test_figures(result.net, dataset, split, batch_size),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "history": result.history,
        "train_seconds": round(result.seconds, 2),
        "horizon_ms": dataset.horizon_ms,
        "data_end_ms": dataset.data_end_ms,
        "split": split.to_dict(),
        "split_fractions": {"validation": config.val_fraction, "test": config.test_fraction},
        "windows": windows,
        "training": asdict(config),
        "source": source,
    }
    reference = drift_reference(result.net, dataset, split, batch_size)
    if reference is None:
        log.warning(
            "the validation window has no event with a non-empty cart: the artifact records no"
            " reference distributions, so the worker will export no drift (PSI)"
        )
    else:
        metrics[REFERENCE_KEY] = reference.to_dict()
    return save_model(
        result.net,
        config.model_config(dataset.horizon_ms),
        out,
        data_fingerprint=data_fingerprint,
        metrics=metrics,
    )


def train_file(
    data: Path, out: Path, *, horizon_ms: int, config: TrainConfig, progress: bool = True
) -> ModelMeta:
    """Train on a JSONL file of contract events (e.g. from ``propensity import``)."""
    events, references = load_events(data)
    dataset = build_dataset(events, horizon_ms=horizon_ms, references=references)
    source = {"kind": "file", "path": str(data), "events": len(events), "users": len(dataset.users)}
    return train_dataset(
        dataset,
        out,
        config=config,
        data_fingerprint=file_fingerprint(data),
        source=source,
        progress=progress,
    )


def simulated_preset(config: TrainConfig) -> TrainConfig:
    """Simulated data is ~100x the REES46 sample: larger steps reach the same validation AUC
    in a third of the epochs (chosen on the validation window, never on test)."""
    return replace(config, learning_rate=3e-3, batch_size=64, patience=6)


def simulation_fingerprint(settings: dict[str, Any]) -> str:
    """sha256 of the simulation settings: the same settings always give the same events."""
    return "sha256:" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def train_simulated(
    out: Path,
    *,
    quick: bool = False,
    progress: bool = True,
    users: int | None = None,
    days: int | None = None,
    seed: int = 0,
    horizon_ms: int | None = None,
    config: TrainConfig | None = None,
) -> ModelMeta:
    """Simulate shoppers (with the oracle probability), train on them and save the artifact.

    ``quick`` uses a small population and, unless ``config`` is given (then it is used as
    is), a few small epochs: well under a minute.
    """
    from model.training.simulated_data import simulated_dataset

    if config is None:
        config = simulated_preset(TrainConfig(seed=seed))
        config = config.quick() if quick else config
    users = users or (QUICK_USERS if quick else SIMULATED_USERS)
    days = days or (QUICK_DAYS if quick else SIMULATED_DAYS)
    dataset, settings = simulated_dataset(users=users, days=days, seed=seed, horizon_ms=horizon_ms)
    source = {"kind": "simulated", "simulation": settings}
    return train_dataset(
        dataset,
        out,
        config=config,
        data_fingerprint=simulation_fingerprint(settings),
        source=source,
        progress=progress,
    )

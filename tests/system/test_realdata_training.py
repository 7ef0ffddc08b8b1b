"""Real data end to end: import the REES46 sample, train quick (the README recipe), evaluate."""

import json
import math
from pathlib import Path

import pytest

from model.evaluation.evaluate import evaluate
from model.importers import import_events
from model.serving.export import load_model
from model.training.fitting import TrainConfig
from model.training.train import train_file

pytestmark = pytest.mark.realdata


def test_rees46_sample_imports_trains_and_evaluates(rees46_sample: Path, tmp_path: Path) -> None:
    events = tmp_path / "rees46.jsonl"
    report = import_events("rees46", rees46_sample, events)
    assert report.events > 17_000 and report.bad_rows == 1  # the cut-off last line
    model = tmp_path / "model.pt"
    # The README's recipe: the sample is dense only from 02:17 to 02:50, so a 5-minute horizon
    # and 30 % validation / 30 % test shares are what leave purchases in every purged window.
    config = TrainConfig(threads=2, val_fraction=0.3, test_fraction=0.3).quick()
    train_file(events, model, horizon_ms=5 * 60_000, config=config, progress=False)
    meta = load_model(model).meta
    assert meta.horizon_ms == 5 * 60_000
    windows = meta.metrics["windows"]
    for window in ("train", "validation", "test"):
        assert windows[window]["purchase_positives"] > 50, window
    assert meta.metrics["validation"]["purchase"]["platt_scale"] != 1.0  # calibrated

    results = evaluate(model, events, tmp_path / "report", bootstrap=10)
    folder = tmp_path / "report"
    for name in (
        "report.md",
        "metrics.json",
        "roc_purchase.png",
        "precision_recall_purchase.png",
        "reliability_purchase.png",
        "gains_purchase.png",
    ):
        assert (folder / name).is_file(), name
    purchase = json.loads((folder / "metrics.json").read_text())["heads"]["purchase"]
    assert purchase["test_positives"] > 0
    for result in purchase["models"].values():
        auc, loss = result["test"]["roc_auc"], result["test"]["log_loss"]
        assert 0.0 <= auc <= 1.0 and 0.0 < loss < 5.0
    assert "oracle" not in purchase["models"]  # real data has no true probability
    assert results["split_source"].startswith("cut points recorded")
    assert not math.isnan(results["heads"]["purchase"]["models"]["lightgbm"]["test"]["roc_auc"])

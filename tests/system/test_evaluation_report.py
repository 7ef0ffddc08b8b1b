"""propensity evaluate end to end: a quickly trained model, its report folder and figures."""

import json
from pathlib import Path

import pytest

from model.evaluation.evaluate import evaluate
from model.serving.export import load_model
from model.training.fitting import TrainConfig
from model.training.train import train_file
from tests.shop_data import HORIZON_MS, shop_events, write_jsonl


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("eval")
    data = write_jsonl(folder / "shop.jsonl", shop_events(300, seed=1), oracle=True)
    model = folder / "model.pt"
    train_file(
        data, model, horizon_ms=HORIZON_MS, config=TrainConfig(threads=1).quick(), progress=False
    )
    results = evaluate(model, data, folder / "report", bootstrap=20, threads=1)
    return folder / "report", results


def test_report_folder_has_every_file_and_sane_figures(report: tuple[Path, dict]) -> None:
    folder, _ = report
    assert {"report.md", "metrics.json", "roc_purchase.png", "gains_purchase.png"} <= {
        p.name for p in folder.iterdir()
    }
    on_disk = json.loads((folder / "metrics.json").read_text())
    purchase = on_disk["heads"]["purchase"]
    assert set(purchase["models"]) == {
        "cnn_lstm",
        "logistic_regression",
        "lightgbm",
        "all_negative",
        "oracle",
    }
    for result in purchase["models"].values():
        test = result["test"]
        assert 0 <= test["roc_auc"] <= 1 and 0 <= test["brier"] <= 1 and 0 <= test["ece"] <= 1
        low, high = result["ci"]["roc_auc"]
        assert (low <= test["roc_auc"] + 1e-9 and test["roc_auc"] <= high + 1e-9) or low == high
    assert purchase["models"]["all_negative"]["test"]["roc_auc"] == 0.5
    assert purchase["models"]["all_negative"]["test"]["f1"] == 0
    assert "event_type" in purchase["buckets"] and "session_position" in purchase["buckets"]
    text = (folder / "report.md").read_text()
    assert "Horizon: 30 minutes" in text and "Oracle" in text and "![roc purchase]" in text


def test_the_artifact_split_is_reused_on_its_own_data(report: tuple[Path, dict]) -> None:
    folder, results = report
    meta = load_model(folder.parent / "model.pt").meta
    assert results["split"]["val_start_ms"] == meta.metrics["split"]["val_start_ms"]
    assert results["split_source"].startswith("cut points recorded")
    assert (
        results["heads"]["purchase"]["test_events"]
        == meta.metrics["windows"]["test"]["purchase_events"]
    )


def test_simulated_evaluation_shows_the_oracle_and_the_ceiling(tmp_path: Path) -> None:
    from model.evaluation.evaluate import evaluate_simulated
    from model.training.train import train_simulated

    model = tmp_path / "sim.pt"
    train_simulated(model, quick=True, progress=False, users=80, days=4)
    results = evaluate_simulated(model, tmp_path / "report", bootstrap=5, threads=1)
    oracle = results["heads"]["purchase"]["models"]["oracle"]["test"]["roc_auc"]
    assert 0.5 < oracle <= 1.0
    ceiling = results["heads"]["purchase"]["models"]["ceiling"]["test"]["roc_auc"]
    assert 0.5 < ceiling <= 1.0
    differences = results["heads"]["purchase"]["differences"]
    assert {"cnn_lstm - oracle", "cnn_lstm - ceiling", "ceiling - oracle"} <= set(differences)
    assert "ceiling" not in results["heads"]["cart_abandon"]["models"]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Oracle (the simulator's true probability" in text and "Ceiling (the exact Bayes" in text

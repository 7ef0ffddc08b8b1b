"""propensity train end to end: quick training, determinism, calibration and the CLI."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from model.evaluation.assessment import predict_network
from model.serving.export import load_model
from model.serving.reference import reference_from_metrics
from model.serving.scorer import SequenceScorer, score_offline
from model.training.data import build_dataset, window_masks
from model.training.splits import VALIDATION
from model.training.train import train_file
from streams.cli import main
from tests.shop_data import HORIZON_MS, QUICK_TRAINING, shop_events, write_jsonl


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("d") / "shop.jsonl", shop_events(), oracle=False)


@pytest.fixture(scope="module")
def trained(data_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("m") / "model.pt"
    train_file(data_file, out, horizon_ms=HORIZON_MS, config=QUICK_TRAINING, progress=False)
    return out


def test_quick_training_writes_a_loadable_calibrated_artifact(
    trained: Path, data_file: Path
) -> None:
    loaded = load_model(trained)
    meta = loaded.meta
    assert meta.horizon_ms == HORIZON_MS
    assert meta.data_fingerprint == "sha256:" + hashlib.sha256(data_file.read_bytes()).hexdigest()
    metrics = meta.metrics
    assert 0.0 <= metrics["validation_auc"] <= 1.0
    assert set(metrics["test"]) == {"purchase", "cart_abandon"}
    assert metrics["test"]["purchase"]["events"] > 0
    assert {"roc_auc", "brier", "ece", "log_loss", "positive_rate"} <= set(
        metrics["test"]["purchase"]
    )
    reference = reference_from_metrics(metrics)  # load_model has checked it already
    assert reference is not None and reference.window == "validation"
    assert reference.scores["purchase"].events == reference.events
    assert metrics["split"]["val_start_ms"] < metrics["split"]["test_start_ms"]
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] <= QUICK_TRAINING.epochs
    scale = loaded.module.calibration_scale.tolist()
    assert scale[0] != 1.0  # Platt fitted on a validation window with both classes


def test_training_is_deterministic_for_a_seed(
    trained: Path, data_file: Path, tmp_path: Path
) -> None:
    again = train_file(
        data_file,
        tmp_path / "again.pt",
        horizon_ms=HORIZON_MS,
        config=QUICK_TRAINING,
        progress=False,
    )
    assert again.model_version == load_model(trained).meta.model_version


def test_offline_evaluation_scores_equal_the_streaming_scorer(
    trained: Path, data_file: Path
) -> None:
    loaded = load_model(trained)
    pairs = shop_events()
    data = build_dataset([e for e, _ in pairs], horizon_ms=HORIZON_MS)
    mask = np.ones((data.n_events, 2), bool)
    offline = predict_network(loaded, data, mask)[:, 0]
    streamed = score_offline(SequenceScorer(loaded, window_size=10_000), [e for e, _ in pairs])
    # the stream emits in arrival order; map each event to its (user, position) slot
    position: dict[str, int] = {}
    offsets = dict(
        zip(
            [u.user_id for u in data.users],
            np.cumsum([0] + [len(u.ts) for u in data.users]),
            strict=False,
        )
    )
    for (event, _), score in zip(pairs, streamed, strict=True):
        k = position.get(event.user_id, 0)
        position[event.user_id] = k + 1
        assert score.purchase == pytest.approx(offline[offsets[event.user_id] + k], abs=1e-5)


def test_validation_window_is_what_calibration_saw(trained: Path, data_file: Path) -> None:
    meta = load_model(trained).meta
    from model.training.data import load_events
    from model.training.splits import TimeSplit

    events, _ = load_events(data_file)
    data = build_dataset(events, horizon_ms=HORIZON_MS)
    purchase, _ = window_masks(data, TimeSplit.from_dict(meta.metrics["split"]), VALIDATION)
    assert meta.metrics["validation"]["purchase"]["events"] == int(purchase.sum())


def test_cli_trains_quick_and_rejects_bad_input(data_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.pt"
    args = ["train", "--data", str(data_file), "--out", str(out), "--quick", "--no-progress"]
    overrides = ["--epochs", "1", "--batch-size", "5"]
    result = runner.invoke(main, [*args, "--horizon-minutes", "30", *overrides])
    assert result.exit_code == 0, result.output
    meta = load_model(out).meta
    assert meta.metrics["epochs_run"] == 1 and meta.metrics["training"]["batch_size"] == 5
    assert meta.content_sha256 in result.output  # printed whole, for PROPENSITY_MODEL_SHA256
    assert runner.invoke(main, ["train", "--out", str(out)]).exit_code == 2
    too_long = runner.invoke(main, [*args, "--horizon-minutes", str(60 * 24 * 30)])
    assert too_long.exit_code == 1 and "horizon" in too_long.output


def test_train_simulated_quick_records_the_simulation(tmp_path: Path) -> None:
    from model.training.train import simulation_fingerprint, train_simulated

    meta = train_simulated(tmp_path / "sim.pt", quick=True, progress=False, users=80, days=4)
    source = meta.metrics["source"]
    assert source["kind"] == "simulated" and source["simulation"]["n_users"] == 80
    assert meta.data_fingerprint == simulation_fingerprint(source["simulation"])
    assert meta.horizon_ms == source["simulation"]["horizon_ms"]
    assert load_model(tmp_path / "sim.pt").meta.model_version == meta.model_version

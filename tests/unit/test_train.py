"""Training: masked loss, batching, calibration, a quick deterministic run, stream equivalence."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from model.evaluation.assessment import predict_network
from model.network import PropensityNet
from model.serving.config import DEFAULT_HORIZON_MS, ModelConfig
from model.serving.export import load_model
from model.serving.scorer import SequenceScorer, score_offline
from model.serving.user_state import N_FEATURES
from model.training.batches import make_batches, scatter_outputs
from model.training.calibration import apply_platt, fit_platt
from model.training.data import build_dataset, window_masks
from model.training.fitting import TrainConfig, masked_bce
from model.training.splits import VALIDATION
from model.training.train import train_file
from streams.cli import main
from tests.unit.shop_data import MIN, shop_events, write_jsonl

H = 30 * MIN
QUICK = TrainConfig(seed=3, threads=1).quick()


def test_train_fits_model_config_defaults_and_quick_a_smaller_network() -> None:
    def shape(config: TrainConfig) -> tuple[int, int, int, float]:
        return config.conv_channels, config.hidden_size, config.kernel_size, config.dropout

    assert shape(TrainConfig()) == (64, 64, 3, 0.1)
    assert shape(TrainConfig().quick()) == (32, 32, 3, 0.1)
    default = ModelConfig(n_features=N_FEATURES)
    assert TrainConfig().model_config(DEFAULT_HORIZON_MS) == default


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("d") / "shop.jsonl", shop_events(), oracle=False)


@pytest.fixture(scope="module")
def trained(data_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("m") / "model.pt"
    train_file(data_file, out, horizon_ms=H, config=QUICK, progress=False)
    return out


def test_masked_positions_do_not_change_the_loss() -> None:
    data = build_dataset([e for e, _ in shop_events(40)], horizon_ms=H)
    mask = np.zeros((data.n_events, 2), bool)
    mask[::3, 0] = True
    batch = make_batches(data, mask, batch_size=64)[0]
    logits = torch.randn(batch.y.shape)
    flipped = batch.y.clone()
    flipped[~batch.mask] = 1 - flipped[~batch.mask]
    other = type(batch)(batch.x, flipped, batch.mask, batch.users, batch.lengths)
    assert torch.equal(masked_bce(logits, batch), masked_bce(logits, other))
    flipped[batch.mask] = 1 - flipped[batch.mask]
    assert not torch.equal(masked_bce(logits, batch), masked_bce(logits, other))


def test_padded_batches_give_each_user_its_own_outputs() -> None:
    data = build_dataset([e for e, _ in shop_events(30)], horizon_ms=H)
    net = PropensityNet(QUICK.model_config(H)).eval()
    mask = np.ones((data.n_events, 2), bool)
    batches = make_batches(data, mask, batch_size=8)
    with torch.no_grad():
        flat = scatter_outputs(data, batches, [net.logits(b.x) for b in batches])
        alone = np.concatenate(
            [net.logits(torch.from_numpy(u.features)[None])[0].numpy() for u in data.users]
        )
    np.testing.assert_allclose(flat, alone, atol=1e-5)


def test_platt_scaling_recovers_a_known_map_and_never_inverts_the_ranking() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=20_000)
    y = (rng.random(20_000) < apply_platt(z, 2.0, -1.0)).astype(int)
    scale, bias = fit_platt(z, y)
    assert scale == pytest.approx(2.0, abs=0.1) and bias == pytest.approx(-1.0, abs=0.1)
    scale, bias = fit_platt(-z, y)  # anti-correlated on "validation"
    assert scale == 1.0
    assert apply_platt(-z, scale, bias).mean() == pytest.approx(y.mean(), abs=1e-3)


def test_quick_training_writes_a_loadable_calibrated_artifact(
    trained: Path, data_file: Path
) -> None:
    loaded = load_model(trained)
    meta = loaded.meta
    assert meta.horizon_ms == H
    assert meta.data_fingerprint == "sha256:" + hashlib.sha256(data_file.read_bytes()).hexdigest()
    metrics = meta.metrics
    assert 0.0 <= metrics["validation_auc"] <= 1.0
    assert metrics["split"]["val_start_ms"] < metrics["split"]["test_start_ms"]
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] <= QUICK.epochs
    scale = loaded.module.calibration_scale.tolist()
    assert scale[0] != 1.0  # Platt fitted on a validation window with both classes


def test_training_is_deterministic_for_a_seed(
    trained: Path, data_file: Path, tmp_path: Path
) -> None:
    again = train_file(data_file, tmp_path / "again.pt", horizon_ms=H, config=QUICK, progress=False)
    assert again.model_version == load_model(trained).meta.model_version


def test_offline_evaluation_scores_equal_the_streaming_scorer(
    trained: Path, data_file: Path
) -> None:
    loaded = load_model(trained)
    pairs = shop_events()
    data = build_dataset([e for e, _ in pairs], horizon_ms=H)
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
    data = build_dataset(events, horizon_ms=H)
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


def test_a_split_without_training_labels_is_refused_and_a_one_class_validation_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from model.training.data import DatasetError
    from model.training.train import check_windows

    def windows(train: tuple[int, int], val: tuple[int, int]) -> dict[str, dict[str, int]]:
        return {
            name: {"purchase_events": n, "purchase_positives": pos, "cart_abandon_events": 0}
            for name, (n, pos) in (("train", train), ("validation", val), ("test", (9, 3)))
        }

    with pytest.raises(DatasetError, match="train window has 0 labelled events"):
        check_windows(windows((0, 0), (50, 5)), 30 * 60_000)
    with pytest.raises(DatasetError, match="12 labelled events, 0 with a purchase"):
        check_windows(windows((12, 0), (50, 5)), 30 * 60_000)
    with caplog.at_level("WARNING"):
        check_windows(windows((100, 10), (50, 5)), 30 * 60_000)
        assert not caplog.records
        check_windows(windows((100, 10), (129, 0)), 30 * 60_000)
    assert "validation window has 129 labelled events, 0 with a purchase" in caplog.text

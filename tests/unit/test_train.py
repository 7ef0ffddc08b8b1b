"""Training: masked loss, batching, calibration, a quick deterministic run, stream equivalence."""

import numpy as np
import pytest
import torch

from model.network import PropensityNet
from model.serving.config import DEFAULT_HORIZON_MS, ModelConfig
from model.serving.user_state import N_FEATURES
from model.training.batches import make_batches, scatter_outputs
from model.training.calibration import apply_platt, fit_platt
from model.training.data import build_dataset
from model.training.fitting import TrainConfig, masked_bce
from tests.shop_data import HORIZON_MS, QUICK_TRAINING, shop_events


def test_train_fits_model_config_defaults_and_quick_a_smaller_network() -> None:
    def shape(config: TrainConfig) -> tuple[int, int, int, float]:
        return config.conv_channels, config.hidden_size, config.kernel_size, config.dropout

    assert shape(TrainConfig()) == (64, 64, 3, 0.1)
    assert shape(TrainConfig().quick()) == (32, 32, 3, 0.1)
    default = ModelConfig(n_features=N_FEATURES)
    assert TrainConfig().model_config(DEFAULT_HORIZON_MS) == default


def test_masked_positions_do_not_change_the_loss() -> None:
    data = build_dataset([e for e, _ in shop_events(40)], horizon_ms=HORIZON_MS)
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
    data = build_dataset([e for e, _ in shop_events(30)], horizon_ms=HORIZON_MS)
    net = PropensityNet(QUICK_TRAINING.model_config(HORIZON_MS)).eval()
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

"""Network shapes, state continuation, and the artifact loader's refusals."""

import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.network import PropensityNet
from model.serving.config import HEADS, ModelConfig
from model.serving.exceptions import ModelArtifactError
from model.serving.export import META_FILE, load_model, save_model
from model.serving.user_state import N_FEATURES


def small() -> ModelConfig:
    return ModelConfig(n_features=N_FEATURES, conv_channels=8, hidden_size=8, kernel_size=3)


def test_shapes_and_probabilities() -> None:
    net = PropensityNet(small()).eval()
    x = torch.randn(4, 9, N_FEATURES)
    with torch.no_grad():
        probs = net(x)
    assert probs.shape == (4, 9, len(HEADS))
    assert float(probs.min()) >= 0.0 and float(probs.max()) <= 1.0
    assert net.logits(x).shape == (4, 9, len(HEADS))


def test_run_continues_a_sequence_exactly() -> None:
    torch.manual_seed(0)
    net = PropensityNet(small()).eval()
    x = torch.randn(2, 12, N_FEATURES)
    whole = net(x)
    window, h, c = net.initial_state(2)
    first, window, h, c = net.run(x[:, :5], window, h, c)
    second, *_ = net.run(x[:, 5:], window, h, c)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-6, rtol=0)


def test_causality_later_inputs_do_not_change_earlier_outputs() -> None:
    net = PropensityNet(small()).eval()
    x = torch.randn(1, 10, N_FEATURES)
    y = x.clone()
    y[:, 6:] += 5.0
    torch.testing.assert_close(net(x)[:, :6], net(y)[:, :6])


def test_roundtrip_through_torchscript(tmp_path: Path) -> None:
    net = PropensityNet(small()).eval()
    meta = save_model(net, small(), tmp_path / "m.pt", data_fingerprint="abc", metrics={"auc": 0.5})
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.meta.model_version == meta.model_version
    assert loaded.config == small()
    x = torch.randn(2, 5, N_FEATURES)
    torch.testing.assert_close(loaded.module(x), net(x))


def test_refuses_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="does not exist"):
        load_model(tmp_path / "nope.pt")


def test_refuses_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a model at all")
    with pytest.raises(ModelArtifactError, match="not a TorchScript archive"):
        load_model(path)


def test_refuses_other_feature_spec(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_model(PropensityNet(small()).eval(), small(), path)
    tampered = tmp_path / "other.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith(f"extra/{META_FILE}"):
                data = data.replace(b'"feature_spec_hash": "', b'"feature_spec_hash": "0000')
            dst.writestr(item, data)
    with pytest.raises(ModelArtifactError, match="feature spec") as info:
        load_model(tampered)
    assert "\n" not in str(info.value)


def test_refuses_wrong_feature_count(tmp_path: Path) -> None:
    config = replace(small(), n_features=N_FEATURES + 1)
    path = tmp_path / "m.pt"
    save_model(PropensityNet(config).eval(), config, path)
    with pytest.raises(ModelArtifactError, match="features"):
        load_model(path)

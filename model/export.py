"""TorchScript export and loading: the only module that touches torch.jit."""

import hashlib
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.config import HEADS, ModelConfig
from model.exceptions import ModelArtifactError
from model.features import ENCODER_VERSION, N_FEATURES, feature_spec_hash
from model.network import PropensityNet

META_FILE = "meta.json"
ARTIFACT_FORMAT = 1


@dataclass(frozen=True)
class ModelMeta:
    """What an artifact says about itself; checked on load."""

    model_version: str
    feature_spec_hash: str
    horizon_ms: int
    config: dict[str, Any]
    data_fingerprint: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    heads: tuple[str, ...] = HEADS
    encoder_version: int = ENCODER_VERSION
    artifact_format: int = ARTIFACT_FORMAT

    def to_json(self) -> str:
        data = dict(self.__dict__)
        data["heads"] = list(self.heads)
        return json.dumps(data, sort_keys=True, indent=2)


@dataclass(frozen=True)
class LoadedModel:
    """A scripted PropensityNet and its metadata."""

    module: torch.jit.ScriptModule
    meta: ModelMeta
    path: Path

    @property
    def config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.meta.config)


def model_version_for(net: PropensityNet, data_fingerprint: str) -> str:
    """A version string that changes whenever the weights change: date + weight digest."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    digest.update(data_fingerprint.encode())
    return time.strftime("%Y%m%d", time.gmtime()) + "-" + digest.hexdigest()[:10]


def save_model(
    net: PropensityNet,
    config: ModelConfig,
    path: Path,
    *,
    data_fingerprint: str = "",
    metrics: dict[str, Any] | None = None,
) -> ModelMeta:
    """Script ``net`` and write it with its metadata to ``path``."""
    net = net.eval()
    meta = ModelMeta(
        model_version=model_version_for(net, data_fingerprint),
        feature_spec_hash=feature_spec_hash(),
        horizon_ms=config.horizon_ms,
        config=config.to_dict(),
        data_fingerprint=data_fingerprint,
        metrics=metrics or {},
        created_at=time.time(),
    )
    scripted = torch.jit.script(net)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={META_FILE: meta.to_json()})
    tmp.replace(path)
    return meta


def _parse_meta(path: Path, raw: str) -> ModelMeta:
    if not raw:
        raise ModelArtifactError(f"model file {path} has no {META_FILE}: not built by this project")
    try:
        data = json.loads(raw)
        data["heads"] = tuple(data.get("heads", HEADS))
        return ModelMeta(**data)
    except (ValueError, TypeError) as exc:
        raise ModelArtifactError(
            f"model file {path} has an unreadable {META_FILE}: {exc}"
        ) from None


def _check_compatible(path: Path, meta: ModelMeta) -> None:
    expected = feature_spec_hash()
    if meta.feature_spec_hash != expected:
        raise ModelArtifactError(
            f"model file {path} was built for feature spec {meta.feature_spec_hash}, "
            f"this build encodes feature spec {expected}: retrain or use a matching model"
        )
    if tuple(meta.heads) != HEADS:
        raise ModelArtifactError(f"model file {path} has heads {meta.heads}, expected {HEADS}")
    if meta.config.get("n_features") != N_FEATURES:
        raise ModelArtifactError(
            f"model file {path} expects {meta.config.get('n_features')} features, "
            f"this build encodes {N_FEATURES}"
        )


def load_model(path: Path | str) -> LoadedModel:
    """Load and check an artifact; raise ModelArtifactError with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise ModelArtifactError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ModelArtifactError(
            f"model file {path} is not a TorchScript archive (corrupt or wrong file)"
        )
    extra = {META_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError subclasses with multi-line text
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelArtifactError(f"model file {path} cannot be loaded: {first_line}") from None
    meta = _parse_meta(path, extra[META_FILE])
    _check_compatible(path, meta)
    module.eval()
    return LoadedModel(module=module, meta=meta, path=path)

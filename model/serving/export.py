"""TorchScript export and loading: the only module that touches torch.jit.

An artifact is a TorchScript archive with ``extra/meta.json``, which records, besides the
model's version, config and feature spec, ``content_sha256``: the SHA-256 of every other
entry (model.serving.archive.content_digest). ``load_model`` refuses, with one line naming the
file, an artifact that

- is missing, not a zip, or a zip that torch and Python could read differently;
- has no or unreadable metadata, or was built for another feature spec, heads or features;
- records reference distributions or test figures (model.serving.reference) that are
  malformed (artifacts that record none load: the worker then exports no drift);
- does not hash to the digest in its meta.json, or (when one is pinned) to the pinned one;
- declares tensors (names, shapes) other than PropensityNet's for the config in meta.json;
- holds TorchScript code or module structure other than what this build scripts for that
  config (so a crafted module with a copied meta.json is refused before torch runs any of
  its code; this also refuses artifacts exported by another torch version);
- has NaN or infinite weights, or fails a dry run of one synthetic event through ``run``.

Artifacts saved before digests were recorded (no ``content_sha256``) load with a logged
warning, unless a digest is pinned: then they are refused.
"""

import functools
import hashlib
import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import torch

from model.network import PropensityNet
from model.serving.archive import (
    META_ENTRY,
    META_FILE,
    Archive,
    canonical_entries,
    content_digest,
    read_archive,
)
from model.serving.artifact_checks import (
    check_code,
    check_declared_tensors,
    check_finite,
    check_shapes,
    declared_config,
    dry_run,
    verify_digest,
)
from model.serving.config import HEADS, ModelConfig
from model.serving.exceptions import ModelArtifactError
from model.serving.reference import (
    ReferenceError,
    reference_from_metrics,
    test_figures_from_metrics,
)
from model.serving.user_state import ENCODER_VERSION, N_FEATURES, feature_spec_hash

ARTIFACT_FORMAT = 2  # 2: meta.json records content_sha256


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
    content_sha256: str = ""  # empty in artifacts saved before digests were recorded

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
    """Script ``net`` and write it with its metadata, content digest included, to ``path``.

    The digest covers every entry but meta.json, so it is computed on a first save without
    the metadata, then checked again on the file written with it.
    """
    net = net.eval()
    scripted = torch.jit.script(net)
    first = io.BytesIO()
    torch.jit.save(scripted, first)
    meta = ModelMeta(
        model_version=model_version_for(net, data_fingerprint),
        feature_spec_hash=feature_spec_hash(),
        horizon_ms=config.horizon_ms,
        config=config.to_dict(),
        data_fingerprint=data_fingerprint,
        metrics=metrics or {},
        created_at=time.time(),
        content_sha256=content_digest(read_archive(path, first.getvalue()).entries),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={META_FILE: meta.to_json()})
    written = content_digest(read_archive(path, tmp.read_bytes()).entries)
    if written != meta.content_sha256:
        tmp.unlink()
        raise ModelArtifactError(
            f"model file {path} not written: two saves of one module hash differently "
            f"({meta.content_sha256} then {written})"
        )
    tmp.replace(path)
    return meta


@functools.lru_cache(maxsize=4)
def _reference_entries(config: ModelConfig) -> dict[str, bytes]:
    """canonical_entries of this build's PropensityNet(config), scripted and saved (read-only)."""
    with torch.random.fork_rng(devices=[]):  # building the net must not move the caller's RNG
        scripted = torch.jit.script(PropensityNet(config).eval())
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    return canonical_entries(read_archive(Path("<reference>"), buffer.getvalue()).entries)


def _parse_meta(path: Path, raw: str) -> ModelMeta:
    if not raw:
        raise ModelArtifactError(f"model file {path} has no {META_FILE}: not built by this project")
    try:
        data = json.loads(raw)
        data["heads"] = tuple(data.get("heads", HEADS))
        meta = ModelMeta(**data)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelArtifactError(
            f"model file {path} has an unreadable {META_FILE}: {exc}"
        ) from None
    if not isinstance(meta.config, dict) or not isinstance(meta.content_sha256, str):
        raise ModelArtifactError(f"model file {path} has an unreadable {META_FILE}: bad types")
    if not isinstance(meta.metrics, dict):
        raise ModelArtifactError(f"model file {path} has an unreadable {META_FILE}: bad metrics")
    try:  # meta.json is outside the content digest: a hand-edited reference is refused here
        reference_from_metrics(meta.metrics)
        test_figures_from_metrics(meta.metrics)
    except ReferenceError as exc:
        raise ModelArtifactError(f"model file {path} has a malformed {META_FILE}: {exc}") from None
    return meta


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


def _read(path: Path) -> Archive:
    if not path.is_file():
        raise ModelArtifactError(f"model file {path} does not exist")
    raw = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise ModelArtifactError(
            f"model file {path} is not a TorchScript archive (corrupt or wrong file)"
        )
    return read_archive(path, raw)


# torch.jit.load carries no annotations; what it returns is a ScriptModule.
_load_script_module: Callable[..., torch.jit.ScriptModule] = torch.jit.load


def _jit_load(archive: Archive) -> torch.jit.ScriptModule:
    try:
        # From the bytes already checked, not the path: the file may change in between.
        module = _load_script_module(io.BytesIO(archive.raw), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError subclasses with multi-line text
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise archive.error(f"cannot be loaded: {first_line}") from None
    return module.eval()


def load_model(path: Path | str, expected_sha256: str | None = None) -> LoadedModel:
    """Load and check an artifact; raise ModelArtifactError with a one-line reason.

    ``expected_sha256`` pins the content digest (hex; ``propensity train`` prints it): the
    artifact must have exactly that content. Empty or None: not pinned. See the module
    docstring for every check; those on the archive's bytes run before torch reads it.
    """
    path = Path(path)
    archive = _read(path)
    meta = _parse_meta(path, archive.entries.get(META_ENTRY, b"").decode("utf-8", "replace"))
    _check_compatible(path, meta)
    config = declared_config(archive, meta.config)
    verify_digest(archive, meta.content_sha256, expected_sha256 or None)
    check_declared_tensors(archive, config)
    check_code(archive, _reference_entries(config))
    module = _jit_load(archive)
    # Again on what torch built, in case its reading of the archive differs from ours.
    tensors = dict(chain(module.named_parameters(), module.named_buffers()))
    check_shapes(archive, config, {name: tuple(t.shape) for name, t in tensors.items()})
    check_finite(archive, tensors)
    dry_run(archive, module, config)
    return LoadedModel(module=module, meta=meta, path=path)

"""What load_model checks beyond the metadata: digest, tensors, code, finiteness, a dry run.

Each check raises ModelArtifactError with one line that names the file. The checks on the
archive's bytes run before torch.jit.load sees the file (see model.serving.archive); the others run
on the loaded module. model.serving.export calls them in order; torch.jit stays there.
"""

import logging
import re
from collections.abc import Mapping
from itertools import chain
from typing import Any

import torch

from model.network import PropensityNet
from model.serving.archive import Archive, canonical_entries, content_digest, declared_tensors
from model.serving.config import HEADS, ModelConfig
from model.serving.exceptions import ModelArtifactError
from model.serving.user_state import EventRecord, encode_records, stable_hash
from schemas.events import EVENT_TYPE_INDEX

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
# Where each shape field of the config shows in PropensityNet's weights: (tensor, dimension).
_SHAPE_FIELDS = {
    "n_features": ("conv.weight", 1),
    "kernel_size": ("conv.weight", 2),
    "conv_channels": ("conv.weight", 0),
    "hidden_size": ("lstm.weight_hh_l0", 1),
}
# The dry run's one event: an add-to-cart, so both heads are scored.
_DRY_RUN_EVENT = EventRecord(
    ts=1_700_000_000_000,
    event_type=EVENT_TYPE_INDEX["add_to_cart"],
    item=stable_hash("dry-run-item"),
    session=stable_hash("dry-run-session"),
    price=19.99,
    quantity=1,
    category=stable_hash("dry-run-category"),
)


def declared_config(archive: Archive, config: Any) -> ModelConfig:
    """The ModelConfig meta.json declares, or a refusal when it cannot be one."""
    try:
        declared = ModelConfig.from_dict(config)
        expected_shapes(declared)
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise archive.error(f"declares an invalid config {config!r:.120}: {exc}") from None
    return declared


def verify_digest(archive: Archive, recorded: str, pinned: str | None) -> str:
    """The archive's content digest, after checking it against meta.json and the pin.

    An artifact saved before digests were recorded has none in meta.json: it is refused
    when a digest is pinned (nothing to compare the pin with but the file itself, which is
    what the pin is meant to vouch for) and loaded with a logged warning otherwise.
    """
    actual = content_digest(archive.entries)
    if pinned is not None:
        pinned = pinned.strip().lower()
        if not _SHA256.fullmatch(pinned):
            raise archive.error(
                f"cannot be checked: the pinned digest {pinned!r} is not 64 hex digits (SHA-256)"
            )
    if not recorded:
        if pinned:
            raise archive.error(
                f"records no content digest (saved before digests were recorded), so it "
                f"cannot be checked against the pinned {pinned}: retrain with `propensity train`"
            )
        log.warning(
            "model file %s records no content digest (saved before digests were recorded): "
            "alterations cannot be detected; retrain with `propensity train` to record one",
            archive.path,
        )
    elif actual != recorded:
        raise archive.error(
            f"has content digest {actual}, which does not match meta.json's {recorded}: "
            "the file was altered or corrupted"
        )
    if pinned and actual != pinned:
        raise archive.error(
            f"has content digest {actual}, not the pinned {pinned}: it is not the pinned model"
        )
    return actual


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter and buffer of PropensityNet(config), allocating none."""
    with torch.device("meta"):
        net = PropensityNet(config)
    return {
        name: tuple(tensor.shape)
        for name, tensor in chain(net.named_parameters(), net.named_buffers())
    }


def check_declared_tensors(archive: Archive, config: ModelConfig) -> None:
    """data.pkl's tensors have PropensityNet(config)'s names and shapes, backed by stored bytes.

    Runs before the reference module is built for ``config``, so a meta.json that declares
    huge sizes is refused here rather than allocated.
    """
    declared = declared_tensors(archive)
    check_shapes(archive, config, {name: t.shape for name, t in declared.items()})
    for name, tensor in declared.items():
        if tensor.elements > tensor.stored_bytes:
            raise archive.error(
                f"declares tensor {name} of {tensor.elements} elements "
                f"but stores only {tensor.stored_bytes} bytes for it"
            )


def check_shapes(
    archive: Archive, config: ModelConfig, actual: Mapping[str, tuple[int, ...]]
) -> None:
    """The tensors' names and shapes are those of PropensityNet(config)."""
    expected = expected_shapes(config)
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    if missing or extra:
        raise archive.error(
            f"holds tensors that are not PropensityNet's: missing {missing}, unexpected {extra}"
        )
    wrong = [name for name in expected if tuple(actual[name]) != expected[name]]
    if not wrong:
        return
    declared = {f: getattr(config, f) for f in _SHAPE_FIELDS}
    implied = _implied_fields(actual)
    differing = [f for f in _SHAPE_FIELDS if implied.get(f, declared[f]) != declared[f]]
    if differing:
        have = _fields(implied, differing)
        raise archive.error(f"declares {_fields(declared, differing)}, its weights have {have}")
    name = wrong[0]
    raise archive.error(
        f"declares {_fields(declared, list(declared))}, but its {name} has shape "
        f"{_shape(actual[name])} where that config has {_shape(expected[name])}"
    )


def _implied_fields(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    implied = {}
    for field, (name, dim) in _SHAPE_FIELDS.items():
        shape = shapes.get(name, ())
        if len(shape) > dim:
            implied[field] = shape[dim]
    return implied


def _fields(values: Mapping[str, int], names: list[str]) -> str:
    return ", ".join(f"{name}={values[name]}" for name in names)


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape) or "scalar"


def check_code(archive: Archive, reference: Mapping[str, bytes]) -> None:
    """The archive holds the code and module structure this build scripts for its config.

    ``reference`` is ``canonical_entries`` of a freshly scripted and saved
    PropensityNet(config). Compared: every code/ file (as canonical top-level blocks),
    data.pkl (module classes, attributes, tensor layout), constants.pkl and the format
    files; not compared: weights, extra/ files, debug source maps. A model saved by
    another torch version prints its code differently and is refused too.
    """
    try:
        actual = canonical_entries(archive.entries)
    except ValueError as exc:
        raise archive.error(f"has unreadable TorchScript code: {exc}") from None
    differing = sorted(k for k in set(actual) | set(reference) if actual.get(k) != reference.get(k))
    if differing:
        raise ModelArtifactError(
            f"model file {archive.path}: its TorchScript code is not this build's PropensityNet "
            f"for the declared config (first difference: {differing[0]})"
        )


def check_finite(archive: Archive, tensors: Mapping[str, torch.Tensor]) -> None:
    """No parameter or buffer holds NaN or infinity."""
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise archive.error(f"has non-finite weights: {name} holds NaN or infinity")


def dry_run(archive: Archive, module: Any, config: ModelConfig) -> None:
    """Score one synthetic event through ``run``, as the streaming scorer does."""
    features, _, _ = encode_records([_DRY_RUN_EVENT])  # (1, F)
    window = torch.zeros(1, config.kernel_size - 1, config.n_features)  # (1, k-1, F)
    h = torch.zeros(1, config.hidden_size)  # (1, H)
    c = torch.zeros(1, config.hidden_size)  # (1, H)
    try:
        with torch.inference_mode():
            result = module.run(torch.from_numpy(features).unsqueeze(0), window, h, c)
        problem = _dry_run_problem(result, config)
    except Exception as exc:  # TorchScript raises RuntimeError subclasses with multi-line text
        text = str(exc).strip()
        problem = text.splitlines()[0] if text else type(exc).__name__
    if problem:
        raise archive.error(f"fails a dry run: {problem}")


def _dry_run_problem(result: Any, config: ModelConfig) -> str:
    """What is wrong with run()'s (probabilities, window, h, c) for one event; empty if fine."""
    expected = {
        "probabilities": (1, 1, len(HEADS)),
        "window": (1, config.kernel_size - 1, config.n_features),
        "h": (1, config.hidden_size),
        "c": (1, config.hidden_size),
    }
    if not (isinstance(result, tuple) and len(result) == len(expected)):
        return f"run returned {type(result).__name__}, not {len(expected)} tensors"
    for (name, shape), tensor in zip(expected.items(), result, strict=True):
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            return f"{name} has shape {got}, expected {shape}"
        if not bool(torch.isfinite(tensor).all()):
            return f"{name} is not finite: {tensor.flatten()[:4].tolist()}"
    probabilities = result[0].flatten().tolist()
    if not all(0.0 <= p <= 1.0 for p in probabilities):
        return f"probabilities {probabilities} are outside [0, 1]"
    return ""

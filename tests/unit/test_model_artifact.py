"""load_model's integrity checks: digest, pin, shapes, our own code, finite weights, dry run.

The hostile artifacts are built the way an attacker would: rewriting zip entries, or
scripting another module and copying a genuine meta.json into it (which needs torch.jit
here, in the test, and nowhere else outside model/serving/export.py).
"""

import json
import logging
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from model.network import PropensityNet
from model.serving.archive import content_digest, read_archive
from model.serving.config import ModelConfig
from model.serving.exceptions import ModelArtifactError
from model.serving.export import META_FILE, load_model, save_model
from model.serving.user_state import N_FEATURES


def tiny() -> ModelConfig:
    return ModelConfig(n_features=N_FEATURES, conv_channels=4, hidden_size=4, kernel_size=2)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    torch.manual_seed(7)
    path = tmp_path / "m.pt"
    save_model(PropensityNet(tiny()), tiny(), path)
    return path


def rewrite(src: Path, dst: Path, edit: Callable[[str, bytes], bytes]) -> Path:
    """Copy the zip, passing each entry (name relative to the root folder) through ``edit``."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            new.writestr(info, edit(info.filename.split("/", 1)[1], old.read(info)))
    return dst


def digest_of(path: Path) -> str:
    return content_digest(read_archive(path, path.read_bytes()).entries)


def meta_of(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(f"extra/{META_FILE}"))
        meta: dict[str, Any] = json.loads(archive.read(name))
    return meta


def with_meta(src: Path, dst: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    def edit(name: str, data: bytes) -> bytes:
        if name != f"extra/{META_FILE}":
            return data
        meta = json.loads(data)
        change(meta)
        return json.dumps(meta).encode()

    return rewrite(src, dst, edit)


def with_own_digest(path: Path) -> Path:
    """Record the file's real digest in its meta.json, as a careful forger would."""
    digest = digest_of(path)
    return with_meta(
        path, path.with_name("forged-" + path.name), lambda m: m.update(content_sha256=digest)
    )


def refusal(path: Path, **kwargs: Any) -> str:
    with pytest.raises(ModelArtifactError) as info:
        load_model(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


# The saved archive's own names may be mangled already, when this process scripted
# PropensityNet with other constants before (other tests do).
NETWORK_CODE = re.compile(r"code/__torch__/model/network(/___torch_mangle_\d+)?\.py")
CONV_CODE = re.compile(r"code/__torch__/torch/nn/modules/conv(/___torch_mangle_\d+)?\.py")


def test_saved_model_round_trips_with_a_verified_digest(saved: Path, tmp_path: Path) -> None:
    loaded = load_model(saved)
    digest = loaded.meta.content_sha256
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and digest == digest_of(saved)
    assert load_model(saved, expected_sha256=digest.upper()).meta.content_sha256 == digest
    moved = tmp_path / "elsewhere.pt"  # the archive's root folder differs: same digest
    moved.write_bytes(saved.read_bytes())
    assert digest_of(moved) == digest and load_model(moved).meta.content_sha256 == digest


def test_saved_code_keeps_the_module_path_earlier_model_files_carry(saved: Path) -> None:
    """Model files name their code by PropensityNet's module; moving it refuses old files."""
    with zipfile.ZipFile(saved) as archive:
        code = [n for n in archive.namelist() if NETWORK_CODE.search(n)]
    assert code, "the network's TorchScript code is no longer at __torch__/model/network.py"


def test_changed_weight_bytes_are_refused(saved: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(saved) as archive:
        sizes = {i.filename.split("/", 1)[1]: i.file_size for i in archive.infolist()}
    largest = max((n for n in sizes if n.startswith("data/")), key=sizes.__getitem__)

    def flip(name: str, data: bytes) -> bytes:
        return bytes(b ^ 0x55 for b in data) if name == largest else data

    message = refusal(rewrite(saved, tmp_path / "flipped.pt", flip))
    assert "does not match meta.json's" in message and "altered or corrupted" in message


def test_bytes_flipped_inside_the_file_are_refused(saved: Path, tmp_path: Path) -> None:
    raw = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        weights = max(
            (archive.read(i) for i in archive.infolist() if "/data/" in i.filename), key=len
        )
    start = raw.find(weights)
    raw[start : start + 64] = bytes(b ^ 0xFF for b in raw[start : start + 64])
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(raw))
    assert re.search(r"is corrupt: Bad CRC-32|altered or corrupted", refusal(flipped))


def test_meta_declaring_another_hidden_size_is_refused(saved: Path, tmp_path: Path) -> None:
    lying = with_meta(saved, tmp_path / "lying.pt", lambda m: m["config"].update(hidden_size=8))
    assert "declares hidden_size=8, its weights have hidden_size=4" in refusal(lying)


def test_wrong_recorded_digest_is_refused(saved: Path, tmp_path: Path) -> None:
    wrong = with_meta(saved, tmp_path / "w.pt", lambda m: m.update(content_sha256="0" * 64))
    assert f"does not match meta.json's {'0' * 64}" in refusal(wrong)


def test_pinned_digest_must_match(saved: Path) -> None:
    assert "not the pinned " + "ab" * 32 in refusal(saved, expected_sha256="ab" * 32)
    assert "is not 64 hex digits" in refusal(saved, expected_sha256="abc")
    assert load_model(saved, expected_sha256=digest_of(saved)).path == saved
    assert load_model(saved, expected_sha256="").path == saved  # empty: not pinned


def test_artifact_without_digest_warns_and_is_refused_when_pinned(
    saved: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = with_meta(saved, tmp_path / "old.pt", lambda m: m.pop("content_sha256"))
    with caplog.at_level(logging.WARNING):
        assert load_model(old).meta.content_sha256 == ""
    assert "records no content digest" in caplog.text
    assert "records no content digest" in refusal(old, expected_sha256=digest_of(old))


class Snooping(PropensityNet):
    """PropensityNet's weights and entry points, plus a read of a local file."""

    @torch.jit.export
    def run(
        self, x: Tensor, window: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        secret = torch.from_file("/etc/hostname", False, 4, dtype=torch.uint8)
        logits, window, h, c = self.run_logits(x, window, h, c)
        return self.calibrate(logits) + 0 * secret.sum().float(), window, h, c


class OtherNet(nn.Module):
    """Another architecture entirely."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(N_FEATURES, 4, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.gru(x)[0]


@pytest.mark.parametrize("module", [Snooping, OtherNet], ids=["snooping", "other-architecture"])
def test_foreign_module_with_copied_meta_is_refused(
    saved: Path, tmp_path: Path, module: Callable[..., nn.Module]
) -> None:
    net = module(tiny()) if module is Snooping else module()
    crafted = tmp_path / "crafted.pt"
    copied = json.dumps(meta_of(saved))
    torch.jit.save(torch.jit.script(net.eval()), str(crafted), _extra_files={META_FILE: copied})
    assert "altered or corrupted" in refusal(crafted)  # the copied digest is the genuine one
    message = refusal(with_own_digest(crafted))
    if module is Snooping:
        assert "its TorchScript code is not this build's PropensityNet for the declared config" in (
            message
        )
    else:
        assert "holds tensors that are not PropensityNet's" in message


def test_edited_code_is_refused_before_torch_compiles_it(saved: Path, tmp_path: Path) -> None:
    def edit(name: str, data: bytes) -> bytes:
        if not NETWORK_CODE.fullmatch(name):
            return data
        # Not even valid TorchScript: torch.jit.load would fail with "cannot be loaded".
        return data.replace(b"torch.sigmoid(", b"__import__('os').system(")

    edited = with_own_digest(rewrite(saved, tmp_path / "edited.pt", edit))
    message = refusal(edited)
    assert "its TorchScript code is not this build's PropensityNet" in message
    assert "code:__torch__.model.network:class PropensityNet(Module):" in message


def test_data_pkl_naming_other_globals_is_refused(saved: Path, tmp_path: Path) -> None:
    def edit(name: str, data: bytes) -> bytes:
        return (
            data.replace(b"collections\nOrderedDict", b"builtins\nexec")
            if name == "data.pkl"
            else data
        )

    hostile = with_own_digest(rewrite(saved, tmp_path / "hostile.pt", edit))
    assert "unreadable data.pkl: refers to builtins.exec" in refusal(hostile)


def test_duplicate_entry_names_are_refused(saved: Path, tmp_path: Path) -> None:
    doubled = tmp_path / "doubled.pt"
    with zipfile.ZipFile(saved) as old, zipfile.ZipFile(doubled, "w") as new:
        entries = [(info.filename, old.read(info)) for info in old.infolist()]
        for name, data in [*entries, entries[-1]]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns about the duplicate it writes
                new.writestr(name, data)
    assert "two entries are named" in refusal(doubled)


def test_archive_from_a_process_that_scripted_other_configs_loads(
    saved: Path, tmp_path: Path
) -> None:
    """Mangled class names, constants in another order and other temporaries' numbers.

    What a module scripted after other configs of it (or under another PYTHONHASHSEED)
    looks like; it is the same code and must not be refused.
    """
    mangled = b"__torch__.model.network.___torch_mangle_999"

    def edit(name: str, data: bytes) -> bytes:
        if name == "data.pkl":
            return re.sub(
                rb"__torch__\.model\.network\S*\nPropensityNet", mangled + b"\nPropensityNet", data
            )
        data = re.sub(
            rb"__torch__\.model\.network\S*\.PropensityNet", mangled + b".PropensityNet", data
        )
        if CONV_CODE.fullmatch(name):
            lines = data.split(b"\n")
            final = [i for i, line in enumerate(lines) if b": Final[" in line]
            for i, line in zip(final, reversed([lines[i] for i in final]), strict=True):
                lines[i] = line
            return b"\n".join(lines)
        if name == "code/__torch__/torch/nn/functional.py":
            return re.sub(rb"\b_(\d)\b", rb"_5\1", data)
        return data

    def move(src: Path, dst: Path) -> Path:
        with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
            for info in old.infolist():
                data = old.read(info)
                root, name = info.filename.split("/", 1)
                if NETWORK_CODE.fullmatch(name.removesuffix(".debug_pkl")):
                    suffix = name[name.index(".py") :]
                    info.filename = (
                        f"{root}/code/__torch__/model/network/___torch_mangle_999{suffix}"
                    )
                new.writestr(info, data)
        return dst

    edited = rewrite(saved, tmp_path / "edited.pt", edit)
    variant = with_own_digest(move(edited, tmp_path / "variant.pt"))
    with zipfile.ZipFile(variant) as archive:
        assert any("___torch_mangle_999.py" in n for n in archive.namelist())
    loaded = load_model(variant)
    x = torch.randn(1, 3, N_FEATURES)
    torch.testing.assert_close(loaded.module(x), load_model(saved).module(x))


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    net = PropensityNet(tiny())
    with torch.no_grad():
        net.head.bias[0] = float("nan")
    save_model(net, tiny(), tmp_path / "nan.pt")
    assert "non-finite weights: head.bias" in refusal(tmp_path / "nan.pt")


def test_model_failing_the_dry_run_is_refused(tmp_path: Path) -> None:
    net = PropensityNet(tiny())
    with torch.no_grad():  # finite weights whose activations overflow: inf - inf in the LSTM
        net.conv.weight.fill_(3e38)
        net.conv.bias.fill_(3e38)
    save_model(net, tiny(), tmp_path / "overflow.pt")
    assert "fails a dry run: probabilities is not finite" in refusal(tmp_path / "overflow.pt")

"""A TorchScript archive read as plain zip entries, so it can be checked before torch parses it.

``torch.jit.load`` compiles the archive's ``code/`` entries and unpickles ``data.pkl``,
which can run TorchScript (``__setstate__``) chosen by whoever wrote the file. Everything
here reads the bytes without handing them to torch: the content digest, the code in a
canonical text, and the tensors that ``data.pkl`` declares, through an unpickler that
only knows the handful of globals a scripted module uses.
"""

import hashlib
import io
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from model.serving.exceptions import ModelArtifactError

META_FILE = "meta.json"
META_ENTRY = f"extra/{META_FILE}"
# torch.jit.save writes a fresh random id into every archive; it names nothing the model uses,
# so it is left out of the digest (two saves of one module must hash the same).
SERIALIZATION_ID = ".data/serialization_id"

# TorchScript renames a class when a process scripts it twice with different constants
# (``__torch__.model.network.___torch_mangle_3.PropensityNet``): the suffix depends on what
# the process scripted before, not on the model.
_MANGLE = re.compile(rb"[./]___torch_mangle_\d+")
# The code printer numbers temporaries per file (``_0``, ``_1``, ...), so a block's numbers
# depend on the blocks printed before it in the same file.
_TEMPORARY = re.compile(r"\b_\d+\b")
# Constant declarations are printed in set order, which changes with PYTHONHASHSEED.
_CONSTANT = re.compile(r"^  \w+ : Final\[")


@dataclass(frozen=True)
class Archive:
    """The entries of one TorchScript zip, named relative to its root folder."""

    path: Path
    raw: bytes
    entries: dict[str, bytes]

    def error(self, problem: str) -> ModelArtifactError:
        """A refusal naming this file: ``problem`` continues "model file PATH ..."."""
        return ModelArtifactError(f"model file {self.path} {problem}")


def read_archive(path: Path, raw: bytes) -> Archive:
    """Every entry of ``raw`` (the bytes of ``path``); refuses what torch might read otherwise.

    torch resolves entries under the first entry's folder; a second folder or a repeated
    name could make torch and this reader see different bytes, so they are refused.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            infos = archive.infolist()
            problem = _unclean(infos)
            if problem:
                raise ModelArtifactError(
                    f"model file {path} is not a clean TorchScript archive: {problem}"
                )
            root = len(infos[0].filename.split("/", 1)[0]) + 1
            entries = {info.filename[root:]: archive.read(info) for info in infos}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelArtifactError(f"model file {path} is corrupt: {_first_line(exc)}") from None
    return Archive(path=path, raw=raw, entries=entries)


def _unclean(infos: list[zipfile.ZipInfo]) -> str:
    """Why torch and zipfile might disagree about these entries; empty when they cannot."""
    if not infos:
        return "it has no entries"
    root = infos[0].filename.split("/", 1)[0] + "/"
    names: set[str] = set()
    for info in infos:
        if not info.filename.startswith(root) or info.filename == root:
            return f"entry {info.filename!r} is outside {root!r}"
        if info.filename in names:
            return f"two entries are named {info.filename!r}"
        names.add(info.filename)
    return ""


def content_digest(entries: dict[str, bytes]) -> str:
    """SHA-256 over every entry but meta.json and the serialization id: names and bytes.

    Names are relative to the archive's root folder (which torch derives from the file
    name), so renaming or copying a model keeps its digest.
    """
    digest = hashlib.sha256()
    for name in sorted(entries):
        if name in (META_ENTRY, SERIALIZATION_ID):
            continue
        for part in (name.encode(), entries[name]):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def canonical_entries(entries: dict[str, bytes]) -> dict[str, bytes]:
    """What must equal between two archives of the same code: all but weights and metadata.

    Code files become one entry per top-level class or function (``code:<module>:<first
    line>``) in a canonical text; the weights (``data/``), ``extra/`` files, the debug
    source maps (``*.debug_pkl``: source ranges for error messages, which name the
    trainer's paths) and the serialization id are left out.
    """
    canonical: dict[str, bytes] = {}
    for name, data in entries.items():
        if name.startswith(("data/", "extra/")) or name.endswith(".debug_pkl"):
            continue
        if name == SERIALIZATION_ID:
            continue
        if name.startswith("code/") and name.endswith(".py"):
            module = _unmangle(name[len("code/") : -len(".py")].encode()).decode()
            for key, block in _code_blocks(data.decode("utf-8", "replace")):
                _put(canonical, f"code:{module.replace('/', '.')}:{key}", block.encode())
        else:
            _put(canonical, name, _unmangle(data))
    return canonical


def _put(canonical: dict[str, bytes], key: str, value: bytes) -> None:
    if key in canonical:
        # Two classes that differ only in their mangling suffix: not something one
        # scripting of one module writes.
        raise ValueError(f"{key} appears twice")
    canonical[key] = value


def _unmangle(data: bytes) -> bytes:
    return _MANGLE.sub(b"", data)


def _code_blocks(text: str) -> Iterator[tuple[str, str]]:
    """(first line, canonical text) of each top-level block of a printed TorchScript file.

    A block starts at a line with no indentation. Lines split at ``\n`` only and are kept
    verbatim (but for the block's trailing empty lines), so no character of the code is
    lost to the comparison.
    """
    block: list[str] = []
    for line in _unmangle(text.encode()).decode().split("\n"):
        if line[:1] not in ("", " ") and block:
            yield block[0], _canonical_block(block)
            block = []
        block.append(line)
    if block:
        yield block[0], _canonical_block(block)


def _canonical_block(lines: list[str]) -> str:
    """Constant declarations sorted, temporaries renumbered in order of first use."""
    while lines and not lines[-1]:
        lines = lines[:-1]
    ordered: list[str] = []
    constants: list[str] = []
    for line in lines:
        if _CONSTANT.match(line):
            constants.append(line)
            continue
        ordered.extend(sorted(constants))
        constants = []
        ordered.append(line)
    ordered.extend(sorted(constants))
    numbers: dict[str, str] = {}
    return _TEMPORARY.sub(
        lambda m: numbers.setdefault(m.group(0), f"_{len(numbers)}"), "\n".join(ordered)
    )


class DeclaredTensor(NamedTuple):
    """A tensor as data.pkl declares it: shape, and the bytes stored for it."""

    shape: tuple[int, ...]
    elements: int  # storage_offset + the elements the shape covers
    stored_bytes: int


class _ScriptObject:
    """A TorchScript object in data.pkl: its attributes, with nothing of its class run."""

    qualified_name = ""

    def __init__(self) -> None:
        self.attributes: Any = None

    def __setstate__(self, state: Any) -> None:
        self.attributes = state


class _Storage(NamedTuple):
    key: str
    elements: int


def _first_argument(value: Any, *_: Any) -> Any:
    return value


class _TensorDeclaration(NamedTuple):
    storage: _Storage
    offset: int
    shape: tuple[int, ...]


def _declare_tensor(storage: Any, offset: Any, size: Any, *_: Any) -> _TensorDeclaration:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _TensorDeclaration(storage, int(offset), tuple(int(s) for s in size))


_PICKLE_HELPERS = {
    "build_intlist",
    "build_floatlist",
    "build_doublelist",
    "build_boollist",
    "build_tensorlist",
    "build_stringlist",
    "restore_type_tag",
}


class _DeclarationUnpickler(pickle.Unpickler):
    """Reads data.pkl into plain objects; any global but a scripted module's is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__."):
            return type(name, (_ScriptObject,), {"qualified_name": f"{module}.{name}"})
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _declare_tensor
        if module == "torch" and name.endswith("Storage"):
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch.jit._pickle" and name in _PICKLE_HELPERS:
            return _first_argument
        raise pickle.UnpicklingError(f"refers to {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.60}")
        return _Storage(key=str(pid[2]), elements=int(pid[4]))


def declared_tensors(archive: Archive) -> dict[str, DeclaredTensor]:
    """Dotted name -> declared tensor, for every tensor attribute of the pickled module tree."""
    try:
        root = _DeclarationUnpickler(io.BytesIO(archive.entries["data.pkl"])).load()
        tensors: dict[str, DeclaredTensor] = {}
        _collect(archive, root, "", tensors, set())
    except KeyError as exc:
        raise archive.error(f"has no {exc.args[0]} entry: not a TorchScript module") from None
    except Exception as exc:  # a hostile pickle can fail in any way; report it, run nothing
        raise archive.error(f"has an unreadable data.pkl: {_first_line(exc)}") from None
    return tensors


def _collect(
    archive: Archive, obj: Any, prefix: str, out: dict[str, DeclaredTensor], seen: set[int]
) -> None:
    if not isinstance(obj, _ScriptObject) or not isinstance(obj.attributes, dict):
        raise ValueError(f"{prefix or 'the root'} is not a scripted module")
    if id(obj) in seen:
        raise ValueError(f"{prefix} refers back to a module that contains it")
    seen.add(id(obj))
    for name, value in obj.attributes.items():
        if isinstance(value, _TensorDeclaration):
            stored = len(archive.entries[f"data/{value.storage.key}"])
            elements = value.offset + _product(value.shape)
            out[prefix + name] = DeclaredTensor(value.shape, elements, stored)
        elif isinstance(value, _ScriptObject):
            _collect(archive, value, f"{prefix}{name}.", out, seen)


def _product(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Imports flow one way: schemas ← model ← worker ← command line / harness.

Every import in the three packages (module level or inside a function) is read with ``ast``
and checked against the layer table below; the README's "Code layout" says the same in words.
"""

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "model", "streams")

# Layer → the layers its modules may import (a layer may always import itself).
_TRAINING = {"schemas", "model.serving", "model.importers", "model.simulate"}
_MODEL = {*_TRAINING, "model.training", "model.evaluation", "model.monitoring"}
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "model.serving": {"schemas"},
    "model.importers": {"schemas"},
    "model.simulate": {"schemas", "model.importers"},
    # Training records the test window's figures with the measures evaluation reports.
    "model.training": {*_TRAINING, "model.evaluation.measures"},
    # The measures are plain numpy/scikit-learn: live monitoring reports the same figures.
    "model.evaluation.measures": set(),
    "model.evaluation": {*_TRAINING, "model.training", "model.evaluation.measures"},
    "model.monitoring": {"schemas", "model.serving", "model.evaluation.measures"},
    "streams.worker": {"schemas", "model.serving", "model.monitoring"},
    "streams.harness": {
        "schemas",
        "model.serving",
        "model.simulate",
        "model.monitoring",
        "streams.worker",
    },
    "streams.cli": {*_MODEL, "streams.worker", "streams.harness"},
}
# Modules that sit at a package's top but belong to a layer.
LAYER_OF_MODULE = {"model.network": "model.serving"}


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to; None for third-party modules."""
    if module in LAYER_OF_MODULE:
        return LAYER_OF_MODULE[module]
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    if module.split(".")[0] in {*PACKAGES, "tests"}:
        return module  # a package root or an unknown part of ours: never allowed
    return None


def imported_modules(source: str, module: str) -> set[str]:
    """The modules the import statements in ``source`` name (relative ones resolved).

    ``from a.b import c`` counts as ``a.b``; from a package root, ``from model import network``
    counts as ``model.network``.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            if base in PACKAGES:
                found.update(f"{base}.{alias.name}" for alias in node.names)
            else:
                found.add(base)
    return found


def violations(source: str, module: str) -> list[str]:
    """Imports in ``source`` (the text of ``module``) that go against the direction."""
    own = layer_of(module)
    assert own in ALLOWED, f"{module} is in no layer: add it to ALLOWED"
    return [
        f"{module} imports {name} ({own} may not import {target})"
        for name in sorted(imported_modules(source, module))
        if (target := layer_of(name)) is not None and target != own and target not in ALLOWED[own]
    ]


def package_modules() -> list[tuple[str, Path]]:
    modules = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name not in PACKAGES:  # the package roots hold docstrings only
                modules.append((name, path))
    return modules


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package: str) -> None:
    problems = [
        problem
        for name, path in package_modules()
        if name.split(".")[0] == package
        for problem in violations(path.read_text(), name)
    ]
    assert not problems, "\n".join(problems)


def test_package_roots_import_nothing_of_ours() -> None:
    for package in PACKAGES:
        source = (REPO_ROOT / package / "__init__.py").read_text()
        assert not [m for m in imported_modules(source, package) if layer_of(m)], package


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("schemas.events", "from model.serving.config import HEADS", "schemas may not import"),
        ("model.serving.scorer", "import streams.worker.settings", "may not import"),
        ("model.serving.scorer", "from model.training import fitting", "may not import"),
        ("streams.worker.agents", "def f():\n    from streams.cli import main", "may not import"),
        ("streams.harness.drills", "from streams.cli.options import x", "may not import"),
        ("model.importers.otto", "from ..evaluation.report import x", "may not import"),
        ("streams.worker.app", "from tests.kafka_helpers import x", "may not import"),
    ],
)
def test_the_check_catches_an_import_against_the_direction(
    module: str, source: str, expected: str
) -> None:
    problems = violations(source, module)
    assert problems and expected in problems[0]


def test_the_check_lets_allowed_imports_through() -> None:
    source = (
        "import torch\nfrom model.network import PropensityNet\n"
        "from model.serving import export\nfrom schemas.events import ShopEvent\n"
    )
    assert violations(source, "streams.worker.scoring_step") == []

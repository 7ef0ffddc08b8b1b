"""Shared fixtures (the real-data folder, a model, a Kafka-protocol broker) and the suites.

tests/unit is the quick loop: no broker, no subprocess, no training beyond a few steps.
tests/system (marked ``slow``) runs commands, trains and evaluates small models, simulates
thousands of shoppers and calls promtool/openssl. tests/integration (marked ``integration``)
talks to a real broker: the embedded Tansu, or KAFKA_BOOTSTRAP_SERVERS when set.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SUITE_MARKERS = {"system": "slow", "integration": "integration"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its suite's folder, so ``-m "not slow"`` and the like select suites."""
    for item in items:
        suite = item.path.relative_to(REPO_ROOT / "tests").parts[0]
        if suite in SUITE_MARKERS:
            item.add_marker(SUITE_MARKERS[suite])


def shared_data_path() -> Path:
    """../shared/data beside the checkout, or PROPENSITY_SHARED_DATA when set."""
    override = os.environ.get("PROPENSITY_SHARED_DATA")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real shop-log samples; the test is skipped when they are absent."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent")
    return path


def _sample(folder: Path, relative: str) -> Path:
    path = folder / relative
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def rees46_sample(shared_data_dir: Path) -> Path:
    return _sample(shared_data_dir, "rees46-2019oct-head/2019-Oct_head.csv")


@pytest.fixture(scope="session")
def otto_sample(shared_data_dir: Path) -> Path:
    return _sample(shared_data_dir, "otto-sample/train_first20.jsonl")


@pytest.fixture(scope="session")
def untrained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid artifact with seeded random weights: enough for plumbing tests."""
    import torch

    from model.network import PropensityNet
    from model.serving.config import ModelConfig
    from model.serving.export import save_model
    from model.serving.user_state import N_FEATURES

    torch.manual_seed(1234)
    config = ModelConfig(n_features=N_FEATURES, hidden_size=16, conv_channels=16)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(PropensityNet(config), config, path)
    return path


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS when set, else the embedded Tansu broker on a free port."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    from streams.harness.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses: prefix for topics and consumer groups."""
    import uuid

    return f"t{uuid.uuid4().hex[:10]}"

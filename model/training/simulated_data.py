"""Simulated shoppers as a labelled Dataset, with the simulator's true purchase probability."""

from dataclasses import asdict
from typing import Any

from model.simulate import SimulationConfig, simulate
from model.training.data import CEILING, ORACLE, Dataset, build_dataset


def dataset_from_settings(settings: dict[str, Any]) -> Dataset:
    """Re-run a simulation from its recorded settings (seeded, so the same events)."""
    config = SimulationConfig(**settings)
    items = list(simulate(config))
    references = {
        ORACLE: [item.oracle_purchase for item in items],
        CEILING: [item.ceiling_purchase for item in items],
    }
    events = [item.event for item in items]
    return build_dataset(events, horizon_ms=config.horizon_ms, references=references)


def simulated_dataset(
    *, users: int, days: int, seed: int, horizon_ms: int | None = None
) -> tuple[Dataset, dict[str, Any]]:
    """Events of a seeded simulation labelled for ``horizon_ms`` (the simulator's default if
    None); returns the dataset and the simulation settings (its fingerprint source)."""
    kwargs: dict[str, Any] = {"n_users": users, "days": days, "seed": seed, "with_oracle": True}
    if horizon_ms is not None:
        kwargs["horizon_ms"] = horizon_ms
    settings = asdict(SimulationConfig(**kwargs))
    return dataset_from_settings(settings), settings

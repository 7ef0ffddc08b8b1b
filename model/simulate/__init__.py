"""A seeded shopper simulator whose every event carries the true purchase probability."""

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from model.importers.jsonl import CEILING_KEY, ORACLE_KEY
from model.importers.jsonl import write_jsonl as _write_rows
from model.simulate.config import DEFAULT_START_MS, SimulatedEvent, SimulationConfig
from model.simulate.reaction import Reaction, ReactiveSimulation
from model.simulate.run import simulate

# Long enough that a load run never reaches it; the stream is lazy, so it costs nothing.
_OPEN_ENDED_DAYS: Final = 3650.0
ORACLE_DECIMALS: Final = 6


def simulate_n_events(
    n_events: int,
    n_users: int = 20_000,
    seed: int = 7,
    *,
    with_oracle: bool = False,
    start_ms: int = DEFAULT_START_MS,
) -> Iterator[SimulatedEvent]:
    """Exactly the first ``n_events`` events (in time order) of an open-ended simulation."""
    config = SimulationConfig(
        n_users=n_users,
        days=_OPEN_ENDED_DAYS,
        start_ms=start_ms,
        seed=seed,
        with_oracle=with_oracle,
    )
    return itertools.islice(simulate(config), n_events)


def _references(e: SimulatedEvent) -> dict[str, float]:
    pairs = ((ORACLE_KEY, e.oracle_purchase), (CEILING_KEY, e.ceiling_purchase))
    return {key: round(value, ORACLE_DECIMALS) for key, value in pairs if value is not None}


def write_jsonl(events: Iterable[SimulatedEvent], path: Path) -> int:
    """Write contract JSON Lines, adding ``oracle_purchase`` and ``ceiling_purchase``
    wherever they are known."""
    return _write_rows(((e.event, _references(e)) for e in events), path)


__all__ = [
    "CEILING_KEY",
    "ORACLE_KEY",
    "Reaction",
    "ReactiveSimulation",
    "SimulatedEvent",
    "SimulationConfig",
    "simulate",
    "simulate_n_events",
    "write_jsonl",
]

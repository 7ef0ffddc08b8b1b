"""A seeded shopper simulator whose every event carries the true purchase probability."""

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from model.importers.jsonl import ORACLE_KEY
from model.importers.jsonl import write_jsonl as _write_rows
from model.simulate.config import DEFAULT_START_MS, SimulatedEvent, SimulationConfig
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


def write_jsonl(events: Iterable[SimulatedEvent], path: Path) -> int:
    """Write contract JSON Lines, adding ``oracle_purchase`` wherever it is known."""
    rows = (
        (
            e.event,
            {}
            if e.oracle_purchase is None
            else {ORACLE_KEY: round(e.oracle_purchase, ORACLE_DECIMALS)},
        )
        for e in events
    )
    return _write_rows(rows, path)


__all__ = [
    "ORACLE_KEY",
    "SimulatedEvent",
    "SimulationConfig",
    "simulate",
    "simulate_n_events",
    "write_jsonl",
]

"""Settings of one simulation run and the record it yields per event."""

from dataclasses import dataclass
from typing import Final, NamedTuple

from schemas.events import ShopEvent
from schemas.units import DAY_MS

DEFAULT_START_MS: Final = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
MIN_HORIZON_MS: Final = 60_000  # longer than any checkout's run of purchase events
CHECKOUT_STEP_MS: Final = 1000  # the purchase events of one checkout, one second apart


@dataclass(frozen=True)
class SimulationConfig:
    """Who shops, for how long, from when, with which seed, and the oracle's horizon."""

    n_users: int = 2000
    days: float = 7.0
    start_ms: int = DEFAULT_START_MS
    seed: int = 7
    horizon_ms: int = DAY_MS
    with_oracle: bool = True
    n_items: int = 5000

    def __post_init__(self) -> None:
        if self.n_users < 1:
            raise ValueError("n_users must be at least 1")
        if self.days <= 0:
            raise ValueError("days must be positive")
        if self.horizon_ms < MIN_HORIZON_MS:
            raise ValueError(f"horizon_ms must be at least {MIN_HORIZON_MS}")
        if self.n_items < 100:
            raise ValueError("n_items must be at least 100")

    @property
    def end_ms(self) -> int:
        return self.start_ms + round(self.days * DAY_MS)


class SimulatedEvent(NamedTuple):
    """One event and, when computed, P(this shopper purchases within the horizon after it):
    given the hidden state (oracle) and given only the shopper's visible events (ceiling)."""

    event: ShopEvent
    oracle_purchase: float | None
    ceiling_purchase: float | None = None

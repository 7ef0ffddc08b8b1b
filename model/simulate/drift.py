"""A world that changes under the model: from one moment on, shoppers buy less often, a new
kind of shopper arrives, or prices move. For showing and measuring drift detection.

Without a drift the simulator runs exactly as before (same random draws, same bytes). The
oracle and ceiling solve the undrifted chain, so a drifting run computes neither.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from model.simulate.shopper import Kind, Segment

DRIFT_KINDS: Final = ("conversion", "segment", "prices")
# conversion: checkouts and buy-nows happen at this fraction of their rate (at 0.4 shoppers
# mostly come back and buy later: purchases per visit fell only 8%).
CONVERSION_FACTORS: Final[Mapping[Kind, float]] = {Kind.CHECKOUT: 0.2, Kind.BUY_NOW: 0.2}
# segment: bargain hunters, NEW_SEGMENT_SHARE × the population, arrive at the drift moment;
# they visit often, fill carts readily and rarely check out.
NEW_SEGMENT: Final = Segment("bargain_hunter", 0.0, 4.0)
NEW_SEGMENT_FACTORS: Final[Mapping[Kind, float]] = {
    Kind.ADD: 1.5,
    Kind.CHECKOUT: 0.25,
    Kind.BUY_NOW: 0.25,
}
NEW_SEGMENT_SHARE: Final = 0.2
# prices: every price seen after the drift is this multiple of the catalogue's.
PRICE_FACTOR: Final = 1.6


@dataclass(frozen=True)
class Drift:
    """What changes (one of DRIFT_KINDS) and from when (epoch ms, event time)."""

    kind: str
    at_ms: int

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"drift kind {self.kind!r} is not one of {', '.join(DRIFT_KINDS)}")

    def newcomers(self, n_users: int) -> int:
        """Shoppers of NEW_SEGMENT that arrive at the drift moment."""
        return round(NEW_SEGMENT_SHARE * n_users) if self.kind == "segment" else 0

    def price(self, price: float, ts: int) -> float:
        if self.kind == "prices" and ts >= self.at_ms:
            return round(price * PRICE_FACTOR, 2)
        return price

"""Time-based train / validation / test windows (never a random split across time).

Each event belongs to the window that contains its own event time. A user's sequence is
always encoded from its first event: earlier windows are context, only events inside a
window are labelled and scored for it.
"""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TRAIN, VALIDATION, TEST = 0, 1, 2
WINDOW_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class TimeSplit:
    """Cut points in epoch ms: train < val_start <= validation < test_start <= test."""

    val_start_ms: int
    test_start_ms: int
    how: str = "cut points"

    def __post_init__(self) -> None:
        if self.test_start_ms < self.val_start_ms:
            raise ValueError("the test window must start at or after the validation window")

    def window_of(self, ts: np.ndarray) -> np.ndarray:
        """Window index (TRAIN, VALIDATION or TEST) of each event time."""
        ts = np.asarray(ts, dtype=np.int64)
        return (ts >= self.val_start_ms).astype(np.int8) + (ts >= self.test_start_ms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TimeSplit":
        return cls(int(data["val_start_ms"]), int(data["test_start_ms"]), str(data.get("how", "")))


def split_by_fractions(
    labelled_ts: np.ndarray, val_fraction: float, test_fraction: float
) -> TimeSplit:
    """Cut so the last ``test_fraction`` of labelled events (by time) are test, the
    ``val_fraction`` before them validation. Quantiles of time, not a shuffle."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("fractions must be in (0, 1) and sum to less than 1")
    ts = np.sort(np.asarray(labelled_ts, dtype=np.int64))
    if len(ts) < 3:
        raise ValueError(f"need at least 3 labelled events to split, got {len(ts)}")
    test_at = int(ts[int(len(ts) * (1 - test_fraction))])
    val_at = int(ts[int(len(ts) * (1 - test_fraction - val_fraction))])
    how = f"fractions of labelled events: validation {val_fraction:g}, test {test_fraction:g}"
    return TimeSplit(val_at, test_at, how)

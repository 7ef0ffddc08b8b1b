"""A bounded FIFO of scored outcomes in numpy arrays: the storage of one quality window.

Appends and front evictions are O(1); the arrays grow by doubling up to the capacity, so an
idle model version costs a few hundred bytes, not the cap. Each row keeps a 64-bit key of its
event id, so that the window can forget an id the moment its outcome leaves (bounded
de-duplication) without holding the id strings.
"""

from typing import NamedTuple

import numpy as np

_FIRST_ALLOCATION = 64


class WindowArrays(NamedTuple):
    """One window's contents, oldest first: copies, safe to hand to another thread."""

    scores: np.ndarray  # (n,) float64
    labels: np.ndarray  # (n,) int8, 0 or 1
    event_ts: np.ndarray  # (n,) int64, epoch ms


class OutcomeRing:
    """At most ``capacity`` (score, label, event_ts, id key) rows in arrival order."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a window holds at least one outcome, not {capacity}")
        self.capacity = capacity
        size = min(capacity, _FIRST_ALLOCATION)
        self._scores = np.empty(size, np.float64)
        self._labels = np.empty(size, np.int8)
        self._ts = np.empty(size, np.int64)
        self._keys = np.empty(size, np.int64)
        self._start = 0  # index of the oldest row
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        return self._size == self.capacity

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays as allocated now."""
        return sum(a.nbytes for a in (self._scores, self._labels, self._ts, self._keys))

    def push(self, score: float, label: int, event_ts: int, key: int) -> int | None:
        """Append one row; when full, the oldest leaves first and its key is returned."""
        evicted = self.pop() if self.full else None
        if self._size == len(self._scores):
            self._grow()
        at = (self._start + self._size) % len(self._scores)
        self._scores[at], self._labels[at], self._ts[at], self._keys[at] = (
            score,
            label,
            event_ts,
            key,
        )
        self._size += 1
        return evicted

    def pop(self) -> int:
        """Remove the oldest row; its key."""
        key = int(self._keys[self._start])
        self._start = (self._start + 1) % len(self._scores)
        self._size -= 1
        return key

    def oldest_event_ts(self) -> int:
        return int(self._ts[self._start])

    def arrays(self) -> WindowArrays:
        """Copies of the rows, oldest first."""
        order = self._order()
        return WindowArrays(self._scores[order], self._labels[order], self._ts[order])

    def _order(self) -> np.ndarray:
        return (self._start + np.arange(self._size)) % len(self._scores)

    def _grow(self) -> None:
        order = self._order()
        size = min(2 * len(self._scores), self.capacity)
        for name in ("_scores", "_labels", "_ts", "_keys"):
            old = getattr(self, name)
            new = np.empty(size, old.dtype)
            new[: len(order)] = old[order]
            setattr(self, name, new)
        self._start = 0

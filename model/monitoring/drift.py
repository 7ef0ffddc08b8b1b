"""Drift without labels: the population stability index (PSI) of recent scores and event
types against the reference distributions the artifact recorded from its validation window.

PSI = Σ_b (a_b − e_b) · ln(a_b / e_b) over bins b, with a_b the window's share and e_b the
reference's. A share of zero (a bin the window never hit) is replaced by PSI_EPSILON = 1e-4
on both sides before the logarithm: an emptied decile (e_b ≈ 0.1) then adds about
0.1 · ln(1000) ≈ 0.69, a loud but finite alarm, instead of infinity.

Under no drift PSI is not zero: with B equally likely bins and n independent events its
expectation is about (B − 1) / n (it is a χ² statistic over n), and consecutive events of
one shopper are far from independent, so the noise is larger still. A window must hold
enough events for the threshold to mean something: ``psi`` returns NaN below
MIN_EVENTS_PER_BIN events per bin, and ``DriftWindow`` reports NaN until its window is
full (the threshold is chosen for full windows; see ``propensity bench-drift``).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from model.serving.config import HEADS
from model.serving.reference import DriftReference
from schemas.events import EVENT_TYPE_INDEX, EVENT_TYPES

PSI_EPSILON: Final = 1e-4
MIN_EVENTS_PER_BIN: Final = 5  # the χ² rule of thumb: fewer, and PSI is mostly noise


def psi(counts: np.ndarray, expected: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """PSI of observed ``counts`` per bin against ``expected`` shares; NaN when the counts
    are fewer than MIN_EVENTS_PER_BIN per bin (an empty or tiny window is no evidence)."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total < MIN_EVENTS_PER_BIN * len(counts):
        return float("nan")
    actual = np.maximum(counts / total, epsilon)
    reference = np.maximum(np.asarray(expected, np.float64), epsilon)
    return float(np.sum((actual - reference) * np.log(actual / reference)))


class BinRing:
    """The bin indices of the last ``size`` observations (a numpy ring buffer)."""

    def __init__(self, size: int, n_bins: int) -> None:
        if size < 1:
            raise ValueError("a drift window holds at least one event")
        self.values = np.zeros(size, np.int16)
        self.n_bins = n_bins
        self.filled = 0
        self.position = 0

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def full(self) -> bool:
        return self.filled == self.size

    def push(self, bins: np.ndarray) -> None:
        """Append ``bins`` (oldest first), overwriting the oldest held."""
        bins = bins[-self.size :]
        n = len(bins)
        first = min(n, self.size - self.position)
        self.values[self.position : self.position + first] = bins[:first]
        self.values[: n - first] = bins[first:]
        self.position = (self.position + n) % self.size
        self.filled = min(self.filled + n, self.size)

    def counts(self) -> np.ndarray:
        """Observations per bin in the window."""
        held = self.values if self.full else self.values[: self.filled]
        return np.bincount(held, minlength=self.n_bins)


@dataclass(frozen=True)
class DriftFigures:
    """PSI per head, PSI of the event-type mix (NaN until the window is full) and the
    events the window holds."""

    score_psi: Mapping[str, float]
    event_mix_psi: float
    events: int


class DriftWindow:
    """The last ``size`` scored events (per head: the last ``size`` scores of that head)
    against a reference; ``observe`` is called per scored slice, ``figures`` when exported."""

    def __init__(self, reference: DriftReference, size: int) -> None:
        self.reference = reference
        self.scores = {head: BinRing(size, reference.scores[head].n_bins) for head in HEADS}
        self.event_types = BinRing(size, len(EVENT_TYPES))
        self._mix = reference.event_mix_shares()

    def observe(
        self,
        event_types: Sequence[str],
        purchase: Sequence[float] | np.ndarray,
        cart_abandon: Sequence[float | None],
    ) -> None:
        """Add one slice of scored events (in order); None: no cart-abandon score."""
        if not event_types:
            return
        self.event_types.push(np.fromiter((EVENT_TYPE_INDEX[t] for t in event_types), np.int16))
        histograms = self.reference.scores
        self.scores["purchase"].push(histograms["purchase"].bins_of(np.asarray(purchase)))
        carts = np.fromiter((p for p in cart_abandon if p is not None), np.float64)
        if len(carts):
            self.scores["cart_abandon"].push(histograms["cart_abandon"].bins_of(carts))

    def figures(self) -> DriftFigures:
        """Current PSI values (NaN for a window not yet full)."""
        score_psi = {
            head: _full_psi(ring, np.asarray(self.reference.scores[head].shares))
            for head, ring in self.scores.items()
        }
        return DriftFigures(
            score_psi, _full_psi(self.event_types, self._mix), self.event_types.filled
        )


def _full_psi(ring: BinRing, expected: np.ndarray) -> float:
    return psi(ring.counts(), expected) if ring.full else float("nan")

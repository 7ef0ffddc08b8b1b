"""The exact purchase-within-horizon probability of the hidden shopper chain.

From state s at time t, P(a purchase jump in (t, t + H]) is row s of the transition matrix
of the chain with purchases made absorbing, over the window [t, t + H]. The generator is
constant within each UTC hour, so that matrix is a product of matrix exponentials: a
partial first hour, whole hours (precomputed, products cached) and a partial last hour.
Partial hours use each hour's eigen-decomposition, so one probability costs a few 41x41
matrix-vector products (about 20 µs).

Accuracy: exact up to floating point; ``check_accuracy`` measures the eigen path against a
Taylor scaling-and-squaring exponential (about 3e-13). The only modelling slack is that
event times are whole milliseconds: the chain restarts at each event's floored time, which
shifts later jumps by under a millisecond each, a change far below 1e-6 in a probability.
tests/unit/test_simulate.py also checks it against Monte Carlo runs of the chain and
against purchase rates observed in simulated data.
"""

import math
from collections.abc import Sequence
from typing import Final

import numpy as np

from model.simulate.shopper import (
    N_STATES,
    PURCHASE_KINDS,
    SEGMENTS,
    Segment,
    transitions,
)
from schemas.units import HOUR_MS

ABSORBED: Final = N_STATES  # the extra state "has purchased"
_SIZE: Final = N_STATES + 1


def generator(segment: Segment, hour: int) -> np.ndarray:
    """Rate matrix (per hour) of one segment in one UTC hour, purchases made absorbing."""
    q = np.zeros((_SIZE, _SIZE))
    for state in range(N_STATES):
        for kind, rate, target in transitions(segment, state, hour):
            q[state, ABSORBED if kind in PURCHASE_KINDS else target] += rate
        q[state, state] -= q[state].sum()
    return q


def expm(a: np.ndarray) -> np.ndarray:
    """Matrix exponential by scaling and squaring of a degree-18 Taylor polynomial."""
    norm = float(np.abs(a).sum(axis=0).max())
    squarings = max(0, math.ceil(math.log2(norm / 0.25))) if norm > 0 else 0
    scaled = a / (2.0**squarings)
    result = np.eye(a.shape[0])
    term = np.eye(a.shape[0])
    for n in range(1, 19):
        term = term @ scaled / n
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


class _Hour:
    """One hour's generator, diagonalised: exp(Q t) v = V (e^{λt} ⊙ V⁻¹ v)."""

    def __init__(self, q: np.ndarray) -> None:
        values, vectors = np.linalg.eig(q)
        self.values = values
        self.vectors = vectors
        self.inverse = np.linalg.inv(vectors)
        self.full = expm(q)  # a whole hour, computed without the eigen-decomposition

    def apply(self, hours: float, v: np.ndarray) -> np.ndarray:
        out = self.vectors @ (np.exp(self.values * hours) * (self.inverse @ v))
        return np.asarray(out.real)


class PurchaseOracle:
    """P(first purchase jump in a time window) for a shopper in a given hidden state."""

    def __init__(self, segments: Sequence[Segment] = SEGMENTS) -> None:
        self.segments = tuple(segments)
        self._hours = [[_Hour(generator(seg, h)) for h in range(24)] for seg in self.segments]
        self._runs: dict[tuple[int, int, int], np.ndarray] = {}
        self._absorbed = np.zeros(_SIZE)
        self._absorbed[ABSORBED] = 1.0

    def probability(self, segment: int, state: int, start_ms: int, end_ms: int) -> float:
        """Exact P(the chain, in ``state`` at ``start_ms``, purchases by ``end_ms``)."""
        if end_ms <= start_ms:
            return 0.0
        return min(1.0, max(0.0, float(self.probabilities(segment, start_ms, end_ms)[state])))

    def probabilities(self, segment: int, start_ms: int, end_ms: int) -> np.ndarray:
        """The same probability for every state at once (index ``ABSORBED`` is 1)."""
        hours = self._hours[segment]
        first_end = min((start_ms // HOUR_MS + 1) * HOUR_MS, end_ms)
        whole, last_ms = divmod(end_ms - first_end, HOUR_MS)
        first_whole_hour = (first_end // HOUR_MS) % 24
        v = self._absorbed
        if last_ms:
            v = hours[(first_whole_hour + whole) % 24].apply(last_ms / HOUR_MS, v)
        if whole:
            v = self._run(segment, first_whole_hour, whole) @ v
        return hours[(start_ms // HOUR_MS) % 24].apply((first_end - start_ms) / HOUR_MS, v)

    def _run(self, segment: int, first_hour: int, count: int) -> np.ndarray:
        """Transition matrix of ``count`` whole hours starting at ``first_hour`` (cached)."""
        key = (segment, first_hour, count)
        if key not in self._runs:
            product = np.eye(_SIZE)
            for i in range(count):
                product = product @ self._hours[segment][(first_hour + i) % 24].full
            self._runs[key] = product
        return self._runs[key]

    def check_accuracy(self) -> float:
        """Largest |eigen path - Taylor expm| over every segment, hour and a few lengths."""
        worst = 0.0
        for seg, hours in enumerate(self._hours):
            for h, hour in enumerate(hours):
                q = generator(self.segments[seg], h)
                for frac in (0.001, 0.37, 1.0):
                    exact = expm(q * frac)
                    scale = np.exp(hour.values * frac)[:, None]
                    via_eigen = (hour.vectors @ (scale * hour.inverse)).real
                    worst = max(worst, float(np.abs(exact - via_eigen).max()))
        return worst

"""The reference distributions an artifact records from its validation window: each head's
score histogram and the event-type mix, which live drift (PSI) is measured against.

Stored in meta.json under ``metrics["reference"]``; built by ``propensity train``, checked by
``load_model`` (a malformed one refuses the artifact with one line) and read by the worker.

Bin edges are the reference's own deciles, not equal-width bins on [0, 1]. PSI's rules of
thumb (0.1 "moderate", 0.25 "large" shift) come from credit scoring, where PSI is computed on
deciles of the reference population: each bin then holds about a tenth of the reference, so
every bin weighs alike and a shift anywhere in the ranking counts. Purchase scores sit mostly
below 0.1; on 20 equal-width bins over [0, 1] nearly all of them would fall into one or two
bins, and a drift inside that range would go unseen.
"""

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from model.serving.config import HEADS
from schemas.events import EVENT_TYPES

REFERENCE_KEY: Final = "reference"  # the key in meta.json's ``metrics``
SCORE_BINS: Final = 10  # deciles of the reference: see the module docstring
_SUM_TOLERANCE: Final = 1e-6


class ReferenceError(ValueError):
    """A reference in meta.json that is not one this build can read (one line)."""


@dataclass(frozen=True)
class ScoreHistogram:
    """Shares of the reference's scores in bins ``[edges[i], edges[i + 1])`` (the last bin
    closed); edges run from 0 to 1."""

    edges: tuple[float, ...]  # B + 1, strictly increasing, 0.0 first and 1.0 last
    shares: tuple[float, ...]  # B, summing to 1
    events: int  # reference scores the shares were counted on

    @property
    def n_bins(self) -> int:
        return len(self.shares)

    def bins_of(self, scores: np.ndarray) -> np.ndarray:
        """The bin index (0 … B-1) of each score; out-of-range scores go to the end bins."""
        inner = np.asarray(self.edges[1:-1], np.float64)
        return np.searchsorted(inner, scores, side="right").astype(np.int16)

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "shares": list(self.shares), "events": self.events}


@dataclass(frozen=True)
class DriftReference:
    """Per head, the score histogram; and the share of each event type; from one window."""

    window: str
    scores: Mapping[str, ScoreHistogram]  # by head
    event_mix: Mapping[str, float]  # by event type, every one of EVENT_TYPES, summing to 1
    events: int

    def event_mix_shares(self) -> np.ndarray:
        """The shares in EVENT_TYPES order."""
        return np.array([self.event_mix[t] for t in EVENT_TYPES], np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "events": self.events,
            "scores": {head: h.to_dict() for head, h in self.scores.items()},
            "event_mix": dict(self.event_mix),
        }


def score_histogram(scores: np.ndarray, bins: int = SCORE_BINS) -> ScoreHistogram:
    """Decile (``bins``-quantile) edges of ``scores`` and the share of them in each bin.

    Edges are observed scores (inverted-CDF quantiles), deduplicated when many scores tie,
    so no bin is empty on the reference itself.
    """
    scores = np.asarray(scores, np.float64)
    if len(scores) == 0:
        raise ReferenceError("no scores to build a reference histogram from")
    levels = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    inner = np.unique(np.quantile(scores, levels, method="inverted_cdf"))
    inner = inner[(inner > scores.min()) & (inner < 1.0)]  # the lowest bin holds the minimum
    edges = (0.0, *(float(e) for e in inner), 1.0)
    histogram = ScoreHistogram(edges, (), len(scores))
    counts = np.bincount(histogram.bins_of(scores), minlength=len(edges) - 1)
    shares = tuple(float(c) for c in counts / counts.sum())
    return ScoreHistogram(edges, shares, len(scores))


def event_mix(event_types: Sequence[str]) -> dict[str, float]:
    """The share of each of EVENT_TYPES among ``event_types``."""
    if not event_types:
        raise ReferenceError("no events to build a reference event mix from")
    counts = {t: 0 for t in EVENT_TYPES}
    for t in event_types:
        counts[t] += 1
    return {t: counts[t] / len(event_types) for t in EVENT_TYPES}


def reference_from_metrics(metrics: Mapping[str, Any]) -> DriftReference | None:
    """The reference in a meta.json ``metrics`` dict; None when it records none (artifacts
    trained before references were recorded). Raises ReferenceError when malformed."""
    raw = metrics.get(REFERENCE_KEY)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ReferenceError(f"{REFERENCE_KEY} is {type(raw).__name__}, not an object")
    scores = raw.get("scores")
    if not isinstance(scores, Mapping) or set(scores) != set(HEADS):
        raise ReferenceError(f"{REFERENCE_KEY}.scores must have exactly the heads {HEADS}")
    return DriftReference(
        window=_text(raw.get("window"), "window"),
        scores={head: _histogram(scores[head], head) for head in HEADS},
        event_mix=_event_mix(raw.get("event_mix")),
        events=_count(raw.get("events"), "events"),
    )


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ReferenceError(f"{REFERENCE_KEY}.{name} must be a string")
    return value


def _count(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ReferenceError(f"{REFERENCE_KEY}.{name} must be a positive integer, not {value!r}")
    return value


def _numbers(value: Any, name: str) -> tuple[float, ...]:
    ok = isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    )
    if not ok or not np.all(np.isfinite(np.asarray(value, np.float64))):
        raise ReferenceError(f"{REFERENCE_KEY}.{name} must be a list of finite numbers")
    return tuple(float(v) for v in value)


def _shares(values: Sequence[float], name: str) -> None:
    if any(v < 0 for v in values) or abs(sum(values) - 1.0) > _SUM_TOLERANCE:
        raise ReferenceError(f"{REFERENCE_KEY}.{name} must be non-negative shares summing to 1")


def _histogram(raw: Any, head: str) -> ScoreHistogram:
    where = f"scores.{head}"
    if not isinstance(raw, Mapping):
        raise ReferenceError(f"{REFERENCE_KEY}.{where} must be an object")
    edges = _numbers(raw.get("edges"), f"{where}.edges")
    shares = _numbers(raw.get("shares"), f"{where}.shares")
    increasing = all(a < b for a, b in itertools.pairwise(edges))
    if len(edges) < 2 or edges[0] != 0.0 or edges[-1] != 1.0 or not increasing:
        raise ReferenceError(f"{REFERENCE_KEY}.{where}.edges must increase strictly from 0 to 1")
    if len(shares) != len(edges) - 1:
        raise ReferenceError(
            f"{REFERENCE_KEY}.{where} has {len(edges)} edges but {len(shares)} shares"
        )
    _shares(shares, f"{where}.shares")
    return ScoreHistogram(edges, shares, _count(raw.get("events"), f"{where}.events"))


def _event_mix(raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping) or set(raw) != set(EVENT_TYPES):
        raise ReferenceError(f"{REFERENCE_KEY}.event_mix must have exactly the types {EVENT_TYPES}")
    shares = _numbers([raw[t] for t in EVENT_TYPES], "event_mix")
    _shares(shares, "event_mix")
    return dict(zip(EVENT_TYPES, shares, strict=True))


TEST_KEY: Final = "test"  # meta.json ``metrics``: the test window's figures per head


def test_figures_from_metrics(metrics: Mapping[str, Any]) -> dict[str, dict[str, float]] | None:
    """The test window's figures per head (``{head: {name: number}}``) in a meta.json
    ``metrics`` dict; None when it records none. Raises ReferenceError when malformed."""
    raw = metrics.get(TEST_KEY)
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) != set(HEADS):
        raise ReferenceError(f"{TEST_KEY} must have exactly the heads {HEADS}")
    out: dict[str, dict[str, float]] = {}
    for head in HEADS:
        figures = raw[head]
        if not isinstance(figures, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in figures.items()
        ):
            raise ReferenceError(f"{TEST_KEY}.{head} must map figure names to numbers")
        out[head] = {k: float(v) for k, v in figures.items()}
    return out

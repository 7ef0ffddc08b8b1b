"""Live model quality: per model version and head, figures over the last N resolved outcomes
and over the last hours of event time, from outcome records as they arrive.

Pure and Kafka-free: the worker's live-quality service and ``propensity monitor`` feed it
records and export what ``figures()`` returns.

- **Count window** (``"count"``): the last ``window_outcomes`` outcomes of the head, in
  arrival order.
- **Event-time window** (``"24h"``, the contract's label whatever ``window_ms`` is): outcomes
  whose event_ts lies within ``window_ms`` of the newest event_ts seen for the model version.
  Outcomes arrive in resolution order, not event order, so a stale row can sit behind a newer
  one: it is evicted when it reaches the front and masked out of the figures until then. The
  window also holds at most ``time_window_cap`` rows per head; the oldest leave first and are
  counted in ``cap_drops``.
- **De-duplication** (the outcome topic is at-least-once): an event id still held by any
  window of its model version is remembered, and a second copy is skipped as ``duplicate``.
  Once an outcome has left every window its id is forgotten, so memory stays bounded.
- **Bad records** are skipped with a reason (``model.monitoring.outcomes``), never raised.
"""

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np

from model.monitoring.figures import QualityFigures, quality_figures
from model.monitoring.outcomes import (
    HEADS,
    MalformedOutcome,
    Outcome,
    decode_outcome,
    parse_outcome,
)
from model.monitoring.ring import OutcomeRing, WindowArrays

COUNT_WINDOW: Final = "count"
TIME_WINDOW: Final = "24h"
WINDOWS: Final = (COUNT_WINDOW, TIME_WINDOW)
DUPLICATE: Final = "duplicate"
HOUR_MS: Final = 3_600_000


@dataclass(frozen=True)
class QualityLimits:
    """Window sizes; ``history_interval_ms`` None keeps no history (the worker needs none)."""

    window_outcomes: int = 10_000
    window_ms: int = 24 * HOUR_MS
    time_window_cap: int = 1_000_000
    history_interval_ms: int | None = None
    history_limit: int = 10_000  # snapshots kept, oldest dropped first


class WindowContents(NamedTuple):
    """A copy of one window's outcomes, to compute figures from off the event loop."""

    model_version: str
    head: str
    window: str
    arrays: WindowArrays


class WindowFigures(NamedTuple):
    model_version: str
    head: str
    window: str
    figures: QualityFigures


class Snapshot(NamedTuple):
    """Count-window figures of one head as they stood when event time reached ``event_ts``."""

    model_version: str
    head: str
    event_ts: int
    figures: QualityFigures


@dataclass
class _VersionWindows:
    """Both windows of both heads of one model version, and the ids they hold."""

    limits: QualityLimits
    newest_ts: int = -(2**62)
    held: Counter[int] = field(default_factory=Counter)  # id key -> rows holding it
    last_bucket: int | None = None  # history: event-time interval of the last snapshot
    count: dict[str, OutcomeRing] = field(init=False)
    timed: dict[str, OutcomeRing] = field(init=False)

    def __post_init__(self) -> None:
        self.count = {h: OutcomeRing(self.limits.window_outcomes) for h in HEADS}
        self.timed = {h: OutcomeRing(self.limits.time_window_cap) for h in HEADS}

    @property
    def cutoff(self) -> int:
        """Oldest event_ts inside the event-time window."""
        return self.newest_ts - self.limits.window_ms

    def release(self, key: int | None) -> None:
        if key is not None:
            self.held[key] -= 1
            if self.held[key] <= 0:
                del self.held[key]

    def add(self, outcome: Outcome, key: int) -> int:
        """Place the outcome in its windows; the number of rows dropped by the size cap."""
        self.newest_ts = max(self.newest_ts, outcome.event_ts)
        cutoff, dropped = self.cutoff, 0
        for head in HEADS:
            pair = outcome.head(head)
            if pair is None:
                continue
            score, label = pair
            self.held[key] += 1
            self.release(self.count[head].push(score, label, outcome.event_ts, key))
            if outcome.event_ts >= cutoff:
                self.held[key] += 1
                evicted = self.timed[head].push(score, label, outcome.event_ts, key)
                dropped += evicted is not None
                self.release(evicted)
        for ring in self.timed.values():
            while len(ring) and ring.oldest_event_ts() < cutoff:
                self.release(ring.pop())
        return dropped

    def contents(self, model_version: str) -> list[WindowContents]:
        out = []
        for head in HEADS:
            out.append(WindowContents(model_version, head, COUNT_WINDOW, self.count[head].arrays()))
            timed = self.timed[head].arrays()
            inside = timed.event_ts >= self.cutoff  # stale rows not yet at the front
            if not inside.all():
                timed = WindowArrays(*(a[inside] for a in timed))
            out.append(WindowContents(model_version, head, TIME_WINDOW, timed))
        return out


class LiveQuality:
    """Figures of the model's quality over windows of resolved outcomes, per model version."""

    def __init__(self, limits: QualityLimits | None = None) -> None:
        self.limits = limits or QualityLimits()
        self._versions: dict[str, _VersionWindows] = {}
        self.skipped: Counter[str] = Counter()  # reason -> records skipped
        self.accepted = 0
        self.cap_drops = 0  # rows the event-time window's size cap pushed out early
        self.revision = 0  # changes with every accepted outcome: nothing new, nothing to compute
        self.history: deque[Snapshot] = deque(maxlen=self.limits.history_limit)

    @property
    def model_versions(self) -> list[str]:
        return sorted(self._versions)

    def add_value(self, value: bytes | None) -> str | None:
        """Add one Kafka record value; the reason it was skipped, None when it counts."""
        try:
            outcome = decode_outcome(value)
        except MalformedOutcome as exc:
            self.skipped[exc.reason] += 1
            return exc.reason
        return self.add(outcome)

    def add(self, record: Outcome | Any) -> str | None:
        """Add one outcome (an Outcome or a decoded record); the reason it was skipped, if so."""
        try:
            outcome = record if isinstance(record, Outcome) else parse_outcome(record)
        except MalformedOutcome as exc:
            self.skipped[exc.reason] += 1
            return exc.reason
        windows = self._versions.get(outcome.model_version)
        if windows is None:
            windows = self._versions[outcome.model_version] = _VersionWindows(self.limits)
        key = hash(outcome.event_id)  # 64-bit, this process only; a collision skips one record
        if key in windows.held:
            self.skipped[DUPLICATE] += 1
            return DUPLICATE
        self._maybe_snapshot(outcome.model_version, windows, outcome.event_ts)
        self.cap_drops += windows.add(outcome, key)
        self.accepted += 1
        self.revision += 1
        return None

    def windows(self) -> list[WindowContents]:
        """Copies of every window (cheap), to compute figures from elsewhere."""
        return [c for v, w in sorted(self._versions.items()) for c in w.contents(v)]

    def figures(self) -> list[WindowFigures]:
        return figures_of(self.windows())

    def held_ids(self, model_version: str) -> int:
        """Event ids remembered for de-duplication (those still in a window)."""
        windows = self._versions.get(model_version)
        return 0 if windows is None else len(windows.held)

    def _maybe_snapshot(self, version: str, windows: _VersionWindows, event_ts: int) -> None:
        interval = self.limits.history_interval_ms
        if interval is None:
            return
        bucket = max(windows.newest_ts, event_ts) // interval
        if windows.last_bucket is not None and bucket > windows.last_bucket:
            self.snapshot(version, at=bucket * interval)
        if windows.last_bucket is None or bucket > windows.last_bucket:
            windows.last_bucket = bucket

    def snapshot(self, model_version: str, at: int | None = None) -> None:
        """Record the count-window figures of ``model_version`` now (event time ``at``,
        default the newest event_ts seen) in ``history``."""
        windows = self._versions[model_version]
        at = windows.newest_ts if at is None else at
        for head in HEADS:
            arrays = windows.count[head].arrays()
            figures = quality_figures(arrays.scores, arrays.labels)
            self.history.append(Snapshot(model_version, head, at, figures))


def figures_of(contents: list[WindowContents]) -> list[WindowFigures]:
    """Figures of each window; safe to run in a thread (only copies are read)."""
    return [
        WindowFigures(
            c.model_version, c.head, c.window, quality_figures(c.arrays.scores, c.arrays.labels)
        )
        for c in contents
    ]


def as_arrays(outcomes: list[Outcome], head: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of the outcomes that count for ``head``, in order: what offline
    evaluation would be handed for the same records."""
    pairs = [p for p in (o.head(head) for o in outcomes) if p is not None]
    scores = np.array([s for s, _ in pairs], np.float64)
    labels = np.array([y for _, y in pairs], np.int8)
    return scores, labels

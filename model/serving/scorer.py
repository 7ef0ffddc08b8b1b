"""Batched, incremental scoring of event streams: one model step per event, many users at once.

Shared by the streaming worker and the offline scorer, so both give the same numbers.
"""

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from model.serving.export import LoadedModel
from model.serving.user_state import (
    EncoderState,
    EventRecord,
    UserState,
    decode_state,
    encode_records,
    encode_step,
    model_tag,
    record_from_event,
    records_to_sequence,
    sequence_records,
)
from schemas.events import ShopEvent


class Score(NamedTuple):
    """A user's calibrated propensities right after one event."""

    purchase: float
    cart_abandon: float | None  # None when the cart is empty after the event
    cart_items: int


# Where an input record came from: (source_id(topic, partition), offset). Offline scoring has
# none; the stream passes one per event so that a redelivered record changes nothing.
Position = tuple[int, int]


class SequenceScorer:
    """Applies events to user states and scores them with a loaded TorchScript model."""

    def __init__(self, model: LoadedModel, window_size: int = 64, ttl_ms: int = 7 * 86_400_000):
        if window_size < 1:
            raise ValueError("window_size must be >= 1")
        config = model.config
        self.module = model.module
        self.model_version = model.meta.model_version
        self.tag = model_tag(self.model_version)
        self.window_size = window_size
        self.ttl_ms = ttl_ms
        self.n_features = config.n_features
        self.context = config.kernel_size - 1
        self.hidden = config.hidden_size
        self.rebuilds = 0

    def new_state(self, now_ms: int) -> UserState:
        return UserState(
            model_tag=self.tag,
            updated_ms=now_ms,
            encoder=EncoderState(),
            window=np.zeros((self.context, self.n_features), np.float32),
            h=np.zeros(self.hidden, np.float32),
            c=np.zeros(self.hidden, np.float32),
            sequence=b"",
        )

    def load(self, raw: bytes | None) -> UserState | None:
        """Decode a stored state; None when absent or of an incompatible shape."""
        if raw is None:
            return None
        try:
            state = decode_state(raw, self.n_features)
        except ValueError:
            return None
        if state.window.shape[0] != self.context or state.h.shape[0] != self.hidden:
            # Stored by a model of another shape: keep the events, rebuild the state.
            state.model_tag = 0
        return state

    def _rebuild(
        self, state: UserState, record: EventRecord, now_ms: int
    ) -> tuple[UserState, Score]:
        """Place ``record`` by event time in the window and recompute everything from it."""
        records = sequence_records(state.sequence)
        position = bisect.bisect_right([r.ts for r in records], record.ts)
        records.insert(position, record)
        records = records[-self.window_size :]
        features, encoder, _ = encode_records(records)
        fresh = self.new_state(now_ms)
        with torch.inference_mode():
            probs, window, h, c = self.module.run(
                torch.from_numpy(features).unsqueeze(0),
                torch.from_numpy(fresh.window).unsqueeze(0),
                torch.from_numpy(fresh.h).unsqueeze(0),
                torch.from_numpy(fresh.c).unsqueeze(0),
            )
        self.rebuilds += 1
        rebuilt = UserState(
            model_tag=self.tag,
            updated_ms=now_ms,
            encoder=encoder,
            window=window[0].numpy(),
            h=h[0].numpy(),
            c=c[0].numpy(),
            sequence=records_to_sequence(records),
            applied=state.applied,
        )
        if _non_finite_rows(window, h, c):
            return rebuilt, _NON_FINITE
        last = probs[0, -1].tolist()
        return rebuilt, self._score(last, encoder.cart_items)

    @staticmethod
    def _score(probs: list[float], cart_items: int) -> Score:
        return Score(probs[0], probs[1] if cart_items > 0 else None, cart_items)

    def _append(self, state: UserState, record: EventRecord) -> list[float]:
        state.append(record, self.window_size)
        return encode_step(state.encoder, record)

    def score(
        self,
        events: Sequence[ShopEvent],
        states: dict[str, UserState],
        now_ms: int,
        positions: Sequence[Position] | None = None,
    ) -> list[Score | None]:
        """Apply ``events`` (arrival order) to ``states`` (updated in place); one Score each.

        With ``positions``, an event whose record the user's state has already applied (a
        redelivery after a restart or rebalance) changes nothing and gets None.

        An event after which the user's network state is NaN or infinite gets a NaN score.

        Each user's events in the batch form a segment that continues from the stored state;
        segments of equal length run through the network together, so a batch costs one call
        per distinct segment length rather than one per event or per repeat of a user.
        """
        scores: list[Score | None] = [None] * len(events)
        by_length: dict[int, list[_Segment]] = {}
        for user, indices in _by_user(events).items():
            user_positions = None if positions is None else [positions[i] for i in indices]
            segment = self._advance(
                user, [events[i] for i in indices], indices, user_positions, states, now_ms, scores
            )
            if segment.rows:
                by_length.setdefault(len(segment.rows), []).append(segment)
        for segments in by_length.values():
            self._run(segments, scores)
        return scores

    def _advance(
        self,
        user: str,
        user_events: list[ShopEvent],
        indices: list[int],
        positions: list[Position] | None,
        states: dict[str, UserState],
        now_ms: int,
        scores: list[Score | None],
    ) -> "_Segment":
        """Encode one user's events in order; rebuilds and TTL resets end a segment early."""
        state = states.get(user)
        segment = _Segment(state) if state is not None else _Segment(self.new_state(now_ms))
        for n, (i, event) in enumerate(zip(indices, user_events, strict=True)):
            state = segment.state
            if positions is not None and state.already_applied(*positions[n]):
                continue
            record = record_from_event(event)
            expired = state.sequence and record.ts - state.last_ts > self.ttl_ms
            rebuild = state.model_tag != self.tag or (state.sequence and record.ts < state.last_ts)
            if (expired or rebuild) and segment.rows:
                self._run([segment], scores)  # score what is pending before the state changes
                segment = _Segment(segment.state)
            if expired:
                fresh = self.new_state(now_ms)
                fresh.applied = state.applied
                segment = _Segment(fresh)
                state = fresh
                rebuild = state.model_tag != self.tag
            if rebuild:
                state, scores[i] = self._rebuild(state, record, now_ms)
                segment = _Segment(state)
            else:
                state.updated_ms = now_ms
                segment.add(i, self._append(state, record), state.encoder.cart_items)
            if positions is not None:
                state.mark_applied(*positions[n])
        states[user] = segment.state
        return segment

    def _run(self, segments: list["_Segment"], scores: list[Score | None]) -> None:
        """Run equal-length segments from their states; store scores and the new states."""
        x = torch.from_numpy(np.array([seg.rows for seg in segments], np.float32))  # (B, T, F)
        window = torch.from_numpy(np.stack([seg.state.window for seg in segments]))
        h = torch.from_numpy(np.stack([seg.state.h for seg in segments]))
        c = torch.from_numpy(np.stack([seg.state.c for seg in segments]))
        with torch.inference_mode():
            probs, window, h, c = self.module.run(x, window, h, c)
        probs_list = probs.tolist()
        bad_states = _non_finite_rows(window, h, c)
        window_np, h_np, c_np = window.numpy(), h.numpy(), c.numpy()
        for b, seg in enumerate(segments):
            seg.state.window, seg.state.h, seg.state.c = window_np[b], h_np[b], c_np[b]
            for t, (i, cart_items) in enumerate(zip(seg.indices, seg.carts, strict=True)):
                scores[i] = self._score(probs_list[b][t], cart_items)
            if b in bad_states:
                scores[seg.indices[-1]] = _NON_FINITE
        for seg in segments:
            seg.rows, seg.indices, seg.carts = [], [], []


# Reported for an event after which the network's state is not finite, so that callers that
# refuse non-finite scores also refuse a state that would poison the user's later events.
_NON_FINITE = Score(math.nan, None, 0)


def _non_finite_rows(window: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> set[int]:
    """Batch rows whose state holds a NaN or an infinity (one vectorised check per call)."""
    finite = torch.isfinite(h).all(1) & torch.isfinite(c).all(1)
    finite &= torch.isfinite(window).flatten(1).all(1)
    if bool(finite.all()):
        return set()
    return {int(b) for b in torch.nonzero(~finite).flatten()}


class _Segment:
    """Consecutive events of one user, encoded and waiting for one network call."""

    __slots__ = ("carts", "indices", "rows", "state")

    def __init__(self, state: UserState) -> None:
        self.state = state
        self.rows: list[list[float]] = []
        self.indices: list[int] = []
        self.carts: list[int] = []

    def add(self, index: int, row: list[float], cart_items: int) -> None:
        self.rows.append(row)
        self.indices.append(index)
        self.carts.append(cart_items)


def _by_user(events: Sequence[ShopEvent]) -> dict[str, list[int]]:
    """Indices of each user's events, in arrival order."""
    grouped: dict[str, list[int]] = {}
    for i, event in enumerate(events):
        grouped.setdefault(event.user_id, []).append(i)
    return grouped


def score_offline(
    scorer: SequenceScorer, events: Iterable[ShopEvent], batch_size: int = 512
) -> list[Score]:
    """Score events in arrival order exactly as the stream would (same state machine)."""
    states: dict[str, UserState] = {}
    scores: list[Score] = []
    batch: list[ShopEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) >= batch_size:
            scores.extend(_all_scored(scorer.score(batch, states, 0)))
            batch = []
    if batch:
        scores.extend(_all_scored(scorer.score(batch, states, 0)))
    return scores


def _all_scored(scores: list[Score | None]) -> list[Score]:
    """Without positions nothing is skipped: every event has a score."""
    return [s for s in scores if s is not None]

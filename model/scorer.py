"""Batched, incremental scoring of event streams: one model step per event, many users at once.

Shared by the streaming worker and the offline scorer, so both give the same numbers.
"""

import bisect
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from model.export import LoadedModel
from model.features import EncoderState, EventRecord, encode_records, encode_step, record_from_event
from model.user_state import (
    UserState,
    decode_state,
    model_tag,
    records_to_sequence,
    sequence_records,
)
from schemas.events import ShopEvent


class Score(NamedTuple):
    """A user's calibrated propensities right after one event."""

    purchase: float
    cart_abandon: float | None  # None when the cart is empty after the event
    cart_items: int


def _waves(events: Sequence[ShopEvent]) -> list[list[int]]:
    """Split a batch so that each user appears at most once per wave, in arrival order."""
    seen: dict[str, int] = {}
    waves: list[list[int]] = []
    for i, event in enumerate(events):
        depth = seen.get(event.user_id, 0)
        seen[event.user_id] = depth + 1
        if depth == len(waves):
            waves.append([])
        waves[depth].append(i)
    return waves


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
        )
        last = probs[0, -1].tolist()
        return rebuilt, self._score(last, encoder.cart_items)

    @staticmethod
    def _score(probs: list[float], cart_items: int) -> Score:
        return Score(probs[0], probs[1] if cart_items > 0 else None, cart_items)

    def _append(self, state: UserState, record: EventRecord) -> list[float]:
        state.append(record, self.window_size)
        return encode_step(state.encoder, record)

    def score(
        self, events: Sequence[ShopEvent], states: dict[str, UserState], now_ms: int
    ) -> list[Score]:
        """Apply ``events`` (arrival order) to ``states`` (updated in place); one Score each."""
        scores: list[Score | None] = [None] * len(events)
        for wave in _waves(events):
            stepped: list[tuple[int, UserState, list[float]]] = []
            for i in wave:
                event = events[i]
                record = record_from_event(event)
                state = states.get(event.user_id)
                if state is None or (state.sequence and record.ts - state.last_ts > self.ttl_ms):
                    state = self.new_state(now_ms)
                if state.model_tag != self.tag or (state.sequence and record.ts < state.last_ts):
                    state, scores[i] = self._rebuild(state, record, now_ms)
                else:
                    state.updated_ms = now_ms
                    stepped.append((i, state, self._append(state, record)))
                states[event.user_id] = state
            if stepped:
                self._step(stepped, scores)
        return [s for s in scores if s is not None]

    def _step(
        self, stepped: list[tuple[int, UserState, list[float]]], scores: list[Score | None]
    ) -> None:
        x = torch.from_numpy(np.array([row for _, _, row in stepped], np.float32)).unsqueeze(1)
        window = torch.from_numpy(np.stack([s.window for _, s, _ in stepped]))
        h = torch.from_numpy(np.stack([s.h for _, s, _ in stepped]))
        c = torch.from_numpy(np.stack([s.c for _, s, _ in stepped]))
        with torch.inference_mode():
            probs, window, h, c = self.module.run(x, window, h, c)
        probs_list = probs[:, 0, :].tolist()
        window_np, h_np, c_np = window.numpy(), h.numpy(), c.numpy()
        for j, (i, state, _) in enumerate(stepped):
            state.window, state.h, state.c = window_np[j], h_np[j], c_np[j]
            scores[i] = self._score(probs_list[j], state.encoder.cart_items)


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
            scores.extend(scorer.score(batch, states, 0))
            batch = []
    if batch:
        scores.extend(scorer.score(batch, states, 0))
    return scores

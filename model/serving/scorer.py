"""Batched, incremental scoring of event streams: one model step per event, many users at once.

Shared by the streaming worker and the offline scorer, so both give the same numbers.
"""

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import torch

from model.serving.export import LoadedModel
from model.serving.user_state import (
    DEFAULT_USER_TTL_MS,
    DEFAULT_WINDOW_SIZE,
    FEATURES,
    FeatureSpec,
    StateMachine,
    UserState,
    model_tag,
    record_from_event,
)
from schemas.events import ShopEvent


class Score(NamedTuple):
    """A user's calibrated propensities right after one event."""

    purchase: float
    cart_abandon: float | None  # None when the cart is empty after the event
    cart_items: int
    cart_value: float = 0.0  # sum of quantity x price over the cart after the event


# Where an input record came from: (source_id(topic, partition), offset). Offline scoring has
# none; the stream passes one per event so that a redelivered record changes nothing.
Position = tuple[int, int]


class SequenceNetwork(Protocol):
    """What the scorer runs: the exported network's ``run`` (or a test's stand-in)."""

    def run(
        self, x: torch.Tensor, window: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]: ...


class SequenceScorer:
    """Runs a loaded TorchScript model over what the user-state machine gives it, many users
    at once; the states themselves (new, stored, advanced, rebuilt) are the machine's."""

    def __init__(
        self,
        model: LoadedModel,
        window_size: int = DEFAULT_WINDOW_SIZE,
        ttl_ms: int = DEFAULT_USER_TTL_MS,
        features: FeatureSpec = FEATURES,
    ):
        config = model.config
        if config.n_features != features.n_features:
            raise ValueError(
                f"the model reads {config.n_features} features, the encoder gives "
                f"{features.n_features}"
            )
        self.module: SequenceNetwork = model.module
        self.model_version = model.meta.model_version
        self.machine = StateMachine(
            model_tag(self.model_version),
            context=config.kernel_size - 1,
            hidden=config.hidden_size,
            window_size=window_size,
            ttl_ms=ttl_ms,
            features=features,
        )
        self.n_features = config.n_features
        self.rebuilds = 0

    def new_state(self, now_ms: int) -> UserState:
        return self.machine.new(now_ms)

    def load(self, raw: bytes | None) -> UserState | None:
        """Decode a stored state; None when absent or of an incompatible shape."""
        return self.machine.load(raw)

    def _run_rebuilt(self, state: UserState, features: np.ndarray) -> Score:
        """Run a rebuilt window (T, F) from its zero network state; the last event's score."""
        with torch.inference_mode():
            probs, window, h, c = self.module.run(
                torch.from_numpy(features).unsqueeze(0),
                torch.from_numpy(state.window).unsqueeze(0),
                torch.from_numpy(state.h).unsqueeze(0),
                torch.from_numpy(state.c).unsqueeze(0),
            )
        self.rebuilds += 1
        state.window, state.h, state.c = window[0].numpy(), h[0].numpy(), c[0].numpy()
        if _non_finite_rows(window, h, c):
            return _NON_FINITE
        cart = (state.encoder.cart_items, state.encoder.cart_value)
        return self._score(probs[0, -1].tolist(), cart)

    @staticmethod
    def _score(probs: list[float], cart: tuple[int, float]) -> Score:
        items, value = cart
        return Score(probs[0], probs[1] if items > 0 else None, items, value)

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
        """Apply one user's events in order; a rebuild or a TTL reset ends a segment early."""
        state = states.get(user)
        segment = _Segment(state) if state is not None else _Segment(self.new_state(now_ms))
        for n, (i, event) in enumerate(zip(indices, user_events, strict=True)):
            if positions is not None and segment.state.already_applied(*positions[n]):
                continue
            applied = self.machine.apply(segment.state, record_from_event(event), now_ms)
            if applied.state is not segment.state:  # expired or rebuilt: a new state
                if segment.rows:
                    self._run([segment], scores)  # score what is pending on the old one
                segment = _Segment(applied.state)
            if applied.rebuilt:
                scores[i] = self._run_rebuilt(applied.state, np.asarray(applied.rows))
            else:
                (row,) = applied.rows
                encoder = applied.state.encoder
                segment.add(i, row, (encoder.cart_items, encoder.cart_value))
            if positions is not None:
                applied.state.mark_applied(*positions[n])
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
            for t, (i, cart) in enumerate(zip(seg.indices, seg.carts, strict=True)):
                scores[i] = self._score(probs_list[b][t], cart)
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
        self.rows: list[Sequence[float]] = []
        self.indices: list[int] = []
        self.carts: list[tuple[int, float]] = []  # cart items and value after each event

    def add(self, index: int, row: Sequence[float], cart: tuple[int, float]) -> None:
        self.rows.append(row)
        self.indices.append(index)
        self.carts.append(cart)


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

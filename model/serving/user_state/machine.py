"""One user's state machine: a new state, a stored one, and the change one event makes.

An event is appended to the user's rolling sequence and folded through the encoder, unless
the state cannot simply continue: after a silence longer than the TTL the user starts
afresh (only the applied offsets are kept), and when the state was written for another
model or the event is older than the user's latest, the encoder's memory is rebuilt from
the stored sequence with the event put in its place by event time. The network's part of
the state (convolution context, h, c) is the scorer's to compute from the features given.
"""

import bisect
from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np

from model.serving.user_state.encoder import FEATURES, FeatureSpec
from model.serving.user_state.layout import decode_state
from model.serving.user_state.records import EventRecord, records_to_sequence, sequence_records
from model.serving.user_state.state import UserState
from schemas.units import DAY_MS

DEFAULT_WINDOW_SIZE: Final = 64  # events kept per user in the rolling sequence
DEFAULT_USER_TTL_MS: Final = 7 * DAY_MS  # a user silent longer than this starts afresh


class Applied(NamedTuple):
    """What one event did to a user's state, and what the network has to run next."""

    state: UserState  # to continue from: the state given, advanced, or a new one
    # Feature rows to run from ``state``'s network state: the event's one row, or, when
    # ``rebuilt``, every row of the rebuilt window ((T, F) float32), the event's last.
    rows: list[Sequence[float]] | np.ndarray
    rebuilt: bool  # the network state is zero and must be run over ``rows`` now


class StateMachine:
    """Creates, loads and advances user states for one model (tag and network shape)."""

    def __init__(
        self,
        model_tag: int,
        context: int,
        hidden: int,
        window_size: int = DEFAULT_WINDOW_SIZE,
        ttl_ms: int = DEFAULT_USER_TTL_MS,
        features: FeatureSpec = FEATURES,
    ) -> None:
        if window_size < 1:
            raise ValueError("window_size must be >= 1")
        self.tag = model_tag
        self.context = context  # rows of the causal convolution's context (kernel size - 1)
        self.hidden = hidden
        self.window_size = window_size
        self.ttl_ms = ttl_ms
        self.features = features

    @property
    def n_features(self) -> int:
        return self.features.n_features

    def new(self, now_ms: int) -> UserState:
        """A user's state before any event."""
        return UserState(
            model_tag=self.tag,
            updated_ms=now_ms,
            encoder=self.features.new_state(),
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
            state = decode_state(raw, self.n_features, self.features.state_type)
        except ValueError:
            return None
        if state.window.shape[0] != self.context or state.h.shape[0] != self.hidden:
            # Stored by a model of another shape: keep the events, rebuild the state.
            state.model_tag = 0
        return state

    def apply(self, state: UserState, record: EventRecord, now_ms: int) -> Applied:
        """Apply one event to ``state``: advanced in place, or replaced by a new state."""
        if state.sequence and record.ts - state.last_ts > self.ttl_ms:
            fresh = self.new(now_ms)
            fresh.applied = state.applied
            return self._append(fresh, record, now_ms)
        if state.model_tag != self.tag or (state.sequence and record.ts < state.last_ts):
            return self.rebuild(state, record, now_ms)
        return self._append(state, record, now_ms)

    def _append(self, state: UserState, record: EventRecord, now_ms: int) -> Applied:
        state.updated_ms = now_ms
        state.append(record, self.window_size)
        return Applied(state, [self.features.step(state.encoder, record)], rebuilt=False)

    def rebuild(self, state: UserState, record: EventRecord, now_ms: int) -> Applied:
        """Place ``record`` by event time in the window and recompute the encoder from it."""
        records = sequence_records(state.sequence)
        position = bisect.bisect_right([r.ts for r in records], record.ts)
        records.insert(position, record)
        records = records[-self.window_size :]
        rows, encoder, _ = self.features.fold(records)
        rebuilt = self.new(now_ms)
        rebuilt.encoder = encoder
        rebuilt.sequence = records_to_sequence(records)
        rebuilt.applied = state.applied
        return Applied(rebuilt, rows, rebuilt=True)

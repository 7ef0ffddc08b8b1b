"""The scoring step: one micro-batch of input records -> propensities, dead letters, new states.

One pure function, ``score_batch``: no Faust, no Kafka, no metrics. The agent gathers the
records, passes the table's read, and publishes, stores and observes what it returns.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from model.serving.scorer import Position, Score, SequenceScorer
from model.serving.user_state import UserState, encode_state, source_id
from schemas.events import DEFAULT_MAX_FUTURE_MS, ShopEvent, decode_event
from schemas.exceptions import InvalidEvent
from schemas.outputs import (
    DLQ_HEADER_KEY_TRUNCATED,
    DLQ_HEADER_VALUE_TRUNCATED,
    dlq_headers,
    encode,
    propensity_event,
)


@dataclass(frozen=True, slots=True)
class InputRecord:
    """A consumed Kafka record, as much of it as processing needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None  # Kafka record timestamp, epoch ms
    consumed_at: float  # time.time() when the worker received it


@dataclass(frozen=True, slots=True)
class OutputRecord:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None


# A dead letter keeps the original bytes, but never more than this: an oversized record copied
# whole could exceed the producer's request size and stop every publication.
MAX_DLQ_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: InputRecord
    reason: str
    detail: str
    max_value_bytes: int | None = None  # keep at most this prefix of the value (oversized input)

    @property
    def output(self) -> OutputRecord:
        """The record for the dead-letter topic: the original bytes, cut when oversized."""
        r = self.record
        headers = dlq_headers(
            reason=self.reason,
            detail=self.detail,
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            timestamp=r.timestamp,
        )
        key, value = r.key, r.value
        if key is not None and len(key) > MAX_DLQ_KEY_BYTES:
            headers.append((DLQ_HEADER_KEY_TRUNCATED, str(len(key)).encode()))
            key = key[:MAX_DLQ_KEY_BYTES]
        limit = self.max_value_bytes
        if value is not None and limit is not None and len(value) > limit:
            headers.append((DLQ_HEADER_VALUE_TRUNCATED, str(len(value)).encode()))
            value = value[:limit]
        return OutputRecord(key, value, headers)


@dataclass(frozen=True, slots=True)
class ScoredEvent:
    record: InputRecord
    event: ShopEvent
    score: Score
    output: OutputRecord  # the propensity event, keyed by user id


class NewState(NamedTuple):
    partition: int  # the input partition the user's records came from (co-partitioned table)
    state: bytes  # encoded UserState


@dataclass(slots=True)
class BatchResult:
    """Every record of the batch is in exactly one of scored, dead_letters and redelivered."""

    scored: list[ScoredEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    states: dict[str, NewState] = field(default_factory=dict)  # user -> state to store
    # Records whose effect the user's state already holds (redelivered): nothing published.
    redelivered: list[InputRecord] = field(default_factory=list)
    rebuilds: int = 0  # user states recomputed from their stored sequence

    @property
    def size(self) -> int:
        """Records in the batch."""
        return len(self.scored) + len(self.dead_letters) + len(self.redelivered)


# The table's read: a user's stored state (bytes), None when it has none.
StateReader = Callable[[str], bytes | None]


@dataclass(frozen=True, slots=True)
class StepConfig:
    """The input contract's limits, and the horizon every propensity event states."""

    max_event_bytes: int
    horizon_ms: int
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS


def decode_record(
    record: InputRecord,
    max_bytes: int,
    now_ms: int | None = None,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
) -> ShopEvent:
    """Decode and check one record; the Kafka key must be the user id (co-partitioning)."""
    event = decode_event(record.value, max_bytes, now_ms=now_ms, max_future_ms=max_future_ms)
    if record.key is None or record.key != event.user_id.encode("utf-8"):
        raise InvalidEvent(
            "key_mismatch", f"Kafka key {record.key!r} is not the event's user_id {event.user_id!r}"
        )
    return event


def dead_letter_for(record: InputRecord, exc: Exception, max_bytes: int) -> DeadLetter:
    """The dead letter of a record that failed to decode, for any exception: decoding is total."""
    if isinstance(exc, InvalidEvent):
        keep = max_bytes if exc.reason == "oversized" else None
        return DeadLetter(record, exc.reason, exc.detail, max_value_bytes=keep)
    detail = f"unforeseen {type(exc).__name__} while decoding: {exc}"
    return DeadLetter(record, "internal_error", detail, max_value_bytes=max_bytes)


def score_batch(
    records: Sequence[InputRecord],
    read_state: StateReader,
    scorer: SequenceScorer,
    config: StepConfig,
    now_ms: int,
) -> BatchResult:
    """Validate, score and build the outputs of one micro-batch (arrival order kept).

    Every record ends as exactly one of: a scored event, a dead letter, or a redelivery that
    the user's state already holds. A decoding failure of any kind is the record's dead
    letter; a failure while scoring is not the input's fault and propagates.
    """
    result = BatchResult()
    rebuilds_before = scorer.rebuilds
    valid: list[tuple[InputRecord, ShopEvent]] = []
    for record in records:
        try:
            event = decode_record(record, config.max_event_bytes, now_ms, config.max_future_ms)
            valid.append((record, event))
        except Exception as exc:  # totality: every record is answered, whatever went wrong
            result.dead_letters.append(dead_letter_for(record, exc, config.max_event_bytes))
    if not valid:
        return result
    states: dict[str, UserState] = {}
    partitions: dict[str, int] = {}
    for record, event in valid:
        if event.user_id not in partitions:
            partitions[event.user_id] = record.partition
            loaded = scorer.load(read_state(event.user_id))
            if loaded is not None:
                states[event.user_id] = loaded
    events = [event for _, event in valid]
    positions = [(source_id(r.topic, r.partition), r.offset) for r, _ in valid]
    scores = scorer.score(events, states, now_ms, positions)
    unsafe = _users_with_non_finite(events, scores)
    for user in unsafe:
        states.pop(user, None)
        safe = _rescore_one_by_one(user, events, positions, scores, scorer, read_state, now_ms)
        if safe is not None:
            states[user] = safe
    changed: set[str] = set()
    for (record, event), score in zip(valid, scores, strict=True):
        if score is None:
            result.redelivered.append(record)
        elif not _finite(score):
            detail = f"the model gave {score.purchase!r}/{score.cart_abandon!r}: state kept"
            result.dead_letters.append(DeadLetter(record, "non_finite_score", detail))
        else:
            changed.add(event.user_id)
            result.scored.append(_scored(record, event, score, scorer, config, now_ms))
    for user in changed:
        result.states[user] = NewState(partitions[user], encode_state(states[user]))
    result.rebuilds = scorer.rebuilds - rebuilds_before
    return result


def _scored(
    record: InputRecord,
    event: ShopEvent,
    score: Score,
    scorer: SequenceScorer,
    config: StepConfig,
    now_ms: int,
) -> ScoredEvent:
    message = propensity_event(
        user_id=event.user_id,
        purchase=score.purchase,
        cart_abandon=score.cart_abandon,
        cart_items=score.cart_items,
        cart_value=round(score.cart_value, 2),
        model_version=scorer.model_version,
        horizon_ms=config.horizon_ms,
        event_id=event.event_id or f"{record.topic}/{record.partition}/{record.offset}",
        event_type=event.event_type,
        event_ts=event.ts,
        input_ts=record.timestamp,
        scored_at=now_ms,
    )
    output = OutputRecord(event.user_id.encode("utf-8"), encode(message))
    return ScoredEvent(record, event, score, output)


def _finite(score: Score) -> bool:
    return math.isfinite(score.purchase) and (
        score.cart_abandon is None or math.isfinite(score.cart_abandon)
    )


def _users_with_non_finite(events: Sequence[ShopEvent], scores: Sequence[Score | None]) -> set[str]:
    """Users with a NaN or infinite score (the scorer reports a state gone bad that way too)."""
    return {e.user_id for e, s in zip(events, scores, strict=True) if s and not _finite(s)}


def _rescore_one_by_one(
    user: str,
    events: Sequence[ShopEvent],
    positions: Sequence[Position],
    scores: list[Score | None],
    scorer: SequenceScorer,
    read_state: StateReader,
    now_ms: int,
) -> UserState | None:
    """Score a user's events again from the stored state, one at a time, keeping only the
    steps whose score and state are finite: one poisoned event must not poison the user.

    Fills ``scores`` in place (a non-finite score marks the event's dead letter) and returns
    the user's state after the accepted events (None when nothing was accepted).
    """
    state = scorer.load(read_state(user))
    for i, event in enumerate(events):
        if event.user_id != user:
            continue
        trial: dict[str, UserState] = {}
        if state is not None:
            copied = scorer.load(encode_state(state))
            if copied is not None:
                trial[user] = copied
        (score,) = scorer.score([event], trial, now_ms, [positions[i]])
        scores[i] = score
        if score is not None and _finite(score):
            state = trial[user]
    return state

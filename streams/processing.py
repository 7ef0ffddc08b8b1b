"""One micro-batch of raw input records -> propensity events, dead letters and new user states.

Pure of Faust: the agent reads the table, calls ``process_batch`` and writes back what it returns.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from model.scorer import SequenceScorer
from model.user_state import UserState, encode_state
from schemas.events import ShopEvent, decode_event
from schemas.exceptions import InvalidEvent
from schemas.outputs import dlq_headers, encode, propensity_event


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


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: InputRecord
    reason: str
    detail: str

    def to_output(self) -> OutputRecord:
        r = self.record
        headers = dlq_headers(
            reason=self.reason,
            detail=self.detail,
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            timestamp=r.timestamp,
        )
        return OutputRecord(r.key, r.value, headers)


@dataclass(slots=True)
class ScoredEvent:
    record: InputRecord
    event: ShopEvent
    message: dict[str, object]


@dataclass(slots=True)
class BatchResult:
    scored: list[ScoredEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    states: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # user -> (partition, state)


def decode_record(record: InputRecord, max_bytes: int) -> ShopEvent:
    """Decode and check one record; the Kafka key must be the user id (co-partitioning)."""
    event = decode_event(record.value, max_bytes)
    if record.key is None or record.key != event.user_id.encode("utf-8"):
        raise InvalidEvent(
            "key_mismatch", f"Kafka key {record.key!r} is not the event's user_id {event.user_id!r}"
        )
    return event


def process_batch(
    records: Sequence[InputRecord],
    *,
    scorer: SequenceScorer,
    load_state: Callable[[str], UserState | None],
    max_event_bytes: int,
    horizon_ms: int,
    clock: Callable[[], float] = time.time,
) -> BatchResult:
    """Validate, score and build the outputs of one micro-batch (arrival order kept)."""
    result = BatchResult()
    valid: list[tuple[InputRecord, ShopEvent]] = []
    for record in records:
        try:
            valid.append((record, decode_record(record, max_event_bytes)))
        except InvalidEvent as exc:
            result.dead_letters.append(DeadLetter(record, exc.reason, exc.detail))
    if not valid:
        return result
    states: dict[str, UserState] = {}
    partitions: dict[str, int] = {}
    for record, event in valid:
        if event.user_id not in partitions:
            partitions[event.user_id] = record.partition
            loaded = load_state(event.user_id)
            if loaded is not None:
                states[event.user_id] = loaded
    now_ms = int(clock() * 1000)
    events = [event for _, event in valid]
    scores = scorer.score(events, states, now_ms)
    for (record, event), score in zip(valid, scores, strict=True):
        message = propensity_event(
            user_id=event.user_id,
            purchase=score.purchase,
            cart_abandon=score.cart_abandon,
            cart_items=score.cart_items,
            model_version=scorer.model_version,
            horizon_ms=horizon_ms,
            event_id=event.event_id or f"{record.topic}/{record.partition}/{record.offset}",
            event_type=event.event_type,
            event_ts=event.ts,
            input_ts=record.timestamp,
            scored_at=now_ms,
        )
        result.scored.append(ScoredEvent(record, event, message))
    for user, state in states.items():
        result.states[user] = (partitions[user], encode_state(state))
    return result


def output_records(result: BatchResult) -> list[OutputRecord]:
    """The propensity events of a batch, keyed by user id."""
    return [OutputRecord(s.event.user_id.encode("utf-8"), encode(s.message)) for s in result.scored]


def stored_state(
    load: Callable[[str], bytes | None], scorer: SequenceScorer
) -> Callable[[str], UserState | None]:
    """Adapt a raw-bytes table lookup to the state loader process_batch wants."""

    def load_state(user: str) -> UserState | None:
        return scorer.load(load(user))

    return load_state

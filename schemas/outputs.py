"""Output messages: the propensity event and the dead-letter record's headers."""

from typing import Any, Final

import orjson

# The DLQ record keeps the original key and value bytes untouched; these headers say why.
DLQ_HEADER_REASON: Final = "dlq.reason"
DLQ_HEADER_DETAIL: Final = "dlq.detail"
DLQ_HEADER_TOPIC: Final = "dlq.source.topic"
DLQ_HEADER_PARTITION: Final = "dlq.source.partition"
DLQ_HEADER_OFFSET: Final = "dlq.source.offset"
DLQ_HEADER_TIMESTAMP: Final = "dlq.source.timestamp"
# Present when the record was cut to a prefix; the value is the original size in bytes.
DLQ_HEADER_VALUE_TRUNCATED: Final = "dlq.value.truncated"
DLQ_HEADER_KEY_TRUNCATED: Final = "dlq.key.truncated"


def propensity_event(
    *,
    user_id: str,
    purchase: float,
    cart_abandon: float | None,
    cart_items: int,
    model_version: str,
    horizon_ms: int,
    event_id: str,
    event_type: str,
    event_ts: int,
    input_ts: int | None,
    scored_at: int,
) -> dict[str, Any]:
    """The propensity event as a JSON object (see schemas/json/propensity_event.schema.json)."""
    return {
        "user_id": user_id,
        "scores": {"purchase": purchase, "cart_abandon": cart_abandon},
        "cart_items": cart_items,
        "model_version": model_version,
        "horizon_ms": horizon_ms,
        "event_id": event_id,
        "event_type": event_type,
        "event_ts": event_ts,
        "input_ts": input_ts,
        "scored_at": scored_at,
    }


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def dlq_headers(
    *, reason: str, detail: str, topic: str, partition: int, offset: int, timestamp: int | None
) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter record: reason code, explanation and where it came from."""
    return [
        (DLQ_HEADER_REASON, reason.encode()),
        (DLQ_HEADER_DETAIL, detail[:1000].encode("utf-8", "replace")),
        (DLQ_HEADER_TOPIC, topic.encode()),
        (DLQ_HEADER_PARTITION, str(partition).encode()),
        (DLQ_HEADER_OFFSET, str(offset).encode()),
        (DLQ_HEADER_TIMESTAMP, str(timestamp if timestamp is not None else "").encode()),
    ]

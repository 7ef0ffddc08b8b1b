"""Output messages: the propensity event, the outcome record and the dead-letter record's
headers."""

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
    cart_value: float,
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
        "cart_value": cart_value,
        "model_version": model_version,
        "horizon_ms": horizon_ms,
        "event_id": event_id,
        "event_type": event_type,
        "event_ts": event_ts,
        "input_ts": input_ts,
        "scored_at": scored_at,
    }


# How an outcome was decided: the user's first purchase after the event, within the horizon
# (positive), or the event-time watermark passing the end of the horizon (negative).
RESOLVED_BY_PURCHASE: Final = "purchase"
RESOLVED_BY_HORIZON: Final = "horizon"


def outcome_record(
    *,
    event_id: str,
    user_id: str,
    model_version: str,
    event_type: str,
    event_ts: int,
    horizon_ms: int,
    purchase: float,
    cart_abandon: float | None,
    purchase_label: int,
    cart_abandon_label: int | None,
    resolved_by: str,
    resolved_at: int,
) -> dict[str, Any]:
    """The outcome record as a JSON object (see schemas/json/outcome_record.schema.json):
    a published propensity joined with what the shopper did next."""
    return {
        "event_id": event_id,
        "user_id": user_id,
        "model_version": model_version,
        "event_type": event_type,
        "event_ts": event_ts,
        "horizon_ms": horizon_ms,
        "scores": {"purchase": purchase, "cart_abandon": cart_abandon},
        "labels": {"purchase": purchase_label, "cart_abandon": cart_abandon_label},
        "resolved_by": resolved_by,
        "resolved_at": resolved_at,
    }


# Who a marketing action was decided for: sent (treatment) or only recorded (control group).
TREATMENT: Final = "treatment"
CONTROL: Final = "control"


def action_record(
    *,
    action_id: str,
    action: str,
    user_id: str,
    assignment: str,
    decided_at: int,
    event_id: str,
    model_version: str,
    purchase: float,
    cart_abandon: float | None,
    reason: str,
    policy_hash: str,
) -> dict[str, Any]:
    """The action record as a JSON object (see schemas/json/action_record.schema.json)."""
    return {
        "action_id": action_id,
        "action": action,
        "user_id": user_id,
        "assignment": assignment,
        "decided_at": decided_at,
        "event_id": event_id,
        "model_version": model_version,
        "scores": {"purchase": purchase, "cart_abandon": cart_abandon},
        "reason": reason,
        "policy_hash": policy_hash,
    }


def action_outcome_record(
    *,
    action_id: str,
    action: str,
    user_id: str,
    assignment: str,
    decided_at: int,
    horizon_ms: int,
    converted: int,
    resolved_at: int,
) -> dict[str, Any]:
    """Whether the user bought within ``horizon_ms`` after the action was decided
    (schemas/json/action_outcome_record.schema.json)."""
    return {
        "action_id": action_id,
        "action": action,
        "user_id": user_id,
        "assignment": assignment,
        "decided_at": decided_at,
        "horizon_ms": horizon_ms,
        "converted": converted,
        "resolved_at": resolved_at,
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

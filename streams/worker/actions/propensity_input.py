"""Reads the fields the policy needs out of a propensity event (a decoded JSON object).

A malformed event is skipped with a one-line reason, never raised: the propensities topic
is ours, but a bad record must not stop the decisions of every other user.
"""

import math
from typing import Any

from schemas.events import EVENT_TYPES
from streams.worker.actions.state import ScoredEvent


class MalformedPropensity(ValueError):
    """A propensity event the policy cannot read; the message is the one-line reason."""


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedPropensity(f"{key} is not a non-empty string")
    return value


def _probability(scores: dict[str, Any], key: str, *, nullable: bool) -> float | None:
    value = scores.get(key)
    if value is None and nullable and key in scores:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise MalformedPropensity(f"scores.{key} is not a number in [0, 1]")
    return float(value)


def _optional_count(record: dict[str, Any], key: str) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedPropensity(f"{key} is not an integer >= 0")
    return value


def _optional_amount(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedPropensity(f"{key} is not a number >= 0")
    if not math.isfinite(value) or value < 0:
        raise MalformedPropensity(f"{key} is not a number >= 0")
    return float(value)


def read_propensity(record: object) -> tuple[str, ScoredEvent]:
    """(user_id, the scored event) of a propensity event; MalformedPropensity otherwise."""
    if not isinstance(record, dict):
        raise MalformedPropensity("the propensity event is not a JSON object")
    scores = record.get("scores")
    if not isinstance(scores, dict):
        raise MalformedPropensity("scores is not an object")
    event_type = record.get("event_type")
    if event_type not in EVENT_TYPES:
        raise MalformedPropensity(f"event_type is not one of {', '.join(EVENT_TYPES)}")
    ts = record.get("event_ts")
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise MalformedPropensity("event_ts is not an integer >= 0")
    event = ScoredEvent(
        event_id=_text(record, "event_id"),
        event_type=str(event_type),
        ts=ts,
        model_version=_text(record, "model_version"),
        purchase=_probability(scores, "purchase", nullable=False) or 0.0,
        cart_abandon=_probability(scores, "cart_abandon", nullable=True),
        cart_items=_optional_count(record, "cart_items"),
        cart_value=_optional_amount(record, "cart_value"),
    )
    return _text(record, "user_id"), event

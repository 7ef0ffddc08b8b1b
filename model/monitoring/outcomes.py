"""Outcome records read back for monitoring: decoded, checked field by field, never trusted.

The outcome topic is ours (the outcome join publishes it), but a monitor must survive what a
bug, an older producer or a hand-sent record puts there: every defect becomes a
``MalformedOutcome`` with a short reason (a metric label) instead of an exception elsewhere.
"""

import math
from typing import Any, Final, NamedTuple

import orjson

from schemas.exceptions import PropensityError

HEADS: Final = ("purchase", "cart_abandon")
# Reasons a record is skipped, each a bounded metric label.
NOT_JSON: Final = "not_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_FIELD: Final = "missing_field"
WRONG_TYPE: Final = "wrong_type"
BAD_SCORE: Final = "bad_score"
BAD_LABEL: Final = "bad_label"


class MalformedOutcome(PropensityError):
    """An outcome record the monitor cannot use; ``reason`` is one of the codes above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Outcome(NamedTuple):
    """What live quality needs of one outcome record; a head's score and label are None
    when the record does not count for that head (no cart: cart_abandon is null)."""

    event_id: str
    model_version: str
    event_ts: int
    purchase_score: float
    purchase_label: int
    cart_abandon_score: float | None
    cart_abandon_label: int | None

    def head(self, name: str) -> tuple[float, int] | None:
        """(score, label) of head ``name``, None when the record does not count for it."""
        if name == "purchase":
            return self.purchase_score, self.purchase_label
        if self.cart_abandon_score is None or self.cart_abandon_label is None:
            return None
        return self.cart_abandon_score, self.cart_abandon_label


def decode_outcome(value: bytes | None) -> Outcome:
    """Parse one Kafka record value (JSON) into an Outcome, or raise MalformedOutcome."""
    if value is None:
        raise MalformedOutcome(NOT_JSON, "record has no value")
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise MalformedOutcome(NOT_JSON, str(exc)) from None
    return parse_outcome(record)


def parse_outcome(record: Any) -> Outcome:
    """Check a decoded outcome record (a dict as in schemas.outputs.outcome_record)."""
    if not isinstance(record, dict):
        raise MalformedOutcome(NOT_AN_OBJECT, f"expected an object, got {type(record).__name__}")
    event_id = _field(record, "event_id", str)
    model_version = _field(record, "model_version", str)
    event_ts = _field(record, "event_ts", int)
    scores = _field(record, "scores", dict)
    labels = _field(record, "labels", dict)
    purchase_score = _score(scores, "purchase", nullable=False)
    purchase_label = _label(labels, "purchase", nullable=False)
    cart_score = _score(scores, "cart_abandon", nullable=True)
    cart_label = _label(labels, "cart_abandon", nullable=True)
    if not event_id or not model_version:
        raise MalformedOutcome(WRONG_TYPE, "event_id and model_version must be non-empty")
    if (cart_score is None) != (cart_label is None):
        # A label without a score (or the reverse) cannot be scored: the head does not count.
        cart_score = cart_label = None
    assert purchase_score is not None and purchase_label is not None  # nullable=False
    return Outcome(
        event_id, model_version, event_ts, purchase_score, purchase_label, cart_score, cart_label
    )


def _field(record: dict[str, Any], name: str, kind: type) -> Any:
    if name not in record:
        raise MalformedOutcome(MISSING_FIELD, f"no {name!r}")
    value = record[name]
    # bool is an int subclass: true is not an event time.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedOutcome(
            WRONG_TYPE, f"{name!r} is {type(value).__name__}, not {kind.__name__}"
        )
    return value


def _score(scores: dict[str, Any], head: str, *, nullable: bool) -> float | None:
    if head not in scores:
        raise MalformedOutcome(MISSING_FIELD, f"no scores.{head}")
    value = scores[head]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedOutcome(WRONG_TYPE, f"scores.{head} is {type(value).__name__}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise MalformedOutcome(BAD_SCORE, f"scores.{head}={value!r} is not a probability")
    return float(value)


def _label(labels: dict[str, Any], head: str, *, nullable: bool) -> int | None:
    if head not in labels:
        raise MalformedOutcome(MISSING_FIELD, f"no labels.{head}")
    value = labels[head]
    if value is None and nullable:
        return None
    # 1.0 is not a label; true is not either (the contract says integer 0 or 1).
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
        raise MalformedOutcome(BAD_LABEL, f"labels.{head}={value!r} is not 0 or 1")
    return value

"""The input event contract: decode raw Kafka bytes into a validated, normalised ShopEvent."""

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final

import fastjsonschema
import orjson

from schemas.exceptions import InvalidEvent

EVENT_TYPES: Final = ("view", "add_to_cart", "remove_from_cart", "wishlist", "purchase")
EVENT_TYPE_INDEX: Final = {name: i for i, name in enumerate(EVENT_TYPES)}
DEFAULT_MAX_EVENT_BYTES: Final = 16_384
DEFAULT_MAX_FUTURE_MS: Final = 3_600_000  # clock skew allowed between producers and the worker

# Bounded set of reasons: they label a Prometheus counter and the DLQ header.
REASONS: Final = (
    "oversized",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "out_of_range",
    "bad_timestamp",
    "key_mismatch",
    "control_character",
    "internal_error",
    "non_finite_score",
)

_RULE_REASON: Final = {
    "required": "missing_field",
    "type": "wrong_type",
    "oneOf": "wrong_type",
    "enum": "unknown_event_type",
    "minimum": "out_of_range",
    "maximum": "out_of_range",
    "minLength": "missing_field",
    "maxLength": "out_of_range",
    "not": "control_character",  # the only "not" in the schema: ids without control characters
}


def load_json_schema(name: str) -> dict[str, Any]:
    """Return one of the JSON Schema files shipped in ``schemas/json``."""
    text = resources.files("schemas").joinpath("json", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


_SCHEMA: Final = load_json_schema("input_event.schema.json")
_validate = fastjsonschema.compile(_SCHEMA)

# Limits read from the schema, the one place they are defined.
MIN_EVENT_TS_MS: Final[int] = _SCHEMA["properties"]["ts"]["minimum"]  # 2000-01-01T00:00:00Z
MAX_EVENT_TS_MS: Final[int] = _SCHEMA["properties"]["ts"]["maximum"]
# A numeric ts in this range is epoch *seconds* of 2000-5138, not milliseconds: said so.
_SECONDS_RANGE: Final = (MIN_EVENT_TS_MS // 1000, 10**11)


@dataclass(frozen=True, slots=True)
class ShopEvent:
    """One validated shopper action, event time in epoch milliseconds."""

    event_type: str
    user_id: str
    item_id: str
    ts: int
    event_id: str | None = None
    session_id: str | None = None
    category: str | None = None
    price: float | None = None
    quantity: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as a contract-conforming JSON object (absent fields omitted)."""
        out: dict[str, Any] = {
            "event_type": self.event_type,
            "user_id": self.user_id,
            "item_id": self.item_id,
            "ts": self.ts,
        }
        for name in ("event_id", "session_id", "category", "price", "quantity"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json())


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


def iso_to_epoch_ms(text: str) -> int:
    """ISO-8601 (``Z``, offsets or a trailing `` UTC``; naive = UTC) to exact epoch ms.

    Raises ValueError when the text is not ISO-8601. Integer division of timedeltas is exact,
    where float timestamps can be off by a millisecond.
    """
    cleaned = text.strip()
    if cleaned.endswith(" UTC"):
        cleaned = cleaned[:-4] + "+00:00"
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def parse_timestamp(value: int | float | str) -> int:
    """Normalise epoch milliseconds or an ISO-8601 string (naive = UTC) to epoch ms.

    An integral float (``1.7e12``) is that integer, as JSON Schema counts it. Times before
    2000-01-01 or after the year 3000 are refused; so is a fractional number.
    """
    if isinstance(value, str):
        try:
            millis = iso_to_epoch_ms(value)
        except ValueError:
            raise InvalidEvent("bad_timestamp", f"ts {value!r} is not ISO-8601") from None
    elif isinstance(value, float) and not value.is_integer():
        raise InvalidEvent("bad_timestamp", f"ts {value!r} is not a whole number of ms")
    else:
        millis = int(value)
    if not MIN_EVENT_TS_MS <= millis <= MAX_EVENT_TS_MS:
        raise InvalidEvent("bad_timestamp", _out_of_range_detail(value))
    return millis


def _out_of_range_detail(value: int | float | str) -> str:
    if not isinstance(value, str) and _SECONDS_RANGE[0] <= value < _SECONDS_RANGE[1]:
        return f"ts {value!r} looks like epoch seconds: the contract wants epoch milliseconds"
    return f"ts {value!r} is outside 2000-01-01 .. 3000-01-01"


def check_not_ahead(ts: int, now_ms: int, max_future_ms: int) -> None:
    """Refuse an event time further ahead of the clock than the allowed skew.

    One event dated in the future would otherwise make every later event of that user look
    late, and each late event rebuilds the user's state from the window.
    """
    if ts - now_ms > max_future_ms:
        raise InvalidEvent(
            "bad_timestamp",
            f"ts {ts} is {(ts - now_ms) / 1000:.0f} s ahead of the worker's clock "
            f"(at most {max_future_ms / 1000:.0f} s allowed)",
        )


def _as_int(value: int | float | None) -> int | None:
    """A JSON integer as int: the schema already refused fractional numbers."""
    return None if value is None else int(value)


def event_from_object(obj: Any) -> ShopEvent:
    """Validate a decoded JSON value against the contract and normalise it."""
    if not isinstance(obj, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    try:
        _validate(obj)
    except fastjsonschema.JsonSchemaValueException as exc:
        reason = _RULE_REASON.get(exc.rule or "", "wrong_type")
        detail = exc.message
        if exc.name == "data.ts":
            reason = "bad_timestamp"
            if exc.rule == "minimum":
                detail = _out_of_range_detail(obj["ts"])
        raise InvalidEvent(reason, detail) from None
    price = obj.get("price")
    if price is not None and not math.isfinite(price):  # NaN passes "minimum"/"maximum"
        raise InvalidEvent("out_of_range", f"price {price!r} is not a finite number")
    item_id = obj["item_id"]
    return ShopEvent(
        event_type=obj["event_type"],
        user_id=obj["user_id"],
        item_id=item_id if isinstance(item_id, str) else str(int(item_id)),
        ts=parse_timestamp(obj["ts"]),
        event_id=obj.get("event_id"),
        session_id=obj.get("session_id"),
        category=obj.get("category"),
        price=None if price is None else float(price),
        quantity=_as_int(obj.get("quantity")),
    )


def decode_event(
    raw: bytes | None,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    *,
    now_ms: int | None = None,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
) -> ShopEvent:
    """Decode one Kafka message value; raise InvalidEvent with a reason on any breach.

    With ``now_ms``, an event time more than ``max_future_ms`` ahead of it is refused.
    """
    if raw is None:
        raise InvalidEvent("invalid_json", "message has no value (tombstone)")
    if len(raw) > max_bytes:
        raise InvalidEvent("oversized", f"{len(raw)} bytes exceeds the {max_bytes}-byte cap")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("invalid_json", str(exc)) from None
    event = event_from_object(obj)
    if now_ms is not None:
        check_not_ahead(event.ts, now_ms, max_future_ms)
    return event

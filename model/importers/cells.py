"""Parsers for single cells of the public formats, and the contract-checked event builder."""

import math
from functools import lru_cache
from typing import Final

from model.importers.exceptions import BadRow
from schemas.events import EVENT_TYPES, ShopEvent, iso_to_epoch_ms

# The contract's limits (schemas/json/input_event.schema.json), checked here so that every
# imported event decodes again on the stream side.
MAX_ID_CHARS: Final = 200
MAX_CATEGORY_CHARS: Final = 300
MAX_TS_MS: Final = 32_503_680_000_000
MAX_QUANTITY: Final = 1_000_000
_EVENT_TYPES: Final = frozenset(EVENT_TYPES)


def uint_text(text: str, name: str) -> str:
    """An unsigned integer id kept as its text (leading zeros and width preserved)."""
    if not text:
        raise BadRow("missing_field", f"{name} is empty")
    if not (text.isascii() and text.isdigit()):
        raise BadRow("bad_number", f"{name} {text!r} is not an unsigned integer")
    return text


def parse_int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRow("bad_number", f"{name} {text!r} is not an integer") from None


def parse_price(text: str) -> float:
    """A finite, non-negative price."""
    try:
        price = float(text)
    except ValueError:
        raise BadRow("bad_number", f"price {text!r} is not a number") from None
    if not math.isfinite(price):
        raise BadRow("bad_number", f"price {text!r} is not finite")
    if price < 0:
        raise BadRow("negative_price", f"price {text!r} is negative")
    return price


def epoch_seconds_to_ms(text: str) -> int:
    seconds = parse_int(text, "timestamp")
    return checked_ts(seconds * 1000, text)


def epoch_ms(text: str) -> int:
    return checked_ts(parse_int(text, "timestamp"), text)


def checked_ts(millis: int, shown: object) -> int:
    if not 0 <= millis <= MAX_TS_MS:
        raise BadRow("bad_timestamp", f"timestamp {shown!r} is outside 1970..3000")
    return millis


@lru_cache(maxsize=4096)
def iso_to_ms(text: str) -> int:
    """ISO-8601 (``Z``, offsets or a trailing `` UTC``; naive means UTC) to exact epoch ms."""
    try:
        millis = iso_to_epoch_ms(text)
    except ValueError:
        raise BadRow("bad_timestamp", f"time {text!r} is not ISO-8601") from None
    return checked_ts(millis, text)


def make_event(
    event_type: str,
    user_id: str,
    item_id: str,
    ts: int,
    *,
    session_id: str | None = None,
    category: str | None = None,
    price: float | None = None,
    quantity: int | None = None,
) -> ShopEvent:
    """Build a ShopEvent that satisfies every limit of the input contract, or raise BadRow."""
    if event_type not in _EVENT_TYPES:
        raise BadRow("unknown_event_type", f"event type {event_type!r}")
    for name, value in (("user_id", user_id), ("item_id", item_id)):
        if not value:
            raise BadRow("missing_field", f"{name} is empty")
        if len(value) > MAX_ID_CHARS:
            raise BadRow("out_of_range", f"{name} is longer than {MAX_ID_CHARS} characters")
    if session_id is not None and len(session_id) > MAX_ID_CHARS:
        raise BadRow("out_of_range", f"session_id is longer than {MAX_ID_CHARS} characters")
    if category is not None and len(category) > MAX_CATEGORY_CHARS:
        raise BadRow("out_of_range", f"category is longer than {MAX_CATEGORY_CHARS} characters")
    if quantity is not None and not 1 <= quantity <= MAX_QUANTITY:
        raise BadRow("out_of_range", f"quantity {quantity} is outside 1..{MAX_QUANTITY}")
    return ShopEvent(
        event_type=event_type,
        user_id=user_id,
        item_id=item_id,
        ts=ts,
        session_id=session_id,
        category=category,
        price=price,
        quantity=quantity,
    )


def mapped_type(value: str, mapping: dict[str, str]) -> str:
    """The contract event type for a source behaviour name."""
    try:
        return mapping[value]
    except KeyError:
        known = ", ".join(sorted(mapping))
        raise BadRow("unknown_event_type", f"{value!r} is not one of {known}") from None

"""Parsers for single cells of the public formats, and the contract-checked event builder."""

import math
from functools import lru_cache
from typing import Final

from model.importers.exceptions import BadRow
from schemas.events import (
    EVENT_TYPES,
    MAX_EVENT_TS_MS,
    MIN_EVENT_TS_MS,
    ShopEvent,
    event_from_object,
    iso_to_epoch_ms,
)
from schemas.exceptions import InvalidEvent

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
    if not MIN_EVENT_TS_MS <= millis <= MAX_EVENT_TS_MS:
        raise BadRow("bad_timestamp", f"timestamp {shown!r} is outside 2000..3000")
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
    """Build a ShopEvent that satisfies every limit of the input contract, or raise BadRow.

    The contract's own check (the JSON Schema and the decoder's rules) decides, so every
    imported event decodes again on the stream side.
    """
    if event_type not in _EVENT_TYPES:
        raise BadRow("unknown_event_type", f"event type {event_type!r}")
    event = ShopEvent(
        event_type=event_type,
        user_id=user_id,
        item_id=item_id,
        ts=ts,
        session_id=session_id,
        category=category,
        price=price,
        quantity=quantity,
    )
    try:
        return event_from_object(event.to_json())
    except InvalidEvent as exc:
        raise BadRow(exc.reason, exc.detail) from None


def mapped_type(value: str, mapping: dict[str, str]) -> str:
    """The contract event type for a source behaviour name."""
    try:
        return mapping[value]
    except KeyError:
        known = ", ".join(sorted(mapping))
        raise BadRow("unknown_event_type", f"{value!r} is not one of {known}") from None

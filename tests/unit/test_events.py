"""The input contract: decoding, normalisation and the reason given for each breach."""

import orjson
import pytest

from schemas.events import REASONS, decode_event, parse_timestamp
from schemas.exceptions import InvalidEvent


def raw(**fields: object) -> bytes:
    base: dict[str, object] = {
        "event_type": "view",
        "user_id": "u1",
        "item_id": "i1",
        "ts": 1_570_000_000_000,
    }
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_valid_event_is_normalised() -> None:
    event = decode_event(
        raw(item_id=42, ts="2019-10-01 00:00:05 UTC", price=3, quantity=2, session_id="s")
    )
    assert event.item_id == "42"
    assert event.ts == 1_569_888_005_000
    assert event.price == 3.0 and event.quantity == 2 and event.session_id == "s"


def test_iso_offsets_and_naive_times() -> None:
    assert parse_timestamp("2019-10-01T02:00:00+02:00") == parse_timestamp("2019-10-01T00:00:00")
    assert parse_timestamp("2019-10-01T00:00:00Z") == 1_569_888_000_000


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{oops", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (raw(user_id=...), "missing_field"),
        (raw(item_id=...), "missing_field"),
        (raw(user_id=""), "missing_field"),
        (raw(user_id=17), "wrong_type"),
        (raw(event_type="checkout"), "unknown_event_type"),
        (raw(price=-1.0), "out_of_range"),
        (raw(quantity=0), "out_of_range"),
        (raw(price="12"), "wrong_type"),
        (raw(ts="last tuesday"), "bad_timestamp"),
        (raw(ts=True), "bad_timestamp"),
        (raw(ts="soon"), "bad_timestamp"),
        (raw(ts=-5), "bad_timestamp"),
        (raw(item_id=-3), "out_of_range"),
        (raw(item_id=""), "missing_field"),
    ],
)
def test_breaches_name_their_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(payload)
    assert info.value.reason == reason
    assert info.value.reason in REASONS
    assert info.value.detail


def test_oversized_payload_is_refused_before_parsing() -> None:
    big = raw(category="x" * 250)
    with pytest.raises(InvalidEvent) as info:
        decode_event(big, max_bytes=100)
    assert info.value.reason == "oversized"


def test_tombstone_is_invalid() -> None:
    with pytest.raises(InvalidEvent):
        decode_event(None)


def test_iso_milliseconds_are_exact() -> None:
    # A float timestamp gets some of these wrong by one millisecond.
    for millis in (1, 7, 123, 999):
        text = f"2019-10-01T00:00:00.{millis:03d}Z"
        assert parse_timestamp(text) == 1_569_888_000_000 + millis

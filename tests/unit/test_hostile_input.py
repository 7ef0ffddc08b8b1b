"""Hostile input: every record ends as a propensity or a dead letter with a known reason."""

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.importers.jsonl import CONTRACT_KEYS
from model.serving.export import load_model
from model.serving.scorer import SequenceScorer
from model.serving.user_state import SEQUENCE_RECORD, encode_records, record_from_event
from schemas.events import REASONS, ShopEvent, decode_event
from schemas.exceptions import InvalidEvent
from streams.worker.scoring_step import InputRecord, StepConfig, decode_record, score_batch

T0 = 1_733_300_000_000
NOW = T0 + 60_000


def raw(**fields: object) -> bytes:
    base: dict[str, object] = {"event_type": "view", "user_id": "u1", "item_id": "i1", "ts": T0}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def reason_of(payload: bytes, **kwargs: Any) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode_event(payload, **kwargs)
    assert info.value.reason in REASONS and info.value.detail
    return info.value.reason


# --- the rules, one by one ------------------------------------------------------------------


def test_integral_floats_are_the_integers_json_schema_says_they_are() -> None:
    event = decode_event(
        b'{"event_type":"add_to_cart","user_id":"u","item_id":5.0,'
        b'"ts":1733300000000.0,"quantity":2.0}'
    )
    assert (event.ts, event.item_id, event.quantity) == (T0, "5", 2)
    assert type(event.ts) is int and type(event.quantity) is int
    SEQUENCE_RECORD.pack(*record_from_event(event))  # what crashed the agent before


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ts": 1733300000000.5}, "bad_timestamp"),
        ({"quantity": 2.5}, "wrong_type"),
        ({"item_id": 5.5}, "wrong_type"),
        ({"price": 1e300}, "out_of_range"),
        ({"price": 1e9 + 1}, "out_of_range"),
        ({"item_id": 2**64 - 1}, "out_of_range"),
        ({"item_id": 1e30}, "out_of_range"),
        ({"quantity": 10**7}, "out_of_range"),
        ({"ts": 1_733_300_000}, "bad_timestamp"),  # epoch seconds
        ({"ts": 0}, "bad_timestamp"),
        ({"ts": "1999-12-31T23:59:59Z"}, "bad_timestamp"),
        ({"ts": 10**17}, "bad_timestamp"),
        ({"user_id": "u\x001"}, "control_character"),
        ({"item_id": "i\n"}, "control_character"),
        ({"event_id": "e\x7f"}, "control_character"),
        ({"session_id": "\x1b[31m"}, "control_character"),
        ({"event_id": 7}, "wrong_type"),
    ],
)
def test_out_of_contract_values_get_their_reason(fields: dict[str, object], reason: str) -> None:
    assert reason_of(raw(**fields)) == reason


def test_epoch_seconds_are_named_as_such() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw(ts=1_733_300_000))
    assert "epoch seconds" in info.value.detail


def test_events_far_in_the_future_are_refused_relative_to_the_clock() -> None:
    hour = 3_600_000
    assert decode_event(raw(ts=NOW + hour), now_ms=NOW, max_future_ms=hour).ts == NOW + hour
    assert reason_of(raw(ts=NOW + hour + 1), now_ms=NOW, max_future_ms=hour) == "bad_timestamp"
    assert decode_event(raw(ts=NOW + 10 * hour)).ts == NOW + 10 * hour  # no clock: no check


def test_null_event_id_means_absent_and_control_free_text_passes() -> None:
    event = decode_event(raw(event_id=None, category="Küche\tHerd", user_id="ü-1"))
    assert event.event_id is None and event.user_id == "ü-1"


# --- totality, property-based ---------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = (
    st.sampled_from(["view", "add_to_cart", "purchase", "", "u1", "2019-10-01T00:00:00Z"])
    | st.integers(min_value=-(2**66), max_value=2**66)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([T0, T0 + 0.0, T0 / 1000, 1e300, -0.0, 2**63, "\x00", None, True])
    | st.text(max_size=12)
)
near_valid = st.fixed_dictionaries(
    {}, optional={name: field_values for name in sorted(CONTRACT_KEYS)}
)


def check_total(payload: bytes, key: bytes | None = b"u1") -> None:
    record = InputRecord("t", 0, 0, key, payload, None, 0.0)
    try:
        event = decode_record(record, 16_384, NOW, 3_600_000)
    except InvalidEvent as exc:
        assert exc.reason in REASONS, exc.reason
        return
    assert isinstance(event, ShopEvent)
    compact = record_from_event(event)
    SEQUENCE_RECORD.pack(*compact)  # every accepted event fits the stored layout
    features, _, _ = encode_records([compact])
    assert all(math.isfinite(v) for v in features.ravel())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid)
def test_decoding_near_valid_objects_is_total(obj: dict[str, Any]) -> None:
    payload = json.dumps(obj).encode()  # stdlib: writes integers of any size
    key = obj.get("user_id").encode() if isinstance(obj.get("user_id"), str) else b"u1"
    check_total(payload, key)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_decoding_any_json_is_total(value: Any) -> None:
    check_total(json.dumps(value).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoding_any_bytes_is_total(payload: bytes) -> None:
    check_total(payload)


@pytest.fixture(scope="module")
def scorer(untrained_model: Path) -> SequenceScorer:
    return SequenceScorer(load_model(untrained_model))


# --- the batch step -------------------------------------------------------------------------


def test_a_record_that_breaks_the_decoder_is_an_internal_error_dead_letter(scorer: Any) -> None:
    bad = InputRecord("t", 0, 1, b"u1", 12345, None, 0.0)  # type: ignore[arg-type]
    good = InputRecord("t", 0, 2, b"u1", raw(), None, 0.0)
    result = score_batch(
        [bad, good], lambda _: None, scorer, StepConfig(max_event_bytes=16_384, horizon_ms=1), NOW
    )
    (dead,) = result.dead_letters
    assert dead.reason == "internal_error"
    assert dead.detail.startswith("unforeseen TypeError while decoding")
    assert len(result.scored) == 1


def test_oversized_records_are_cut_to_a_prefix_in_the_dead_letter(scorer: Any) -> None:
    huge = raw(category="x" * 200_000)
    record = InputRecord("t", 3, 9, b"k" * 5000, huge, None, 0.0)
    result = score_batch(
        [record], lambda _: None, scorer, StepConfig(max_event_bytes=1000, horizon_ms=1), NOW
    )
    out = result.dead_letters[0].output
    headers = dict(out.headers or [])
    assert out.value == huge[:1000] and out.key == b"k" * 1024
    assert headers["dlq.value.truncated"] == str(len(huge)).encode()
    assert headers["dlq.key.truncated"] == b"5000"
    assert headers["dlq.reason"] == b"oversized"

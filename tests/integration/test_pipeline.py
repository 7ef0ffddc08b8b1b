"""End to end on a real broker: valid events -> one propensity each; invalid -> the DLQ."""

import asyncio
from pathlib import Path

import orjson
import pytest

from model.serving.export import load_model
from schemas.outputs import (
    DLQ_HEADER_OFFSET,
    DLQ_HEADER_PARTITION,
    DLQ_HEADER_REASON,
    DLQ_HEADER_TOPIC,
)
from streams.harness.producer import topic_for
from streams.worker.admin import ensure_topics, service_topics
from tests.kafka_helpers import collect, produce, start_worker, worker_settings

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


def valid_events() -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    kinds = [
        "view",
        "view",
        "add_to_cart",
        "view",
        "remove_from_cart",
        "add_to_cart",
        "wishlist",
        "purchase",
    ]
    for user in range(5):
        for step, kind in enumerate(kinds):
            events.append(
                {
                    "event_id": f"u{user}-e{step}",
                    "event_type": kind,
                    "user_id": f"user-{user}",
                    "item_id": f"item-{(user + step) % 4}",
                    "ts": T0 + user * 1000 + step * 60_000,
                    "price": 10.0 + step,
                    "session_id": f"s{user}",
                }
            )
    # One late event: earlier than the user's last one; it must still get exactly one score.
    events.append(
        {
            "event_id": "late",
            "event_type": "view",
            "user_id": "user-0",
            "item_id": "x",
            "ts": T0 - 5000,
        }
    )
    return events


INVALID: list[tuple[bytes | None, bytes, str]] = [
    (b"user-1", b"{this is not json", "invalid_json"),
    (b"user-1", b'["a", "list"]', "not_an_object"),
    (b"user-2", orjson.dumps({"event_type": "view", "item_id": "i", "ts": T0}), "missing_field"),
    (
        b"user-2",
        orjson.dumps({"event_type": "view", "user_id": "user-2", "ts": T0}),
        "missing_field",
    ),
    (
        b"user-3",
        orjson.dumps({"event_type": "teleport", "user_id": "user-3", "item_id": "i", "ts": T0}),
        "unknown_event_type",
    ),
    (
        b"user-3",
        orjson.dumps(
            {"event_type": "view", "user_id": "user-3", "item_id": "i", "ts": "not a date at all"}
        ),
        "bad_timestamp",
    ),
    (
        b"user-4",
        orjson.dumps(
            {"event_type": "view", "user_id": "user-4", "item_id": "i", "ts": T0, "price": "free"}
        ),
        "wrong_type",
    ),
    (
        b"user-4",
        orjson.dumps(
            {
                "event_type": "view",
                "user_id": "user-4",
                "item_id": "i",
                "ts": T0,
                "category": "x" * 20_000,
            }
        ),
        "oversized",
    ),
    (
        b"someone-else",
        orjson.dumps({"event_type": "view", "user_id": "user-0", "item_id": "i", "ts": T0}),
        "key_mismatch",
    ),
]


@pytest.mark.parametrize("combined", [False, True], ids=["three-topics", "combined-topic"])
def test_valid_in_equals_propensities_out_and_invalid_in_equals_dlq(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str, combined: bool
) -> None:
    settings = worker_settings(
        unique_name, kafka_bootstrap, untrained_model, tmp_path, combined=combined, partitions=4
    )
    ensure_topics(settings, service_topics(settings))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        events = valid_events()
        records: list[tuple[str, bytes | None, bytes]] = []
        for event in events:
            topic = topic_for(str(event["event_type"]), settings.input_topics)
            records.append((topic, str(event["user_id"]).encode(), orjson.dumps(event)))
        invalid_at = {}
        for i, (key, value, reason) in enumerate(INVALID):
            position = 3 + i * 4  # interleave bad records among the good ones
            records.insert(position, (settings.input_topics[0], key, value))
            invalid_at[value] = reason
        sent = asyncio.run(produce(kafka_bootstrap, records))
        outputs = asyncio.run(
            collect(kafka_bootstrap, [settings.output_topic], expected=len(events), timeout=90)
        )
        dead = asyncio.run(
            collect(kafka_bootstrap, [settings.dlq_topic], expected=len(INVALID), timeout=30)
        )
    finally:
        code = worker.stop()
    log = worker.log()
    assert code == 0, log[-3000:]

    version = load_model(untrained_model).meta.model_version
    by_event = {}
    for message in outputs:
        body = orjson.loads(message.value)
        assert message.key == body["user_id"].encode()
        assert body["model_version"] == version
        assert 0.0 <= body["scores"]["purchase"] <= 1.0
        cart = body["scores"]["cart_abandon"]
        assert cart is None or 0.0 <= cart <= 1.0
        assert (cart is None) == (body["cart_items"] == 0)
        assert body["event_id"] not in by_event, "duplicate propensity for one event"
        by_event[body["event_id"]] = body
    assert set(by_event) == {e["event_id"] for e in events}
    for event in events:
        assert by_event[str(event["event_id"])]["user_id"] == event["user_id"]

    # Dead letters are matched by where their record came from: an oversized one keeps only a
    # prefix of the original value (and says how long it was).
    sent_at = dict(zip(sent, (value for _, _, value in records), strict=True))
    assert len(dead) == len(INVALID)
    for message in dead:
        headers = dict(message.headers)
        source = (
            headers[DLQ_HEADER_TOPIC].decode(),
            int(headers[DLQ_HEADER_PARTITION]),
            int(headers[DLQ_HEADER_OFFSET]),
        )
        value = sent_at[source]
        assert headers[DLQ_HEADER_REASON].decode() == invalid_at[value]
        if invalid_at[value] == "oversized":
            assert value.startswith(message.value) and len(message.value) < len(value)
            assert int(headers["dlq.value.truncated"]) == len(value)
        else:
            assert message.value == value
    assert sorted(invalid_at.values()) == sorted(
        dict(m.headers)[DLQ_HEADER_REASON].decode() for m in dead
    )

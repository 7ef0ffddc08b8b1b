"""The JSON Schema files downstream teams get must accept the messages we really produce."""

import time
from pathlib import Path

import jsonschema
import orjson

from model.serving.export import load_model
from model.serving.scorer import SequenceScorer
from schemas.events import decode_event, load_json_schema
from streams.worker.scoring_step import InputRecord, StepConfig, score_batch


def test_schemas_are_valid_json_schema() -> None:
    for name in ("input_event.schema.json", "propensity_event.schema.json"):
        jsonschema.Draft202012Validator.check_schema(load_json_schema(name))


def test_real_messages_validate(untrained_model: Path) -> None:
    input_schema = jsonschema.Draft202012Validator(load_json_schema("input_event.schema.json"))
    output_schema = jsonschema.Draft202012Validator(
        load_json_schema("propensity_event.schema.json")
    )
    scorer = SequenceScorer(load_model(untrained_model))
    events = [
        {
            "event_type": "view",
            "user_id": "u1",
            "item_id": 5,
            "ts": "2019-10-01T00:00:00Z",
            "price": 10.0,
        },
        {
            "event_type": "add_to_cart",
            "user_id": "u1",
            "item_id": "5",
            "ts": 1_569_888_001_000,
            "quantity": 2,
        },
        {
            "event_type": "purchase",
            "user_id": "u1",
            "item_id": "5",
            "ts": 1_569_888_002_000,
            "event_id": "e3",
        },
    ]
    records = []
    for offset, event in enumerate(events):
        input_schema.validate(event)
        value = orjson.dumps(event)
        decode_event(value)
        records.append(InputRecord("clicks", 0, offset, b"u1", value, 1, 0.0))
    config = StepConfig(max_event_bytes=10_000, horizon_ms=3_600_000)
    result = score_batch(records, lambda _: None, scorer, config, int(time.time() * 1000))
    outputs = [s.output for s in result.scored]
    assert len(outputs) == 3
    for out in outputs:
        output_schema.validate(orjson.loads(out.value))
    carts = [orjson.loads(o.value)["scores"]["cart_abandon"] for o in outputs]
    assert carts[0] is None and carts[1] is not None and carts[2] is None

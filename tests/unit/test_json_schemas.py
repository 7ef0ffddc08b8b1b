"""The JSON Schema files downstream teams get must accept the messages we really produce."""

import time
from pathlib import Path

import jsonschema
import orjson

from model.serving.export import load_model
from model.serving.scorer import SequenceScorer
from schemas.events import decode_event, load_json_schema
from schemas.outputs import action_outcome_record, action_record
from streams.worker.scoring_step import InputRecord, StepConfig, score_batch

SCHEMA_FILES = sorted(
    p.name for p in (Path(__file__).parents[2] / "schemas" / "json").glob("*.schema.json")
)


def test_schemas_are_valid_json_schema() -> None:
    assert len(SCHEMA_FILES) >= 5
    for name in SCHEMA_FILES:
        jsonschema.Draft202012Validator.check_schema(load_json_schema(name))


def test_action_records_we_build_validate() -> None:
    action = action_record(
        action_id="0" * 32,
        action="cart_reminder",
        user_id="u1",
        assignment="control",
        decided_at=1,
        event_id="e1",
        model_version="m",
        purchase=0.2,
        cart_abandon=None,
        reason="cart_abandon 0.8 >= 0.7",
        policy_hash="abc",
    )
    outcome = action_outcome_record(
        action_id="0" * 32,
        action="cart_reminder",
        user_id="u1",
        assignment="control",
        decided_at=1,
        horizon_ms=10,
        converted=1,
        resolved_at=5,
    )
    for message, name in (
        (action, "action_record.schema.json"),
        (outcome, "action_outcome_record.schema.json"),
    ):
        jsonschema.Draft202012Validator(load_json_schema(name)).validate(message)


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

"""On a real broker: every propensity of simulated shoppers gets exactly the label that
training gives the same events offline (model/training/data.py -> model/serving/labels.py),
including shoppers who never come back."""

import asyncio
from collections import Counter
from pathlib import Path

import fastjsonschema
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from model.serving.export import load_model
from model.simulate.config import SimulationConfig
from model.simulate.run import simulate
from model.training.data import build_dataset
from schemas.events import ShopEvent, load_json_schema
from streams.worker.admin import ensure_topics, service_topics
from tests.kafka_helpers import collect, produce, start_worker, worker_settings

pytestmark = pytest.mark.integration

PARTITIONS = 2


def as_json(event: ShopEvent) -> bytes:
    return orjson.dumps(event.to_json())


def clock_users(partitions: int) -> list[str]:
    """One user id per partition: their late events move every partition's watermark."""
    partitioner, found = DefaultPartitioner(), {}
    for i in range(1000):
        user = f"clock-{i}"
        found.setdefault(partitioner(user.encode(), list(range(partitions)), None), user)
        if len(found) == partitions:
            return [found[p] for p in range(partitions)]
    raise AssertionError("no key for some partition")


def test_every_propensity_gets_the_offline_label(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str
) -> None:
    horizon = load_model(untrained_model).meta.horizon_ms
    config = SimulationConfig(n_users=150, days=4, seed=11, with_oracle=False, n_items=300)
    events = [s.event for s in simulate(config)]
    settings = worker_settings(
        unique_name, kafka_bootstrap, untrained_model, tmp_path, partitions=PARTITIONS
    )
    lateness = settings.outcome_allowed_lateness_seconds * 1000
    end = max(e.ts for e in events) + horizon + lateness + 2
    clocks = [
        ShopEvent("view", user, "clock-item", end, f"clock-{user}", None, None, None, None)
        for user in clock_users(PARTITIONS)
    ]
    topic = settings.input_topics[0]
    records = [(topic, e.user_id.encode(), as_json(e)) for e in [*events, *clocks]]
    ensure_topics(settings, service_topics(settings))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        asyncio.run(produce(kafka_bootstrap, records))
        outcomes = asyncio.run(
            collect(kafka_bootstrap, [settings.outcomes_topic], expected=len(events), timeout=120)
        )
        propensities = asyncio.run(
            collect(kafka_bootstrap, [settings.output_topic], expected=len(records), timeout=30)
        )
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]

    validate = fastjsonschema.compile(load_json_schema("outcome_record.schema.json"))
    scored = {orjson.loads(m.value)["event_id"]: orjson.loads(m.value) for m in propensities}
    got = {}
    for message in outcomes:
        body = orjson.loads(message.value)
        validate(body)
        assert message.key == body["user_id"].encode()
        assert body["event_id"] not in got, "a clean run publishes one outcome per propensity"
        got[body["event_id"]] = body
        assert body["scores"] == scored[body["event_id"]]["scores"]
    # every real event resolved; the clock events' own horizons are still open
    assert set(got) == {e.event_id for e in events}

    dataset = build_dataset(events, horizon_ms=horizon)
    by_user: dict[str, list[ShopEvent]] = {}
    for event in events:
        by_user.setdefault(event.user_id, []).append(event)
    compared = Counter()
    for user in dataset.users:
        ordered = sorted(by_user[user.user_id], key=lambda e: e.ts)  # training's stable order
        labels = user.labels
        for i, event in enumerate(ordered):
            outcome = got[event.event_id]
            purchase = int(labels.purchase_within_horizon[i])
            cart = int(labels.cart_abandon[i]) if user.cart_items[i] > 0 else None
            assert outcome["labels"] == {"purchase": purchase, "cart_abandon": cart}, event
            assert outcome["resolved_by"] == ("purchase" if purchase else "horizon")
            compared[(purchase, cart is not None)] += 1
    # the comparison covered positives, negatives and both cart cases
    assert sum(compared.values()) == len(events)
    assert all(compared[(p, c)] > 0 for p in (0, 1) for c in (False, True)), compared
    # users who never came back after their last event still got all their labels
    gone = [u for u, evs in by_user.items() if max(e.ts for e in evs) + horizon < end - lateness]
    assert gone and all(got[e.event_id] for u in gone for e in by_user[u])
